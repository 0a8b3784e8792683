//! Predictions under `/api/v1/predict`, for authenticated callers (access
//! token or API key):
//!
//! | method and path | effect |
//! |---|---|
//! | `POST /response-rate` | `{"records": [{field: value}]}`, 1 to 1,000 records: a probability, an uncertainty and the top factors for each |
//! | `GET /response-rate` | the model version in service and its test scores |
//!
//! The model runs in the host's data plane at `models.copycar.internal`. On
//! Spin, the `models_url` variable points at it. This component checks the
//! caller and the request shape and passes the work on.

use copycar_guest::caller::authenticate;
use copycar_guest::http::{ApiError, ApiResult, header, json_response};
use copycar_guest::service::Service;
use copycar_guest::store::Kv;
use serde_json::json;
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
        ("/response-rate", method) => Err(ApiError::new(
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
