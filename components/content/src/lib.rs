//! Personalised outreach copy under `/api/v1/content`, for authenticated
//! callers (access token or API key):
//!
//! | method and path | effect |
//! |---|---|
//! | `POST /` | writes copy for an account and returns it with its quality report |
//! | `GET /templates` | lists the built-in templates and the tenant's own |
//! | `GET /templates/{content_type}/{industry}` | one template's text |
//! | `PUT /templates/{content_type}/{industry}` | `{"template": TEXT}`: validates and stores it |
//! | `DELETE /templates/{content_type}/{industry}` | removes the tenant's template |
//!
//! How a request is served:
//!
//! 1. [`request`] validates the body; the account is a stored profile
//!    (`account_id`) or inline data whose facts get the source `provided`.
//! 2. [`model`] requests the copy from the data plane's language model
//!    (`llm_url`). The prompt lists each fact with its id and instructs the
//!    model to mark the facts it used. When the service has no model or cannot be reached,
//!    [`writer`] renders a [`template`] instead ([`templates`] finds the
//!    tenant's or the built-in one from [`defaults`]).
//! 3. [`quality`] scores every draft; a draft under 0.8 is rewritten with
//!    the failing criteria fed back, at most three drafts in all, and the
//!    best one is returned with the engine and model that wrote it.

mod context;
mod defaults;
mod generate;
mod kind;
mod model;
pub mod quality;
mod request;
mod shape;
pub mod template;
mod templates;
mod text;
mod writer;

use copycar_guest::caller::authenticate;
use copycar_guest::http::{ApiError, ApiResult, finish, header};
use copycar_guest::store::Kv;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    let result = route(&request).await;
    finish("content", &request, result)
}

async fn route(request: &Request) -> ApiResult {
    let path = header(request, "spin-path-info")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let kv = Kv::open()?;
    let caller = authenticate(request, &kv)?;
    if path == "/templates" || path.starts_with("/templates/") {
        return templates::route(request, &caller, &kv, &path["/templates".len()..]);
    }
    match (path.as_str(), request.method()) {
        ("", Method::Post) => generate::handle(request, &caller, &kv).await,
        ("", method) => Err(ApiError::new(
            405,
            format!("method {method} is not allowed; use POST"),
        )),
        _ => Err(ApiError::not_found(&format!(
            "endpoint /api/v1/content{path}"
        ))),
    }
}
