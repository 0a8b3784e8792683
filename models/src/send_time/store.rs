//! Send-time artefacts in the registry.
//!
//! A version directory contains `model.safetensors` (send, open and reply
//! counts per hour of week for the global row, each segment and each
//! recipient, as f32 tensors of shape `[rows, 168]`), `send_time.json` (row
//! keys, smoothing and prior strengths) and `card.json` (a
//! [`SendTimeCard`]). Posteriors are recomputed from the counts on load.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::evaluate::HoldoutReport;
use super::fit::SendTimeConfig;
use super::hours::{HOURS_PER_WEEK, Smoothing};
use super::model::{Counts, PriorStrengths, SendTimeModel};
use super::outcomes::{JoinStats, SegmentKey};
use crate::error::{ModelError, TensorContext};
use crate::registry::{CARD_FILE, Registry, read_json, write_json};

const TENSORS_FILE: &str = "model.safetensors";
const KEYS_FILE: &str = "send_time.json";
const LEVELS: [&str; 3] = ["global", "segment", "recipient"];
const COLUMNS: [&str; 3] = ["sends", "opens", "replies"];

/// The origin of the training events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRange {
    /// The event log directory that was read.
    pub log: String,
    pub tenant: String,
    /// Offsets read: from `first_offset` up to, not including, `end_offset`.
    pub first_offset: u64,
    pub end_offset: u64,
    /// A description of the events, such as how they were derived.
    pub description: String,
}

/// The training data of a send-time model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendTimeData {
    pub range: EventRange,
    pub join: JoinStats,
    pub recipients: usize,
    pub segments: usize,
}

/// The rules that turn events into bins and outcomes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendTimeFeatures {
    pub bins: String,
    pub time_zone: String,
    pub segment_keys: Vec<String>,
    pub outcomes: String,
    pub hierarchy: String,
}

/// The time-based split behind the holdout metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeSplitSummary {
    pub rule: String,
    /// Unix milliseconds and RFC 3339 form of the cutoff.
    pub cutoff: i64,
    pub cutoff_at: String,
    pub train_sends: usize,
    pub test_sends: usize,
}

/// A description of a trained send-time model for people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendTimeCard {
    pub name: String,
    /// Set by [`Registry::save_send_time`].
    pub version: String,
    /// RFC 3339 UTC time the card was made.
    pub created_at: String,
    /// Crate name and version that trained the model.
    pub trainer: String,
    pub data: SendTimeData,
    pub features: SendTimeFeatures,
    pub config: SendTimeConfig,
    pub split: TimeSplitSummary,
    /// The sends behind the stored counts.
    pub fitted_on: String,
    /// Prior strengths of the stored model, and of the model fitted on the
    /// training part only that produced `holdout`.
    pub priors: PriorStrengths,
    pub holdout_priors: PriorStrengths,
    pub holdout: HoldoutReport,
}

/// Opens the send-time registry of one tenant: the folder `tenant` under
/// `root`. The tenant id must be 1 to 128 characters of `A-Z`, `a-z`,
/// `0-9`, `_`, `-` and `.`, and not start with a dot, so it is a plain
/// folder name.
pub fn tenant_registry(root: &Path, tenant: &str) -> Result<Registry, ModelError> {
    let valid = !tenant.is_empty()
        && tenant.len() <= 128
        && !tenant.starts_with('.')
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !valid {
        return Err(ModelError::invalid(
            "tenant",
            tenant,
            "must be 1 to 128 characters of A-Z, a-z, 0-9, `_`, `-` and `.`, not starting with a dot",
        ));
    }
    Ok(Registry::open(root.join(tenant)))
}

#[derive(Serialize, Deserialize)]
struct KeysFile {
    smoothing: Smoothing,
    strengths: PriorStrengths,
    segments: Vec<SegmentKey>,
    recipients: Vec<String>,
    recipient_segment: Vec<usize>,
}

