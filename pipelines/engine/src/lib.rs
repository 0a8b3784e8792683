//! Streaming SQL pipelines in Arroyo's dialect, run on DataFusion over the
//! embedded event log.
//!
//! How the pieces fit:
//!
//! 1. [`parse_pipeline`] reads one SQL file: a `CREATE TABLE` event source
//!    with `WATERMARK FOR occurred_at AS occurred_at - INTERVAL '...'` and
//!    connector options, `CREATE VIEW`s, sink tables and `INSERT INTO`
//!    statements that group by `tumble(width)`, `hop(slide, width)` or
//!    `session(gap)`. Errors carry the line and column they point at.
//! 2. Each aggregation is planned as two DataFusion queries: a partial
//!    aggregation per micro-batch (windows become `date_bin` bins) and a
//!    final projection over the merged window state.
//! 3. [`Pipeline`] takes micro-batches of events in log-offset order. It
//!    counts events past the allowed lateness as dropped, merges partial
//!    aggregates into window state, advances the watermark (by event time,
//!    and by the wall clock once the source is idle), upserts result rows
//!    and writes state and consumer offset in one checkpoint file, with a
//!    journal of the steps since, so a restart takes the same steps again.
//! 4. [`PipelineHandle`] runs a pipeline on a task over any
//!    [`copycar_events::EventSource`]: rows are queryable per tenant and
//!    every change is broadcast as an [`Update`].
//! 5. [`export_arroyo`] rewrites a pipeline's source for an Arroyo cluster
//!    that reads the event topic on Fluvio.

mod batch;
mod error;
mod export;
mod journal;
mod parse;
mod pipeline;
mod plan;
mod runner;
mod state;
mod value;

pub use error::{PipelineError, SqlError};
pub use export::{ArroyoTarget, export_arroyo};
pub use parse::{Connector, EventColumn, PipelineSpec, SourceSpec, parse_pipeline};
pub use pipeline::{
    Pipeline, PipelineStats, ResultRow, TenantStats, Update, UpdateOp, row_key_parts,
};
pub use plan::WindowKind;
pub use runner::{PipelineHandle, RunOptions};
pub use state::WindowBudget;
