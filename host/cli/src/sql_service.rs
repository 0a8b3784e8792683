//! `sql.copycar.internal`: read-only ad-hoc SQL over a tenant's event
//! history, served in-process to components, which authenticate callers and
//! pass the tenant along.
//!
//! - `POST /v1/query` `{"tenant", "sql", "max_rows"?}`: runs one `SELECT` or
//!   `WITH` query over the table `events` and returns `{"columns": [{"name",
//!   "type"}], "rows", "truncated", "elapsed_ms"}`. A rejected query gets a
//!   4xx `{"error", "code", "field": "sql", "line"?, "column"?}`.
//! - `POST /v1/compact`: runs one compaction now and returns what it did.
//!
//! The service also compacts in the background every `interval`.

use crate::service_reply::reply;
use bytes::Bytes;
use crate::event_store::EventStore;
use copycar_history::{History, QueryLimits};
use copycar_runtime::{InternalService, ServiceFuture, ServiceRequest};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Largest `max_rows` a caller may ask for.
pub(crate) const MAX_ROWS: usize = 10_000;
/// Rows returned when the caller sets no `max_rows`.
const DEFAULT_ROWS: usize = 1000;
/// Queries that run at once; more wait for a slot within their timeout.
const CONCURRENT_QUERIES: usize = 4;

#[derive(Clone)]
pub(crate) struct SqlService {
    history: Arc<History>,
    log: Arc<EventStore>,
    limits: QueryLimits,
    slots: Arc<Semaphore>,
}

impl SqlService {
    /// Creates the service and starts background compaction every
    /// `interval`.
    pub fn start(
        history: History,
        log: Arc<EventStore>,
        limits: QueryLimits,
        interval: Duration,
    ) -> SqlService {
        let service = SqlService {
            history: Arc::new(history),
            log,
            limits,
            slots: Arc::new(Semaphore::new(CONCURRENT_QUERIES)),
        };
        let compactor = service.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = compactor.compact().await {
                    tracing::error!(error = %e, "background compaction failed");
                }
            }
        });
        service
    }

    /// Runs one compaction on a blocking thread and logs what it wrote.
    async fn compact(&self) -> Result<copycar_history::CompactionReport, String> {
        let history = self.history.clone();
        let log = self.log.clone();
        let report = tokio::task::spawn_blocking(move || history.compact(log.as_ref()))
            .await
            .map_err(|e| format!("compaction task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        if report.events > 0 || report.files_merged > 0 {
            tracing::info!(
                events = report.events,
                files_written = report.files_written,
                files_merged = report.files_merged,
                next_offset = report.next_offset,
                "compacted event history"
            );
        }
        Ok(report)
    }
}


impl InternalService for SqlService {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture {
        let service = self.clone();
        Box::pin(async move {
            let (parts, body) = request.request.into_parts();
            match (parts.method.as_str(), parts.uri.path()) {
                ("POST", "/v1/query") => service.query(&body, &request.request_id).await,
                ("POST", "/v1/compact") => match service.compact().await {
                    Ok(report) => reply(200, json!(report)),
                    Err(e) => {
                        tracing::error!(error = %e, "compaction on request failed");
                        reply(503, json!({"error": "compaction failed; see the host log"}))
                    }
                },
                (_, "/v1/query" | "/v1/compact") => reply(405, json!({"error": "use POST"})),
                (_, path) => reply(
                    404,
                    json!({"error": format!("no endpoint {path} on sql.copycar.internal")}),
                ),
            }
        })
    }
}

impl SqlService {
    async fn query(&self, body: &[u8], request_id: &str) -> http::Response<Bytes> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct QueryRequest {
            tenant: String,
            sql: String,
            max_rows: Option<usize>,
        }
        let request: QueryRequest = match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(e) => return reply(400, json!({"error": format!("invalid JSON body: {e}")})),
        };
        if request.tenant.is_empty() {
            return reply(
                400,
                json!({"error": "tenant is required", "field": "tenant"}),
            );
        }
        let max_rows = request.max_rows.unwrap_or(DEFAULT_ROWS);
        if !(1..=MAX_ROWS).contains(&max_rows) {
            return reply(
                400,
                json!({"error": format!("max_rows must be 1 to {MAX_ROWS}"), "field": "max_rows"}),
            );
        }
        let limits = QueryLimits {
            max_rows,
            ..self.limits.clone()
        };

        // A query waits for a free slot at most as long as it may run.
        let Ok(Ok(_slot)) = tokio::time::timeout(limits.timeout, self.slots.acquire()).await else {
            tracing::warn!(tenant = %request.tenant, request_id, "no free query slot in time");
            return reply(
                503,
                json!({"error": "too many queries are running; try again later", "code": "busy"}),
            );
        };

        match self
            .history
            .query(&request.tenant, &request.sql, &limits)
            .await
        {
            Ok(output) => {
                tracing::debug!(
                    tenant = %request.tenant,
                    rows = output.rows.len(),
                    truncated = output.truncated,
                    elapsed_ms = output.elapsed_ms,
                    "ran an ad-hoc query"
                );
                reply(200, json!(output))
            }
            Err(e) => {
                tracing::info!(
                    tenant = %request.tenant,
                    request_id,
                    code = e.code(),
                    error = %e,
                    "rejected an ad-hoc query"
                );
                let mut body = json!({"error": e.to_string(), "code": e.code(), "field": "sql"});
                if let Some(position) = e.position() {
                    body["line"] = json!(position.line);
                    body["column"] = json!(position.column);
                }
                reply(e.status(), body)
            }
        }
    }
}
