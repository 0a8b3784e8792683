//! Predictions under `/api/v1/predict`, for authenticated callers (access
//! token or API key):
//!
//! | method and path | effect |
//! |---|---|
//! | `POST /response-rate` | `{"records": [{field: value}]}`, 1 to 1,000 records: a probability, an uncertainty and the top factors for each |
//! | `GET /response-rate` | the model version in service and its test scores |
//! | `POST /send-time` | `{"recipients": [{"recipient"?, "channel"?, "segment"?, "utc_offset_minutes"?}], "top_k"?, "objective"?: "open" or "reply"}`, 1 to 1,000 items: the best hours of the week for each, with probabilities, an interval, the effective sample size and the level that produced the estimate |
//! | `GET /send-time` | the caller's send-time model version, its data range and holdout lift |
//!
//! Send-time models are per tenant; the tenant always comes from the
//! caller's credentials.
//!
//! The model runs in the host's data plane at `models.copycar.internal`. On
//! Spin, the `models_url` variable points at it. This component checks the
//! caller and the request shape and passes the work on.

use copycar_guest::caller::authenticate;
use copycar_guest::http::{ApiError, ApiResult, header, json_body_up_to, json_response};
use copycar_guest::service::Service;
use copycar_guest::store::Kv;
use serde_json::{Map, Value, json};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// Largest request body passed on: 1,000 records of a few hundred bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The model service in the host's data plane.
const MODELS: Service = Service {
    url_variable: "models_url",
    default_url: "http://models.copycar.internal",
    name: "models service",
};

#[http_component]
async fn handle(request: Request) -> Response {
    let result = route(&request).await;
    copycar_guest::http::finish("predict", &request, result)
}

async fn route(request: &Request) -> ApiResult {
    let path = header(request, "spin-path-info")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let caller = authenticate(request, &Kv::open()?)?;
    match (path.as_str(), request.method()) {
        ("/response-rate", Method::Post) => predict(request, &caller.tenant_id).await,
        ("/response-rate", Method::Get) => model_info().await,
        ("/send-time", Method::Post) => predict_send_time(request, &caller.tenant_id).await,
        ("/send-time", Method::Get) => send_time_info(&caller.tenant_id).await,
        ("/response-rate" | "/send-time", method) => Err(ApiError::new(
            405,
            format!("method {method} is not allowed on {path}"),
        )),
        _ => Err(ApiError::not_found(&format!(
            "endpoint /api/v1/predict{path}"
        ))),
    }
}

async fn predict(request: &Request, tenant_id: &str) -> ApiResult {
    let content_type = header(request, "content-type").unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(ApiError::new(415, "send the body as application/json"));
    }
    if request.body().len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let (status, body) = MODELS
        .call(
            Method::Post,
            "/v1/response-rate/predict",
            request.body().to_vec(),
        )
        .await?;
    if status == 200 {
        eprintln!("predict: tenant={tenant_id} scored response rate");
    }
    Ok(json_response(status, body))
}

async fn model_info() -> ApiResult {
    let (status, body) = MODELS
        .call(Method::Get, "/v1/response-rate", Vec::new())
        .await?;
    if status != 200 {
        return Ok(json_response(status, body));
    }
    let card = &body["card"];
    Ok(json_response(
        200,
        json!({
            "name": "response-rate",
            "version": body["version"],
            "created_at": card["created_at"],
            "test": card["test"],
            "features": card["features"]["fields"].as_array().map(|fields| {
                fields.iter().map(|f| f["name"].clone()).collect::<Vec<_>>()
            }),
        }),
    ))
}

async fn predict_send_time(request: &Request, tenant_id: &str) -> ApiResult {
    let mut body: Map<String, Value> = json_body_up_to(request, MAX_BODY_BYTES)?;
    if body.contains_key("tenant") {
        return Err(ApiError::bad_field(
            "tenant",
            "remove `tenant`: the tenant comes from the credentials",
        ));
    }
    body.insert("tenant".into(), json!(tenant_id));
    let (status, reply) = MODELS
        .call(
            Method::Post,
            "/v1/send-time/predict",
            Value::Object(body).to_string().into_bytes(),
        )
        .await?;
    if status == 200 {
        eprintln!("predict: tenant={tenant_id} ranked send times");
    }
    Ok(json_response(status, reply))
}

async fn send_time_info(tenant_id: &str) -> ApiResult {
    let (status, body) = MODELS
        .call(
            Method::Get,
            &format!("/v1/send-time?tenant={tenant_id}"),
            Vec::new(),
        )
        .await?;
    if status != 200 {
        return Ok(json_response(status, body));
    }
    let card = &body["card"];
    Ok(json_response(
        200,
        json!({
            "name": "send-time",
            "version": body["version"],
            "created_at": card["created_at"],
            "data": card["data"]["range"],
            "split": card["split"],
            "holdout": card["holdout"],
        }),
    ))
}
