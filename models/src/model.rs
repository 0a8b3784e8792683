//! A trained response-rate model and its predictions.

use serde::{Deserialize, Serialize};

use crate::calibration::PlattScaling;
use crate::data::Dataset;
use crate::error::{ModelError, TensorContext};
use crate::features::FeaturePipeline;
use crate::metrics::Metrics;
use crate::network::{Architecture, Weights};
use crate::schema::Record;
use crate::train::matrix;

/// Number of factors reported per prediction.
pub const TOP_FACTORS: usize = 3;

/// A fitted feature pipeline, network and calibration.
#[derive(Clone, Debug)]
pub struct ResponseRateModel {
    pipeline: FeaturePipeline,
    architecture: Architecture,
    weights: Weights,
    calibration: PlattScaling,
}

/// The model's output for one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Calibrated probability of a response.
    pub probability: f64,
    /// Standard deviation of the ensemble members' calibrated probabilities:
    /// how much independently trained members disagree on this record. It
    /// is 0 for a single-member model and does not measure label noise.
    pub uncertainty: f64,
    /// The fields that moved this prediction most, largest effect first.
    pub factors: Vec<Factor>,
}

/// One field's effect on a prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    pub field: String,
    /// Change in calibrated log-odds when the field's encoded value replaces
    /// the training average of that field; positive raises the probability.
    pub contribution: f64,
}

impl ResponseRateModel {
    pub(crate) fn new(
        pipeline: FeaturePipeline,
        architecture: Architecture,
        weights: Weights,
        calibration: PlattScaling,
    ) -> Self {
        ResponseRateModel {
            pipeline,
            architecture,
            weights,
            calibration,
        }
    }

    /// Predicts each record's response probability, the members'
    /// disagreement, and the [`TOP_FACTORS`] fields that moved it most.
    ///
    /// Factors come from occlusion: each field in turn is set to its
    /// training average and the change in the calibrated logit is that
    /// field's contribution. Fails with [`ModelError::InvalidFeature`] naming
    /// the field when a record contains a value the pipeline cannot encode.
    pub fn predict(&self, records: &[Record]) -> Result<Vec<Prediction>, ModelError> {
        let width = self.pipeline.width();
        let encoded = self.pipeline.transform(records)?;
        let columns = self.pipeline.field_columns();
        let baseline = self.pipeline.baseline();
        let variants = columns.len() + 1;

        // Each record expands into itself plus one copy per field with that
        // field's columns at the training average, all in one forward pass.
        let mut expanded = Vec::with_capacity(records.len() * variants * width);
        for row in encoded.chunks(width) {
            expanded.extend_from_slice(row);
            for range in &columns {
                let start = expanded.len();
                expanded.extend_from_slice(row);
                expanded[start + range.start..start + range.end]
                    .copy_from_slice(&baseline[range.clone()]);
            }
        }
        let x = matrix(expanded, width)?;
        let logits = self
            .weights
            .forward(&x, self.architecture)
            .and_then(|z| z.to_vec2::<f32>())
            .during("predicting")?;

        let fields = self.pipeline.schema().fields();
        let predictions = logits
            .chunks(variants)
            .map(|group| {
                let members = &group[0];
                let logit = mean(members);
                let probabilities: Vec<f64> = members
                    .iter()
                    .map(|&z| self.calibration.probability(f64::from(z)))
                    .collect();
                let mut factors: Vec<Factor> = fields
                    .iter()
                    .zip(&group[1..])
                    .map(|(field, occluded)| Factor {
                        field: field.name().to_owned(),
                        contribution: self.calibration.scale * (logit - mean(occluded)),
                    })
                    .collect();
                // Stable sort, so equal effects keep schema order.
                factors.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
                factors.truncate(TOP_FACTORS);
                Prediction {
                    probability: self.calibration.probability(logit),
                    uncertainty: standard_deviation(&probabilities),
                    factors,
                }
            })
            .collect();
        Ok(predictions)
    }

    /// Scores the model's probabilities on a labelled data set.
    pub fn evaluate(&self, data: &Dataset) -> Result<Metrics, ModelError> {
        let probabilities = self.probabilities(data.records())?;
        Ok(Metrics::compute(data.labels(), &probabilities))
    }

    /// Calibrated probabilities without factors, for scoring many rows.
    pub(crate) fn probabilities(&self, records: &[Record]) -> Result<Vec<f64>, ModelError> {
        let x = matrix(self.pipeline.transform(records)?, self.pipeline.width())?;
        let logits = crate::train::mean_logits(&self.weights, &x, self.architecture)?;
        Ok(logits
            .iter()
            .map(|&z| self.calibration.probability(z))
            .collect())
    }

    pub fn pipeline(&self) -> &FeaturePipeline {
        &self.pipeline
    }

    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    pub fn calibration(&self) -> PlattScaling {
        self.calibration
    }

    pub(crate) fn weights(&self) -> &Weights {
        &self.weights
    }
}

fn mean(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64
}

fn standard_deviation(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}
