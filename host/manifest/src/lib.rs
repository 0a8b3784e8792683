//! Spin application manifests (`spin.toml`, manifest version 2) for the
//! copycar host.
//!
//! [`App::load`] reads a manifest, checks it and returns the application:
//! components with their sources, grants and variables, the application
//! variables, and the HTTP triggers. [`Router`] turns the triggers into the
//! route table, following Spin's matching rules, and [`AllowedHosts`] is a
//! component's outbound allow-list. Nothing here touches WebAssembly; the
//! runtime crate builds on these types.

mod allowed_hosts;
mod app;
mod error;
mod raw;
mod router;
mod template;

pub use allowed_hosts::{AllowedHost, AllowedHosts, HostPattern, PortPattern};
pub use app::{
    App, BuildConfig, Component, ComponentVariable, HttpTrigger, TriggerRoute, Variable,
    read_limited,
};
pub use error::ManifestError;
pub use router::{RouteMatch, Router};
pub use template::{Template, is_valid_variable_name};
