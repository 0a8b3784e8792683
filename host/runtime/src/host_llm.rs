//! `fermyon:spin/llm@2.0.0` for component instances.
//!
//! A component may call only the model aliases listed in its `ai_models`,
//! as on Spin. Usage is accounted to the tenant the gateway verified for
//! the request, else to `component:<id>`.

use crate::bindings::llm::{
    self, EmbeddingsResult, EmbeddingsUsage, Error, InferencingParams, InferencingResult,
    InferencingUsage,
};
use crate::llm::{ChatRequest, GenerateOptions, RouteError};
use crate::state::HostState;

/// Limits shared with `llm.copycar.internal`.
const MAX_PROMPT_CHARS: usize = 32_768;
const MAX_TOKENS: u32 = 4096;
const MAX_TEXTS: usize = 64;
const MAX_TEXT_CHARS: usize = 8192;

/// Spin's defaults for a call without parameters.
fn spin_default_params() -> InferencingParams {
    InferencingParams {
        max_tokens: 100,
        repeat_penalty: 1.1,
        repeat_penalty_last_n_token_count: 64,
        temperature: 0.8,
        top_k: 40,
        top_p: 0.9,
    }
}

fn options_from(params: &InferencingParams) -> Result<GenerateOptions, Error> {
    if params.max_tokens == 0 || params.max_tokens > MAX_TOKENS {
        return Err(Error::InvalidInput(format!(
            "max-tokens must be between 1 and {MAX_TOKENS}, got {}",
            params.max_tokens
        )));
    }
    if !(0.0..=2.0).contains(&params.temperature) {
        return Err(Error::InvalidInput(format!(
            "temperature must be between 0 and 2, got {}",
            params.temperature
        )));
    }
    if !(params.top_p > 0.0 && params.top_p <= 1.0) {
        return Err(Error::InvalidInput(format!(
            "top-p must be greater than 0 and at most 1, got {}",
            params.top_p
        )));
    }
    Ok(GenerateOptions {
        max_tokens: params.max_tokens,
        temperature: params.temperature,
        top_p: Some(params.top_p),
        top_k: (params.top_k > 0).then_some(params.top_k),
        repeat_penalty: Some(params.repeat_penalty),
        stop: Vec::new(),
        json: false,
    })
}

impl HostState {
    /// Checks the manifest grant and returns the tenant to account to.
    fn llm_access(&self, model: &str) -> Result<String, Error> {
        if !self.component.ai_models.iter().any(|m| m == model) {
            tracing::warn!(component = %self.component.id, model, "language model not granted in manifest");
            return Err(Error::InvalidInput(format!(
                "component `{}` may not use model `{model}`; add it to `ai_models` in spin.toml",
                self.component.id
            )));
        }
        if !self.llm.as_ref().is_some_and(|r| r.has_model(model)) {
            return Err(Error::ModelNotSupported);
        }
        Ok(match &self.hooks.call.tenant {
            Some(tenant) => tenant.to_string(),
            None => format!("component:{}", self.component.id),
        })
    }

    fn llm_failure(&self, model: &str, error: RouteError) -> Error {
        match error {
            RouteError::UnknownModel(_) => Error::ModelNotSupported,
            RouteError::Exhausted { attempts, .. } => {
                tracing::warn!(component = %self.component.id, model, providers = attempts.len(), "language model call failed");
                let detail: Vec<String> = attempts
                    .iter()
                    .map(|a| format!("{}: {}", a.provider, a.error))
                    .collect();
                Error::RuntimeError(format!(
                    "every provider for model `{model}` failed ({})",
                    detail.join("; ")
                ))
            }
        }
    }
}

impl llm::Host for HostState {
    async fn infer(
        &mut self,
        model: String,
        prompt: String,
        params: Option<InferencingParams>,
    ) -> wasmtime::Result<Result<InferencingResult, Error>> {
        let tenant = match self.llm_access(&model) {
            Ok(tenant) => tenant,
            Err(e) => return Ok(Err(e)),
        };
        if prompt.is_empty() || prompt.chars().count() > MAX_PROMPT_CHARS {
            return Ok(Err(Error::InvalidInput(format!(
                "the prompt must have 1 to {MAX_PROMPT_CHARS} characters"
            ))));
        }
        let options = match options_from(&params.unwrap_or_else(spin_default_params)) {
            Ok(options) => options,
            Err(e) => return Ok(Err(e)),
        };
        let request = ChatRequest {
            system: None,
            prompt,
            options,
        };
        let router = self.llm.clone().expect("checked by llm_access");
        let deadline = self.hooks.call.deadline;
        Ok(
            match router
                .generate(&tenant, &model, &request, Some(deadline))
                .await
            {
                Ok(completion) => Ok(InferencingResult {
                    text: completion.text,
                    usage: InferencingUsage {
                        prompt_token_count: completion.served.prompt_tokens,
                        generated_token_count: completion.served.generated_tokens,
                    },
                }),
                Err(e) => Err(self.llm_failure(&model, e)),
            },
        )
    }

    async fn generate_embeddings(
        &mut self,
        model: String,
        text: Vec<String>,
    ) -> wasmtime::Result<Result<EmbeddingsResult, Error>> {
        let tenant = match self.llm_access(&model) {
            Ok(tenant) => tenant,
            Err(e) => return Ok(Err(e)),
        };
        if text.is_empty() {
            return Ok(Ok(EmbeddingsResult {
                embeddings: Vec::new(),
                usage: EmbeddingsUsage {
                    prompt_token_count: 0,
                },
            }));
        }
        if text.len() > MAX_TEXTS {
            return Ok(Err(Error::InvalidInput(format!(
                "at most {MAX_TEXTS} texts per call, got {}",
                text.len()
            ))));
        }
        if let Some(index) = text.iter().position(|t| t.chars().count() > MAX_TEXT_CHARS) {
            return Ok(Err(Error::InvalidInput(format!(
                "text {index} is longer than {MAX_TEXT_CHARS} characters"
            ))));
        }
        let router = self.llm.clone().expect("checked by llm_access");
        let deadline = self.hooks.call.deadline;
        Ok(
            match router.embed(&tenant, &model, &text, Some(deadline)).await {
                Ok(embeddings) => Ok(EmbeddingsResult {
                    embeddings: embeddings.vectors,
                    usage: EmbeddingsUsage {
                        prompt_token_count: embeddings.served.prompt_tokens,
                    },
                }),
                Err(e) => Err(self.llm_failure(&model, e)),
            },
        )
    }
}
