//! `events.copycar.internal`: the event log served in-process to
//! components, which authenticate callers and pass the tenant along.
//!
//! - `POST /v1/events?tenant=T` `{"events": [...]}`: appends the batch for
//!   tenant `T` and returns one result per event, in order: `{"offset",
//!   "event_id", "duplicate"}` or `{"index", "field", "error"}`, where
//!   `field` is absent when the event as a whole is invalid. The body is
//!   parsed once, straight into events; a `tenant` key in an event is
//!   ignored, so a component can forward a caller's body unchanged.
//! - `GET /v1/events?tenant=T&from=OFFSET&limit=N`: the tenant's events from
//!   `from` on, at most `N` (1 to 1,000), and the offset to read next.

use crate::event_store::EventStore;
use crate::service_reply::reply;
use bytes::Bytes;
use copycar_events::{Event, EventError, EventInput, EventSink, EventSource, ItemResult};
use copycar_runtime::{InternalService, ServiceFuture, ServiceRequest};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

const MAX_BATCH: usize = 1000;
/// Records scanned per read before returning, so one tenant's sparse
/// events cannot make a read walk the whole log.
const MAX_SCAN: usize = 10_000;

#[derive(Clone)]
pub(crate) struct EventsService {
    log: Arc<EventStore>,
}

impl EventsService {
    pub fn new(log: Arc<EventStore>) -> Self {
        EventsService { log }
    }
}

impl InternalService for EventsService {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture {
        let log = self.log.clone();
        Box::pin(async move {
            let (parts, body) = request.request.into_parts();
            let query = parts.uri.query().unwrap_or("");
            match (parts.method.as_str(), parts.uri.path()) {
                ("POST", "/v1/events") => append(log, query, &body).await,
                ("GET", "/v1/events") => read(log, query).await,
                (_, "/v1/events") => reply(405, json!({"error": "use GET or POST /v1/events"})),
                (_, path) => reply(
                    404,
                    json!({"error": format!("no endpoint {path} on events.copycar.internal")}),
                ),
            }
        })
    }
}

async fn append(log: Arc<EventStore>, query: &str, body: &[u8]) -> http::Response<Bytes> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AppendQuery {
        tenant: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        events: Vec<EventInput>,
    }

    let tenant = match serde_urlencoded::from_str::<AppendQuery>(query) {
        Ok(query) if !query.tenant.is_empty() => query.tenant,
        Ok(_) => return reply(400, json!({"error": "tenant is empty", "field": "tenant"})),
        Err(e) => {
            return reply(
                400,
                json!({"error": format!("invalid query `{query}`: {e}; send tenant=T only"), "field": "tenant"}),
            );
        }
    };
    let batch: Batch = match serde_json::from_slice(body) {
        Ok(batch) => batch,
        Err(e) => return reply(400, json!({"error": format!("invalid JSON body: {e}")})),
    };
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return reply(
            400,
            json!({"error": format!("send 1 to {MAX_BATCH} events"), "field": "events"}),
        );
    }

    // Events that parsed go to the log; the others keep their error.
    let count = batch.events.len();
    let mut rejected: Vec<(usize, EventError)> = Vec::new();
    let mut parsed: Vec<Event> = Vec::with_capacity(count);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for (index, EventInput(item)) in batch.events.into_iter().enumerate() {
        match item.and_then(|event| event.check_time(now_ms).map(|()| event)) {
            Ok(mut event) => {
                event.tenant.clone_from(&tenant);
                parsed.push(event);
            }
            Err(error) => rejected.push((index, error)),
        }
    }

    let appended = if parsed.is_empty() {
        Vec::new()
    } else {
        match tokio::task::spawn_blocking(move || log.append_batch(parsed)).await {
            Ok(Ok(items)) => items,
            Ok(Err(e)) => {
                tracing::error!(error = %e, %tenant, "event log append failed");
                return log_unavailable();
            }
            Err(e) => {
                tracing::error!(error = %e, %tenant, "event log task failed");
                return log_unavailable();
            }
        }
    };
    append_reply(count, rejected, appended)
}

