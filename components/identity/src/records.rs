//! Stored records and the key-value keys they live under.
//!
//! Every tenant-owned record sits under `auth:t:<tenant>:…`, so listing a
//! tenant's objects is a prefix scan and can never return another tenant's.
//! Records looked up by a client-supplied id (API keys, refresh tokens) are
//! global by id but carry their tenant, which callers must compare with the
//! caller's tenant.

use crate::Role;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    /// Argon2id hash in PHC string format.
    pub password_hash: String,
    pub role: Role,
    pub created_at: u64,
}

/// The tenant and user id of an e-mail address. E-mail addresses are unique
/// across tenants, so login needs no tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailIndex {
    pub tenant_id: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: Role,
    pub secret_hash: String,
    pub created_by: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    /// All tokens rotated from one login share a family.
    pub family_id: String,
    pub secret_hash: String,
    pub expires_at: u64,
    /// Set when the token is exchanged; a second exchange is reuse.
    pub used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyRecord {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub revoked: bool,
    /// Why the family was revoked: `logout` or `reuse`.
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub tenant_id: String,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    pub expires_at: u64,
}

/// One security-relevant event: login, failed login, key creation,
/// revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub tenant_id: String,
    pub at: u64,
    /// For example `login`, `login_failed`, `api_key_created`.
    pub action: String,
    /// The user or key that acted, when known.
    pub actor: Option<String>,
    /// The object acted on, when there is one.
    pub subject: Option<String>,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
}

/// Key-value keys. All live in the `default` store.
pub mod keys {
    pub fn tenant(tenant: &str) -> String {
        format!("auth:t:{tenant}")
    }
    pub fn user(tenant: &str, user: &str) -> String {
        format!("auth:t:{tenant}:user:{user}")
    }
    pub fn users_prefix(tenant: &str) -> String {
        format!("auth:t:{tenant}:user:")
    }
    pub fn email(email: &str) -> String {
        format!("auth:email:{email}")
    }
    pub fn api_key(id: &str) -> String {
        format!("auth:key:{id}")
    }
    /// Marker under the tenant, so a tenant's keys list by prefix.
    pub fn tenant_api_key(tenant: &str, id: &str) -> String {
        format!("auth:t:{tenant}:key:{id}")
    }
    pub fn tenant_api_keys_prefix(tenant: &str) -> String {
        format!("auth:t:{tenant}:key:")
    }
    pub fn refresh(id: &str) -> String {
        format!("auth:refresh:{id}")
    }
    pub fn family(id: &str) -> String {
        format!("auth:family:{id}")
    }
    pub fn invite(secret_hash: &str) -> String {
        format!("auth:invite:{secret_hash}")
    }
    pub fn audit(tenant: &str, at: u64, id: &str) -> String {
        // Zero-padded time keeps the keys in chronological order.
        format!("auth:t:{tenant}:audit:{at:012}:{id}")
    }
    pub fn audit_prefix(tenant: &str) -> String {
        format!("auth:t:{tenant}:audit:")
    }
}
