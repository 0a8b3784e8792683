//! `models.copycar.internal`: the response-rate and send-time models served
//! in-process to components.
//!
//! - `GET /v1/response-rate`: the active version and its card.
//! - `POST /v1/response-rate/predict` with `{"records": [{field: value}]}`
//!   (1 to 1,000 records): per record a probability, an uncertainty and the
//!   top factors. A value the model cannot encode gives 400 naming the
//!   field and the record index.
//!
//! - `/v1/send-time...`: per-tenant send-time models, described in
//!   [`crate::send_time_service`].
//!
//! The models load at start-up and again whenever a registry's active
//! version changes (`copycar models promote`), without a restart.

use crate::service_reply::reply;
use bytes::Bytes;
use copycar_models::{ModelCard, ModelError, Record, Registry, ResponseRateModel};
use copycar_runtime::{InternalService, ServiceFuture, ServiceRequest};
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::send_time_service::SendTimeModels;

const MAX_RECORDS: usize = 1000;
/// How often the registry is checked for a newly promoted version.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

struct Loaded {
    version: String,
    model: Arc<ResponseRateModel>,
    card: Arc<ModelCard>,
}

/// The service; cheap to clone.
#[derive(Clone)]
pub(crate) struct ModelsService {
    registry: Registry,
    current: Arc<RwLock<Option<Loaded>>>,
    send_time: SendTimeModels,
}

impl ModelsService {
    /// Loads the active versions, if the registries have them, and starts
    /// the task that reloads on promotion. `send_time` is the folder of the
    /// per-tenant send-time registries.
    pub fn start(registry: Registry, send_time: std::path::PathBuf) -> ModelsService {
        let service = ModelsService {
            registry,
            current: Arc::new(RwLock::new(None)),
            send_time: SendTimeModels::new(send_time),
        };
        service.reload();
        service.send_time.reload();
        let watcher = service.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_INTERVAL).await;
                let watcher = watcher.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    watcher.reload();
                    watcher.send_time.reload();
                })
                .await;
            }
        });
        service
    }

    fn current_version(&self) -> Option<String> {
        self.current
            .read()
            .unwrap()
            .as_ref()
            .map(|l| l.version.clone())
    }

    /// Loads the active version when it differs from the one in memory.
    fn reload(&self) {
        let root = self.registry.root().display().to_string();
        let active = match self.registry.active() {
            Ok(Some(version)) => version,
            Ok(None) => {
                if self.current_version().is_none() {
                    tracing::debug!(registry = %root, "no response-rate model in the registry");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(registry = %root, error = %e, "failed to read the active response-rate model");
                return;
            }
        };
        if self.current_version().as_deref() == Some(active.as_str()) {
            return;
        }
        match self.registry.load(&active) {
            Ok((model, card)) => {
                tracing::info!(registry = %root, version = %active, "loaded response-rate model");
                *self.current.write().unwrap() = Some(Loaded {
                    version: active,
                    model: Arc::new(model),
                    card: Arc::new(card),
                });
            }
            Err(e) => {
                tracing::error!(registry = %root, version = %active, error = %e, "failed to load response-rate model")
            }
        }
    }

    fn snapshot(&self) -> Option<(String, Arc<ResponseRateModel>, Arc<ModelCard>)> {
        self.current
            .read()
            .unwrap()
            .as_ref()
            .map(|l| (l.version.clone(), l.model.clone(), l.card.clone()))
    }
}


impl InternalService for ModelsService {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture {
        let service = self.clone();
        Box::pin(async move {
            let (parts, body) = request.request.into_parts();
            let path = parts.uri.path().trim_end_matches('/');
            if path.starts_with("/v1/send-time") {
                let (status, body) = service
                    .send_time
                    .handle(parts.method.as_str(), path, parts.uri.query(), &body)
                    .await;
                return reply(status, body);
            }
            if path != "/v1/response-rate" && path != "/v1/response-rate/predict" {
                return reply(
                    404,
                    json!({"error": format!("no endpoint {path} on models.copycar.internal")}),
                );
            }
            let Some((version, model, card)) = service.snapshot() else {
                return reply(
                    503,
                    json!({"error": "no response-rate model is loaded; train one with `copycar train response-rate`"}),
                );
            };
            match (parts.method.as_str(), path) {
                ("GET", "/v1/response-rate") => {
                    reply(200, json!({"version": version, "card": *card}))
                }
                ("POST", "/v1/response-rate/predict") => predict(model, &version, &body).await,
                _ => reply(
                    405,
                    json!({"error": "use GET /v1/response-rate or POST /v1/response-rate/predict"}),
                ),
            }
        })
    }
}

async fn predict(
    model: Arc<ResponseRateModel>,
    version: &str,
    body: &[u8],
) -> http::Response<Bytes> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        records: Vec<Record>,
    }
    let batch: Batch = match serde_json::from_slice(body) {
        Ok(batch) => batch,
        Err(e) => return reply(400, json!({"error": format!("invalid JSON body: {e}")})),
    };
    if batch.records.is_empty() || batch.records.len() > MAX_RECORDS {
        return reply(
            400,
            json!({"error": format!("send 1 to {MAX_RECORDS} records"), "field": "records"}),
        );
    }

    // Validate row by row first, so an error can name the record.
    for (index, record) in batch.records.iter().enumerate() {
        if let Err(e) = model.pipeline().transform(std::slice::from_ref(record)) {
            return reply(400, feature_error(&e, index));
        }
    }
    let records = batch.records;
    let result = tokio::task::spawn_blocking(move || model.predict(&records)).await;
    match result {
        Ok(Ok(predictions)) => reply(
            200,
            json!({"model": {"name": "response-rate", "version": version}, "predictions": predictions}),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "response-rate prediction failed");
            reply(500, json!({"error": "prediction failed"}))
        }
        Err(e) => {
            tracing::error!(error = %e, "response-rate prediction task failed");
            reply(500, json!({"error": "prediction failed"}))
        }
    }
}

fn feature_error(error: &ModelError, index: usize) -> Value {
    match error {
        ModelError::InvalidFeature { field, .. } | ModelError::UnknownFeature { field, .. } => {
            json!({"error": error.to_string(), "field": field, "index": index})
        }
        other => json!({"error": other.to_string(), "index": index}),
    }
}
