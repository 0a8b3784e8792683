//! The copycar host runtime: runs the WASI 0.2 HTTP components of a Spin
//! application, one sandboxed instance per request.
//!
//! How the pieces fit:
//!
//! 1. [`copycar_manifest::App`] is the checked `spin.toml`; a
//!    [`RuntimeConfig`] adds key-value stores and sandbox limits.
//! 2. [`Runtime::load`] resolves variables, opens the key-value stores,
//!    compiles each component once (cached on disk by content hash and
//!    engine settings), links it against WASI, `wasi:http` and Spin's
//!    key-value, variables and llm interfaces, and pre-instantiates it.
//! 3. [`serve`] accepts HTTP, routes each request with Spin's rules,
//!    applies the route's gateway policies (body limit, rate limits, CORS),
//!    and calls [`Runtime::invoke`], which creates a fresh instance from the
//!    pooling allocator with a wall-clock deadline (epoch interruption) and
//!    a memory cap.
//! 4. Outbound HTTP from an instance goes through the allow-list and the
//!    address checks in `outbound`. Requests to `*.copycar.internal` URLs
//!    reach the in-process services of a [`ServiceRegistry`] without a
//!    socket.
//! 5. Calls to `fermyon:spin/llm` and to `llm.copycar.internal` share one
//!    [`LlmRouter`], built from the runtime config's `[llm]` table, which
//!    tries each model alias's providers in order.

mod address;
mod bindings;
mod config;
mod engine;
mod gateway;
mod host_kv;
mod host_llm;
mod host_variables;
mod kv;
mod llm;
mod locks;
mod metrics;
mod outbound;
mod runtime;
mod server;
mod services;
mod state;
mod variables;

pub use config::{
    EventsBackend, EventsSection, KeyValueStoreConfig, RuntimeConfig, SandboxLimits, SandboxSection,
};
pub use gateway::{GatewayConfig, Rate, RoutePolicy};
pub use llm::{
    AttemptFailure, ChatRequest, CircuitState, Completion, Embedded, Embeddings, GenerateOptions,
    Generated, LlmConfig, LlmConfigError, LlmRouter, LocalEmbedder, LocalModels, LocalTextModel,
    ProviderConfig, ProviderError, ProviderKind, ProviderStatus, RouteError, Served, TenantUsage,
    UsageTotals,
};
pub use metrics::{Metrics, MetricsSource};
pub use runtime::{CallContext, InvokeError, Runtime, RuntimeOptions};
pub use server::serve;
pub use services::{InternalService, ServiceFuture, ServiceRegistry, ServiceRequest};
pub use variables::{AppVariables, parse_variable_arg};
