//! `llm.copycar.internal`: the language-model router served in-process to
//! components, which authenticate callers and pass the tenant along.
//!
//! - `POST /v1/infer` `{"tenant", "model"?, "prompt", "system"?,
//!   "max_tokens"?, "temperature"?, "top_p"?, "stop"?, "json"?}`: generated
//!   text, the provider that served it, token usage and cost.
//! - `POST /v1/embed` `{"tenant", "texts", "model"?}`: one vector per text.
//! - `GET /v1/usage?tenant=T`: the tenant's totals since start-up, overall
//!   and per provider.
//! - `GET /v1/status`: providers with their kind, model and circuit state.
//!
//! Invalid input gets 400 `{"error", "field"}`. When the model alias is not
//! configured or every provider failed, the response is 503 `{"error",
//! "code": "no_model", "attempts"}`, and callers fall back to templates.

use crate::service_reply::reply;
use bytes::Bytes;
use copycar_runtime::{
    ChatRequest, GenerateOptions, InternalService, LlmRouter, RouteError, Served, ServiceFuture,
    ServiceRequest,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

const MAX_PROMPT_CHARS: usize = 32_768;
const MAX_SYSTEM_CHARS: usize = 32_768;
const MAX_TOKENS: u64 = 4096;
const MAX_STOP: usize = 4;
const MAX_STOP_CHARS: usize = 64;
const MAX_TEXTS: usize = 64;
const MAX_TEXT_CHARS: usize = 8192;
const MAX_TENANT_CHARS: usize = 128;

#[derive(Clone)]
pub(crate) struct LlmService {
    router: Arc<LlmRouter>,
}

impl LlmService {
    pub fn new(router: Arc<LlmRouter>) -> Self {
        LlmService { router }
    }
}


/// An invalid request field, returned as 400.
#[derive(Debug)]
struct Invalid {
    field: &'static str,
    message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

impl Invalid {
    fn into_response(self, caller: &str) -> http::Response<Bytes> {
        tracing::debug!(component = caller, field = self.field, error = %self.message, "invalid llm request");
        reply(400, json!({"error": self.message, "field": self.field}))
    }
}

impl InternalService for LlmService {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture {
        let router = self.router.clone();
        Box::pin(async move {
            let caller = request.caller;
            let deadline = Some(request.deadline);
            let (parts, body) = request.request.into_parts();
            let path = parts.uri.path();
            let result = match (parts.method.as_str(), path) {
                ("POST", "/v1/infer") => infer(&router, &body, deadline).await,
                ("POST", "/v1/embed") => embed(&router, &body, deadline).await,
                ("GET", "/v1/usage") => usage(&router, parts.uri.query().unwrap_or("")),
                ("GET", "/v1/status") => Ok(status(&router)),
                (_, "/v1/infer" | "/v1/embed") => {
                    Ok(reply(405, json!({"error": format!("use POST {path}")})))
                }
                (_, "/v1/usage" | "/v1/status") => {
                    Ok(reply(405, json!({"error": format!("use GET {path}")})))
                }
                (_, path) => Ok(reply(
                    404,
                    json!({"error": format!("no endpoint {path} on llm.copycar.internal")}),
                )),
            };
            result.unwrap_or_else(|e| e.into_response(&caller))
        })
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(invalid("body", "the body must be a JSON object")),
        Err(e) => Err(invalid("body", format!("invalid JSON body: {e}"))),
    }
}

/// Rejects keys the contract does not define, so a misspelt option is not
/// silently ignored.
fn check_keys(object: &Map<String, Value>, known: &[&'static str]) -> Result<(), Invalid> {
    for key in object.keys() {
        if !known.contains(&key.as_str()) {
            return Err(invalid(
                "body",
                format!("unknown field `{key}`; expected {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn tenant(object: &Map<String, Value>) -> Result<String, Invalid> {
    match object.get("tenant") {
        Some(Value::String(t)) if !t.is_empty() && t.chars().count() <= MAX_TENANT_CHARS => {
            Ok(t.clone())
        }
        Some(Value::String(_)) => Err(invalid(
            "tenant",
            format!("tenant must have 1 to {MAX_TENANT_CHARS} characters"),
        )),
        Some(_) => Err(invalid("tenant", "tenant must be a string")),
        None => Err(invalid("tenant", "tenant is required")),
    }
}

fn model(object: &Map<String, Value>) -> Result<String, Invalid> {
    match object.get("model") {
        None | Some(Value::Null) => Ok("default".to_string()),
        Some(Value::String(m)) if !m.is_empty() && m.len() <= 64 => Ok(m.clone()),
        Some(_) => Err(invalid(
            "model",
            "model must be a model alias of 1 to 64 characters",
        )),
    }
}

fn optional_text(
    object: &Map<String, Value>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, Invalid> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max_chars => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(
            field,
            format!("{field} must have at most {max_chars} characters"),
        )),
        Some(_) => Err(invalid(field, format!("{field} must be a string"))),
    }
}

fn optional_number(
    object: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<f64>, Invalid> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(field, format!("{field} must be a number"))),
    }
}

/// Validates a `/v1/infer` body into the tenant, model alias and request.
fn parse_infer(body: &[u8]) -> Result<(String, String, ChatRequest), Invalid> {
    let object = parse_object(body)?;
    check_keys(
        &object,
        &[
            "tenant",
            "model",
            "prompt",
            "system",
            "max_tokens",
            "temperature",
            "top_p",
            "stop",
            "json",
        ],
    )?;
    let tenant = tenant(&object)?;
    let model = model(&object)?;
    let prompt = optional_text(&object, "prompt", MAX_PROMPT_CHARS)?
        .ok_or_else(|| invalid("prompt", "prompt is required"))?;
    if prompt.is_empty() {
        return Err(invalid("prompt", "prompt must not be empty"));
    }
    let system = optional_text(&object, "system", MAX_SYSTEM_CHARS)?;

    let mut options = GenerateOptions::default();
    match object.get("max_tokens") {
        None | Some(Value::Null) => {}
        Some(value) => match value.as_u64() {
            Some(n) if (1..=MAX_TOKENS).contains(&n) => options.max_tokens = n as u32,
            _ => {
                return Err(invalid(
                    "max_tokens",
                    format!("max_tokens must be an integer from 1 to {MAX_TOKENS}"),
                ));
            }
        },
    }
    if let Some(t) = optional_number(&object, "temperature")? {
        if !(0.0..=2.0).contains(&t) {
            return Err(invalid(
                "temperature",
                "temperature must be between 0 and 2",
            ));
        }
        options.temperature = t as f32;
    }
    if let Some(p) = optional_number(&object, "top_p")? {
        if !(p > 0.0 && p <= 1.0) {
            return Err(invalid(
                "top_p",
                "top_p must be greater than 0 and at most 1",
            ));
        }
        options.top_p = Some(p as f32);
    }
    match object.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > MAX_STOP {
                return Err(invalid(
                    "stop",
                    format!("stop takes at most {MAX_STOP} sequences"),
                ));
            }
            for item in items {
                match item.as_str() {
                    Some(s) if !s.is_empty() && s.chars().count() <= MAX_STOP_CHARS => {
                        options.stop.push(s.to_string())
                    }
                    _ => {
                        return Err(invalid(
                            "stop",
                            format!(
                                "each stop sequence must be a string of 1 to {MAX_STOP_CHARS} characters"
                            ),
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(invalid("stop", "stop must be a list of strings")),
    }
    match object.get("json") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => options.json = *b,
        Some(_) => return Err(invalid("json", "json must be true or false")),
    }
    Ok((
        tenant,
        model,
        ChatRequest {
            system,
            prompt,
            options,
        },
    ))
}

/// Validates a `/v1/embed` body into the tenant, model alias and texts.
fn parse_embed(body: &[u8]) -> Result<(String, String, Vec<String>), Invalid> {
    let object = parse_object(body)?;
    check_keys(&object, &["tenant", "model", "texts"])?;
    let tenant = tenant(&object)?;
    let model = model(&object)?;
    let items = match object.get("texts") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("texts", "texts must be a list of strings")),
        None => return Err(invalid("texts", "texts is required")),
    };
    if items.is_empty() || items.len() > MAX_TEXTS {
        return Err(invalid("texts", format!("send 1 to {MAX_TEXTS} texts")));
    }
    let mut texts = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(text) if text.chars().count() <= MAX_TEXT_CHARS => texts.push(text.to_string()),
            Some(_) => {
                return Err(invalid(
                    "texts",
                    format!("texts[{index}] is longer than {MAX_TEXT_CHARS} characters"),
                ));
            }
            None => return Err(invalid("texts", format!("texts[{index}] must be a string"))),
        }
    }
    Ok((tenant, model, texts))
}

fn served_fields(served: &Served) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("engine".into(), json!(served.engine.as_str()));
    fields.insert("provider".into(), json!(served.provider));
    fields.insert("model".into(), json!(served.model));
    fields.insert("cost_usd".into(), json!(served.cost_usd));
    fields.insert("attempts".into(), json!(served.attempts));
    fields.insert(
        "elapsed_ms".into(),
        json!(served.elapsed.as_millis() as u64),
    );
    fields
}

fn no_model(tenant: &str, model: &str, error: RouteError) -> http::Response<Bytes> {
    tracing::warn!(tenant, model, error = %error, "no language model served the request");
    reply(
        503,
        json!({"error": error.to_string(), "code": "no_model", "attempts": error.attempts()}),
    )
}

async fn infer(
    router: &LlmRouter,
    body: &[u8],
    deadline: Option<Instant>,
) -> Result<http::Response<Bytes>, Invalid> {
    let (tenant, model, request) = parse_infer(body)?;
    Ok(
        match router.generate(&tenant, &model, &request, deadline).await {
            Ok(completion) => {
                let mut fields = served_fields(&completion.served);
                fields.insert("text".into(), json!(completion.text));
                fields.insert(
                    "usage".into(),
                    json!({
                        "prompt_tokens": completion.served.prompt_tokens,
                        "generated_tokens": completion.served.generated_tokens,
                    }),
                );
                reply(200, Value::Object(fields))
            }
            Err(e) => no_model(&tenant, &model, e),
        },
    )
}

async fn embed(
    router: &LlmRouter,
    body: &[u8],
    deadline: Option<Instant>,
) -> Result<http::Response<Bytes>, Invalid> {
    let (tenant, model, texts) = parse_embed(body)?;
    Ok(
        match router.embed(&tenant, &model, &texts, deadline).await {
            Ok(embeddings) => {
                let mut fields = served_fields(&embeddings.served);
                let dims = embeddings.vectors.first().map(Vec::len).unwrap_or(0);
                fields.insert("embeddings".into(), json!(embeddings.vectors));
                fields.insert("dims".into(), json!(dims));
                fields.insert(
                    "usage".into(),
                    json!({"prompt_tokens": embeddings.served.prompt_tokens}),
                );
                reply(200, Value::Object(fields))
            }
            Err(e) => no_model(&tenant, &model, e),
        },
    )
}

fn usage(router: &LlmRouter, query: &str) -> Result<http::Response<Bytes>, Invalid> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| invalid("query", format!("invalid query string: {e}")))?;
    let mut object = Map::new();
    for (key, value) in pairs {
        if key != "tenant" {
            return Err(invalid(
                "query",
                format!("unknown parameter `{key}`; expected tenant"),
            ));
        }
        object.insert(key, json!(value));
    }
    let tenant = tenant(&object)?;
    Ok(reply(200, json!(router.usage(&tenant))))
}

