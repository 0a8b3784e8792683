//! The send-time part of `models.copycar.internal`: one model per tenant,
//! from `<models dir>/send-time/<tenant>/`.
//!
//! - `GET /v1/send-time?tenant=T`: the tenant's active version and its card.
//! - `POST /v1/send-time/predict` with `{"tenant", "recipients": [{
//!   "recipient"?, "channel"?, "segment"?, "utc_offset_minutes"?}],
//!   "top_k"?: 1..=168 (default 3), "objective"?: "open" | "reply"}` (1 to
//!   1,000 recipients): per item the best hours of the week with
//!   probabilities, 90% intervals and effective sample sizes, and the level
//!   that produced the estimate (recipient, segment or global). Invalid input gives 400
//!   naming the field and, for an item, its index.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use copycar_models::send_time::{
    Objective, SendTimeCard, SendTimeModel, SendTimeQuery, check_utc_offset, tenant_registry,
};
use serde_json::{Map, Value, json};

const MAX_RECIPIENTS: usize = 1000;
const MAX_TEXT_BYTES: usize = 256;
const DEFAULT_TOP_K: usize = 3;

struct Loaded {
    version: String,
    model: Arc<SendTimeModel>,
    card: Arc<SendTimeCard>,
}

/// The loaded send-time models, by tenant; cheap to clone.
#[derive(Clone)]
pub(crate) struct SendTimeModels {
    root: PathBuf,
    loaded: Arc<RwLock<HashMap<String, Loaded>>>,
}

/// A rejected request: the message, the field and the item index.
#[derive(Debug, PartialEq)]
pub(crate) struct Invalid {
    message: String,
    field: String,
    index: Option<usize>,
}

impl Invalid {
    fn new(field: &str, index: Option<usize>, message: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            field: field.to_owned(),
            index,
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({"error": self.message, "field": self.field});
        if let Some(index) = self.index {
            body["index"] = json!(index);
        }
        body
    }
}

/// A validated prediction request.
#[derive(Debug)]
pub(crate) struct PredictRequest {
    tenant: String,
    queries: Vec<SendTimeQuery>,
    top_k: usize,
    objective: Objective,
}

impl SendTimeModels {
    pub(crate) fn new(root: PathBuf) -> Self {
        SendTimeModels {
            root,
            loaded: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    /// Loads each tenant's active version when it differs from the one in
    /// memory, and drops tenants whose registry has no version any more.
    pub(crate) fn reload(&self) {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(registry = %self.root.display(), error = %e, "failed to list send-time models");
                return;
            }
        };
        let mut seen = Vec::new();
        for entry in entries.flatten() {
            let Some(tenant) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // Skips files and names that are not tenant ids, such as
            // hidden staging folders.
            let Ok(registry) = tenant_registry(&self.root, &tenant) else {
                continue;
            };
            if !entry.path().is_dir() {
                continue;
            }
            let active = match registry.active() {
                Ok(Some(version)) => version,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "failed to read the active send-time model");
                    seen.push(tenant);
                    continue;
                }
            };
            seen.push(tenant.clone());
            let current = self
                .loaded
                .read()
                .unwrap()
                .get(&tenant)
                .map(|l| l.version.clone());
            if current.as_deref() == Some(active.as_str()) {
                continue;
            }
            match registry.load_send_time(&active) {
                Ok((model, card)) => {
                    tracing::info!(tenant = %tenant, version = %active, "loaded send-time model");
                    self.loaded.write().unwrap().insert(
                        tenant,
                        Loaded {
                            version: active,
                            model: Arc::new(model),
                            card: Arc::new(card),
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(tenant = %tenant, version = %active, error = %e, "failed to load send-time model")
                }
            }
        }
        self.loaded
            .write()
            .unwrap()
            .retain(|tenant, _| seen.contains(tenant));
    }

    fn snapshot(&self, tenant: &str) -> Option<(String, Arc<SendTimeModel>, Arc<SendTimeCard>)> {
        self.loaded
            .read()
            .unwrap()
            .get(tenant)
            .map(|l| (l.version.clone(), l.model.clone(), l.card.clone()))
    }

