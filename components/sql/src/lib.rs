//! Read-only ad-hoc SQL over the caller's event history at `POST
//! /api/v1/sql`, for authenticated callers (access token or API key).
//!
//! The body is `{"sql", "max_rows"?}`: one `SELECT` or `WITH` query over the
//! table `events` (the tenant's events, compacted from the event log every
//! few seconds) and the most rows to return (1 to 10,000, default 1,000).
//! The reply is `{"columns": [{"name", "type"}], "rows": [[...]],
//! "truncated", "elapsed_ms"}`. A query that is not read-only, has a syntax
//! or planning error, or exceeds the time or memory limit gets a 4xx
//! `{"error", "code", "field": "sql", "line"?, "column"?}`.
//!
//! The tenant always comes from the credential. Queries run in the host's
//! data plane at `sql.copycar.internal` (the `sql_url` variable).

use copycar_guest::caller::authenticate;
use copycar_guest::http::{ApiError, ApiResult, finish, header, json_body_up_to, json_response};
use copycar_guest::service::Service;
use copycar_guest::store::Kv;
use serde_json::{Value, json};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_component;

/// Largest request body; the SQL itself may be up to 64 KiB.
const MAX_BODY_BYTES: usize = 80 * 1024;
/// Largest SQL text, in bytes.
const MAX_SQL_BYTES: usize = 64 * 1024;
/// Largest `max_rows`.
const MAX_ROWS: u64 = 10_000;

/// The query service in the host's data plane.
const SQL_SERVICE: Service = Service {
    url_variable: "sql_url",
    default_url: "http://sql.copycar.internal",
    name: "query service",
};

#[http_component]
async fn handle(request: Request) -> spin_sdk::http::Response {
    let result = route(&request).await;
    finish("sql", &request, result)
}

async fn route(request: &Request) -> ApiResult {
    let path = header(request, "spin-path-info")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    if !path.is_empty() {
        return Err(ApiError::not_found(&format!("endpoint /api/v1/sql{path}")));
    }
    if *request.method() != Method::Post {
        return Err(ApiError::new(
            405,
            format!("method {} is not allowed; use POST", request.method()),
        ));
    }
    let caller = authenticate(request, &Kv::open()?)?;

    let body: Value = json_body_up_to(request, MAX_BODY_BYTES)?;
    let (sql, max_rows) = validate(&body)?;
    let mut forwarded = json!({"tenant": caller.tenant_id, "sql": sql});
    if let Some(max_rows) = max_rows {
        forwarded["max_rows"] = json!(max_rows);
    }
    let (status, reply) = SQL_SERVICE
        .call(
            Method::Post,
            "/v1/query",
            forwarded.to_string().into_bytes(),
        )
        .await?;
    Ok(json_response(status, reply))
}

/// Checks the body field by field and returns the SQL and `max_rows`.
fn validate(body: &Value) -> Result<(&str, Option<u64>), ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::new(400, "send a JSON object with `sql`"));
    };
    if let Some(key) = object.keys().find(|k| *k != "sql" && *k != "max_rows") {
        return Err(ApiError::bad_field(
            "body",
            format!("unknown field `{key}`; use sql and max_rows"),
        ));
    }
    let sql = match object.get("sql") {
        Some(Value::String(sql)) => sql.as_str(),
        Some(_) => return Err(ApiError::bad_field("sql", "sql must be a string")),
        None => return Err(ApiError::bad_field("sql", "sql is required")),
    };
    if sql.trim().is_empty() {
        return Err(ApiError::bad_field("sql", "sql is empty"));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(ApiError::bad_field(
            "sql",
            format!("sql is longer than {MAX_SQL_BYTES} bytes"),
        ));
    }
    let max_rows = match object.get("max_rows") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(n) if (1..=MAX_ROWS).contains(&n) => Some(n),
            _ => {
                return Err(ApiError::bad_field(
                    "max_rows",
                    format!("max_rows must be an integer from 1 to {MAX_ROWS}"),
                ));
            }
        },
    };
    Ok((sql, max_rows))
}
