//! The fitted send-time model: counts per level, their posteriors and
//! predictions.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::hours::{HOURS_PER_WEEK, Smoothing, day_name, utc_minute_of_week};
use super::outcomes::SegmentKey;

/// Two-sided z value of the reported 90% intervals.
const Z_90: f64 = 1.644_853_6;

/// Raw send, open and reply counts per hour of week for a set of rows
/// (recipients, segments, or the single global row).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) sends: Vec<f64>,
    pub(crate) opens: Vec<f64>,
    pub(crate) replies: Vec<f64>,
}

impl Counts {
    pub(crate) fn zeros(rows: usize) -> Self {
        Counts {
            sends: vec![0.0; rows * HOURS_PER_WEEK],
            opens: vec![0.0; rows * HOURS_PER_WEEK],
            replies: vec![0.0; rows * HOURS_PER_WEEK],
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.sends.len() / HOURS_PER_WEEK
    }

    pub(crate) fn add(&mut self, row: usize, hour: usize, opened: bool, replied: bool) {
        let cell = row * HOURS_PER_WEEK + hour;
        self.sends[cell] += 1.0;
        self.opens[cell] += f64::from(u8::from(opened));
        self.replies[cell] += f64::from(u8::from(replied));
    }

    pub(crate) fn row(values: &[f64], row: usize) -> &[f64] {
        &values[row * HOURS_PER_WEEK..(row + 1) * HOURS_PER_WEEK]
    }

    /// Total sends of one row.
    pub(crate) fn total_sends(&self, row: usize) -> f64 {
        Self::row(&self.sends, row).iter().sum()
    }
}

/// The outcome a schedule is chosen for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    #[default]
    Open,
    Reply,
}

/// Prior strengths (pseudo-sends) estimated by empirical Bayes: how far a
/// segment is pulled toward the global rates, and a recipient toward its
/// segment's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriorStrengths {
    pub global_open: f64,
    pub global_reply: f64,
    pub segment_open: f64,
    pub segment_reply: f64,
    pub recipient_open: f64,
    pub recipient_reply: f64,
}

/// Posterior means and effective sample sizes per hour of week of one
/// level, row by row.
#[derive(Clone, Debug, Default)]
pub(crate) struct Posterior {
    pub(crate) open: Vec<f64>,
    pub(crate) reply: Vec<f64>,
    /// Smoothed sends plus the prior strength, per cell.
    pub(crate) open_ess: Vec<f64>,
    pub(crate) reply_ess: Vec<f64>,
}

impl Posterior {
    pub(crate) fn mean(&self, objective: Objective) -> &[f64] {
        match objective {
            Objective::Open => &self.open,
            Objective::Reply => &self.reply,
        }
    }
}

/// The level of the hierarchy whose estimate a prediction returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Recipient,
    Segment,
    Global,
}

/// A recipient and the fields that pick a segment when the recipient is not
/// known to the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SendTimeQuery {
    pub recipient: Option<String>,
    pub channel: Option<String>,
    pub segment: Option<String>,
    /// The recipient's offset from UTC in minutes; 0 (UTC) when absent.
    pub utc_offset_minutes: i32,
}

/// The estimate for one hour of week.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourEstimate {
    /// Local hour of week, 0 = Monday 00:00.
    pub hour_of_week: usize,
    /// Local day, `mon` to `sun`, and hour of day, 0 to 23.
    pub day: String,
    pub hour: usize,
    /// Start of that local hour in minutes since Monday 00:00 UTC.
    pub utc_minute_of_week: u32,
    pub open_probability: f64,
    /// Approximate 90% interval of the open probability.
    pub open_interval: [f64; 2],
    pub reply_probability: f64,
    pub reply_interval: [f64; 2],
    /// Smoothed sends plus prior pseudo-sends behind the ranked probability.
    pub effective_sample_size: f64,
}

/// The best hours for one query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendTimePrediction {
    pub level: Level,
    pub objective: Objective,
    /// Training sends of the recipient or segment that produced the
    /// estimate (all sends for the global level).
    pub observed_sends: f64,
    /// The top hours, best first.
    pub best_hours: Vec<HourEstimate>,
}

