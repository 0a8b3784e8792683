//! The caller, the tenant's members, and invitations.

use crate::accounts::user_view;
use crate::{audit, validate};
use copycar_guest::caller::Caller;
use copycar_guest::http::{ApiError, ApiResult, json_body, json_response};
use copycar_guest::store::Kv;
use copycar_identity::records::{ApiKeyRecord, InviteRecord, TenantRecord, UserRecord, keys};
use copycar_identity::sha256_hex;
use copycar_identity::{Role, now_unix};
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::Request;

const INVITE_TTL_SECS: u64 = 7 * 24 * 3600;

/// `GET /me`: the caller and its tenant.
pub fn me(caller: &Caller, kv: &Kv) -> ApiResult {
    let tenant: TenantRecord = kv
        .get(&keys::tenant(&caller.tenant_id))?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let tenant = json!({"id": tenant.id, "name": tenant.name});
    match &caller.user_id {
        Some(user_id) => {
            let user: UserRecord = kv
                .get(&keys::user(&caller.tenant_id, user_id))?
                .ok_or_else(|| ApiError::not_found("user"))?;
            Ok(json_response(
                200,
                json!({"user": user_view(&user), "tenant": tenant}),
            ))
        }
        None => {
            let key_id = caller.principal.trim_start_matches("key:");
            let key: ApiKeyRecord = kv
                .get(&keys::api_key(key_id))?
                .ok_or_else(|| ApiError::not_found("API key"))?;
            let view = json!({"id": key.id, "name": key.name, "role": key.role});
            Ok(json_response(
                200,
                json!({"api_key": view, "tenant": tenant}),
            ))
        }
    }
}

/// `GET /members`: every user of the caller's tenant.
pub fn list(caller: &Caller, kv: &Kv) -> ApiResult {
    let mut members = Vec::new();
    for key in kv.keys_with_prefix(&keys::users_prefix(&caller.tenant_id))? {
        if let Some(user) = kv.get::<UserRecord>(&key)? {
            members.push(user_view(&user));
        }
    }
    Ok(json_response(200, json!({"members": members})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: String,
    #[serde(default)]
    role: Option<String>,
}

pub fn hash_invite(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// `POST /invites`: an admin invites an address into the tenant. The
/// invitation token is returned once, for the admin to pass on.
pub fn invite(request: &Request, caller: &Caller, kv: &Kv) -> ApiResult {
    caller.require_admin()?;
    let inviter = caller.require_user()?.to_string();
    let body: InviteBody = json_body(request)?;
    let email = validate::email(&body.email)?;
    let role = match body.role.as_deref() {
        None => Role::Member,
        Some(text) => Role::parse(text)
            .ok_or_else(|| ApiError::bad_field("role", "role must be `admin` or `member`"))?,
    };
    // Whether the address already has an account is not revealed here, so
    // inviting cannot probe other tenants; accepting reports the conflict.
    let token = copycar_identity::RefreshToken::generate()
        .map_err(ApiError::storage)?
        .to_token_string();
    let expires_at = now_unix() + INVITE_TTL_SECS;
    let record = InviteRecord {
        tenant_id: caller.tenant_id.clone(),
        email: email.clone(),
        role,
        invited_by: inviter.clone(),
        expires_at,
    };
    kv.put(&keys::invite(&hash_invite(&token)), &record)?;
    audit::record(
        kv,
        request,
        &caller.tenant_id,
        "member_invited",
        Some(&inviter),
        Some(&email),
    );
    Ok(json_response(
        201,
        json!({"invite_token": token, "email": email, "role": role, "expires_at": expires_at}),
    ))
}