fn log_unavailable() -> http::Response<Bytes> {
    reply(
        503,
        json!({"error": "the event log is unavailable; nothing was stored"}),
    )
}

/// One entry of the append response's `results`.
#[derive(Serialize)]
#[serde(untagged)]
enum ItemReply {
    Appended {
        offset: u64,
        event_id: String,
        duplicate: bool,
    },
    Rejected {
        index: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'static str>,
        error: String,
    },
}

#[derive(Serialize)]
struct AppendReply {
    accepted: usize,
    rejected: usize,
    results: Vec<ItemReply>,
}

/// Merges the parse errors, at their batch indexes, with the log's results
/// for the other events, in order, and serializes the response.
fn append_reply(
    count: usize,
    rejected: Vec<(usize, EventError)>,
    appended: Vec<ItemResult>,
) -> http::Response<Bytes> {
    let mut rejected = rejected.into_iter().peekable();
    let mut appended = appended.into_iter();
    let mut results = Vec::with_capacity(count);
    for index in 0..count {
        let item = match rejected.next_if(|(at, _)| *at == index) {
            Some((_, error)) => Err(error),
            None => appended
                .next()
                .expect("the log returns one result per event it was given"),
        };
        results.push(match item {
            Ok(a) => ItemReply::Appended {
                offset: a.offset,
                event_id: a.event_id,
                duplicate: a.duplicate,
            },
            Err(error) => ItemReply::Rejected {
                index,
                field: error.field(),
                error: error.to_string(),
            },
        });
    }
    let accepted = results
        .iter()
        .filter(|r| matches!(r, ItemReply::Appended { .. }))
        .count();
    let body = AppendReply {
        accepted,
        rejected: count - accepted,
        results,
    };
    let bytes = serde_json::to_vec(&body).expect("the reply always serializes");
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(bytes))
        .expect("static response parts are valid")
}

async fn read(log: Arc<EventStore>, query: &str) -> http::Response<Bytes> {
    let mut tenant = None;
    let mut from = 0u64;
    let mut limit = 100usize;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "tenant" => tenant = Some(value.to_string()),
            "from" => match value.parse() {
                Ok(v) => from = v,
                Err(_) => {
                    return reply(
                        400,
                        json!({"error": "from must be an offset (unsigned integer)", "field": "from"}),
                    );
                }
            },
            "limit" => match value.parse() {
                Ok(v) if (1..=MAX_BATCH).contains(&v) => limit = v,
                _ => {
                    return reply(
                        400,
                        json!({"error": format!("limit must be 1 to {MAX_BATCH}"), "field": "limit"}),
                    );
                }
            },
            _ => return reply(400, json!({"error": format!("unknown parameter `{key}`")})),
        }
    }
    let Some(tenant) = tenant.filter(|t| !t.is_empty()) else {
        return reply(
            400,
            json!({"error": "tenant is required", "field": "tenant"}),
        );
    };
    let scanned = tokio::task::spawn_blocking(move || log.read_from(from, MAX_SCAN)).await;
    let records = match scanned {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "event log read failed");
            return reply(503, json!({"error": "the event log is unavailable"}));
        }
        Err(e) => {
            tracing::error!(error = %e, "event log task failed");
            return reply(503, json!({"error": "the event log is unavailable"}));
        }
    };
    let mut next = records.last().map_or(from, |r| r.offset + 1);
    let mut events = Vec::new();
    for record in records {
        if record.event.tenant != tenant {
            continue;
        }
        if events.len() == limit {
            next = record.offset;
            break;
        }
        let mut value = json!(record.event);
        value["offset"] = json!(record.offset);
        events.push(value);
    }
    reply(200, json!({"events": events, "next_offset": next}))
}
