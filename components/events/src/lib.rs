//! Events for the caller's tenant under `/api/v1/events`, for authenticated
//! callers (access token or API key):
//!
//! | method and path | effect |
//! |---|---|
//! | `POST /` | `{"events": [...]}`, 1 to 1,000 events: stores them and returns one result per event, in order |
//! | `GET /?from=OFFSET&limit=N` | the tenant's events from an offset, and the offset to read next |
//!
//! An event is `{"type", "occurred_at", "event_id"?, "campaign"?, "account"?,
//! "recipient"?, "channel"?, "variant"?, "properties"?}` with `occurred_at`
//! in Unix milliseconds, from 2000-01-01 to five minutes past the server's
//! clock. A repeated `event_id` is stored once. The tenant always comes from
//! the credential. The log itself lives in the host's data
//! plane at `events.copycar.internal` (the `events_url` variable).
//!
//! A batch is forwarded to the log unparsed, with the tenant in the query:
//! the log's service parses it once, validates each event and returns the
//! per-event results, which are passed back as they are.

use copycar_guest::caller::authenticate;
use copycar_guest::http::{
    ApiError, ApiResult, finish, header, json_bytes_response, json_bytes_up_to, json_response,
};
use copycar_guest::service::{Service, encode_query_value};
use copycar_guest::store::Kv;
use serde_json::Value;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// Largest batch body: 1,000 events of a few kilobytes each.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// The event log in the host's data plane.
const EVENT_LOG: Service = Service {
    url_variable: "events_url",
    default_url: "http://events.copycar.internal",
    name: "event log",
};

#[http_component]
async fn handle(request: Request) -> Response {
    let result = route(&request).await;
    finish("events", &request, result)
}

async fn route(request: &Request) -> ApiResult {
    let path = header(request, "spin-path-info")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let caller = authenticate(request, &Kv::open()?)?;
    match (path.as_str(), request.method()) {
        ("", Method::Post) => {
            let body = json_bytes_up_to(request, MAX_BATCH_BYTES)?;
            let path = format!(
                "/v1/events?tenant={}",
                encode_query_value(&caller.tenant_id)
            );
            let (status, reply) = EVENT_LOG
                .call_raw(Method::Post, &path, body.to_vec())
                .await?;
            if status == 200 {
                Ok(json_bytes_response(status, reply))
            } else {
                Err(log_error(status, &reply))
            }
        }
        ("", Method::Get) => {
            let mut query = format!("tenant={}", caller.tenant_id);
            for pair in request.query().split('&').filter(|p| !p.is_empty()) {
                let key = pair.split_once('=').map_or(pair, |(k, _)| k);
                if key != "from" && key != "limit" {
                    return Err(ApiError::bad_field(
                        "query",
                        format!("unknown parameter `{key}`; use from and limit"),
                    ));
                }
                query.push('&');
                query.push_str(pair);
            }
            let (status, reply) = EVENT_LOG
                .call(Method::Get, &format!("/v1/events?{query}"), Vec::new())
                .await?;
            Ok(json_response(status, reply))
        }
        ("", method) => Err(ApiError::new(
            405,
            format!("method {method} is not allowed; use GET or POST"),
        )),
        _ => Err(ApiError::not_found(&format!(
            "endpoint /api/v1/events{path}"
        ))),
    }
}

/// Turns an error reply of the log's service (`{"error", "field"?}`) into
/// this component's error response, which adds the request id.
fn log_error(status: u16, reply: &[u8]) -> ApiError {
    let reply: Value = serde_json::from_slice(reply).unwrap_or(Value::Null);
    let message = match reply["error"].as_str() {
        Some(message) => message.to_string(),
        None => format!("the event log failed with status {status}"),
    };
    let field = match reply["field"].as_str() {
        Some("events") => Some("events"),
        Some("tenant") => Some("tenant"),
        _ => None,
    };
    ApiError {
        field: field.map(Into::into),
        ..ApiError::new(status, message)
    }
}
