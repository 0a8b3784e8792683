//! Seeded mini-batch training with early stopping and Platt calibration.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use crate::calibration::PlattScaling;
use crate::data::Dataset;
use crate::error::{ModelError, TensorContext};
use crate::features::FeaturePipeline;
use crate::metrics::Metrics;
use crate::model::ResponseRateModel;
use crate::network::{Architecture, Weights, binary_cross_entropy};
use crate::schema::Schema;
use crate::split::Rng;

/// Training settings. The defaults are the ones chosen by measurement on the
/// bank marketing split (see docs/benchmarks.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub architecture: Architecture,
    /// AdamW step size.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay, per unit of learning rate.
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without a better validation loss before training stops.
    pub patience: usize,
    /// Seeds weight initialisation and batch order.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            architecture: Architecture {
                hidden: 16,
                members: 5,
            },
            learning_rate: 1e-3,
            weight_decay: 0.05,
            batch_size: 256,
            max_epochs: 60,
            patience: 6,
            seed: 42,
        }
    }
}

/// The state after one epoch, passed to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// 1-based epoch number.
    pub epoch: usize,
    pub max_epochs: usize,
    /// Mean training loss per member over the epoch's batches.
    pub train_loss: f64,
    /// Validation log-loss of the ensemble's mean logit, before calibration.
    pub validation_loss: f64,
    /// The epoch whose weights are kept so far.
    pub best_epoch: usize,
}

/// The outcome of a training run: epochs, time, calibration and scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub seconds: f64,
    pub train_rows: usize,
    pub validation_rows: usize,
    pub calibration: PlattScaling,
    /// Calibrated scores on the validation rows. They are optimistic because
    /// the same rows chose the epoch and fitted the calibration.
    pub validation: Metrics,
}

/// Trains a response-rate model.
///
/// Fits the feature pipeline on `train`, trains the network with AdamW on
/// shuffled mini-batches, keeps the weights of the epoch with the lowest
/// validation loss, stopping after `patience` epochs without improvement,
/// and fits Platt scaling on `validation`. `progress` is called after every
/// epoch. The result depends only on the data, the schema and `config`.
pub fn train(
    schema: &Schema,
    train: &Dataset,
    validation: &Dataset,
    config: &TrainConfig,
    mut progress: impl FnMut(&Progress),
) -> Result<(ResponseRateModel, TrainSummary), ModelError> {
    check_config(config, train, validation)?;
    let started = Instant::now();
    let architecture = config.architecture;

    let pipeline = FeaturePipeline::fit(schema, train.records())?;
    let inputs = pipeline.width();
    let x_train = matrix(pipeline.transform(train.records())?, inputs)?;
    let y_train = targets(train.labels())?;
    let x_validation = matrix(pipeline.transform(validation.records())?, inputs)?;
    let validation_labels = validation.labels();

    let vars = architecture.init_vars(inputs, config.seed)?;
    let weights = Weights::from_vars(&vars);
    let params = ParamsAdamW {
        lr: config.learning_rate,
        weight_decay: config.weight_decay,
        ..ParamsAdamW::default()
    };
    let mut optimizer = AdamW::new(vars.clone(), params).during("training")?;

    // The batch order uses its own stream, so it does not shift when the
    // number of weights changes.
    let mut rng = Rng::new(config.seed ^ 0x5EED_BA7C);
    let mut order: Vec<u32> = (0..train.len() as u32).collect();
    let mut best = (f64::INFINITY, 0, Weights::snapshot(&vars)?);
    let mut epochs_run = 0;
    for epoch in 1..=config.max_epochs {
        epochs_run = epoch;
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        let mut batches = 0;
        for batch in order.chunks(config.batch_size) {
            let index = Tensor::from_slice(batch, batch.len(), &Device::Cpu).during("training")?;
            let loss = (|| {
                let x = x_train.index_select(&index, 0)?;
                let y = y_train.index_select(&index, 0)?;
                binary_cross_entropy(&weights.forward(&x, architecture)?, &y)
            })()
            .during("training")?;
            optimizer.backward_step(&loss).during("training")?;
            loss_sum += f64::from(loss.to_scalar::<f32>().during("training")?);
            batches += 1;
        }

        let logits = mean_logits(&Weights::snapshot(&vars)?, &x_validation, architecture)?;
        let validation_loss = logit_log_loss(&logits, validation_labels);
        if validation_loss < best.0 {
            best = (validation_loss, epoch, Weights::snapshot(&vars)?);
        }
        progress(&Progress {
            epoch,
            max_epochs: config.max_epochs,
            train_loss: loss_sum / batches as f64 / architecture.members as f64,
            validation_loss,
            best_epoch: best.1,
        });
        if epoch - best.1 >= config.patience {
            break;
        }
    }

    let (_, best_epoch, weights) = best;
    let logits = mean_logits(&weights, &x_validation, architecture)?;
    let calibration = PlattScaling::fit(&logits, validation_labels);
    let probabilities: Vec<f64> = logits.iter().map(|&z| calibration.probability(z)).collect();
    let summary = TrainSummary {
        epochs_run,
        best_epoch,
        seconds: started.elapsed().as_secs_f64(),
        train_rows: train.len(),
        validation_rows: validation.len(),
        calibration,
        validation: Metrics::compute(validation_labels, &probabilities),
    };
    let model = ResponseRateModel::new(pipeline, architecture, weights, calibration);
    Ok((model, summary))
}

fn check_config(
    config: &TrainConfig,
    train: &Dataset,
    validation: &Dataset,
) -> Result<(), ModelError> {
    let problem = if config.architecture.members == 0 {
        "architecture.members must be at least 1"
    } else if config.batch_size == 0 {
        "batch_size must be at least 1"
    } else if config.max_epochs == 0 {
        "max_epochs must be at least 1"
    } else if train.is_empty() || validation.is_empty() {
        "the training and validation sets must not be empty"
    } else if !validation.labels().contains(&true) || !validation.labels().contains(&false) {
        "the validation set needs both outcomes to fit the calibration"
    } else {
        return Ok(());
    };
    Err(ModelError::Training(problem.into()))
}

pub(crate) fn matrix(values: Vec<f32>, width: usize) -> Result<Tensor, ModelError> {
    let rows = values.len() / width.max(1);
    Tensor::from_vec(values, (rows, width), &Device::Cpu).during("encoding")
}

fn targets(labels: &[bool]) -> Result<Tensor, ModelError> {
    let values: Vec<f32> = labels.iter().map(|&y| f32::from(u8::from(y))).collect();
    Tensor::from_vec(values, (labels.len(), 1), &Device::Cpu).during("training")
}

/// Computes the ensemble logit of each row, the mean of its members' logits.
pub(crate) fn mean_logits(
    weights: &Weights,
    x: &Tensor,
    architecture: Architecture,
) -> Result<Vec<f64>, ModelError> {
    let logits = weights
        .forward(x, architecture)
        .and_then(|z| z.mean(1))
        .and_then(|z| z.to_vec1::<f32>())
        .during("predicting")?;
    Ok(logits.into_iter().map(f64::from).collect())
}

fn logit_log_loss(logits: &[f64], labels: &[bool]) -> f64 {
    let sum: f64 = logits
        .iter()
        .zip(labels)
        .map(|(&t, &y)| t.max(0.0) + (-t.abs()).exp().ln_1p() - if y { t } else { 0.0 })
        .sum();
    sum / logits.len() as f64
}
