//! Errors of compaction and of ad-hoc queries.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A compaction failure. Each variant names the phase and the file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to {action} parquet file {path}: {message}")]
    Parquet {
        action: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("progress file {path} is invalid: {message}")]
    Progress { path: PathBuf, message: String },
    #[error("failed to read the event log: {0}")]
    Log(String),
    #[error("compaction task failed: {0}")]
    Task(String),
    #[cfg(test)]
    #[error("compaction stopped before writing progress (test fault)")]
    InjectedFault,
}

impl HistoryError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        HistoryError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parquet(action: &'static str, path: &Path, error: impl ToString) -> Self {
        HistoryError::Parquet {
            action,
            path: path.to_path_buf(),
            message: error.to_string(),
        }
    }
}

/// A position in the SQL text, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SqlPosition {
    pub line: u64,
    pub column: u64,
}

/// The reason an ad-hoc query was rejected or stopped.
///
/// The messages are written for the person who wrote the SQL. Failures that
/// could name history files (I/O, Parquet, internal errors) are logged and
/// returned as `Internal`, without details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("{0}")]
    Invalid(String),
    #[error("syntax error: {message}")]
    Syntax {
        message: String,
        position: Option<SqlPosition>,
    },
    #[error("{message}")]
    NotReadOnly { message: String },
    #[error("planning failed: {message}")]
    Plan {
        message: String,
        position: Option<SqlPosition>,
    },
    #[error("query failed: {0}")]
    Execution(String),
    #[error("query timed out after {} ms; narrow it with WHERE or LIMIT", .0.as_millis())]
    Timeout(Duration),
    #[error(
        "query exceeded the memory limit of {limit_bytes} bytes; aggregate more or narrow it with WHERE"
    )]
    MemoryLimit { limit_bytes: usize },
    #[error("the query could not be run; try again later")]
    Internal,
}

impl QueryError {
    /// Returns the HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::Invalid(_)
            | QueryError::Syntax { .. }
            | QueryError::NotReadOnly { .. }
            | QueryError::Plan { .. } => 400,
            QueryError::Execution(_) | QueryError::Timeout(_) | QueryError::MemoryLimit { .. } => {
                422
            }
            QueryError::Internal => 500,
        }
    }

    /// Returns a short machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Invalid(_) => "invalid",
            QueryError::Syntax { .. } => "syntax",
            QueryError::NotReadOnly { .. } => "not_read_only",
            QueryError::Plan { .. } => "plan",
            QueryError::Execution(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::MemoryLimit { .. } => "memory_limit",
            QueryError::Internal => "internal",
        }
    }

    /// Returns where in the SQL the error is, when known.
    pub fn position(&self) -> Option<SqlPosition> {
        match self {
            QueryError::Syntax { position, .. } | QueryError::Plan { position, .. } => *position,
            _ => None,
        }
    }
}
