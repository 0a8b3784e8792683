//! Requests, results and errors shared by every provider.

use std::time::Duration;

/// The kind of backend a provider talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible chat completions server (OpenAI, Ollama,
    /// llama.cpp server, vLLM).
    OpenAi,
    /// The Anthropic Messages API.
    Anthropic,
    /// The Gemini `generateContent` API.
    Gemini,
    /// A model registered in process ([`super::LocalModels`]).
    Local,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Local => "local",
        }
    }
}

/// Sampling settings for one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_tokens: u32,
    pub temperature: f32,
    pub top_p: Option<f32>,
    /// Sent to the APIs that accept it (Anthropic, Gemini, local models).
    pub top_k: Option<u32>,
    /// Used by local models only; the HTTP APIs have no equivalent.
    pub repeat_penalty: Option<f32>,
    /// Stop sequences; at most 4.
    pub stop: Vec<String>,
    /// Ask the model for one JSON object.
    pub json: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            temperature: 0.7,
            top_p: None,
            top_k: None,
            repeat_penalty: None,
            stop: Vec::new(),
            json: false,
        }
    }
}

/// A text-generation request to one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub prompt: String,
    pub options: GenerateOptions,
}

/// Generated text and its token counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub text: String,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
}

/// Embedding vectors in input order and the prompt's token count.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
}

/// A failed call to one provider.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("rate limited (HTTP 429): {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("server error (HTTP {status}): {message}")]
    Server {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("request rejected (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Transport(String),
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    #[error("local model failed: {0}")]
    Local(String),
}

impl ProviderError {
    /// Returns whether another attempt at the same provider may succeed,
    /// which is the case for rate limits, server errors, timeouts and connection
    /// failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Server { .. }
                | ProviderError::Timeout(_)
                | ProviderError::Transport(_)
        )
    }

    /// Returns the metric label for this failure.
    pub fn outcome(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Server { .. } => "server_error",
            ProviderError::Rejected { .. } => "rejected",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Transport(_) => "connection_failed",
            ProviderError::InvalidResponse(_) => "invalid_response",
            ProviderError::Unsupported(_) => "unsupported",
            ProviderError::Unavailable(_) => "unavailable",
            ProviderError::Local(_) => "local_failed",
        }
    }

    /// Returns the server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. }
            | ProviderError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Returns whether the failure reflects the provider's health, so that
    /// it counts towards opening its circuit. Rejections caused by the
    /// request itself (400, 413, 422) and unsupported operations do not.
    pub fn counts_against_provider(&self) -> bool {
        match self {
            ProviderError::Rejected { status, .. } => !matches!(status, 400 | 413 | 422),
            ProviderError::Unsupported(_) | ProviderError::Unavailable(_) => false,
            _ => true,
        }
    }
}
