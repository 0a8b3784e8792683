//! Joining sends with their later opens and replies.

use std::collections::HashMap;

use copycar_events::{Event, EventType};
use serde::{Deserialize, Serialize};

use super::hours::{check_utc_offset, hour_of_week};

/// Name of the event property that contains a recipient's segment.
pub const SEGMENT_PROPERTY: &str = "segment";

/// Name of the event property that contains the recipient's offset from UTC
/// in minutes.
pub const UTC_OFFSET_PROPERTY: &str = "utc_offset_minutes";

/// The group a recipient is pooled with: the event's `channel` and its
/// `segment` property. A missing part is `None`, which is a value of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SegmentKey {
    pub channel: Option<String>,
    pub segment: Option<String>,
}

/// One send and whether it was opened or replied to.
#[derive(Clone, Debug, PartialEq)]
pub struct SendOutcome {
    pub recipient: String,
    pub segment: SegmentKey,
    /// Unix milliseconds of the `sent` event.
    pub sent_at: i64,
    /// Local hour of week of the send.
    pub hour_of_week: usize,
    /// True when an open or a reply followed within the attribution window.
    pub opened: bool,
    pub replied: bool,
}

/// Counts from a join, for the model card.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinStats {
    /// Events of the tenant that were read.
    pub events: u64,
    pub sends: u64,
    pub opens: u64,
    pub replies: u64,
    /// Sends that were skipped because they name no recipient.
    pub sends_without_recipient: u64,
    /// Opens and replies with no send to the same recipient and campaign in
    /// the window before them.
    pub unmatched_responses: u64,
    /// Sends whose `utc_offset_minutes` property was not an integer in range;
    /// they are binned in UTC.
    pub invalid_utc_offsets: u64,
    /// Earliest and latest `occurred_at` of the events read.
    pub first_event_at: Option<i64>,
    pub last_event_at: Option<i64>,
}

/// Collects events in any order and joins each open or reply to the latest
/// send before it with the same recipient and campaign.
///
/// A reply also counts as an open, because the message was read. Each send
/// counts as opened and as replied at most once, and the response counts
/// for the hour the message was sent.
#[derive(Debug)]
pub struct OutcomeJoin {
    window_ms: i64,
    sends: Vec<SendOutcome>,
    /// (recipient, campaign) to indices into `sends`.
    keys: HashMap<(String, String), Vec<usize>>,
    responses: Vec<(String, String, i64, bool)>,
    stats: JoinStats,
}

impl OutcomeJoin {
    /// Starts a join that credits responses up to `window_ms` after a send.
    pub fn new(window_ms: i64) -> Self {
        OutcomeJoin {
            window_ms,
            sends: Vec::new(),
            keys: HashMap::new(),
            responses: Vec::new(),
            stats: JoinStats::default(),
        }
    }

    /// Adds one event; types other than sent, open and reply are counted and
    /// otherwise ignored.
    pub fn push(&mut self, event: &Event) {
        self.stats.events += 1;
        let at = event.occurred_at;
        self.stats.first_event_at = Some(self.stats.first_event_at.map_or(at, |t| t.min(at)));
        self.stats.last_event_at = Some(self.stats.last_event_at.map_or(at, |t| t.max(at)));

        let campaign = event.campaign.clone().unwrap_or_default();
        match event.event_type {
            EventType::Sent => {
                self.stats.sends += 1;
                let Some(recipient) = event.recipient.clone() else {
                    self.stats.sends_without_recipient += 1;
                    return;
                };
                let offset = match event.properties.get(UTC_OFFSET_PROPERTY) {
                    None => 0,
                    Some(value) => match value.as_i64().map(check_utc_offset) {
                        Some(Ok(minutes)) => minutes,
                        _ => {
                            self.stats.invalid_utc_offsets += 1;
                            0
                        }
                    },
                };
                let segment = SegmentKey {
                    channel: event.channel.clone(),
                    segment: event
                        .properties
                        .get(SEGMENT_PROPERTY)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                };
                self.keys
                    .entry((recipient.clone(), campaign))
                    .or_default()
                    .push(self.sends.len());
                self.sends.push(SendOutcome {
                    recipient,
                    segment,
                    sent_at: at,
                    hour_of_week: hour_of_week(at, offset),
                    opened: false,
                    replied: false,
                });
            }
            EventType::Open | EventType::Reply => {
                let replied = event.event_type == EventType::Reply;
                if replied {
                    self.stats.replies += 1;
                } else {
                    self.stats.opens += 1;
                }
                match event.recipient.clone() {
                    Some(recipient) => self.responses.push((recipient, campaign, at, replied)),
                    None => self.stats.unmatched_responses += 1,
                }
            }
            _ => {}
        }
    }

    /// Joins the collected responses to their sends and returns the sends,
    /// ordered by send time, with the counts.
    pub fn finish(mut self) -> (Vec<SendOutcome>, JoinStats) {
        for indices in self.keys.values_mut() {
            indices.sort_by_key(|&i| self.sends[i].sent_at);
        }
        for (recipient, campaign, at, replied) in std::mem::take(&mut self.responses) {
            let Some(indices) = self.keys.get(&(recipient, campaign)) else {
                self.stats.unmatched_responses += 1;
                continue;
            };
            // The latest send at or before the response.
            let before = indices.partition_point(|&i| self.sends[i].sent_at <= at);
            let matched = before
                .checked_sub(1)
                .map(|position| indices[position])
                .filter(|&i| at - self.sends[i].sent_at <= self.window_ms);
            let Some(index) = matched else {
                self.stats.unmatched_responses += 1;
                continue;
            };
            let send = &mut self.sends[index];
            send.opened = true;
            send.replied |= replied;
        }
        self.sends.sort_by(|a, b| {
            a.sent_at
                .cmp(&b.sent_at)
                .then_with(|| a.recipient.cmp(&b.recipient))
        });
        (self.sends, self.stats)
    }
}
