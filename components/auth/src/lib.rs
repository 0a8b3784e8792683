//! The auth service, under `/api/v1/auth`:
//!
//! | method and path | who | effect |
//! |---|---|---|
//! | `POST /register` | anyone | new tenant, its first user (admin), a session |
//! | `POST /login` | anyone | a session: access token (1 h) and refresh token |
//! | `POST /refresh` | refresh token | rotates the pair; reuse revokes the session |
//! | `POST /logout` | refresh token | revokes the session |
//! | `POST /accept-invite` | invitation | creates the invited member, a session |
//! | `GET /me` | user or key | the caller and its tenant |
//! | `GET /members` | user or key | the tenant's users |
//! | `POST /invites` | admin user | an invitation token for an address |
//! | `POST /api-keys` | admin user | a key; the secret is shown once |
//! | `GET /api-keys` | admin | the tenant's keys, without secrets |
//! | `DELETE /api-keys/{id}` | admin | revokes a key |
//! | `GET /audit` | admin | the tenant's audit records, newest first |
//!
//! Records live in the `default` key-value store under the tenant of the
//! authenticated caller; no tenant id is ever read from the request. Checks
//! that must not race (single-use refresh tokens and invitations, unique
//! sign-ups, failed-login counts) go through the host's `locks` service.

mod accounts;
mod api_keys;
mod audit;
mod members;
mod password;
mod sessions;
mod validate;

use copycar_guest::http::{ApiError, ApiResult, header, json_response};
use copycar_guest::store::Kv;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    let result = route(&request).await;
    audit::publish().await;
    copycar_guest::http::finish("auth", &request, result)
}

async fn route(request: &Request) -> ApiResult {
    let path = header(request, "spin-path-info")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let kv = Kv::open()?;

    match (segments.as_slice(), &method) {
        (["register"], Method::Post) => accounts::register(request, &kv).await,
        (["login"], Method::Post) => accounts::login(request, &kv).await,
        (["refresh"], Method::Post) => sessions::refresh(request, &kv).await,
        (["logout"], Method::Post) => sessions::logout(request, &kv),
        (["accept-invite"], Method::Post) => accounts::accept_invite(request, &kv).await,
        (["me"], Method::Get) => {
            members::me(&copycar_guest::caller::authenticate(request, &kv)?, &kv)
        }
        (["members"], Method::Get) => {
            members::list(&copycar_guest::caller::authenticate(request, &kv)?, &kv)
        }
        (["invites"], Method::Post) => members::invite(
            request,
            &copycar_guest::caller::authenticate(request, &kv)?,
            &kv,
        ),
        (["api-keys"], Method::Post) => api_keys::create(
            request,
            &copycar_guest::caller::authenticate(request, &kv)?,
            &kv,
        ),
        (["api-keys"], Method::Get) => {
            api_keys::list(&copycar_guest::caller::authenticate(request, &kv)?, &kv)
        }
        (["api-keys", id], Method::Delete) => api_keys::delete(
            request,
            &copycar_guest::caller::authenticate(request, &kv)?,
            &kv,
            id,
        ),
        (["audit"], Method::Get) => {
            let caller = copycar_guest::caller::authenticate(request, &kv)?;
            caller.require_admin()?;
            let limit = query_limit(request)?;
            let records = audit::list(&kv, &caller.tenant_id, limit)?;
            Ok(json_response(200, serde_json::json!({"records": records})))
        }
        (
            [
                "register" | "login" | "refresh" | "logout" | "accept-invite" | "me" | "members"
                | "invites" | "api-keys" | "audit",
            ]
            | ["api-keys", _],
            _,
        ) => Err(ApiError::new(
            405,
            format!("method {method} is not allowed on {path}"),
        )),
        _ => Err(ApiError::not_found(&format!("endpoint /api/v1/auth{path}"))),
    }
}

fn query_limit(request: &Request) -> Result<usize, ApiError> {
    let query = request.query();
    let Some(value) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="))
    else {
        return Ok(100);
    };
    match value.parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_field(
            "limit",
            "limit must be an integer from 1 to 1000",
        )),
    }
}
