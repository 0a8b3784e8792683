//! End-to-end tests: each starts the real `copycar` binary on a free
//! loopback port with its own data directory and talks HTTP to it.

mod build;
mod host_endpoints;
mod key_value;
mod manifest;
mod outbound;
mod routing;
mod sandbox;
mod support;
mod variables;
