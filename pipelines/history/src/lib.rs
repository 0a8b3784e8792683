//! Event history as Parquet files per tenant, and read-only ad-hoc SQL over
//! one tenant's history.
//!
//! How the pieces fit:
//!
//! 1. [`History::compact`] reads the event log from its committed offset and
//!    writes each tenant's new events to a Parquet file under
//!    `<root>/<tenant>/`, with the schema of [`event_schema`]. Only then does
//!    it write the progress file (the next offset and the list of files)
//!    atomically. [`History::open`] deletes the files that the progress file
//!    does not list, so a crash neither loses nor duplicates rows.
//! 2. After each commit, a tenant's small files are merged into one, and the
//!    replaced files are deleted after a grace period.
//! 3. [`History::query`] runs one `SELECT` or `WITH` query in a DataFusion
//!    session whose only table is `events`, listing exactly that tenant's
//!    committed files. The SQL is parsed and checked before planning, the
//!    plan is checked again with DDL, DML and statements disabled, and
//!    [`QueryLimits`] bound the time, memory and rows.

mod compactor;
mod error;
mod guard;
mod manifest;
mod query;
mod schema;

pub use compactor::{CompactionReport, CompactorOptions, History};
pub use error::{HistoryError, QueryError, SqlPosition};
pub use guard::{MAX_EXPRESSION_DEPTH, MAX_SQL_BYTES, check_expression_depth};
pub use query::{Column, QueryLimits, QueryOutput, TABLE_NAME};
pub use schema::event_schema;

#[cfg(test)]
mod tests;
