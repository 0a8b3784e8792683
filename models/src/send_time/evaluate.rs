//! Holdout evaluation: the model's schedule against one hour for everyone,
//! estimated on logged sends.

use serde::{Deserialize, Serialize};

use super::hours::HOURS_PER_WEEK;
use super::model::{Objective, SendTimeModel, SendTimeQuery};
use super::outcomes::SendOutcome;
use crate::error::ModelError;
use crate::split::Rng;

/// The description of the lift estimator written into the model card.
pub const ESTIMATOR: &str = "replay (rejection sampling) on logged sends: for each held-out \
send, each policy picks an hour on the send's local day; the policy's rate is the open (or \
reply) rate among the held-out sends whose local hour equals its pick. The model picks the \
recipient's (or segment's) best hour of that day; the baseline sends everyone at the single \
hour of day with the best training rate. The estimate is unbiased when the logged send hours \
were chosen independently of the recipient's response, such as uniformly at random; with a \
send schedule that followed engagement it is biased. Interval: percentile bootstrap over \
held-out sends, both policies on the same resample.";

/// Sends before a cutoff time for training, the rest for evaluation.
#[derive(Clone, Debug)]
pub struct TimeSplit {
    /// Unix milliseconds; training sends are strictly earlier.
    pub cutoff: i64,
    pub train: Vec<SendOutcome>,
    pub test: Vec<SendOutcome>,
}

/// Splits `outcomes` at the send time below which `1 - holdout_fraction` of
/// them lie. Sends at the cutoff time go to the test part.
pub fn split_by_time(
    outcomes: &[SendOutcome],
    holdout_fraction: f64,
) -> Result<TimeSplit, ModelError> {
    let mut times: Vec<i64> = outcomes.iter().map(|o| o.sent_at).collect();
    times.sort_unstable();
    let index = ((times.len() as f64) * (1.0 - holdout_fraction)).floor() as usize;
    let Some(&cutoff) = times.get(index) else {
        return Err(ModelError::Training(format!(
            "too few sends ({}) for a holdout split",
            times.len()
        )));
    };
    let (train, test): (Vec<_>, Vec<_>) =
        outcomes.iter().cloned().partition(|o| o.sent_at < cutoff);
    if train.is_empty() || test.is_empty() {
        return Err(ModelError::Training(format!(
            "the time split at {cutoff} leaves {} training and {} held-out sends; \
             both parts need sends at different times",
            train.len(),
            test.len()
        )));
    }
    Ok(TimeSplit {
        cutoff,
        train,
        test,
    })
}

/// One policy's rate on the held-out sends it matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRate {
    /// Held-out sends whose hour equals the policy's pick.
    pub matched: usize,
    pub successes: usize,
    /// `successes / matched`, or `None` without matches.
    pub rate: Option<f64>,
}

/// The model against the baseline for one objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiftEstimate {
    pub model: PolicyRate,
    pub baseline: PolicyRate,
    /// Model rate minus baseline rate (absolute, as a probability).
    pub lift: Option<f64>,
    /// Lift divided by the baseline rate.
    pub relative_lift: Option<f64>,
    /// 95% percentile-bootstrap interval of `lift`.
    pub lift_interval: Option<[f64; 2]>,
    /// Resamples in which both policies matched at least one send.
    pub bootstrap_resamples: usize,
}

/// Holdout metrics for the model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldoutReport {
    pub estimator: String,
    pub test_sends: usize,
    /// The baseline's hour of day (0 to 23, local) for each objective.
    pub baseline_open_hour: usize,
    pub baseline_reply_hour: usize,
    pub open: LiftEstimate,
    pub reply: LiftEstimate,
}

/// Compares scheduling by `model` (fitted on `train`) with the best single
/// hour of day learned from `train`, on the `test` sends.
pub fn evaluate(
    model: &SendTimeModel,
    train: &[SendOutcome],
    test: &[SendOutcome],
    bootstrap_samples: usize,
    seed: u64,
) -> HoldoutReport {
    let baseline_open_hour = best_hour_of_day(train, |o| o.opened);
    let baseline_reply_hour = best_hour_of_day(train, |o| o.replied);
    let open = compare(
        model,
        test,
        Objective::Open,
        baseline_open_hour,
        bootstrap_samples,
        seed,
    );
    let reply = compare(
        model,
        test,
        Objective::Reply,
        baseline_reply_hour,
        bootstrap_samples,
        seed.wrapping_add(1),
    );
    HoldoutReport {
        estimator: ESTIMATOR.into(),
        test_sends: test.len(),
        baseline_open_hour,
        baseline_reply_hour,
        open,
        reply,
    }
}

