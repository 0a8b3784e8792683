//! `locks.copycar.internal`: atomic claims and windowed counters for
//! components. The Spin key-value interface has no compare-and-swap, so
//! "use this refresh token once" or "count failed logins" would race across
//! concurrent instances. This service does both under one lock in the host.
//!
//! - `POST /claim` `{"key", "ttl_secs"}`: 200 `{"claimed": true}` for the
//!   first caller within the TTL, 409 `{"claimed": false}` after.
//! - `POST /count` `{"key", "window_secs", "limit"}`: adds one to the key's
//!   counter in a fixed window and returns `{"count", "limited",
//!   "retry_after_secs"}`; `limited` is true once `count` exceeds `limit`.
//! - `POST /peek`: like `/count` without adding.
//! - `POST /reset` `{"key"}`: clears a counter.
//!
//! Keys are private to the calling component. State lives in memory and a
//! restart clears it, so callers keep durable facts (a token's `used` flag)
//! in their own store and use this service to settle races.

use crate::services::{InternalService, ServiceFuture, ServiceRequest, json_response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries kept before expired ones are swept.
const SWEEP_THRESHOLD: usize = 100_000;
const MAX_KEY_LEN: usize = 512;

#[derive(Default)]
struct State {
    claims: HashMap<String, Instant>,
    counters: HashMap<String, (u64, Instant)>,
}

#[derive(Clone, Default)]
pub(crate) struct LocksService {
    state: Arc<Mutex<State>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    key: String,
    ttl_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountBody {
    key: String,
    window_secs: u64,
    limit: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    key: String,
}

fn bad_request(message: String) -> http::Response<bytes::Bytes> {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

impl LocksService {
    fn claim(&self, key: String, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if state.claims.len() > SWEEP_THRESHOLD {
            state.claims.retain(|_, expires| *expires > now);
        }
        match state.claims.get(&key) {
            Some(expires) if *expires > now => false,
            _ => {
                state.claims.insert(key, now + ttl);
                true
            }
        }
    }

    fn count(&self, key: String, window: Duration, add: bool) -> (u64, Duration) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if state.counters.len() > SWEEP_THRESHOLD {
            state.counters.retain(|_, (_, end)| *end > now);
        }
        let entry = state.counters.entry(key).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        if add {
            entry.0 += 1;
        }
        (entry.0, entry.1.saturating_duration_since(now))
    }
}

impl InternalService for LocksService {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture {
        let service = self.clone();
        Box::pin(async move {
            let (parts, body) = request.request.into_parts();
            if parts.method != http::Method::POST {
                return json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"error": "use POST"}),
                );
            }
            let namespaced = |key: &str| format!("{}\u{0}{key}", request.caller);
            let invalid_key = |key: &str| {
                (key.is_empty() || key.len() > MAX_KEY_LEN)
                    .then(|| bad_request(format!("key must be 1 to {MAX_KEY_LEN} bytes")))
            };
            match parts.uri.path() {
                "/claim" => {
                    let body: ClaimBody = match serde_json::from_slice(&body) {
                        Ok(b) => b,
                        Err(e) => return bad_request(format!("invalid claim request: {e}")),
                    };
                    if let Some(response) = invalid_key(&body.key) {
                        return response;
                    }
                    if !(1..=366 * 24 * 3600).contains(&body.ttl_secs) {
                        return bad_request("ttl_secs must be from 1 to 31622400".into());
                    }
                    if service.claim(namespaced(&body.key), Duration::from_secs(body.ttl_secs)) {
                        json_response(StatusCode::OK, &json!({"claimed": true}))
                    } else {
                        json_response(StatusCode::CONFLICT, &json!({"claimed": false}))
                    }
                }
                path @ ("/count" | "/peek") => {
                    let body: CountBody = match serde_json::from_slice(&body) {
                        Ok(b) => b,
                        Err(e) => return bad_request(format!("invalid count request: {e}")),
                    };
                    if let Some(response) = invalid_key(&body.key) {
                        return response;
                    }
                    if !(1..=7 * 24 * 3600).contains(&body.window_secs) {
                        return bad_request("window_secs must be from 1 to 604800".into());
                    }
                    let (count, remaining) = service.count(
                        namespaced(&body.key),
                        Duration::from_secs(body.window_secs),
                        path == "/count",
                    );
                    json_response(
                        StatusCode::OK,
                        &json!({
                            "count": count,
                            "limited": count > body.limit,
                            "retry_after_secs": remaining.as_secs().max(1),
                        }),
                    )
                }
                "/reset" => {
                    let body: ResetBody = match serde_json::from_slice(&body) {
                        Ok(b) => b,
                        Err(e) => return bad_request(format!("invalid reset request: {e}")),
                    };
                    service
                        .state
                        .lock()
                        .unwrap()
                        .counters
                        .remove(&namespaced(&body.key));
                    json_response(StatusCode::OK, &json!({"reset": true}))
                }
                path => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("no endpoint {path} on locks.copycar.internal")}),
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_succeeds_once_per_ttl() {
        let locks = LocksService::default();
        assert!(locks.claim("a".into(), Duration::from_secs(60)));
        assert!(!locks.claim("a".into(), Duration::from_secs(60)));
        assert!(locks.claim("b".into(), Duration::from_secs(60)));
        assert!(locks.claim("c".into(), Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            locks.claim("c".into(), Duration::from_secs(60)),
            "an expired claim can be taken again"
        );
    }

    #[test]
    fn counter_counts_within_window() {
        let locks = LocksService::default();
        for expected in 1..=3 {
            assert_eq!(
                locks.count("k".into(), Duration::from_secs(60), true).0,
                expected
            );
        }
        assert_eq!(locks.count("k".into(), Duration::from_secs(60), false).0, 3);
        assert_eq!(
            locks
                .count("short".into(), Duration::from_millis(1), true)
                .0,
            1
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            locks
                .count("short".into(), Duration::from_millis(1), true)
                .0,
            1,
            "a new window starts at zero"
        );
    }
}
