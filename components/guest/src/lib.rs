//! Shared code for CopyCar's components (built for `wasm32-wasip2` with
//! spin-sdk):
//!
//! - [`http`]: [`ApiError`](http::ApiError), the JSON error every endpoint
//!   returns, and helpers for JSON requests and responses;
//! - [`store`]: typed JSON records in the `default` key-value store;
//! - [`caller`]: authenticating a request's access token or API key into a
//!   [`Caller`](caller::Caller) that carries the tenant;
//! - [`locks`]: atomic claims and counters from the host;
//! - [`service`]: JSON calls to the host's other data-plane services;
//! - [`profile`]: the researched account profile shared by the accounts and
//!   content components.

pub mod caller;
pub mod http;
pub mod locks;
pub mod profile;
pub mod service;
pub mod store;