impl Registry {
    /// Writes a send-time model and its card as the next version and returns
    /// the version's name.
    pub fn save_send_time(
        &self,
        model: &SendTimeModel,
        mut card: SendTimeCard,
    ) -> Result<String, ModelError> {
        self.save_version(|staging, version| {
            card.version = version.to_owned();
            save_tensors(model, &staging.join(TENSORS_FILE))?;
            let keys = KeysFile {
                smoothing: model.smoothing.clone(),
                strengths: model.strengths,
                segments: model.segments.clone(),
                recipients: model.recipients.clone(),
                recipient_segment: model.recipient_segment.clone(),
            };
            write_json(&staging.join(KEYS_FILE), &keys)?;
            write_json(&staging.join(CARD_FILE), &card)
        })
    }

    /// Loads a stored send-time version and its card.
    pub fn load_send_time(
        &self,
        version: &str,
    ) -> Result<(SendTimeModel, SendTimeCard), ModelError> {
        let directory = self.version_dir(version)?;
        let card: SendTimeCard = read_json(&directory.join(CARD_FILE))?;
        let keys: KeysFile = read_json(&directory.join(KEYS_FILE))?;
        let path = directory.join(TENSORS_FILE);
        let invalid = |message: String| ModelError::Weights {
            path: path.clone(),
            message,
        };
        keys.smoothing
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        if keys.recipient_segment.len() != keys.recipients.len()
            || keys
                .recipient_segment
                .iter()
                .any(|&s| s >= keys.segments.len())
        {
            return Err(invalid(
                "recipient segments do not match the segment list".into(),
            ));
        }

        let mut tensors = load_tensors(&path)?;
        let rows = [1, keys.segments.len(), keys.recipients.len()];
        let mut levels = Vec::with_capacity(3);
        for (level, rows) in LEVELS.iter().zip(rows) {
            let mut columns = Vec::with_capacity(3);
            for column in COLUMNS {
                let name = format!("{level}.{column}");
                let tensor = tensors
                    .remove(&name)
                    .ok_or_else(|| invalid(format!("tensor `{name}` is missing")))?;
                if tensor.dims() != [rows, HOURS_PER_WEEK] {
                    return Err(invalid(format!(
                        "tensor `{name}` has shape {:?}, expected [{rows}, {HOURS_PER_WEEK}]",
                        tensor.dims()
                    )));
                }
                let values = tensor
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .during("loading")?;
                columns.push(values.into_iter().map(f64::from).collect::<Vec<f64>>());
            }
            let replies = columns.pop().unwrap();
            let opens = columns.pop().unwrap();
            let sends = columns.pop().unwrap();
            levels.push(Counts {
                sends,
                opens,
                replies,
            });
        }
        let recipient_counts = levels.pop().unwrap();
        let segment_counts = levels.pop().unwrap();
        let global_counts = levels.pop().unwrap();
        let model = SendTimeModel::from_parts(
            keys.smoothing,
            keys.strengths,
            keys.segments,
            keys.recipients,
            keys.recipient_segment,
            global_counts,
            segment_counts,
            recipient_counts,
        );
        Ok((model, card))
    }
}

fn save_tensors(model: &SendTimeModel, path: &Path) -> Result<(), ModelError> {
    let mut named = HashMap::new();
    let levels = [
        &model.global_counts,
        &model.segment_counts,
        &model.recipient_counts,
    ];
    for (level, counts) in LEVELS.iter().zip(levels) {
        let rows = counts.rows();
        for (column, values) in COLUMNS
            .iter()
            .zip([&counts.sends, &counts.opens, &counts.replies])
        {
            // Counts are whole numbers far below 2^24, so f32 stores them
            // exactly.
            let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            let tensor =
                Tensor::from_vec(values, (rows, HOURS_PER_WEEK), &Device::Cpu).during("saving")?;
            named.insert(format!("{level}.{column}"), tensor);
        }
    }
    candle_core::safetensors::save(&named, path).map_err(|source| match source {
        candle_core::Error::Io(e) => ModelError::io("write", path, e),
        source => ModelError::Tensor {
            phase: "saving",
            source,
        },
    })
}

fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io("read", path, e))?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
