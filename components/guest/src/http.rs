//! Request parsing and JSON responses shared by every handler.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use spin_sdk::http::{Request, Response};
use std::borrow::Cow;

/// Largest request body the component reads.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// A handler failure that becomes a JSON error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub field: Option<Cow<'static, str>>,
    /// Seconds for a `Retry-After` header (429 responses).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
    pub fn bad_field(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            field: Some(field.into()),
            retry_after: None,
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(401, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, message)
    }
    pub fn not_found(what: &str) -> Self {
        ApiError::new(404, format!("{what} not found"))
    }
    /// Creates a storage failure; the details go to the log, not the client.
    pub fn storage(error: impl std::fmt::Display) -> Self {
        eprintln!("key-value error: {error}");
        ApiError::new(503, "storage is unavailable; try again")
    }

    pub fn into_response(self, request_id: &str) -> Response {
        let mut body = json!({ "error": self.message, "request_id": request_id });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut builder = Response::builder();
        builder
            .status(self.status)
            .header("content-type", "application/json");
        if let Some(seconds) = self.retry_after {
            builder.header("retry-after", seconds.to_string());
        }
        if self.status == 401 {
            builder.header("www-authenticate", "Bearer");
        }
        builder.body(body.to_string()).build()
    }
}

pub type ApiResult = Result<Response, ApiError>;

pub fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body.to_string())
        .build()
}

/// Builds a response from a JSON body that is already serialized.
pub fn json_bytes_response(status: u16, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body)
        .build()
}

pub fn no_content() -> Response {
    Response::builder().status(204).body(Vec::new()).build()
}

pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.header(name).and_then(|v| v.as_str())
}

/// Parses a JSON body into `T`, rejecting other content types, oversized
/// bodies and unknown fields with a 4xx naming the problem.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    json_body_up_to(request, MAX_BODY_BYTES)
}

/// Like [`json_body`], for endpoints that take larger bodies (batches).
pub fn json_body_up_to<T: DeserializeOwned>(
    request: &Request,
    max_bytes: usize,
) -> Result<T, ApiError> {
    let body = json_bytes_up_to(request, max_bytes)?;
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, format!("invalid JSON body: {e}")))
}

/// Returns the body of an `application/json` request without parsing it,
/// rejecting other content types and bodies over `max_bytes` with a 4xx.
pub fn json_bytes_up_to(request: &Request, max_bytes: usize) -> Result<&[u8], ApiError> {
    let content_type = header(request, "content-type").unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(415, "send the body as application/json"));
    }
    let body = request.body();
    if body.len() > max_bytes {
        return Err(ApiError::new(
            413,
            format!("request body is larger than {max_bytes} bytes"),
        ));
    }
    Ok(body)
}

/// Turns a handler's result into the response, logging server-side
/// failures with the component name and request id.
pub fn finish(component: &str, request: &Request, result: ApiResult) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            let request_id = header(request, "x-request-id").unwrap_or("");
            if error.status >= 500 {
                eprintln!(
                    "{component}: request {request_id} failed: {}",
                    error.message
                );
            }
            error.into_response(request_id)
        }
    }
}
