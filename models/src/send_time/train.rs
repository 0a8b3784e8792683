//! The whole training run: split, fit, evaluate, refit, describe.

use std::time::Instant;

use super::evaluate::{evaluate, split_by_time};
use super::fit::{SendTimeConfig, fit};
use super::model::SendTimeModel;
use super::outcomes::{JoinStats, SEGMENT_PROPERTY, SendOutcome, UTC_OFFSET_PROPERTY};
use super::store::{EventRange, SendTimeCard, SendTimeData, SendTimeFeatures, TimeSplitSummary};
use crate::error::ModelError;

/// A stage of [`train_send_time`], reported as it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendTimeStage {
    /// Fitting on the sends before the cutoff.
    FitTraining { train_sends: usize },
    /// Scoring the held-out sends and bootstrapping the lift.
    Evaluate { test_sends: usize },
    /// Fitting the stored model on all sends.
    FitAll { sends: usize },
}

/// Splits `outcomes` by time, fits on the earlier part, measures the lift on
/// the later part, then fits the model to keep on all sends and returns it
/// with its card and the training time in seconds.
pub fn train_send_time(
    outcomes: &[SendOutcome],
    join: JoinStats,
    range: EventRange,
    config: &SendTimeConfig,
    mut progress: impl FnMut(SendTimeStage),
) -> Result<(SendTimeModel, SendTimeCard, f64), ModelError> {
    let started = Instant::now();
    config.validate()?;
    let split = split_by_time(outcomes, config.holdout_fraction)?;

    progress(SendTimeStage::FitTraining {
        train_sends: split.train.len(),
    });
    let holdout_model = fit(&split.train, config)?;
    progress(SendTimeStage::Evaluate {
        test_sends: split.test.len(),
    });
    let holdout = evaluate(
        &holdout_model,
        &split.train,
        &split.test,
        config.bootstrap_samples,
        config.seed,
    );
    progress(SendTimeStage::FitAll {
        sends: outcomes.len(),
    });
    let model = fit(outcomes, config)?;

    let cutoff_at = chrono::DateTime::from_timestamp_millis(split.cutoff)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let card = SendTimeCard {
        name: "send-time".into(),
        version: String::new(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        trainer: concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION")).into(),
        data: SendTimeData {
            range,
            join,
            recipients: model.recipient_count(),
            segments: model.segment_keys().len(),
        },
        features: SendTimeFeatures {
            bins: "168 local hours of week, 0 = Monday 00:00".into(),
            time_zone: format!(
                "the `{UTC_OFFSET_PROPERTY}` property of each `sent` event (minutes ahead of \
                 UTC); UTC when absent or out of range"
            ),
            segment_keys: vec!["channel".into(), format!("properties.{SEGMENT_PROPERTY}")],
            outcomes: format!(
                "a send is opened (replied) when an open or reply (a reply) with the same \
                 recipient and campaign follows it within {} hours and no later send came \
                 between; a reply also counts as an open; the response counts for the hour \
                 the message was sent",
                config.attribution_window_hours
            ),
            hierarchy: "beta-binomial per hour of week: recipient shrunk toward their segment, \
                        segment toward the tenant, tenant toward its overall rate; prior \
                        strengths by the method of moments; counts smoothed across \
                        neighbouring hours and days before shrinkage"
                .into(),
        },
        config: config.clone(),
        split: TimeSplitSummary {
            rule: format!(
                "by send time: the latest {:.0}% of sends are held out; sends at the cutoff \
                 time are held out",
                config.holdout_fraction * 100.0
            ),
            cutoff: split.cutoff,
            cutoff_at,
            train_sends: split.train.len(),
            test_sends: split.test.len(),
        },
        fitted_on: "all sends; the holdout metrics come from a model fitted on the training \
                    part only"
            .into(),
        priors: model.strengths(),
        holdout_priors: holdout_model.strengths(),
        holdout,
    };
    Ok((model, card, started.elapsed().as_secs_f64()))
}
