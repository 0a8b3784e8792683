use std::path::PathBuf;

/// A manifest that could not be read or is invalid.
///
/// Every error names the manifest file and, where one applies, the dotted
/// path of the offending field (`component.health.source`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("failed to read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid manifest {path}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

impl ManifestError {
    pub(crate) fn field(
        path: &std::path::Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ManifestError::Field {
            path: path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }
}
