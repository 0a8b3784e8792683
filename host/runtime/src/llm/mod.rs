//! Language models: providers, the router across them, and the `[llm]`
//! configuration.
//!
//! A model alias (`default`, `embeddings`, …) maps to an ordered list of
//! providers. [`LlmRouter`] tries them in order with retries, circuit
//! breakers and a deadline, and accounts tokens and cost per tenant.

mod anthropic;
mod circuit;
mod config;
mod gemini;
mod local;
mod openai;
mod router;
mod types;
mod usage;
mod wire;

pub use circuit::CircuitState;
pub use config::{LlmConfig, LlmConfigError, ProviderConfig};
pub use local::{LocalEmbedder, LocalModels, LocalTextModel};
pub use router::{
    AttemptFailure, Completion, Embeddings, LlmRouter, ProviderStatus, RouteError, Served,
};
pub use types::{ChatRequest, Embedded, GenerateOptions, Generated, ProviderError, ProviderKind};
pub use usage::{TenantUsage, UsageTotals};
