//! `GET /health`: the application's name and version.
//! `GET /health/kv`: writes, reads back and deletes a key in the `default`
//! key-value store, and reports whether the value survived the trip.

use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::{http_component, key_value, variables};

#[http_component]
fn handle(request: Request) -> Response {
    let path_info = request
        .header("spin-path-info")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if *request.method() != Method::Get {
        return json(405, json!({"error": "use GET"}));
    }
    match path_info.as_str() {
        "" | "/" => health(),
        "/kv" => key_value_round_trip(&request),
        other => json(404, json!({"error": format!("no endpoint /health{other}")})),
    }
}

fn health() -> Response {
    let app = variables::get("app_name").unwrap_or_else(|_| "unknown".into());
    let version = variables::get("app_version").unwrap_or_else(|_| "unknown".into());
    json(200, json!({"status": "ok", "app": app, "version": version}))
}

fn key_value_round_trip(request: &Request) -> Response {
    // A random key per check, so concurrent checks never read each other's
    // value, even when clients reuse a request id.
    let request_id = request
        .header("x-request-id")
        .and_then(|v| v.as_str())
        .unwrap_or("no-request-id");
    let mut nonce = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut nonce) {
        return json(
            503,
            json!({"status": "error", "error": format!("no random numbers: {e}")}),
        );
    }
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("health-check:{nonce}");
    let value = format!("written by request {request_id}");

    let result = (|| -> Result<bool, key_value::Error> {
        let store = key_value::Store::open_default()?;
        store.set(&key, value.as_bytes())?;
        let read = store.get(&key)?;
        store.delete(&key)?;
        let gone = !store.exists(&key)?;
        Ok(read.as_deref() == Some(value.as_bytes()) && gone)
    })();
    match result {
        Ok(true) => json(200, json!({"status": "ok", "store": "default", "key": key})),
        Ok(false) => json(
            500,
            json!({"status": "error", "error": "value read back differs from value written"}),
        ),
        Err(e) => json(503, json!({"status": "error", "error": e.to_string()})),
    }
}

fn json(status: u16, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
