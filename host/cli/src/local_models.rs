//! Registers the candle models found under `<models-dir>/llm` (installed
//! by `copycar models fetch`) as local providers for the router.
//!
//! A provider of kind `local` names one of these models:
//! `smollm2-135m-instruct` for text, `all-minilm-l6-v2` for embeddings.
//! With no `[llm]` providers in the runtime config, an installed MiniLM
//! becomes the `embeddings` alias, so similar accounts use real embeddings
//! out of the box. SmolLM2-135M is not made the `default` text model: at
//! 135M parameters it rarely follows the JSON formats that profiles and
//! copy need, so every call would cost seconds and end in the rules and
//! templates anyway. A runtime config that names it (see
//! `host/cli/local-models.toml`) turns it on.

use copycar_models::llm::{MiniLm, SmolLm, locate};
use copycar_runtime::{
    GenerateOptions, Generated, LlmConfig, LocalEmbedder, LocalModels, LocalTextModel,
    ProviderConfig, ProviderKind,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Model name of SmolLM2-135M-Instruct in `[llm.providers.*]`.
pub(crate) const TEXT_MODEL: &str = "smollm2-135m-instruct";
/// Model name of all-MiniLM-L6-v2, the name Spin's SDKs also use.
pub(crate) const EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

/// Added to the system prompt when JSON output is requested, because the
/// local model has no constrained decoding.
const JSON_INSTRUCTION: &str = "Reply with one JSON object and nothing else.";

/// Builds a rayon pool with every core for the language models. The
/// process-wide pool keeps one thread, which suits the small response-rate
/// network.
fn model_pool() -> rayon::ThreadPool {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("copycar-llm-{i}"))
        .build()
        .expect("a thread pool of available_parallelism threads")
}

struct SmolLmText(SmolLm, rayon::ThreadPool);

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
        let generated = self
            .1
            .install(|| self.0.generate(prompt, system.as_deref(), &settings))?;
        Ok(Generated {
            text: generated.text,
            prompt_tokens: generated.prompt_tokens.min(u32::MAX as usize) as u32,
            generated_tokens: generated.generated_tokens.min(u32::MAX as usize) as u32,
        })
    }
}

struct MiniLmEmbedder(MiniLm, rayon::ThreadPool);

impl LocalEmbedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        EMBEDDING_MODEL
    }

    fn dims(&self) -> usize {
        self.0.dims()
    }

    fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(self.1.install(|| self.0.embed(&texts))?)
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
                local.register_text(Arc::new(SmolLmText(model, model_pool())));
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
                local.register_embedder(Arc::new(MiniLmEmbedder(model, model_pool())));
            }
            Err(e) => {
                tracing::error!(model = EMBEDDING_MODEL, dir = %path.display(), error = %e, "failed to load local embedding model")
            }
        },
        None => tracing::debug!(dir = %dir.display(), "no local embedding model installed"),
    }
    local
}

/// Returns the `[llm]` configuration to serve: the runtime config's own
/// table when it names any provider, else the installed embedding model as
/// the `embeddings` alias.
pub(crate) fn with_local_defaults(configured: LlmConfig, local: &LocalModels) -> LlmConfig {
    if !configured.providers.is_empty() {
        return configured;
    }
    let mut config = configured;
    let mut add = |provider: &str, model: &str, alias: &str| {
        config.providers.insert(
            provider.to_string(),
            ProviderConfig {
                name: provider.to_string(),
                kind: ProviderKind::Local,
                base_url: String::new(),
                model: model.to_string(),
                api_key_env: None,
                // Calls wait their turn for the model.
                timeout: Duration::from_secs(120),
                retries: 0,
                price_per_1k_prompt_tokens: 0.0,
                price_per_1k_generated_tokens: 0.0,
            },
        );
        config
            .models
            .insert(alias.to_string(), vec![provider.to_string()]);
    };
    if local.contains(EMBEDDING_MODEL) {
        add("local-embed", EMBEDDING_MODEL, "embeddings");
    }
    if !config.providers.is_empty() {
        tracing::info!(
            aliases = ?config.models.keys().collect::<Vec<_>>(),
            "no [llm] providers configured; serving the local embedding model"
        );
    }
    config
}