/// Probability of open and of reply per local hour of week, for each
/// recipient and segment seen in training and for the tenant as a whole.
#[derive(Clone, Debug)]
pub struct SendTimeModel {
    pub(crate) smoothing: Smoothing,
    pub(crate) strengths: PriorStrengths,
    pub(crate) segments: Vec<SegmentKey>,
    pub(crate) recipients: Vec<String>,
    /// Index into `segments` of each recipient's segment.
    pub(crate) recipient_segment: Vec<usize>,
    pub(crate) global_counts: Counts,
    pub(crate) segment_counts: Counts,
    pub(crate) recipient_counts: Counts,
    pub(crate) global: Posterior,
    pub(crate) segment: Posterior,
    pub(crate) recipient: Posterior,
    segment_index: HashMap<SegmentKey, usize>,
    recipient_index: HashMap<String, usize>,
}

impl SendTimeModel {
    /// Builds the model from stored counts and strengths by recomputing the
    /// posteriors, top-down.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        smoothing: Smoothing,
        strengths: PriorStrengths,
        segments: Vec<SegmentKey>,
        recipients: Vec<String>,
        recipient_segment: Vec<usize>,
        global_counts: Counts,
        segment_counts: Counts,
        recipient_counts: Counts,
    ) -> Self {
        let global = global_posterior(&smoothing, &global_counts, &strengths);
        let segment_parents = vec![0; segments.len()];
        let segment = child_posterior(
            &smoothing,
            &segment_counts,
            &global,
            &segment_parents,
            strengths.segment_open,
            strengths.segment_reply,
        );
        let recipient = child_posterior(
            &smoothing,
            &recipient_counts,
            &segment,
            &recipient_segment,
            strengths.recipient_open,
            strengths.recipient_reply,
        );
        let segment_index = segments
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        let recipient_index = recipients
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i))
            .collect();
        SendTimeModel {
            smoothing,
            strengths,
            segments,
            recipients,
            recipient_segment,
            global_counts,
            segment_counts,
            recipient_counts,
            global,
            segment,
            recipient,
            segment_index,
            recipient_index,
        }
    }

    pub fn strengths(&self) -> PriorStrengths {
        self.strengths
    }

    pub fn smoothing(&self) -> &Smoothing {
        &self.smoothing
    }

    pub fn recipient_count(&self) -> usize {
        self.recipients.len()
    }

    /// Recipient ids, sorted.
    pub fn recipient_names(&self) -> &[String] {
        &self.recipients
    }

    pub fn segment_keys(&self) -> &[SegmentKey] {
        &self.segments
    }

    /// Finds the level that estimates `query`: the recipient when the model
    /// has seen them, else the segment with exactly the query's channel and
    /// segment, else the global rates. Returns the level, its posterior and
    /// the row in it.
    pub(crate) fn resolve(&self, query: &SendTimeQuery) -> (Level, &Posterior, usize) {
        if let Some(&row) = query
            .recipient
            .as_ref()
            .and_then(|r| self.recipient_index.get(r))
        {
            return (Level::Recipient, &self.recipient, row);
        }
        let key = SegmentKey {
            channel: query.channel.clone(),
            segment: query.segment.clone(),
        };
        match self.segment_index.get(&key) {
            Some(&row) => (Level::Segment, &self.segment, row),
            None => (Level::Global, &self.global, 0),
        }
    }

    /// Returns the posterior means of `objective` per hour of week from the
    /// level that estimates `query`.
    pub fn probabilities(&self, query: &SendTimeQuery, objective: Objective) -> (Level, &[f64]) {
        let (level, posterior, row) = self.resolve(query);
        (level, Counts::row(posterior.mean(objective), row))
    }

    /// Ranks the hours of week for `query` by the probability of
    /// `objective` and returns the best `top_k` (at most 168).
    ///
    /// NOTE: an hour in which a recipient had no sends keeps their
    /// segment's rate, while hours with unanswered sends drop below it. So
    /// the top hours of a sparse recipient can be hours they were never sent
    /// at, with an effective sample size close to the prior strength.
    pub fn predict(
        &self,
        query: &SendTimeQuery,
        objective: Objective,
        top_k: usize,
    ) -> SendTimePrediction {
        let (level, posterior, row) = self.resolve(query);
        let observed_sends = match level {
            Level::Recipient => self.recipient_counts.total_sends(row),
            Level::Segment => self.segment_counts.total_sends(row),
            Level::Global => self.global_counts.total_sends(0),
        };
        let open = Counts::row(&posterior.open, row);
        let reply = Counts::row(&posterior.reply, row);
        let open_ess = Counts::row(&posterior.open_ess, row);
        let reply_ess = Counts::row(&posterior.reply_ess, row);
        let ranked = match objective {
            Objective::Open => open,
            Objective::Reply => reply,
        };

        // Highest first; ties go to the earlier hour so rankings are stable.
        let mut hours: Vec<usize> = (0..HOURS_PER_WEEK).collect();
        hours.sort_by(|&a, &b| ranked[b].total_cmp(&ranked[a]).then(a.cmp(&b)));
        let best_hours = hours
            .into_iter()
            .take(top_k.min(HOURS_PER_WEEK))
            .map(|h| HourEstimate {
                hour_of_week: h,
                day: day_name(h).to_owned(),
                hour: h % 24,
                utc_minute_of_week: utc_minute_of_week(h, query.utc_offset_minutes),
                open_probability: open[h],
                open_interval: interval(open[h], open_ess[h]),
                reply_probability: reply[h],
                reply_interval: interval(reply[h], reply_ess[h]),
                effective_sample_size: match objective {
                    Objective::Open => open_ess[h],
                    Objective::Reply => reply_ess[h],
                },
            })
            .collect();
        SendTimePrediction {
            level,
            objective,
            observed_sends,
            best_hours,
        }
    }
}