fn status(router: &LlmRouter) -> http::Response<Bytes> {
    reply(
        200,
        json!({"providers": router.status(), "models": router.models()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: Value) -> &'static str {
        match parse_infer(body.to_string().as_bytes()) {
            Ok(_) => "",
            Err(e) => e.field,
        }
    }

    #[test]
    fn infer_validation_names_the_field() {
        let ok = json!({"tenant": "t", "prompt": "hi"});
        assert_eq!(field_of(ok), "");
        let cases = [
            (json!({"prompt": "hi"}), "tenant"),
            (json!({"tenant": "", "prompt": "hi"}), "tenant"),
            (json!({"tenant": "t"}), "prompt"),
            (json!({"tenant": "t", "prompt": ""}), "prompt"),
            (
                json!({"tenant": "t", "prompt": "x".repeat(32_769)}),
                "prompt",
            ),
            (
                json!({"tenant": "t", "prompt": "hi", "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"tenant": "t", "prompt": "hi", "max_tokens": 4097}),
                "max_tokens",
            ),
            (
                json!({"tenant": "t", "prompt": "hi", "temperature": 2.5}),
                "temperature",
            ),
            (json!({"tenant": "t", "prompt": "hi", "top_p": 0}), "top_p"),
            (
                json!({"tenant": "t", "prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
            (
                json!({"tenant": "t", "prompt": "hi", "json": "yes"}),
                "json",
            ),
            (json!({"tenant": "t", "prompt": "hi", "model": 3}), "model"),
            (
                json!({"tenant": "t", "prompt": "hi", "temprature": 1}),
                "body",
            ),
            (json!(["not", "an", "object"]), "body"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body.clone()), field, "{body}");
        }
    }

    #[test]
    fn infer_defaults_follow_the_contract() {
        let (tenant, model, request) = parse_infer(br#"{"tenant": "t1", "prompt": "hi"}"#).unwrap();
        assert_eq!(tenant, "t1");
        assert_eq!(model, "default");
        assert_eq!(request.options.max_tokens, 256);
        assert_eq!(request.options.temperature, 0.7);
        assert_eq!(request.options.top_p, None);
        assert!(!request.options.json);
    }

    #[test]
    fn embed_validation_names_the_field() {
        let field = |body: Value| match parse_embed(body.to_string().as_bytes()) {
            Ok(_) => "",
            Err(e) => e.field,
        };
        assert_eq!(field(json!({"tenant": "t", "texts": ["a"]})), "");
        assert_eq!(field(json!({"tenant": "t", "texts": []})), "texts");
        assert_eq!(field(json!({"tenant": "t", "texts": [1]})), "texts");
        assert_eq!(
            field(json!({"tenant": "t", "texts": vec!["a"; 65]})),
            "texts"
        );
        assert_eq!(
            field(json!({"tenant": "t", "texts": ["x".repeat(8193)]})),
            "texts"
        );
        assert_eq!(field(json!({"texts": ["a"]})), "tenant");
    }
}
