//! Issuing token pairs, refresh with rotation, and logout.

use crate::audit;
use copycar_guest::caller::signing_key;
use copycar_guest::http::{ApiError, ApiResult, json_body, json_response, no_content};
use copycar_guest::store::Kv;
use copycar_identity::records::{FamilyRecord, RefreshRecord, keys};
use copycar_identity::{AccessToken, RefreshToken, Role, now_unix, random_id};
use serde::Deserialize;
use serde_json::{Value, json};
use spin_sdk::http::Request;

pub const ACCESS_TTL_SECS: u64 = 3600;
pub const REFRESH_TTL_SECS: u64 = 30 * 24 * 3600;

/// Starts a new session (refresh-token family) and returns the token pair.
pub fn start_session(
    kv: &Kv,
    tenant_id: &str,
    user_id: &str,
    role: Role,
) -> Result<Value, ApiError> {
    let family = FamilyRecord {
        id: random_id().map_err(ApiError::storage)?,
        tenant_id: tenant_id.to_string(),
        user_id: user_id.to_string(),
        revoked: false,
        revoked_reason: None,
    };
    kv.put(&keys::family(&family.id), &family)?;
    issue_pair(kv, &family, role)
}

fn issue_pair(kv: &Kv, family: &FamilyRecord, role: Role) -> Result<Value, ApiError> {
    let now = now_unix();
    let refresh = RefreshToken::generate().map_err(ApiError::storage)?;
    let record = RefreshRecord {
        id: refresh.id.clone(),
        tenant_id: family.tenant_id.clone(),
        user_id: family.user_id.clone(),
        family_id: family.id.clone(),
        secret_hash: refresh.secret_hash(),
        expires_at: now + REFRESH_TTL_SECS,
        used: false,
    };
    kv.put(&keys::refresh(&record.id), &record)?;
    let (access, _) = AccessToken::issue(
        &signing_key()?,
        &family.user_id,
        &family.tenant_id,
        role,
        Some(&family.id),
        now,
        ACCESS_TTL_SECS,
    )
    .map_err(ApiError::storage)?;
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL_SECS,
        "refresh_token": refresh.to_token_string(),
        "refresh_expires_in": REFRESH_TTL_SECS,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// Looks up a presented refresh token and checks its secret.
fn find(kv: &Kv, presented: &str) -> Result<(RefreshRecord, FamilyRecord), ApiError> {
    let invalid = || ApiError::unauthorized("invalid refresh token");
    let token = RefreshToken::parse(presented).map_err(|_| invalid())?;
    let record: RefreshRecord = kv.get(&keys::refresh(&token.id))?.ok_or_else(invalid)?;
    if !token.matches(&record.secret_hash) {
        return Err(invalid());
    }
    let family: FamilyRecord = kv
        .get(&keys::family(&record.family_id))?
        .ok_or_else(invalid)?;
    Ok((record, family))
}

fn revoke(kv: &Kv, mut family: FamilyRecord, reason: &str) -> Result<(), ApiError> {
    family.revoked = true;
    family.revoked_reason = Some(reason.to_string());
    kv.put(&keys::family(&family.id), &family)
}

/// `POST /refresh`: exchanges a refresh token for a new pair. Each refresh
/// token works once; presenting a used one revokes its whole family,
/// because either the client or a thief has a copy.
pub async fn refresh(request: &Request, kv: &Kv) -> ApiResult {
    let body: RefreshBody = json_body(request)?;
    let (mut record, family) = find(kv, &body.refresh_token)?;
    if family.revoked {
        return Err(ApiError::unauthorized(
            "the session was revoked; log in again",
        ));
    }
    // The claim settles concurrent exchanges of one token: only the first
    // wins; any other is reuse. The stored `used` flag covers host restarts.
    let first_use =
        copycar_guest::locks::claim(&format!("refresh:{}", record.id), REFRESH_TTL_SECS).await?;
    if record.used || !first_use {
        let (tenant, user, family_id) = (
            family.tenant_id.clone(),
            family.user_id.clone(),
            family.id.clone(),
        );
        revoke(kv, family, "reuse")?;
        audit::record(
            kv,
            request,
            &tenant,
            "refresh_token_reused",
            Some(&user),
            Some(&family_id),
        );
        return Err(ApiError::unauthorized(
            "refresh token reuse detected; the session was revoked",
        ));
    }
    if record.expires_at < now_unix() {
        return Err(ApiError::unauthorized(
            "refresh token expired; log in again",
        ));
    }
    record.used = true;
    kv.put(&keys::refresh(&record.id), &record)?;

    let user: copycar_identity::records::UserRecord = kv
        .get(&keys::user(&family.tenant_id, &family.user_id))?
        .ok_or_else(|| ApiError::unauthorized("the session's user no longer exists"))?;
    let pair = issue_pair(kv, &family, user.role)?;
    Ok(json_response(200, pair))
}

/// `POST /logout`: revokes the session of the given refresh token, which
/// also invalidates access tokens issued in it.
pub fn logout(request: &Request, kv: &Kv) -> ApiResult {
    let body: RefreshBody = json_body(request)?;
    let (_, family) = find(kv, &body.refresh_token)?;
    if !family.revoked {
        let (tenant, user, family_id) = (
            family.tenant_id.clone(),
            family.user_id.clone(),
            family.id.clone(),
        );
        revoke(kv, family, "logout")?;
        audit::record(
            kv,
            request,
            &tenant,
            "logout",
            Some(&user),
            Some(&family_id),
        );
    }
    Ok(no_content())
}
