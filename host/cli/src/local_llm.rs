//! The candle models behind the `local` provider kind: SmolLM2 for text and
//! all-MiniLM-L6-v2 for embeddings, loaded from `<models-dir>/llm` (where
//! `copycar models fetch` installs them).
//!
//! With no `[llm]` table in the runtime config, the host serves these as
//! its default models (`default` and `embeddings` aliases); with no files
//! either, there is no model and the components fall back to templates and
//! rules.

use copycar_models::llm::{GenerateOptions as SmolOptions, MiniLm, SmolLm, locate};
use copycar_runtime::{
    Generated, GenerateOptions, LlmConfig, LocalEmbedder, LocalModels, LocalTextModel,
    ProviderConfig, ProviderKind,
};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Provider names used when the local models become the defaults.
const TEXT_PROVIDER: &str = "local-text";
const EMBED_PROVIDER: &str = "local-embed";

struct LocalText {
    model: SmolLm,
    /// The process-wide rayon pool has one thread (small models are fastest
    /// so); generation gets its own pool with every core.
    pool: rayon::ThreadPool,
}

impl LocalTextModel for LocalText {
    fn name(&self) -> &str {
        self.model.name()
    }

    fn generate(
        &self,
        prompt: &str,
        system: Option<&str>,
        options: &GenerateOptions,
    ) -> anyhow::Result<Generated> {
        let options = SmolOptions {
            max_tokens: options.max_tokens.max(1) as usize,
            temperature: f64::from(options.temperature),
            top_p: options.top_p.map(f64::from),
            seed: 0,
            stop: options.stop.clone(),
        };
        let generated = self
            .pool
            .install(|| self.model.generate(prompt, system, &options))?;
        Ok(Generated {
            text: generated.text,
            prompt_tokens: generated.prompt_tokens as u32,
            generated_tokens: generated.generated_tokens as u32,
        })
    }
}

struct LocalEmbed {
    model: MiniLm,
    pool: rayon::ThreadPool,
}

impl LocalEmbedder for LocalEmbed {
    fn name(&self) -> &str {
        self.model.name()
    }

    fn dims(&self) -> usize {
        self.model.dims()
    }

    fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(self.pool.install(|| self.model.embed(&texts))?)
    }
}

fn pool() -> anyhow::Result<rayon::ThreadPool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("copycar-llm-{i}"))
        .build()?)
}

/// Local models that loaded, and their names.
pub(crate) struct Loaded {
    pub models: LocalModels,
    pub text: Option<String>,
    pub embedder: Option<String>,
}

/// Loads whichever local models are installed under `llm_dir`. A damaged
/// file is reported and skipped, so the host still starts.
pub(crate) fn load(llm_dir: &Path) -> Loaded {
    let mut models = LocalModels::default();
    let (mut text, mut embedder) = (None, None);
    let files = locate(llm_dir);
    if let Some(path) = &files.text {
        let started = Instant::now();
        match SmolLm::load(path).map_err(anyhow::Error::from).and_then(|model| {
            Ok(LocalText {
                model,
                pool: pool()?,
            })
        }) {
            Ok(model) => {
                tracing::info!(model = model.name(), path = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "local text model loaded");
                text = Some(model.name().to_string());
                models.register_text(Arc::new(model));
            }
            Err(e) => tracing::error!(path = %path.display(), error = %e, "local text model not loaded"),
        }
    }
    if let Some(dir) = &files.embeddings {
        let started = Instant::now();
        match MiniLm::load(dir).map_err(anyhow::Error::from).and_then(|model| {
            Ok(LocalEmbed {
                model,
                pool: pool()?,
            })
        }) {
            Ok(model) => {
                tracing::info!(model = model.name(), path = %dir.display(), elapsed_ms = started.elapsed().as_millis() as u64, "local embedding model loaded");
                embedder = Some(model.name().to_string());
                models.register_embedder(Arc::new(model));
            }
            Err(e) => tracing::error!(path = %dir.display(), error = %e, "local embedding model not loaded"),
        }
    }
    if files.text.is_none() && files.embeddings.is_none() {
        tracing::info!(dir = %llm_dir.display(), "no local language models installed; `copycar models fetch` installs them");
    }
    Loaded {
        models,
        text,
        embedder,
    }
}

/// The `[llm]` configuration to use: the runtime config's own table when it
/// names any provider, else the local models as `default` and `embeddings`.
pub(crate) fn with_local_defaults(
    configured: LlmConfig,
    text: Option<&str>,
    embedder: Option<&str>,
) -> LlmConfig {
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
                // A profile or an e-mail takes a few seconds on two cores.
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
    if let Some(model) = text {
        add(TEXT_PROVIDER, model, "default");
    }
    if let Some(model) = embedder {
        add(EMBED_PROVIDER, model, "embeddings");
    }
    if text.is_some() || embedder.is_some() {
        config.deadline = config.deadline.max(Duration::from_secs(180));
    }
    config
}
