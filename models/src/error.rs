use std::path::PathBuf;

/// A failure while loading data, encoding features, training, predicting or
/// reading and writing the registry.
///
/// Every variant names what failed: the field, the file or the model version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A record contains a value the fitted pipeline cannot encode.
    #[error("invalid value {value:?} for feature `{field}`: {reason}")]
    InvalidFeature {
        field: String,
        value: String,
        reason: String,
    },
    /// A record names a field that is not in the schema.
    #[error("unknown feature `{field}`; the schema has {expected}")]
    UnknownFeature { field: String, expected: String },
    /// A data file could not be parsed.
    #[error("invalid data in {path} line {line}: {message}")]
    Data {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// Training could not start or failed.
    #[error("training failed: {0}")]
    Training(String),
    /// A file could not be read or written.
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file in a model directory is invalid.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The registry contains no such version.
    #[error("model version `{version}` not found in {root}")]
    VersionNotFound { version: String, root: PathBuf },
    /// Weights do not match the shape recorded beside them.
    #[error("invalid model weights in {path}: {message}")]
    Weights { path: PathBuf, message: String },
    /// A tensor operation failed.
    #[error("tensor operation failed during {phase}: {source}")]
    Tensor {
        phase: &'static str,
        #[source]
        source: candle_core::Error,
    },
}

impl ModelError {
    pub(crate) fn invalid(
        field: &str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ModelError::InvalidFeature {
            field: field.to_owned(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ModelError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Attaches the phase name to a candle error.
pub(crate) trait TensorContext<T> {
    fn during(self, phase: &'static str) -> Result<T, ModelError>;
}

impl<T> TensorContext<T> for candle_core::Result<T> {
    fn during(self, phase: &'static str) -> Result<T, ModelError> {
        self.map_err(|source| ModelError::Tensor { phase, source })
    }
}
