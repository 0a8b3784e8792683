//! Identity for CopyCar: who is calling, for which tenant, with which role.
//!
//! The same crate builds for components (`wasm32-wasip2`) and for the host,
//! so a component deployed on any Spin runtime verifies callers exactly as
//! the copycar gateway does.
//!
//! - [`AccessToken`]: short-lived JWTs signed with HMAC-SHA256 ([`SigningKey`]).
//!   Only `HS256` is accepted; `none` and every other algorithm are rejected.
//! - [`RefreshToken`]: opaque, single-use secrets grouped in families so
//!   that reuse can revoke the whole family.
//! - [`ApiKey`]: long-lived secrets for machines, stored only as a hash.
//! - [`records`]: the stored forms of users, tenants, keys and refresh
//!   tokens, and the key-value keys they live under, shared by the auth
//!   component and the gateway.

mod api_key;
mod encoding;
mod error;
pub mod records;
mod role;
mod secret;
mod token;

pub use api_key::ApiKey;
pub use encoding::sha256_hex;
pub use error::IdentityError;
pub use role::Role;
pub use secret::{RefreshToken, random_id};
pub use token::{AccessToken, Claims, SigningKey};

/// Seconds since the Unix epoch, from the system clock.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