    /// Handles a request under `/v1/send-time`; returns the status and body.
    pub(crate) async fn handle(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        match (method, path) {
            ("GET", "/v1/send-time") => {
                let tenant = query
                    .unwrap_or("")
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("tenant="))
                    .unwrap_or("");
                if let Err(e) = tenant_registry(&self.root, tenant) {
                    return (400, json!({"error": e.to_string(), "field": "tenant"}));
                }
                match self.snapshot(tenant) {
                    Some((version, _, card)) => (200, json!({"version": version, "card": *card})),
                    None => no_model(),
                }
            }
            ("POST", "/v1/send-time/predict") => self.predict(body).await,
            _ => (
                405,
                json!({"error": "use GET /v1/send-time or POST /v1/send-time/predict"}),
            ),
        }
    }

    async fn predict(&self, body: &[u8]) -> (u16, Value) {
        let request = match parse_predict(body) {
            Ok(request) => request,
            Err(invalid) => {
                tracing::debug!(field = %invalid.field, index = ?invalid.index, error = %invalid.message, "rejected send-time request");
                return (400, invalid.body());
            }
        };
        let Some((version, model, _)) = self.snapshot(&request.tenant) else {
            return no_model();
        };
        let PredictRequest {
            queries,
            top_k,
            objective,
            ..
        } = request;
        let result = tokio::task::spawn_blocking(move || {
            queries
                .iter()
                .map(|q| model.predict(q, objective, top_k))
                .collect::<Vec<_>>()
        })
        .await;
        match result {
            Ok(predictions) => (
                200,
                json!({"model": {"name": "send-time", "version": version}, "predictions": predictions}),
            ),
            Err(e) => {
                tracing::error!(error = %e, "send-time prediction task failed");
                (500, json!({"error": "prediction failed"}))
            }
        }
    }
}

fn no_model() -> (u16, Value) {
    (
        503,
        json!({"error": "no send-time model is loaded for this tenant; train one with `copycar train send-time`"}),
    )
}

/// Validates a prediction request field by field.
pub(crate) fn parse_predict(body: &[u8]) -> Result<PredictRequest, Invalid> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("body", None, format!("invalid JSON body: {e}")))?;
    let Value::Object(object) = value else {
        return Err(Invalid::new("body", None, "the body must be a JSON object"));
    };
    for key in object.keys() {
        if !["tenant", "recipients", "top_k", "objective"].contains(&key.as_str()) {
            return Err(Invalid::new(
                key,
                None,
                format!("unknown field `{key}`; expected tenant, recipients, top_k or objective"),
            ));
        }
    }

    let tenant = object
        .get("tenant")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::new("tenant", None, "`tenant` must be a string"))?;
    let top_k = match object.get("top_k") {
        None | Some(Value::Null) => DEFAULT_TOP_K,
        Some(value) => value
            .as_u64()
            .filter(|k| (1..=168).contains(k))
            .ok_or_else(|| {
                Invalid::new("top_k", None, "`top_k` must be an integer from 1 to 168")
            })? as usize,
    };
    let objective = match object.get("objective") {
        None | Some(Value::Null) => Objective::Open,
        Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
            Invalid::new(
                "objective",
                None,
                "`objective` must be \"open\" or \"reply\"",
            )
        })?,
    };
    let items = object
        .get("recipients")
        .and_then(Value::as_array)
        .filter(|items| (1..=MAX_RECIPIENTS).contains(&items.len()))
        .ok_or_else(|| {
            Invalid::new(
                "recipients",
                None,
                format!("`recipients` must be an array of 1 to {MAX_RECIPIENTS} items"),
            )
        })?;
    let queries = items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_item(item, index))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PredictRequest {
        tenant: tenant.to_owned(),
        queries,
        top_k,
        objective,
    })
}

