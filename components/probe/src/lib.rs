//! A component for end-to-end tests of the host's sandbox and host
//! interfaces. Each endpoint does one thing a test needs to observe; the
//! path after the route (`spin-path-info`) selects it:
//!
//! | path | effect |
//! |---|---|
//! | `/loop` | spins forever |
//! | `/sleep?ms=N` | blocks in a host call for N ms |
//! | `/alloc?mb=N` | allocates and touches N MiB |
//! | `/panic` | panics (a trap) |
//! | `/fetch?url=U[&follow=1]` | GETs U, following one redirect if asked |
//! | `/kv/<store>/<key>` | GET, PUT (body) or DELETE one key |
//! | `/kv/<store>` | lists the keys |
//! | `/var/<name>` | reads a component variable |
//! | `/env/<name>` | reads an environment variable |
//! | `/headers` | returns the request headers |
//! | `/echo` | returns the request body's length |
//! | `/remember?value=V` | stores V in a global and returns the previous value |
//! | `/llm/infer?model=M[&max_tokens=N]` | `fermyon:spin/llm` infer with the body as prompt |
//! | `/llm/embed?model=M` | `fermyon:spin/llm` embeddings of a JSON list of texts |
//! | `/llm/service/<path>` | forwards the request to `{llm_url}/<path>` |

use serde_json::{Value, json};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::{http_component, key_value, llm, variables};

static REMEMBERED: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

#[http_component]
async fn handle(request: Request) -> Response {
    let path_info = header(&request, "spin-path-info");
    let segments: Vec<&str> = path_info.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["loop"] => spin_forever(),
        ["sleep"] => {
            let ms = query_number(&request, "ms").unwrap_or(1000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            json(200, json!({"slept_ms": ms}))
        }
        ["alloc"] => allocate(query_number(&request, "mb").unwrap_or(1)),
        ["panic"] => panic!("probe asked to panic"),
        ["fetch"] => fetch(&request).await,
        ["kv", store] => list_keys(store),
        ["kv", store, key] => key_value_op(&request, store, key),
        ["var", name] => match variables::get(name) {
            Ok(value) => json(200, json!({"name": name, "value": value})),
            Err(e) => json(404, json!({"name": name, "error": e.to_string()})),
        },
        ["env", name] => json(
            200,
            json!({"name": name, "value": std::env::var(name).ok()}),
        ),
        ["headers"] => {
            let headers: serde_json::Map<String, Value> = request
                .headers()
                .map(|(k, v)| (k.to_string(), json!(v.as_str().unwrap_or(""))))
                .collect();
            json(200, Value::Object(headers))
        }
        ["echo"] => json(200, json!({"length": request.body().len()})),
        ["llm", "infer"] => llm_infer(&request),
        ["llm", "embed"] => llm_embed(&request),
        ["llm", "service", rest @ ..] => llm_service(&request, &rest.join("/")).await,
        ["remember"] => {
            // A fresh instance per request means this is always empty.
            let value = query_value(&request, "value").unwrap_or_default();
            let previous = std::mem::replace(&mut *REMEMBERED.lock().unwrap(), value);
            json(200, json!({"previous": previous}))
        }
        _ => json(
            404,
            json!({"error": format!("no probe endpoint {path_info}")}),
        ),
    }
}

