use std::path::PathBuf;

/// A failure while loading or running a local language model.
///
/// Loading errors name the file; generation errors name the input field or
/// the phase that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// A model file or directory does not exist.
    #[error("model file {path} not found; run `copycar models fetch` to install it")]
    Missing { path: PathBuf },
    /// A model file could not be read.
    #[error("failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file exists but is damaged or of the wrong kind.
    #[error("invalid model file {path}: {message}; reinstall it with `copycar models fetch`")]
    InvalidFile { path: PathBuf, message: String },
    /// A request option is out of range.
    #[error("invalid `{field}`: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    /// The prompt leaves no room in the model's context window.
    #[error(
        "prompt of {prompt_tokens} tokens does not fit the context window of {max} tokens"
    )]
    ContextTooLong { prompt_tokens: usize, max: usize },
    /// The tokenizer failed to encode or decode text.
    #[error("tokenizer failed during {phase}: {message}")]
    Tokenizer {
        phase: &'static str,
        message: String,
    },
    /// A tensor operation failed.
    #[error("tensor operation failed during {phase}: {source}")]
    Tensor {
        phase: &'static str,
        #[source]
        source: candle_core::Error,
    },
}

impl LlmError {
    pub(crate) fn invalid_file(path: &std::path::Path, message: impl ToString) -> Self {
        LlmError::InvalidFile {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub(crate) fn tensor(phase: &'static str) -> impl FnOnce(candle_core::Error) -> Self {
        move |source| LlmError::Tensor { phase, source }
    }

    pub(crate) fn tokenizer(phase: &'static str) -> impl FnOnce(tokenizers::Error) -> Self {
        move |error| LlmError::Tokenizer {
            phase,
            message: error.to_string(),
        }
    }
}

/// Opens a model file, telling a missing file apart from an unreadable one.
pub(crate) fn open_file(path: &std::path::Path) -> Result<std::fs::File, LlmError> {
    std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LlmError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            LlmError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Reads a whole model file, telling a missing file apart from an unreadable one.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, LlmError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LlmError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            LlmError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}
