//! The JSON response shape shared by the in-process data-plane services.

use bytes::Bytes;
use serde_json::Value;

/// Builds a JSON response with `status` and `body`.
pub(crate) fn reply(status: u16, body: Value) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body.to_string()))
        .expect("static response parts are valid")
}