/// Approximates the central 90% of a beta posterior with mean
/// `p` and `ess` pseudo-observations, clipped to [0, 1].
fn interval(p: f64, ess: f64) -> [f64; 2] {
    let sd = (p * (1.0 - p) / (ess + 1.0)).sqrt();
    [(p - Z_90 * sd).max(0.0), (p + Z_90 * sd).min(1.0)]
}

/// Computes the global rates: smoothed counts pulled toward the overall rate
/// with the global strengths.
pub(crate) fn global_posterior(
    smoothing: &Smoothing,
    counts: &Counts,
    strengths: &PriorStrengths,
) -> Posterior {
    let total_sends: f64 = counts.sends.iter().sum();
    let rate = |successes: &[f64]| {
        // Half a success in one send keeps an empty log away from 0 and 1.
        (successes.iter().sum::<f64>() + 0.5) / (total_sends + 1.0)
    };
    let open_parent = vec![rate(&counts.opens); HOURS_PER_WEEK];
    let reply_parent = vec![rate(&counts.replies); HOURS_PER_WEEK];
    let parent = Posterior {
        open: open_parent,
        reply: reply_parent,
        open_ess: vec![0.0; HOURS_PER_WEEK],
        reply_ess: vec![0.0; HOURS_PER_WEEK],
    };
    child_posterior(
        smoothing,
        counts,
        &parent,
        &[0],
        strengths.global_open,
        strengths.global_reply,
    )
}

/// Computes beta-binomial posterior means for each row of `counts`, with the prior
/// mean taken from row `parents[row]` of `parent` and `open_strength` /
/// `reply_strength` pseudo-sends.
pub(crate) fn child_posterior(
    smoothing: &Smoothing,
    counts: &Counts,
    parent: &Posterior,
    parents: &[usize],
    open_strength: f64,
    reply_strength: f64,
) -> Posterior {
    let rows = counts.rows();
    let mut posterior = Posterior {
        open: Vec::with_capacity(rows * HOURS_PER_WEEK),
        reply: Vec::with_capacity(rows * HOURS_PER_WEEK),
        open_ess: Vec::with_capacity(rows * HOURS_PER_WEEK),
        reply_ess: Vec::with_capacity(rows * HOURS_PER_WEEK),
    };
    for (row, &parent_row) in parents.iter().enumerate().take(rows) {
        let sends = smoothing.apply(Counts::row(&counts.sends, row));
        let opens = smoothing.apply(Counts::row(&counts.opens, row));
        let replies = smoothing.apply(Counts::row(&counts.replies, row));
        let parent_open = Counts::row(&parent.open, parent_row);
        let parent_reply = Counts::row(&parent.reply, parent_row);
        for h in 0..HOURS_PER_WEEK {
            posterior
                .open
                .push((opens[h] + open_strength * parent_open[h]) / (sends[h] + open_strength));
            posterior.reply.push(
                (replies[h] + reply_strength * parent_reply[h]) / (sends[h] + reply_strength),
            );
            posterior.open_ess.push(sends[h] + open_strength);
            posterior.reply_ess.push(sends[h] + reply_strength);
        }
    }
    posterior
}