fn header(request: &Request, name: &str) -> String {
    request
        .header(name)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

fn query_value(request: &Request, key: &str) -> Option<String> {
    request.query().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn query_number(request: &Request, key: &str) -> Option<u64> {
    query_value(request, key)?.parse().ok()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn spin_forever() -> Response {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn allocate(mb: u64) -> Response {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mb {
        // Touch every page so the memory is really committed.
        blocks.push(vec![1u8; 1 << 20]);
    }
    let total: usize = blocks.iter().map(|b| b.len()).sum();
    json(200, json!({"allocated_bytes": total}))
}

async fn fetch(request: &Request) -> Response {
    let Some(url) = query_value(request, "url") else {
        return json(400, json!({"error": "missing url parameter"}));
    };
    let follow = query_value(request, "follow").as_deref() == Some("1");
    let first = match get(&url).await {
        Ok(response) => response,
        Err(e) => return json(502, json!({"url": url, "error": e})),
    };
    let status = *first.status();
    let location = first
        .header("location")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if follow
        && (300..400).contains(&status)
        && let Some(next) = location
    {
        return match get(&next).await {
            Ok(second) => json(
                200,
                json!({
                    "url": next,
                    "redirected_from": url,
                    "status": second.status(),
                    "body": String::from_utf8_lossy(second.body()),
                }),
            ),
            Err(e) => json(
                502,
                json!({"url": next, "redirected_from": url, "error": e}),
            ),
        };
    }
    json(
        200,
        json!({
            "url": url,
            "status": status,
            "body": String::from_utf8_lossy(first.body()),
        }),
    )
}

fn llm_error(error: llm::Error) -> Response {
    let (status, kind, message) = match error {
        llm::Error::ModelNotSupported => (404, "model-not-supported", String::new()),
        llm::Error::InvalidInput(m) => (403, "invalid-input", m),
        llm::Error::RuntimeError(m) => (502, "runtime-error", m),
    };
    json(status, json!({"error_kind": kind, "message": message}))
}

fn llm_infer(request: &Request) -> Response {
    let model = query_value(request, "model").unwrap_or_else(|| "default".into());
    let prompt = String::from_utf8_lossy(request.body()).to_string();
    let params = llm::InferencingParams {
        max_tokens: query_number(request, "max_tokens").unwrap_or(100) as u32,
        ..Default::default()
    };
    match llm::infer_with_options(llm::InferencingModel::Other(&model), &prompt, params) {
        Ok(result) => json(
            200,
            json!({
                "text": result.text,
                "prompt_tokens": result.usage.prompt_token_count,
                "generated_tokens": result.usage.generated_token_count,
            }),
        ),
        Err(e) => llm_error(e),
    }
}

fn llm_embed(request: &Request) -> Response {
    let model = query_value(request, "model").unwrap_or_else(|| "embeddings".into());
    let texts: Vec<String> = match serde_json::from_slice(request.body()) {
        Ok(texts) => texts,
        Err(e) => {
            return json(
                400,
                json!({"error": format!("send a JSON list of strings: {e}")}),
            );
        }
    };
    match llm::generate_embeddings(llm::EmbeddingModel::Other(&model), &texts) {
        Ok(result) => json(
            200,
            json!({
                "embeddings": result.embeddings,
                "prompt_tokens": result.usage.prompt_token_count,
            }),
        ),
        Err(e) => llm_error(e),
    }
}

/// Forwards the request to the language-model service named by the
/// `llm_url` variable, as a product component would.
async fn llm_service(request: &Request, path: &str) -> Response {
    let base = variables::get("llm_url").unwrap_or_else(|_| "http://llm.copycar.internal".into());
    let query = request.query();
    let url = if query.is_empty() {
        format!("{}/{path}", base.trim_end_matches('/'))
    } else {
        format!("{}/{path}?{query}", base.trim_end_matches('/'))
    };
    let outbound = Request::builder()
        .method(request.method().clone())
        .uri(url)
        .header("content-type", "application/json")
        .body(request.body().to_vec())
        .build();
    match spin_sdk::http::send::<_, Response>(outbound).await {
        Ok(response) => Response::builder()
            .status(*response.status())
            .header("content-type", "application/json")
            .body(response.body().to_vec())
            .build(),
        Err(e) => json(502, json!({"error": e.to_string()})),
    }
}

async fn get(url: &str) -> Result<Response, String> {
    let request = Request::builder().method(Method::Get).uri(url).build();
    spin_sdk::http::send::<_, Response>(request)
        .await
        .map_err(|e| e.to_string())
}

fn list_keys(store: &str) -> Response {
    let result = key_value::Store::open(store).and_then(|s| s.get_keys());
    match result {
        Ok(mut keys) => {
            keys.sort();
            json(200, json!({"store": store, "keys": keys}))
        }
        Err(e) => kv_error(store, e),
    }
}

fn key_value_op(request: &Request, store_label: &str, key: &str) -> Response {
    let store = match key_value::Store::open(store_label) {
        Ok(store) => store,
        Err(e) => return kv_error(store_label, e),
    };
    let result = match request.method() {
        Method::Get => store.get(key).map(|value| match value {
            Some(bytes) => json(
                200,
                json!({"key": key, "value": String::from_utf8_lossy(&bytes)}),
            ),
            None => json(404, json!({"key": key, "error": "not found"})),
        }),
        Method::Put => store.set(key, request.body()).map(|()| {
            json(
                200,
                json!({"key": key, "stored_bytes": request.body().len()}),
            )
        }),
        Method::Delete => store
            .delete(key)
            .map(|()| json(200, json!({"key": key, "deleted": true}))),
        _ => Ok(json(405, json!({"error": "use GET, PUT or DELETE"}))),
    };
    result.unwrap_or_else(|e| kv_error(store_label, e))
}

fn kv_error(store: &str, error: key_value::Error) -> Response {
    let (status, kind) = match &error {
        key_value::Error::AccessDenied => (403, "access-denied"),
        key_value::Error::NoSuchStore => (404, "no-such-store"),
        key_value::Error::StoreTableFull => (503, "store-table-full"),
        key_value::Error::Other(_) => (500, "other"),
    };
    json(
        status,
        json!({"store": store, "error": kind, "message": error.to_string()}),
    )
}

fn json(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
