//! Atomic claims and counters from the host's `locks` service, for the
//! checks the key-value interface cannot make race-free (single-use tokens,
//! unique sign-ups, failed-login counts).

use crate::http::ApiError;
use serde_json::{Value, json};
use spin_sdk::http::{Method, Request, Response};

async fn call(path: &str, body: Value) -> Result<(u16, Value), ApiError> {
    let base = spin_sdk::variables::get("locks_url")
        .unwrap_or_else(|_| "http://locks.copycar.internal".into());
    let request = Request::builder()
        .method(Method::Post)
        .uri(format!("{}{path}", base.trim_end_matches('/')))
        .header("content-type", "application/json")
        .body(body.to_string())
        .build();
    let response: Response = spin_sdk::http::send(request).await.map_err(|e| {
        eprintln!("locks service unreachable: {e}");
        ApiError::new(503, "a required service is unavailable; try again")
    })?;
    let status = *response.status();
    let value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    if status != 200 && status != 409 {
        eprintln!("locks service returned {status}: {value}");
        return Err(ApiError::new(
            503,
            "a required service is unavailable; try again",
        ));
    }
    Ok((status, value))
}

/// Claims `key` for `ttl_secs`; only the first caller gets `true`.
pub async fn claim(key: &str, ttl_secs: u64) -> Result<bool, ApiError> {
    let (status, _) = call("/claim", json!({"key": key, "ttl_secs": ttl_secs})).await?;
    Ok(status == 200)
}

/// A counter's state in its current window.
pub struct Count {
    pub count: u64,
    pub limited: bool,
    pub retry_after_secs: u64,
}

/// Adds one to `key`'s counter (or only reads it when `add` is false).
pub async fn count(key: &str, window_secs: u64, limit: u64, add: bool) -> Result<Count, ApiError> {
    let path = if add { "/count" } else { "/peek" };
    let (_, value) = call(
        path,
        json!({"key": key, "window_secs": window_secs, "limit": limit}),
    )
    .await?;
    Ok(Count {
        count: value["count"].as_u64().unwrap_or(0),
        limited: value["limited"].as_bool().unwrap_or(false),
        retry_after_secs: value["retry_after_secs"].as_u64().unwrap_or(1),
    })
}

/// Clears `key`'s counter.
pub async fn reset(key: &str) -> Result<(), ApiError> {
    call("/reset", json!({"key": key})).await.map(|_| ())
}
