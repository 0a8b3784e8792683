//! The caller of a request: a user with an access token, or an API key.

use crate::http::{ApiError, header};
use crate::store::Kv;
use copycar_identity::records::{ApiKeyRecord, FamilyRecord, keys};
use copycar_identity::{AccessToken, ApiKey, IdentityError, Role, SigningKey, now_unix};
use spin_sdk::http::Request;

/// An authenticated caller. Every handler takes the tenant from here, never
/// from the request body or path.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    /// The user id, or `key:<id>` for API keys.
    pub principal: String,
    pub user_id: Option<String>,
    pub role: Role,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this action requires the admin role"))
        }
    }

    pub fn require_user(&self) -> Result<&str, ApiError> {
        self.user_id.as_deref().ok_or_else(|| {
            ApiError::forbidden("this action needs a user's access token, not an API key")
        })
    }
}

pub fn signing_key() -> Result<SigningKey, ApiError> {
    let secret = spin_sdk::variables::get("token_signing_key").map_err(|e| {
        eprintln!("variable token_signing_key is unavailable: {e}");
        ApiError::new(500, "the service is misconfigured")
    })?;
    SigningKey::new(&secret).map_err(|e| {
        eprintln!("{e}");
        ApiError::new(500, "the service is misconfigured")
    })
}

/// A credential and the header it came in.
pub enum Credential {
    /// `Authorization: Bearer …`: an access token or an API key.
    Bearer(String),
    /// `x-api-key: …`: an API key only.
    ApiKeyHeader(String),
}

/// Reads the credential from `Authorization: Bearer …`, else `x-api-key`.
pub fn credential(request: &Request) -> Option<Credential> {
    if let Some(value) = header(request, "authorization")
        && let Some((scheme, token)) = value.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(Credential::Bearer(token.trim().to_string()));
    }
    header(request, "x-api-key").map(|v| Credential::ApiKeyHeader(v.trim().to_string()))
}

/// Authenticates the request or returns 401 with the reason.
pub fn authenticate(request: &Request, kv: &Kv) -> Result<Caller, ApiError> {
    let credential = credential(request).ok_or_else(|| {
        ApiError::unauthorized(
            "missing credentials: send `Authorization: Bearer <token>` or `x-api-key`",
        )
    })?;
    let token = match credential {
        Credential::ApiKeyHeader(key) => return authenticate_api_key(&key, kv),
        Credential::Bearer(token) if ApiKey::looks_like(&token) => {
            return authenticate_api_key(&token, kv);
        }
        Credential::Bearer(token) => token,
    };
    let claims = AccessToken::verify(&signing_key()?, &token, now_unix()).map_err(token_error)?;
    // A token for a deleted user, or one whose tenant changed, is refused.
    let user_exists = kv.exists(&keys::user(&claims.tid, &claims.sub))?;
    if !user_exists {
        return Err(ApiError::unauthorized("the token's user no longer exists"));
    }
    // Every token the auth service issues names its session, so logout
    // and reuse detection can revoke it; a token without one is refused.
    let session = claims
        .sid
        .as_deref()
        .ok_or_else(|| ApiError::unauthorized("the token names no session"))?;
    if !session_is_live(kv, session)? {
        return Err(ApiError::unauthorized(
            "the session was revoked; log in again",
        ));
    }
    Ok(Caller {
        tenant_id: claims.tid,
        principal: claims.sub.clone(),
        user_id: Some(claims.sub),
        role: claims.role,
    })
}

fn authenticate_api_key(text: &str, kv: &Kv) -> Result<Caller, ApiError> {
    let key = ApiKey::parse(text).map_err(token_error)?;
    let record: ApiKeyRecord = kv
        .get(&keys::api_key(&key.id))?
        .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
    key.verify(&record.secret_hash).map_err(token_error)?;
    Ok(Caller {
        tenant_id: record.tenant_id,
        principal: format!("key:{}", record.id),
        user_id: None,
        role: record.role,
    })
}

fn token_error(error: IdentityError) -> ApiError {
    ApiError::unauthorized(error.to_string())
}

/// Reports whether the session (refresh-token family) an access token
/// belongs to is still live.
pub fn session_is_live(kv: &Kv, session: &str) -> Result<bool, ApiError> {
    Ok(kv
        .get::<FamilyRecord>(&keys::family(session))?
        .is_some_and(|family| !family.revoked))
}
