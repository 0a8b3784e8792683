//! Routes a request for a model alias to its providers in order: retries
//! with backoff on transient failures, skips providers whose circuit is
//! open, falls back to the next provider, and accounts tokens and cost.

use super::circuit::{Admission, CircuitBreaker, CircuitState};
use super::local::{LocalModels, LocalRunner};
use super::usage::{Ledger, TenantUsage, UsageTotals, cost_usd};
use super::{
    ChatRequest, Embedded, Generated, LlmConfig, ProviderConfig, ProviderError, ProviderKind,
    anthropic, gemini, openai,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Maximum backoff between two attempts without a `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A provider's failure, as listed in a `no_model` response.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttemptFailure {
    pub provider: String,
    pub error: String,
}

/// The reason no provider produced a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("no model `{0}` is configured; add it to [llm.models] in the runtime config")]
    UnknownModel(String),
    #[error("every provider for model `{alias}` failed")]
    Exhausted {
        alias: String,
        attempts: Vec<AttemptFailure>,
    },
}

impl RouteError {
    /// Per-provider failures; empty for an unknown model.
    pub fn attempts(&self) -> &[AttemptFailure] {
        match self {
            RouteError::UnknownModel(_) => &[],
            RouteError::Exhausted { attempts, .. } => attempts,
        }
    }
}

/// The provider that served a request, its usage and its cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub engine: ProviderKind,
    pub provider: String,
    /// The provider's model id.
    pub model: String,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub cost_usd: f64,
    /// HTTP calls or local runs made, across retries and providers.
    pub attempts: u32,
    /// Waits before each retry, in order.
    pub retry_waits: Vec<Duration>,
    pub elapsed: Duration,
}

/// Generated text and how it was served.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub served: Served,
}

/// Embedding vectors and how they were served.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub served: Served,
}

/// A provider's configuration and live state, as shown by `/v1/status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProviderStatus {
    pub name: String,
    pub kind: ProviderKind,
    pub model: String,
    pub circuit: &'static str,
    /// The reason the provider is skipped, such as a missing API key.
    pub unavailable: Option<String>,
    pub usage: UsageTotals,
}

struct Provider {
    config: ProviderConfig,
    api_key: Option<String>,
    unavailable: Option<String>,
    breaker: CircuitBreaker,
    /// Attempts by outcome (`ok`, `rate_limited`, `server_error`, …).
    attempts: std::sync::Mutex<BTreeMap<&'static str, u64>>,
}

impl Provider {
    fn count_attempt(&self, outcome: &'static str) {
        *self.attempts.lock().unwrap().entry(outcome).or_default() += 1;
    }
}

enum Operation<'a> {
    Generate(&'a ChatRequest),
    Embed(&'a [String]),
}

enum Output {
    Generated(Generated),
    Embedded(Embedded),
}

#[derive(Default)]
struct Trace {
    attempts: u32,
    retry_waits: Vec<Duration>,
}

/// The language-model router shared by the `fermyon:spin/llm` interface
/// and `llm.copycar.internal`.
pub struct LlmRouter {
    config: LlmConfig,
    providers: BTreeMap<String, Provider>,
    http: reqwest::Client,
    local: LocalModels,
    runner: LocalRunner,
    ledger: Ledger,
}

impl LlmRouter {
    /// Builds the router. API keys are read through `env`, which is the
    /// process environment in production. A provider whose key variable is
    /// unset, or whose local model is not registered, stays listed but is
    /// skipped.
    pub fn new(
        config: LlmConfig,
        local: LocalModels,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("copycar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("failed to create the HTTP client for [llm]: {e}"))?;
        let mut providers = BTreeMap::new();
        for (name, provider) in &config.providers {
            let api_key = provider
                .api_key_env
                .as_deref()
                .and_then(&env)
                .filter(|key| !key.trim().is_empty());
            let unavailable = match (&provider.api_key_env, &api_key) {
                (Some(variable), None) => Some(format!(
                    "environment variable {variable} (llm.providers.{name}.api_key_env) is not set"
                )),
                _ if provider.kind == ProviderKind::Local && !local.contains(&provider.model) => {
                    Some(format!("no local model `{}` is registered", provider.model))
                }
                _ => None,
            };
            match &unavailable {
                Some(reason) => {
                    tracing::warn!(provider = %name, reason = %reason, "language model provider unavailable")
                }
                None => tracing::info!(
                    provider = %name,
                    kind = provider.kind.as_str(),
                    model = %provider.model,
                    "language model provider ready"
                ),
            }
            providers.insert(
                name.clone(),
                Provider {
                    config: provider.clone(),
                    api_key,
                    unavailable,
                    breaker: CircuitBreaker::new(
                        name,
                        config.circuit_failure_threshold,
                        config.circuit_cooldown,
                    ),
                    attempts: Default::default(),
                },
            );
        }
        Ok(LlmRouter {
            config,
            providers,
            http,
            local,
            runner: LocalRunner::default(),
            ledger: Ledger::default(),
        })
    }

    /// Returns whether `alias` names a model in `[llm.models]`.
    pub fn has_model(&self, alias: &str) -> bool {
        self.config.models.contains_key(alias)
    }

    /// Model aliases and their providers, in fallback order.
    pub fn models(&self) -> &BTreeMap<String, Vec<String>> {
        &self.config.models
    }

    /// Generates text with the first provider of `alias` that succeeds and
    /// accounts it to `tenant`. `deadline` shortens the configured overall
    /// deadline, for example to a component's request deadline.
    pub async fn generate(
        &self,
        tenant: &str,
        alias: &str,
        request: &ChatRequest,
        deadline: Option<Instant>,
    ) -> Result<Completion, RouteError> {
        let (output, served) = self
            .route(tenant, alias, Operation::Generate(request), deadline)
            .await?;
        let Output::Generated(generated) = output else {
            unreachable!("a generate operation returns generated text")
        };
        Ok(Completion {
            text: generated.text,
            served,
        })
    }

    /// Embeds `texts` with the first provider of `alias` that succeeds.
    pub async fn embed(
        &self,
        tenant: &str,
        alias: &str,
        texts: &[String],
        deadline: Option<Instant>,
    ) -> Result<Embeddings, RouteError> {
        let (output, served) = self
            .route(tenant, alias, Operation::Embed(texts), deadline)
            .await?;
        let Output::Embedded(embedded) = output else {
            unreachable!("an embed operation returns embeddings")
        };
        Ok(Embeddings {
            vectors: embedded.vectors,
            served,
        })
    }

    pub fn usage(&self, tenant: &str) -> TenantUsage {
        self.ledger.tenant(tenant)
    }

    pub fn status(&self) -> Vec<ProviderStatus> {
        let now = Instant::now();
        self.providers
            .values()
            .map(|p| ProviderStatus {
                name: p.config.name.clone(),
                kind: p.config.kind,
                model: p.config.model.clone(),
                circuit: p.breaker.state(now).as_str(),
                unavailable: p.unavailable.clone(),
                usage: self.ledger.provider(&p.config.name),
            })
            .collect()
    }

    /// Appends the router's metrics in the Prometheus text format:
    /// attempts by provider and outcome, tokens, cost and circuit state.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;

        out.push_str("# HELP copycar_llm_attempts_total Language model provider calls, by provider and outcome.\n");
        out.push_str("# TYPE copycar_llm_attempts_total counter\n");
        for (name, provider) in &self.providers {
            for (outcome, n) in provider.attempts.lock().unwrap().iter() {
                let _ = writeln!(
                    out,
                    "copycar_llm_attempts_total{{provider=\"{name}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP copycar_llm_tokens_total Tokens of successful language model requests, by provider and direction.\n");
        out.push_str("# TYPE copycar_llm_tokens_total counter\n");
        for name in self.providers.keys() {
            let usage = self.ledger.provider(name);
            let _ = writeln!(
                out,
                "copycar_llm_tokens_total{{provider=\"{name}\",direction=\"prompt\"}} {}",
                usage.prompt_tokens
            );
            let _ = writeln!(
                out,
                "copycar_llm_tokens_total{{provider=\"{name}\",direction=\"generated\"}} {}",
                usage.generated_tokens
            );
        }
        out.push_str("# HELP copycar_llm_cost_usd_total Cost of successful language model requests at the configured prices.\n");
        out.push_str("# TYPE copycar_llm_cost_usd_total counter\n");
        for name in self.providers.keys() {
            let cost = self.ledger.provider(name).cost_usd;
            let _ = writeln!(
                out,
                "copycar_llm_cost_usd_total{{provider=\"{name}\"}} {cost}"
            );
        }
        out.push_str("# HELP copycar_llm_circuit_open Whether the provider's circuit is open (1) or not (0).\n");
        out.push_str("# TYPE copycar_llm_circuit_open gauge\n");
        let now = Instant::now();
        for (name, provider) in &self.providers {
            let open = u8::from(provider.breaker.state(now) == CircuitState::Open);
            let _ = writeln!(
                out,
                "copycar_llm_circuit_open{{provider=\"{name}\"}} {open}"
            );
        }
    }

    async fn route(
        &self,
        tenant: &str,
        alias: &str,
        operation: Operation<'_>,
        caller_deadline: Option<Instant>,
    ) -> Result<(Output, Served), RouteError> {
        let started = Instant::now();
        let mut deadline = started + self.config.deadline;
        if let Some(caller) = caller_deadline {
            deadline = deadline.min(caller);
        }
        let names = self
            .config
            .models
            .get(alias)
            .ok_or_else(|| RouteError::UnknownModel(alias.to_string()))?;

        let mut trace = Trace::default();
        let mut failures = Vec::new();
        for (position, name) in names.iter().enumerate() {
            let provider = &self.providers[name];
            let result = match &provider.unavailable {
                Some(reason) => Err(ProviderError::Unavailable(reason.clone())),
                None => {
                    self.try_provider(provider, &operation, deadline, &mut trace)
                        .await
                }
            };
            match result {
                Ok(output) => {
                    let served = self.account(tenant, provider, &output, trace, started);
                    return Ok((output, served));
                }
                Err(error) => {
                    match names.get(position + 1) {
                        Some(next) => tracing::warn!(
                            model = alias,
                            provider = %name,
                            next_provider = %next,
                            error = %error,
                            "language model provider failed; falling back"
                        ),
                        None => tracing::error!(
                            model = alias,
                            provider = %name,
                            error = %error,
                            "language model provider failed; no provider left"
                        ),
                    }
                    failures.push(AttemptFailure {
                        provider: name.clone(),
                        error: error.to_string(),
                    });
                }
            }
        }
        Err(RouteError::Exhausted {
            alias: alias.to_string(),
            attempts: failures,
        })
    }

    /// Calls one provider, retrying transient failures while its retry
    /// budget, its circuit and the deadline allow.
    async fn try_provider(
        &self,
        provider: &Provider,
        operation: &Operation<'_>,
        deadline: Instant,
        trace: &mut Trace,
    ) -> Result<Output, ProviderError> {
        let name = provider.config.name.as_str();
        let mut retry = 0;
        loop {
            let now = Instant::now();
            let admission = provider.breaker.admit(now);
            if let Admission::Rejected { remaining } = admission {
                return Err(ProviderError::Unavailable(format!(
                    "circuit open for another {} ms",
                    remaining.as_millis()
                )));
            }
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() {
                if admission == Admission::Probe {
                    provider.breaker.release_probe(now);
                }
                return Err(ProviderError::Timeout(self.config.deadline));
            }

            // A probe whose request is dropped mid-flight (the caller went
            // away) must free the half-open slot, or the circuit would
            // never close again.
            let mut probe = ProbeGuard {
                breaker: &provider.breaker,
                armed: admission == Admission::Probe,
            };
            trace.attempts += 1;
            let timeout = provider.config.timeout.min(remaining);
            let error = match self.call(provider, operation, timeout).await {
                Ok(output) => {
                    probe.armed = false;
                    provider.count_attempt("ok");
                    provider.breaker.record_success();
                    return Ok(output);
                }
                Err(error) => error,
            };
            provider.count_attempt(error.outcome());
            if error.counts_against_provider() {
                probe.armed = false;
                provider.breaker.record_failure(Instant::now());
            }
            drop(probe);

            if !error.is_retryable() || retry >= provider.config.retries {
                return Err(error);
            }
            if provider.breaker.state(Instant::now()) == CircuitState::Open {
                return Err(error);
            }
            let wait = match error.retry_after() {
                Some(requested) => requested.min(self.config.max_retry_after),
                None => backoff(self.config.backoff_base, retry),
            };
            if Instant::now() + wait >= deadline {
                tracing::warn!(
                    provider = name,
                    wait_ms = wait.as_millis() as u64,
                    error = %error,
                    "not retrying: the wait would pass the request deadline"
                );
                return Err(error);
            }
            retry += 1;
            tracing::warn!(
                provider = name,
                retry,
                max_retries = provider.config.retries,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "retrying language model request"
            );
            trace.retry_waits.push(wait);
            tokio::time::sleep(wait).await;
        }
    }

    async fn call(
        &self,
        provider: &Provider,
        operation: &Operation<'_>,
        timeout: Duration,
    ) -> Result<Output, ProviderError> {
        let config = &provider.config;
        let (http, url, model, key) = (
            &self.http,
            config.base_url.as_str(),
            config.model.as_str(),
            provider.api_key.as_deref(),
        );
        match (config.kind, operation) {
            (ProviderKind::OpenAi, Operation::Generate(request)) => {
                openai::generate(http, url, model, key, request, timeout)
                    .await
                    .map(Output::Generated)
            }
            (ProviderKind::OpenAi, Operation::Embed(texts)) => {
                openai::embed(http, url, model, key, texts, timeout)
                    .await
                    .map(Output::Embedded)
            }
            (ProviderKind::Anthropic, Operation::Generate(request)) => {
                anthropic::generate(http, url, model, key, request, timeout)
                    .await
                    .map(Output::Generated)
            }
            (ProviderKind::Anthropic, Operation::Embed(_)) => Err(ProviderError::Unsupported(
                "the Anthropic API has no embeddings endpoint".into(),
            )),
            (ProviderKind::Gemini, Operation::Generate(request)) => {
                gemini::generate(http, url, model, key, request, timeout)
                    .await
                    .map(Output::Generated)
            }
            (ProviderKind::Gemini, Operation::Embed(texts)) => {
                gemini::embed(http, url, model, key, texts, timeout)
                    .await
                    .map(Output::Embedded)
            }
            (ProviderKind::Local, Operation::Generate(request)) => {
                let Some(model) = self.local.text(model) else {
                    return Err(ProviderError::Unsupported(format!(
                        "local model `{model}` does not generate text"
                    )));
                };
                self.runner
                    .generate(model, request, timeout)
                    .await
                    .map(Output::Generated)
            }
            (ProviderKind::Local, Operation::Embed(texts)) => {
                let Some(model) = self.local.embedder(model) else {
                    return Err(ProviderError::Unsupported(format!(
                        "local model `{model}` does not compute embeddings"
                    )));
                };
                self.runner
                    .embed(model, texts, timeout)
                    .await
                    .map(Output::Embedded)
            }
        }
    }

    fn account(
        &self,
        tenant: &str,
        provider: &Provider,
        output: &Output,
        trace: Trace,
        started: Instant,
    ) -> Served {
        let (prompt_tokens, generated_tokens) = match output {
            Output::Generated(g) => (g.prompt_tokens, g.generated_tokens),
            Output::Embedded(e) => (e.prompt_tokens, 0),
        };
        let config = &provider.config;
        let cost = cost_usd(
            prompt_tokens,
            generated_tokens,
            config.price_per_1k_prompt_tokens,
            config.price_per_1k_generated_tokens,
        );
        self.ledger
            .record(tenant, &config.name, prompt_tokens, generated_tokens, cost);
        Served {
            engine: config.kind,
            provider: config.name.clone(),
            model: config.model.clone(),
            prompt_tokens,
            generated_tokens,
            cost_usd: cost,
            attempts: trace.attempts,
            retry_waits: trace.retry_waits,
            elapsed: started.elapsed(),
        }
    }
}

/// Frees a half-open circuit's probe slot when dropped while armed.
struct ProbeGuard<'a> {
    breaker: &'a CircuitBreaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.release_probe(Instant::now());
        }
    }
}

/// Exponential backoff with jitter: `base * 2^retry`, capped, then a
/// random point in its upper half, so clients that failed together do not
/// retry together.
fn backoff(base: Duration, retry: u32) -> Duration {
    let full = base.saturating_mul(1 << retry.min(16)).min(MAX_BACKOFF);
    let half = full / 2;
    let jitter_ms = fastrand::u64(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_bounds() {
        let base = Duration::from_millis(100);
        for retry in 0..6 {
            let full = (base * (1 << retry)).min(MAX_BACKOFF);
            let wait = backoff(base, retry);
            assert!(wait >= full / 2, "retry {retry}: {wait:?}");
            assert!(wait <= full, "retry {retry}: {wait:?}");
        }
        assert!(backoff(base, 30) <= MAX_BACKOFF);
    }
}
