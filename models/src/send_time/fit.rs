//! Fitting: counts per level and empirical-Bayes prior strengths.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hours::{HOURS_PER_WEEK, Smoothing};
use super::model::{
    Counts, Posterior, PriorStrengths, SendTimeModel, child_posterior, global_posterior,
};
use super::outcomes::{SegmentKey, SendOutcome};
use crate::error::ModelError;

/// Settings of a send-time training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendTimeConfig {
    pub smoothing: Smoothing,
    /// Bounds of the estimated prior strengths, in pseudo-sends.
    pub min_strength: f64,
    pub max_strength: f64,
    /// Pseudo-sends that pull each global hour toward the overall rate.
    pub global_strength: f64,
    /// How long after a send an open or reply is credited to it, in hours.
    pub attribution_window_hours: u32,
    /// Share of sends, the latest by send time, held out for evaluation.
    pub holdout_fraction: f64,
    /// Bootstrap resamples of the held-out sends for the lift interval.
    pub bootstrap_samples: usize,
    pub seed: u64,
}

impl Default for SendTimeConfig {
    fn default() -> Self {
        SendTimeConfig {
            smoothing: Smoothing::default(),
            min_strength: 0.5,
            max_strength: 1000.0,
            global_strength: 1.0,
            attribution_window_hours: 72,
            holdout_fraction: 0.2,
            bootstrap_samples: 1000,
            seed: 42,
        }
    }
}

impl SendTimeConfig {
    /// Checks every setting and names the first invalid one.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.smoothing.validate()?;
        let invalid = |message: String| Err(ModelError::Training(message));
        let bounds_valid = self.min_strength > 0.0
            && self.min_strength <= self.max_strength
            && self.max_strength.is_finite();
        if !bounds_valid {
            return invalid(format!(
                "prior strength bounds must satisfy 0 < min_strength <= max_strength, got {} and {}",
                self.min_strength, self.max_strength
            ));
        }
        if !(self.global_strength > 0.0 && self.global_strength.is_finite()) {
            return invalid(format!(
                "global_strength must be positive, got {}",
                self.global_strength
            ));
        }
        if self.attribution_window_hours == 0 {
            return invalid("attribution_window_hours must be at least 1".into());
        }
        if !(self.holdout_fraction > 0.0 && self.holdout_fraction < 1.0) {
            return invalid(format!(
                "holdout_fraction must be between 0 and 1, got {}",
                self.holdout_fraction
            ));
        }
        if self.bootstrap_samples < 100 {
            return invalid(format!(
                "bootstrap_samples must be at least 100, got {}",
                self.bootstrap_samples
            ));
        }
        Ok(())
    }
}