fn parse_item(item: &Value, index: usize) -> Result<SendTimeQuery, Invalid> {
    let Value::Object(fields) = item else {
        return Err(Invalid::new(
            "recipients",
            Some(index),
            format!("recipients[{index}] must be an object"),
        ));
    };
    for key in fields.keys() {
        if !["recipient", "channel", "segment", "utc_offset_minutes"].contains(&key.as_str()) {
            return Err(Invalid::new(
                key,
                Some(index),
                format!(
                    "unknown field `{key}` in recipients[{index}]; expected recipient, channel, \
                     segment or utc_offset_minutes"
                ),
            ));
        }
    }
    let utc_offset_minutes = match fields.get("utc_offset_minutes") {
        None | Some(Value::Null) => 0,
        Some(value) => {
            let minutes = value.as_i64().ok_or_else(|| {
                Invalid::new(
                    "utc_offset_minutes",
                    Some(index),
                    format!("recipients[{index}].utc_offset_minutes must be an integer"),
                )
            })?;
            check_utc_offset(minutes).map_err(|e| {
                Invalid::new(
                    "utc_offset_minutes",
                    Some(index),
                    format!("recipients[{index}]: {e}"),
                )
            })?
        }
    };
    Ok(SendTimeQuery {
        recipient: text(fields, "recipient", index)?,
        channel: text(fields, "channel", index)?,
        segment: text(fields, "segment", index)?,
        utc_offset_minutes,
    })
}

/// Reads an optional string field of 1 to 256 bytes without control
/// characters.
fn text(fields: &Map<String, Value>, field: &str, index: usize) -> Result<Option<String>, Invalid> {
    let value = match fields.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(value)) => value,
        Some(_) => {
            return Err(Invalid::new(
                field,
                Some(index),
                format!("recipients[{index}].{field} must be a string"),
            ));
        }
    };
    if value.is_empty() || value.len() > MAX_TEXT_BYTES || value.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            Some(index),
            format!(
                "recipients[{index}].{field} must be 1 to {MAX_TEXT_BYTES} bytes without control characters"
            ),
        ));
    }
    Ok(Some(value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<PredictRequest, Invalid> {
        parse_predict(body.to_string().as_bytes())
    }

    #[test]
    fn valid_request_uses_defaults() {
        let request =
            parse(json!({"tenant": "t1", "recipients": [{"recipient": "r1"}, {}]})).unwrap();
        assert_eq!(request.tenant, "t1");
        assert_eq!(request.top_k, DEFAULT_TOP_K);
        assert_eq!(request.objective, Objective::Open);
        assert_eq!(request.queries.len(), 2);
        assert_eq!(request.queries[1], SendTimeQuery::default());
    }

    #[test]
    fn invalid_items_name_field_and_index() {
        let cases = [
            (
                json!([{}, {"utc_offset_minutes": 900}]),
                "utc_offset_minutes",
                1,
            ),
            (
                json!([{"utc_offset_minutes": "60"}]),
                "utc_offset_minutes",
                0,
            ),
            (json!([{}, {}, {"recipient": ""}]), "recipient", 2),
            (json!([{"channel": 5}]), "channel", 0),
            (json!([{"segment": "a\nb"}]), "segment", 0),
            (json!([{"timezone": "UTC"}]), "timezone", 0),
            (json!([{}, 7]), "recipients", 1),
        ];
        for (recipients, field, index) in cases {
            let error = parse(json!({"tenant": "t1", "recipients": recipients})).unwrap_err();
            assert_eq!(error.field, field, "{error:?}");
            assert_eq!(error.index, Some(index), "{error:?}");
        }
    }

    #[test]
    fn invalid_top_level_fields_are_named() {
        let cases = [
            (json!({"recipients": [{}]}), "tenant"),
            (json!({"tenant": "t1", "recipients": []}), "recipients"),
            (
                json!({"tenant": "t1", "recipients": [{}], "top_k": 0}),
                "top_k",
            ),
            (
                json!({"tenant": "t1", "recipients": [{}], "objective": "click"}),
                "objective",
            ),
            (
                json!({"tenant": "t1", "recipients": [{}], "limit": 3}),
                "limit",
            ),
            (json!([1]), "body"),
        ];
        for (body, field) in cases {
            let error = parse(body).unwrap_err();
            assert_eq!(error.field, field, "{error:?}");
            assert_eq!(error.index, None, "{error:?}");
        }
        let many = vec![json!({}); MAX_RECIPIENTS + 1];
        let error = parse(json!({"tenant": "t1", "recipients": many})).unwrap_err();
        assert_eq!(error.field, "recipients");
    }
}
