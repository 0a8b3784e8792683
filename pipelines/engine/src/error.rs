//! Error types: SQL errors with a position, and engine errors by phase.

use std::fmt;
use std::path::PathBuf;

/// A problem in a pipeline's SQL, with the 1-based line and column it
/// points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl SqlError {
    pub(crate) fn at(line: u64, column: u64, message: impl Into<String>) -> Self {
        SqlError {
            line,
            column,
            message: message.into(),
        }
    }

    pub(crate) fn at_span(
        span: datafusion::sql::sqlparser::tokenizer::Span,
        message: impl Into<String>,
    ) -> Self {
        SqlError::at(span.start.line, span.start.column, message)
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for SqlError {}

/// A failure while running a pipeline, named by the phase that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error("invalid pipeline `{pipeline}`: {source}")]
    Sql {
        pipeline: String,
        #[source]
        source: SqlError,
    },
    #[error("pipeline `{pipeline}` failed while {phase}: {source}")]
    DataFusion {
        pipeline: String,
        phase: &'static str,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("pipeline `{pipeline}` failed to read the event log: {source}")]
    Log {
        pipeline: String,
        #[source]
        source: copycar_events::LogError,
    },
    #[error("pipeline `{pipeline}` failed to {action} checkpoint {path}: {source}")]
    Checkpoint {
        pipeline: String,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pipeline `{pipeline}` failed to replay its journal: {message}")]
    Replay { pipeline: String, message: String },
    #[error("pipeline `{pipeline}` has a corrupt checkpoint {path}: {message}")]
    CorruptCheckpoint {
        pipeline: String,
        path: PathBuf,
        message: String,
    },
}
