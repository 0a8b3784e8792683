//! The response-rate model: how likely a contact is to respond, from tabular
//! outcome data.
//!
//! 1. Read labelled rows into a [`Dataset`] (for the reference data,
//!    [`bank_marketing_csv`]) and describe the input fields with a
//!    [`Schema`] ([`bank_marketing_schema`]).
//! 2. Split the rows with [`Split::stratified`] and call [`train`]. It fits
//!    the [`FeaturePipeline`] on the training rows, trains an ensemble of
//!    small perceptrons with candle, early-stops on the validation rows and
//!    calibrates the output with [`PlattScaling`] on them.
//! 3. Score held-out rows with [`ResponseRateModel::evaluate`], write the
//!    model and its [`ModelCard`] with [`Registry::save`], and later read
//!    them back with [`Registry::load`]. [`Registry::promote`] picks the
//!    version in service ([`Registry::active`]); [`train_from_csv`] runs the
//!    whole sequence for a CSV file.
//! 4. [`ResponseRateModel::predict`] takes a batch of [`Record`]s and returns,
//!    for each, a calibrated probability, the ensemble's disagreement and the
//!    fields that moved the prediction most. A value the pipeline cannot
//!    encode is a [`ModelError::InvalidFeature`] that names the field.
//!
//! The [`send_time`] module holds the send-time model, learned from the
//! event log, which is stored in the same registry layout.
//!
//! Everything runs on the CPU and is deterministic for a given seed.
//!
//! The [`llm`] module runs the local language models: SmolLM2 for text and
//! all-MiniLM-L6-v2 for embeddings.

mod bank;
mod calibration;
mod data;
mod error;
mod features;
pub mod llm;
mod metrics;
mod model;
mod network;
mod registry;
mod schema;
pub mod send_time;
mod split;
mod train;
mod workflow;

pub use bank::{bank_marketing_csv, bank_marketing_schema};
pub use calibration::PlattScaling;
pub use data::{CsvOptions, Dataset};
pub use error::ModelError;
pub use features::FeaturePipeline;
pub use metrics::{Metrics, average_precision, brier, log_loss, roc_auc};
pub use model::{Factor, Prediction, ResponseRateModel, TOP_FACTORS};
pub use network::Architecture;
pub use registry::{DataSource, ModelCard, Registry, SplitSummary};
pub use schema::{Field, FieldKind, NumericSpec, Record, Schema, Transform, Value};
pub use split::Split;
pub use train::{Progress, TrainConfig, TrainSummary, train};
pub use workflow::{TrainRun, train_from_csv};
