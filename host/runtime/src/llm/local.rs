//! In-process models behind the `local` provider kind. The host defines
//! the traits; the CLI registers implementations (candle models) by name,
//! and a provider's `model` key selects one.

use super::wire::estimate_tokens;
use super::{ChatRequest, Embedded, GenerateOptions, Generated, ProviderError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A text-generation model run in process.
pub trait LocalTextModel: Send + Sync {
    fn name(&self) -> &str;
    /// Generates a reply to `prompt`. Runs on a blocking thread.
    fn generate(
        &self,
        prompt: &str,
        system: Option<&str>,
        options: &GenerateOptions,
    ) -> anyhow::Result<Generated>;
}

/// An embedding model run in process.
pub trait LocalEmbedder: Send + Sync {
    fn name(&self) -> &str;
    /// Length of every vector `embed` returns.
    fn dims(&self) -> usize;
    /// Returns one vector per text, in order. Runs on a blocking thread.
    fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// Local models by name, registered before the router is built.
#[derive(Clone, Default)]
pub struct LocalModels {
    text: BTreeMap<String, Arc<dyn LocalTextModel>>,
    embedders: BTreeMap<String, Arc<dyn LocalEmbedder>>,
}

impl LocalModels {
    pub fn register_text(&mut self, model: Arc<dyn LocalTextModel>) {
        self.text.insert(model.name().to_string(), model);
    }

    pub fn register_embedder(&mut self, model: Arc<dyn LocalEmbedder>) {
        self.embedders.insert(model.name().to_string(), model);
    }

    /// Returns whether any model of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.text.contains_key(name) || self.embedders.contains_key(name)
    }

    pub(crate) fn text(&self, name: &str) -> Option<Arc<dyn LocalTextModel>> {
        self.text.get(name).cloned()
    }

    pub(crate) fn embedder(&self, name: &str) -> Option<Arc<dyn LocalEmbedder>> {
        self.embedders.get(name).cloned()
    }
}

/// Runs local models on blocking threads, one call at a time: a model
/// uses every core for its matrix multiplies, so parallel calls would only
/// slow each other down.
#[derive(Clone)]
pub(crate) struct LocalRunner {
    cpu: Arc<Semaphore>,
}

impl Default for LocalRunner {
    fn default() -> Self {
        LocalRunner {
            cpu: Arc::new(Semaphore::new(1)),
        }
    }
}

impl LocalRunner {
    /// Runs `job` once the CPU permit is free. The wait for the permit
    /// counts against `timeout`. A job that has started runs to its end on
    /// its thread, even after the caller stops waiting.
    async fn run<T: Send + 'static>(
        &self,
        timeout: Duration,
        job: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ProviderError> {
        let work = async {
            let permit = self
                .cpu
                .clone()
                .acquire_owned()
                .await
                .expect("the CPU semaphore is never closed");
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                job()
            })
            .await
        };
        match tokio::time::timeout(timeout, work).await {
            Err(_) => Err(ProviderError::Timeout(timeout)),
            Ok(Err(join)) => Err(ProviderError::Local(format!(
                "the model task failed: {join}"
            ))),
            Ok(Ok(Err(e))) => Err(ProviderError::Local(format!("{e:#}"))),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }

    pub(crate) async fn generate(
        &self,
        model: Arc<dyn LocalTextModel>,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Generated, ProviderError> {
        let request = request.clone();
        self.run(timeout, move || {
            model.generate(&request.prompt, request.system.as_deref(), &request.options)
        })
        .await
    }

    pub(crate) async fn embed(
        &self,
        model: Arc<dyn LocalEmbedder>,
        texts: &[String],
        timeout: Duration,
    ) -> Result<Embedded, ProviderError> {
        let owned = texts.to_vec();
        let dims = model.dims();
        let vectors = self.run(timeout, move || model.embed(&owned)).await?;
        if vectors.len() != texts.len() {
            return Err(ProviderError::Local(format!(
                "{} embeddings for {} inputs",
                vectors.len(),
                texts.len()
            )));
        }
        if let Some(bad) = vectors.iter().find(|v| v.len() != dims) {
            return Err(ProviderError::Local(format!(
                "a vector has {} dimensions, the model declares {dims}",
                bad.len()
            )));
        }
        // NOTE: the embedder trait returns no token count, so usage is
        // estimated at four characters per token.
        Ok(Embedded {
            vectors,
            prompt_tokens: estimate_tokens(texts),
        })
    }
}