/// Returns the hour of day with the highest success rate over all days. An
/// hour without sends counts as rate 0, and ties go to the earlier hour.
fn best_hour_of_day(outcomes: &[SendOutcome], success: impl Fn(&SendOutcome) -> bool) -> usize {
    let mut sends = [0u64; 24];
    let mut successes = [0u64; 24];
    for o in outcomes {
        sends[o.hour_of_week % 24] += 1;
        successes[o.hour_of_week % 24] += u64::from(success(o));
    }
    let rate = |h: usize| successes[h] as f64 / sends[h].max(1) as f64;
    (0..24).fold(0, |best, h| if rate(h) > rate(best) { h } else { best })
}

/// Per held-out send: (success, matched by model, matched by baseline).
fn outcomes_for(
    model: &SendTimeModel,
    test: &[SendOutcome],
    objective: Objective,
    baseline_hour: usize,
) -> Vec<(bool, bool, bool)> {
    test.iter()
        .map(|send| {
            let query = SendTimeQuery {
                recipient: Some(send.recipient.clone()),
                channel: send.segment.channel.clone(),
                segment: send.segment.segment.clone(),
                utc_offset_minutes: 0,
            };
            let (_, probabilities) = model.probabilities(&query, objective);
            let day_start = send.hour_of_week / 24 * 24;
            let day = &probabilities[day_start..day_start + 24];
            // Highest probability, earliest hour on ties.
            let pick = (0..24).fold(0, |best, h| if day[h] > day[best] { h } else { best });
            let success = match objective {
                Objective::Open => send.opened,
                Objective::Reply => send.replied,
            };
            let hour = send.hour_of_week % 24;
            debug_assert!(send.hour_of_week < HOURS_PER_WEEK);
            (success, hour == pick, hour == baseline_hour)
        })
        .collect()
}

fn compare(
    model: &SendTimeModel,
    test: &[SendOutcome],
    objective: Objective,
    baseline_hour: usize,
    bootstrap_samples: usize,
    seed: u64,
) -> LiftEstimate {
    let rows = outcomes_for(model, test, objective, baseline_hour);
    let rate_of = |pick: fn(&(bool, bool, bool)) -> bool,
                   sample: &mut dyn Iterator<Item = usize>| {
        let (mut matched, mut successes) = (0usize, 0usize);
        for i in sample {
            if pick(&rows[i]) {
                matched += 1;
                successes += usize::from(rows[i].0);
            }
        }
        PolicyRate {
            matched,
            successes,
            rate: (matched > 0).then(|| successes as f64 / matched as f64),
        }
    };
    let model_rate = rate_of(|r| r.1, &mut (0..rows.len()));
    let baseline_rate = rate_of(|r| r.2, &mut (0..rows.len()));
    let lift = model_rate.rate.zip(baseline_rate.rate).map(|(m, b)| m - b);
    let relative_lift = lift
        .zip(baseline_rate.rate)
        .filter(|(_, b)| *b > 0.0)
        .map(|(l, b)| l / b);

    // Resample held-out sends with replacement; both policies are scored on
    // the same resample, so the interval reflects their paired difference.
    let mut rng = Rng::new(seed);
    let mut lifts = Vec::with_capacity(bootstrap_samples);
    let n = rows.len() as u64;
    for _ in 0..bootstrap_samples {
        let sample: Vec<usize> = (0..n).map(|_| (rng.next_u64() % n) as usize).collect();
        let m = rate_of(|r| r.1, &mut sample.iter().copied());
        let b = rate_of(|r| r.2, &mut sample.iter().copied());
        if let (Some(m), Some(b)) = (m.rate, b.rate) {
            lifts.push(m - b);
        }
    }
    lifts.sort_by(f64::total_cmp);
    // An interval from fewer than half of the resamples would hide how
    // often a policy matched nothing, so none is reported.
    let lift_interval = (lifts.len() * 2 >= bootstrap_samples && !lifts.is_empty())
        .then(|| [quantile(&lifts, 0.025), quantile(&lifts, 0.975)]);
    LiftEstimate {
        model: model_rate,
        baseline: baseline_rate,
        lift,
        relative_lift,
        lift_interval,
        bootstrap_resamples: lifts.len(),
    }
}

/// Linear interpolation between order statistics of sorted `values`.
fn quantile(values: &[f64], q: f64) -> f64 {
    let position = q * (values.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    values[low] + (values[high] - values[low]) * (position - low as f64)
}
