//! API keys: create (the secret is shown once), list, delete.

use crate::audit;
use crate::validate;
use copycar_guest::caller::Caller;
use copycar_guest::http::{ApiError, ApiResult, json_body, json_response, no_content};
use copycar_guest::store::Kv;
use copycar_identity::records::{ApiKeyRecord, keys};
use copycar_identity::{ApiKey, Role, now_unix};
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::Request;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    role: Option<String>,
}

fn view(record: &ApiKeyRecord) -> serde_json::Value {
    json!({
        "id": record.id,
        "name": record.name,
        "role": record.role,
        "created_by": record.created_by,
        "created_at": record.created_at,
    })
}

/// `POST /api-keys`: an admin user creates a key. Keys cannot create keys.
pub fn create(request: &Request, caller: &Caller, kv: &Kv) -> ApiResult {
    caller.require_admin()?;
    let creator = caller.require_user()?.to_string();
    let body: CreateBody = json_body(request)?;
    let name = validate::name("name", &body.name)?;
    let role = match body.role.as_deref() {
        None => Role::Member,
        Some(text) => Role::parse(text)
            .ok_or_else(|| ApiError::bad_field("role", "role must be `admin` or `member`"))?,
    };

    let key = ApiKey::generate().map_err(ApiError::storage)?;
    let record = ApiKeyRecord {
        id: key.id.clone(),
        tenant_id: caller.tenant_id.clone(),
        name,
        role,
        secret_hash: key.secret_hash(),
        created_by: creator.clone(),
        created_at: now_unix(),
    };
    kv.put(&keys::api_key(&record.id), &record)?;
    kv.put(
        &keys::tenant_api_key(&caller.tenant_id, &record.id),
        &record.id,
    )?;
    audit::record(
        kv,
        request,
        &caller.tenant_id,
        "api_key_created",
        Some(&creator),
        Some(&record.id),
    );

    let mut body = view(&record);
    body["key"] = json!(key.to_key_string());
    Ok(json_response(201, body))
}

/// `GET /api-keys`: the tenant's keys, without secrets or hashes.
pub fn list(caller: &Caller, kv: &Kv) -> ApiResult {
    caller.require_admin()?;
    let mut keys_out = Vec::new();
    for marker in kv.keys_with_prefix(&keys::tenant_api_keys_prefix(&caller.tenant_id))? {
        let id = marker.rsplit(':').next().unwrap_or_default();
        if let Some(record) = kv.get::<ApiKeyRecord>(&keys::api_key(id))?
            && record.tenant_id == caller.tenant_id
        {
            keys_out.push(view(&record));
        }
    }
    Ok(json_response(200, json!({"api_keys": keys_out})))
}

/// `DELETE /api-keys/{id}`: revokes a key of the caller's tenant. A key of
/// another tenant is reported as not found.
pub fn delete(request: &Request, caller: &Caller, kv: &Kv, id: &str) -> ApiResult {
    caller.require_admin()?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("API key"));
    }
    let record: ApiKeyRecord = kv
        .get(&keys::api_key(id))?
        .filter(|r: &ApiKeyRecord| r.tenant_id == caller.tenant_id)
        .ok_or_else(|| ApiError::not_found("API key"))?;
    kv.delete(&keys::api_key(&record.id))?;
    kv.delete(&keys::tenant_api_key(&caller.tenant_id, &record.id))?;
    audit::record(
        kv,
        request,
        &caller.tenant_id,
        "api_key_revoked",
        Some(&caller.principal),
        Some(&record.id),
    );
    Ok(no_content())
}
