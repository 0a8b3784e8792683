//! Calls to the host's data-plane services over HTTP.

use crate::http::ApiError;
use serde_json::{Value, json};
use spin_sdk::http::{Method, Request, Response};

/// A data-plane service: the variable that may hold its base URL, and the
/// in-process address used when the variable is not declared.
pub struct Service {
    pub url_variable: &'static str,
    pub default_url: &'static str,
    /// Name used in logs and in the 503 shown to clients.
    pub name: &'static str,
}

impl Service {
    /// Sends a JSON request and returns the status and the JSON body. A body
    /// that is not JSON comes back as `{"error": <text>}`.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value), ApiError> {
        let (status, body) = self.call_raw(method, path_and_query, body).await?;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({"error": String::from_utf8_lossy(&body)}));
        Ok((status, value))
    }

    /// Sends a JSON request and returns the status and the response body
    /// unparsed, for callers that pass it on as it is.
    pub async fn call_raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let base =
            spin_sdk::variables::get(self.url_variable).unwrap_or_else(|_| self.default_url.into());
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", base.trim_end_matches('/')))
            .header("content-type", "application/json")
            .body(body)
            .build();
        let response: Response = spin_sdk::http::send(request).await.map_err(|e| {
            eprintln!("{} unreachable at {base}: {e}", self.name);
            ApiError::new(503, format!("the {} is unavailable", self.name))
        })?;
        let status = *response.status();
        Ok((status, response.into_body()))
    }
}

/// Percent-encodes `value` for use in a URL query: every byte except ASCII
/// letters, digits, `-`, `.`, `_` and `~` becomes `%XX`.
pub fn encode_query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}
