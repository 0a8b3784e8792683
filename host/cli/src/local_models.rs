//! Registers the candle models found under `<models-dir>/llm` (installed
//! by `copycar models fetch`) as local providers for the router.
//!
//! A provider of kind `local` names one of these models:
//! `smollm2-135m-instruct` for text, `all-minilm-l6-v2` for embeddings.

use copycar_models::llm::{MiniLm, SmolLm, locate};
use copycar_runtime::{GenerateOptions, Generated, LocalEmbedder, LocalModels, LocalTextModel};
use std::path::Path;
use std::sync::Arc;

/// Model name of SmolLM2-135M-Instruct in `[llm.providers.*]`.
pub(crate) const TEXT_MODEL: &str = "smollm2-135m-instruct";
/// Model name of all-MiniLM-L6-v2, the name Spin's SDKs also use.
pub(crate) const EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

/// Added to the system prompt when JSON output is requested, because the
/// local model has no constrained decoding.
const JSON_INSTRUCTION: &str = "Reply with one JSON object and nothing else.";

struct SmolLmText(SmolLm);

impl LocalTextModel for SmolLmText {
    fn name(&self) -> &str {
        TEXT_MODEL
    }

    fn generate(
        &self,
        prompt: &str,
        system: Option<&str>,
        options: &GenerateOptions,
    ) -> anyhow::Result<Generated> {
        let system = match (system, options.json) {
            (Some(system), true) => Some(format!("{system}\n\n{JSON_INSTRUCTION}")),
            (Some(system), false) => Some(system.to_string()),
            (None, true) => Some(JSON_INSTRUCTION.to_string()),
            (None, false) => None,
        };
        let settings = copycar_models::llm::GenerateOptions {
            max_tokens: options.max_tokens as usize,
            temperature: f64::from(options.temperature),
            top_p: options.top_p.map(f64::from),
            seed: 0,
            stop: options.stop.clone(),
        };
        let generated = self.0.generate(prompt, system.as_deref(), &settings)?;
        Ok(Generated {
            text: generated.text,
            prompt_tokens: generated.prompt_tokens.min(u32::MAX as usize) as u32,
            generated_tokens: generated.generated_tokens.min(u32::MAX as usize) as u32,
        })
    }
}

struct MiniLmEmbedder(MiniLm);

impl LocalEmbedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        EMBEDDING_MODEL
    }

    fn dims(&self) -> usize {
        self.0.dims()
    }

    fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(self.0.embed(&texts)?)
    }
}

/// Loads the models present in `<models_dir>/llm`. A model that is missing
/// is skipped; one that fails to load is logged and skipped.
pub(crate) fn load(models_dir: &Path) -> LocalModels {
    let dir = crate::models::llm_dir(models_dir);
    let files = locate(&dir);
    let mut local = LocalModels::default();

    match files.text {
        Some(gguf) => match SmolLm::load(&gguf) {
            Ok(model) => {
                tracing::info!(model = TEXT_MODEL, file = %gguf.display(), "loaded local text model");
                local.register_text(Arc::new(SmolLmText(model)));
            }
            Err(e) => {
                tracing::error!(model = TEXT_MODEL, file = %gguf.display(), error = %e, "failed to load local text model")
            }
        },
        None => tracing::debug!(dir = %dir.display(), "no local text model installed"),
    }

    match files.embeddings {
        Some(path) => match MiniLm::load(&path) {
            Ok(model) => {
                tracing::info!(model = EMBEDDING_MODEL, dir = %path.display(), "loaded local embedding model");
                local.register_embedder(Arc::new(MiniLmEmbedder(model)));
            }
            Err(e) => {
                tracing::error!(model = EMBEDDING_MODEL, dir = %path.display(), error = %e, "failed to load local embedding model")
            }
        },
        None => tracing::debug!(dir = %dir.display(), "no local embedding model installed"),
    }
    local
}
