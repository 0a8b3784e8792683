//! Errors from opening, writing and reading the log.

use std::path::PathBuf;

/// A failure of the log itself, as opposed to a rejected event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "corrupt record in event log segment {} at byte {position}; records after it are \
         intact, so the file needs inspection rather than truncation",
        path.display()
    )]
    Corrupt { path: PathBuf, position: u64 },
    #[error(
        "event log segment {} starts at offset {found}, but the segment before it ends at \
         {expected}, so a segment file is missing",
        path.display()
    )]
    MissingSegment {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error(
        "event log segment {} has format version {}, but this build reads only versions 1 \
         and 2; open the log with the release that wrote it",
        path.display(),
        version.map_or_else(|| "(missing)".to_string(), |v| v.to_string())
    )]
    UnsupportedFormat { path: PathBuf, version: Option<u8> },
    #[error("failed to generate a random event id: {0}")]
    EventId(getrandom::Error),
    #[error(
        "event log in {} rejects writes because an earlier failed write could not be rolled \
         back; reopen it to recover",
        path.display()
    )]
    Failed { path: PathBuf },
    #[error(
        "event log in {} was opened read-only and accepts no writes",
        path.display()
    )]
    ReadOnly { path: PathBuf },
}

impl LogError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        LogError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