/// Fits the model on `outcomes`.
///
/// 1. Counts sends, opens and replies per local hour of week for every
///    recipient, every segment and the tenant as a whole.
/// 2. Smooths each row across neighbouring hours and days and pulls the
///    global rates toward the overall rate.
/// 3. Estimates how strongly segments differ from the global rates, and
///    recipients from their segment's, by the method of moments on the
///    raw cells, and uses that as the strength of each level's beta prior.
pub fn fit(outcomes: &[SendOutcome], config: &SendTimeConfig) -> Result<SendTimeModel, ModelError> {
    config.validate()?;
    if outcomes.is_empty() {
        return Err(ModelError::Training(
            "no sends to learn from; the event log has no `sent` events with a recipient".into(),
        ));
    }

    // Sorted keys keep row order, and so the saved tensors, deterministic.
    let mut segment_rows: BTreeMap<&SegmentKey, usize> = BTreeMap::new();
    let mut recipient_rows: BTreeMap<&str, usize> = BTreeMap::new();
    // A recipient belongs to the segment of their latest send.
    let mut latest_segment: BTreeMap<&str, (i64, &SegmentKey)> = BTreeMap::new();
    for outcome in outcomes {
        segment_rows.insert(&outcome.segment, 0);
        recipient_rows.insert(&outcome.recipient, 0);
        let entry = latest_segment
            .entry(&outcome.recipient)
            .or_insert((outcome.sent_at, &outcome.segment));
        if outcome.sent_at >= entry.0 {
            *entry = (outcome.sent_at, &outcome.segment);
        }
    }
    for (row, value) in segment_rows.values_mut().enumerate() {
        *value = row;
    }
    for (row, value) in recipient_rows.values_mut().enumerate() {
        *value = row;
    }

    let mut global_counts = Counts::zeros(1);
    let mut segment_counts = Counts::zeros(segment_rows.len());
    let mut recipient_counts = Counts::zeros(recipient_rows.len());
    for o in outcomes {
        global_counts.add(0, o.hour_of_week, o.opened, o.replied);
        segment_counts.add(
            segment_rows[&o.segment],
            o.hour_of_week,
            o.opened,
            o.replied,
        );
        recipient_counts.add(
            recipient_rows[o.recipient.as_str()],
            o.hour_of_week,
            o.opened,
            o.replied,
        );
    }
    let recipient_segment: Vec<usize> = latest_segment
        .values()
        .map(|(_, segment)| segment_rows[segment])
        .collect();

    // Top-down: each level's strength is estimated against the posterior of
    // the level above it.
    let mut strengths = PriorStrengths {
        global_open: config.global_strength,
        global_reply: config.global_strength,
        segment_open: config.max_strength,
        segment_reply: config.max_strength,
        recipient_open: config.max_strength,
        recipient_reply: config.max_strength,
    };
    let global = global_posterior(&config.smoothing, &global_counts, &strengths);
    let segment_parents = vec![0; segment_rows.len()];
    strengths.segment_open = estimate_strength(
        &segment_counts.sends,
        &segment_counts.opens,
        &global.open,
        &segment_parents,
        config,
    );
    strengths.segment_reply = estimate_strength(
        &segment_counts.sends,
        &segment_counts.replies,
        &global.reply,
        &segment_parents,
        config,
    );
    let segment: Posterior = child_posterior(
        &config.smoothing,
        &segment_counts,
        &global,
        &segment_parents,
        strengths.segment_open,
        strengths.segment_reply,
    );
    strengths.recipient_open = estimate_strength(
        &recipient_counts.sends,
        &recipient_counts.opens,
        &segment.open,
        &recipient_segment,
        config,
    );
    strengths.recipient_reply = estimate_strength(
        &recipient_counts.sends,
        &recipient_counts.replies,
        &segment.reply,
        &recipient_segment,
        config,
    );

    Ok(SendTimeModel::from_parts(
        config.smoothing.clone(),
        strengths,
        segment_rows.into_keys().cloned().collect(),
        recipient_rows.into_keys().map(str::to_owned).collect(),
        recipient_segment,
        global_counts,
        segment_counts,
        recipient_counts,
    ))
}

/// Estimates the beta prior strength `m` of child cells around their parent
/// means by the method of moments, clamped to the configured bounds.
///
/// For a cell with `n` sends and true rate drawn from a beta distribution
/// with mean `p` and strength `m`,
/// `E[(k - n p)^2 / n] = p (1 - p) (1 + (n - 1) / (m + 1))`. Summing over
/// cells and solving for `m` gives the estimate. When the cells spread no more than binomial noise, children do
/// not differ from the parent and the strength is the maximum.
fn estimate_strength(
    sends: &[f64],
    successes: &[f64],
    parent_means: &[f64],
    parents: &[usize],
    config: &SendTimeConfig,
) -> f64 {
    let mut spread = 0.0;
    let mut binomial = 0.0;
    let mut excess = 0.0;
    for (row, &parent_row) in parents.iter().enumerate() {
        for h in 0..HOURS_PER_WEEK {
            let n = sends[row * HOURS_PER_WEEK + h];
            if n < 1.0 {
                continue;
            }
            let k = successes[row * HOURS_PER_WEEK + h];
            let p = parent_means[parent_row * HOURS_PER_WEEK + h];
            let noise = p * (1.0 - p);
            spread += (k - n * p).powi(2) / n;
            binomial += noise;
            excess += noise * (n - 1.0);
        }
    }
    let over = spread - binomial;
    if over <= 0.0 || excess <= 0.0 {
        return config.max_strength;
    }
    (excess / over - 1.0).clamp(config.min_strength, config.max_strength)
}
