//! `events.copycar.internal`: the event log served in-process to
//! components, which authenticate callers and pass the tenant along.
//!
//! - `POST /v1/events` `{"tenant", "events": [...]}`: appends the batch and
//!   returns one result per event, in order: `{"offset", "event_id",
//!   "duplicate"}` or `{"error"}`. The tenant field of each event is set
//!   from `tenant`, overriding any value in the event.
//! - `GET /v1/events?tenant=T&from=OFFSET&limit=N`: the tenant's events from
//!   `from` on, at most `N` (1 to 1,000), and the offset to read next.

use crate::service_reply::reply;
use bytes::Bytes;
use crate::event_store::EventStore;
use copycar_events::{Event, EventSink, EventSource};
use copycar_runtime::{InternalService, ServiceFuture, ServiceRequest};
use serde_json::{Value, json};
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
            match (parts.method.as_str(), parts.uri.path()) {
                ("POST", "/v1/events") => append(log, &body).await,
                ("GET", "/v1/events") => read(log, parts.uri.query().unwrap_or("")).await,
                (_, "/v1/events") => reply(405, json!({"error": "use GET or POST /v1/events"})),
                (_, path) => reply(
                    404,
                    json!({"error": format!("no endpoint {path} on events.copycar.internal")}),
                ),
            }
        })
    }
}

async fn append(log: Arc<EventStore>, body: &[u8]) -> http::Response<Bytes> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        tenant: String,
        events: Vec<Value>,
    }
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

    // Parse each item on its own, so one malformed event fails alone.
    let mut results: Vec<Option<Value>> = vec![None; batch.events.len()];
    let mut parsed = Vec::new();
    let mut positions = Vec::new();
    for (index, mut item) in batch.events.into_iter().enumerate() {
        if let Some(object) = item.as_object_mut() {
            object.insert("tenant".into(), json!(batch.tenant));
        }
        match serde_json::from_value::<Event>(item) {
            Ok(event) => {
                parsed.push(event);
                positions.push(index);
            }
            Err(e) => results[index] = Some(json!({"error": format!("invalid event: {e}")})),
        }
    }
    if !parsed.is_empty() {
        let appended = tokio::task::spawn_blocking(move || log.append_batch(parsed)).await;
        let appended = match appended {
            Ok(Ok(items)) => items,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "event log append failed");
                return reply(
                    503,
                    json!({"error": "the event log is unavailable; nothing was stored"}),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "event log task failed");
                return reply(
                    503,
                    json!({"error": "the event log is unavailable; nothing was stored"}),
                );
            }
        };
        for (position, item) in positions.into_iter().zip(appended) {
            results[position] = Some(match item {
                Ok(a) => {
                    json!({"offset": a.offset, "event_id": a.event_id, "duplicate": a.duplicate})
                }
                Err(e) => json!({"error": e.to_string()}),
            });
        }
    }
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| r.unwrap_or(Value::Null))
        .collect();
    let accepted = results.iter().filter(|r| r.get("offset").is_some()).count();
    reply(
        200,
        json!({"accepted": accepted, "rejected": results.len() - accepted, "results": results}),
    )
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
