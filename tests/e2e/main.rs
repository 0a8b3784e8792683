//! End-to-end tests: each starts the real `copycar` binary on a free
//! loopback port with its own data directory and talks HTTP to it.

mod accounts;
mod auth;
mod build;
mod content;
mod events;
mod gateway;
mod golden;
mod host_endpoints;
mod isolation;
mod key_value;
mod llm;
mod manifest;
mod outbound;
mod pipelines;
mod predict;
mod routing;
mod sandbox;
mod sql;
mod support;
mod variables;
