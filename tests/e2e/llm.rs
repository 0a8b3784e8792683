//! Language models end to end: the real `copycar up` with a runtime config
//! whose providers point at a local replay server, and the probe component
//! calling both `fermyon:spin/llm` and `llm.copycar.internal`.

use crate::support::{Host, HostOptions, TEST_SIGNING_KEY, client, probe_manifest};
use copycar_identity::{AccessToken, Role, SigningKey};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the replay server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// An HTTP/1.1 server on 127.0.0.1 standing in for an OpenAI-compatible
/// API: it replies to each request with the next scripted reply (repeating
/// the last) and records what it received. It stops when dropped.
struct ReplayServer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// A scripted reply: status, extra header lines and a JSON body.
type Reply = (u16, &'static str, Value);

impl ReplayServer {
    fn start(script: Vec<Reply>) -> ReplayServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let script = Arc::new(Mutex::new(script));
        let (log, stopped) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (log, script) = (log.clone(), script.clone());
                        std::thread::spawn(move || serve(stream, &log, &script));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ReplayServer {
            addr,
            received,
            stop,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn serve(mut stream: TcpStream, log: &Mutex<Vec<Received>>, script: &Mutex<Vec<Reply>>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if stream.read_exact(&mut body).is_err() {
        return;
    }
    log.lock().unwrap().push(Received {
        path,
        authorization: header("authorization"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let (status, extra, reply) = {
        let mut script = script.lock().unwrap();
        if script.len() > 1 {
            script.remove(0)
        } else {
            script[0].clone()
        }
    };
    let reply = reply.to_string();
    let response = format!(
        "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

fn chat_reply(text: &str) -> Reply {
    (
        200,
        "",
        json!({
            "id": "chatcmpl-e2e",
            "object": "chat.completion",
            "model": "replay-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
        }),
    )
}

fn embeddings_reply() -> Reply {
    (
        200,
        "",
        json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.25, 0.5, 0.75]},
                {"object": "embedding", "index": 1, "embedding": [1.0, 0.0, 0.0]}
            ],
            "model": "replay-embed",
            "usage": {"prompt_tokens": 6, "total_tokens": 6}
        }),
    )
}

/// Returns a runtime config with one OpenAI-compatible provider for text and one
/// for embeddings, both served by `server`.
fn runtime_config(server: &ReplayServer) -> String {
    format!(
        r#"[llm]
backoff_base_ms = 1

[llm.providers.replay]
kind = "openai"
base_url = "{base}"
model = "replay-model"
api_key_env = "REPLAY_API_KEY"
retries = 1
price_per_1k_prompt_tokens = 1.0
price_per_1k_generated_tokens = 2.0

[llm.providers.replay-embed]
kind = "openai"
base_url = "{base}"
model = "replay-embed"

[llm.models]
default = ["replay"]
embeddings = ["replay-embed"]
"#,
        base = server.base_url()
    )
}

/// Returns the probe manifest with the llm service allowed and `ai_models`
/// set.
fn manifest(ai_models: &str) -> String {
    probe_manifest(
        &format!(
            r#"ai_models = {ai_models}
allowed_outbound_hosts = ["http://llm.copycar.internal"]
[component.probe.variables]
llm_url = "{{{{ llm_url }}}}""#
        ),
        r#"[variables]
llm_url = { default = "http://llm.copycar.internal" }
token_signing_key = { default = "test-signing-key-0123456789abcdef-0123456789" }"#,
    )
}

fn start(server: &ReplayServer, ai_models: &str) -> Host {
    Host::start_with(
        &manifest(ai_models),
        HostOptions {
            runtime_config: Some(runtime_config(server)),
            env: vec![("REPLAY_API_KEY".into(), "sk-e2e-key".into())],
            ..Default::default()
        },
    )
}

async fn post(host: &Host, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = client()
        .post(host.url(path))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn service(host: &Host, method: &str, path: &str, body: Value) -> (u16, Value) {
    let url = host.url(&format!("/probe/llm/service/{path}"));
    let request = match method {
        "GET" => client().get(url),
        _ => client().post(url).body(body.to_string()),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn spin_llm_interface_calls_the_provider() {
    let server = ReplayServer::start(vec![chat_reply("Subject: hello")]);
    let host = start(&server, r#"["default"]"#);

    let (status, body) = post(
        &host,
        "/probe/llm/infer?model=default&max_tokens=40",
        "Write a subject",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "Subject: hello");
    assert_eq!(body["prompt_tokens"], 11);
    assert_eq!(body["generated_tokens"], 4);

    let sent = server.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].authorization.as_deref(), Some("Bearer sk-e2e-key"));
    assert_eq!(sent[0].body["model"], "replay-model");
    assert_eq!(sent[0].body["max_tokens"], 40);
    assert_eq!(
        sent[0].body["messages"],
        json!([{"role": "user", "content": "Write a subject"}])
    );

    // Without a verified caller, usage is accounted to the component.
    let (status, usage) =
        service(&host, "GET", "v1/usage?tenant=component:probe", Value::Null).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["requests"], 1);
    assert_eq!(usage["prompt_tokens"], 11);
    assert_eq!(usage["generated_tokens"], 4);
}

#[tokio::test]
async fn spin_llm_usage_goes_to_the_verified_tenant() {
    let server = ReplayServer::start(vec![chat_reply("ok")]);
    let host = start(&server, r#"["default"]"#);
    let key = SigningKey::new(TEST_SIGNING_KEY).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (token, _) =
        AccessToken::issue(&key, "user-1", "tenant-acme", Role::Member, None, now, 600).unwrap();

    let response = client()
        .post(host.url("/probe/llm/infer?model=default"))
        .bearer_auth(&token)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let (_, usage) = service(&host, "GET", "v1/usage?tenant=tenant-acme", Value::Null).await;
    assert_eq!(usage["requests"], 1, "{usage}");
    assert_eq!(usage["by_provider"]["replay"]["requests"], 1, "{usage}");
    let (_, component) =
        service(&host, "GET", "v1/usage?tenant=component:probe", Value::Null).await;
    assert_eq!(component["requests"], 0, "{component}");
}

#[tokio::test]
async fn spin_llm_embeddings() {
    let server = ReplayServer::start(vec![embeddings_reply()]);
    let host = start(&server, r#"["embeddings"]"#);
    let (status, body) = post(
        &host,
        "/probe/llm/embed?model=embeddings",
        json!(["first text", "second text"]).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["embeddings"],
        json!([[0.25, 0.5, 0.75], [1.0, 0.0, 0.0]])
    );
    assert_eq!(body["prompt_tokens"], 6);
    let sent = server.received();
    assert_eq!(sent[0].path, "/v1/embeddings");
    assert_eq!(sent[0].body["input"], json!(["first text", "second text"]));
    assert_eq!(sent[0].authorization, None);
}

#[tokio::test]
async fn ai_models_denies_unlisted_models() {
    let server = ReplayServer::start(vec![chat_reply("unused")]);
    let host = start(&server, r#"["embeddings"]"#);
    let (status, body) = post(&host, "/probe/llm/infer?model=default", "hi").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error_kind"], "invalid-input");
    assert!(
        body["message"].as_str().unwrap().contains("ai_models"),
        "{body}"
    );
    assert!(server.received().is_empty());
    let logs = host.wait_for_log("language model not granted in manifest");
    assert!(
        logs.contains("language model not granted in manifest"),
        "{logs}"
    );
}

#[tokio::test]
async fn unconfigured_model_is_not_supported() {
    let server = ReplayServer::start(vec![chat_reply("unused")]);
    let host = start(&server, r#"["default", "summaries"]"#);
    let (status, body) = post(&host, "/probe/llm/infer?model=summaries", "hi").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error_kind"], "model-not-supported");
}

#[tokio::test]
async fn service_infer_embed_usage_and_status() {
    let server = ReplayServer::start(vec![
        (
            429,
            "retry-after: 0\r\n",
            json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        ),
        chat_reply("From the service"),
        embeddings_reply(),
    ]);
    let host = start(&server, "[]");

    let (status, body) = service(
        &host,
        "POST",
        "v1/infer",
        json!({"tenant": "t-1", "prompt": "Write copy", "system": "Be brief.", "max_tokens": 64, "temperature": 0.3, "stop": ["END"], "json": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "From the service");
    assert_eq!(body["engine"], "openai");
    assert_eq!(body["provider"], "replay");
    assert_eq!(body["model"], "replay-model");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 11, "generated_tokens": 4})
    );
    assert_eq!(body["attempts"], 2);
    assert!(
        (body["cost_usd"].as_f64().unwrap() - 0.019).abs() < 1e-9,
        "{body}"
    );
    assert!(body["elapsed_ms"].is_u64(), "{body}");

    let sent = server.received();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent[1].body["stop"], json!(["END"]));
    assert_eq!(
        sent[1].body["response_format"],
        json!({"type": "json_object"})
    );
    let logs = host.wait_for_log("retrying language model request");
    assert!(logs.contains("retrying language model request"), "{logs}");

    let (status, body) = service(
        &host,
        "POST",
        "v1/embed",
        json!({"tenant": "t-1", "model": "embeddings", "texts": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dims"], 3);
    assert_eq!(body["embeddings"][1], json!([1.0, 0.0, 0.0]));
    assert_eq!(body["provider"], "replay-embed");
    assert_eq!(body["usage"], json!({"prompt_tokens": 6}));

    let (status, usage) = service(&host, "GET", "v1/usage?tenant=t-1", Value::Null).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["tenant"], "t-1");
    assert_eq!(usage["requests"], 2);
    assert_eq!(usage["prompt_tokens"], 17);
    assert_eq!(usage["generated_tokens"], 4);
    assert_eq!(usage["by_provider"]["replay"]["requests"], 1);
    assert_eq!(usage["by_provider"]["replay-embed"]["prompt_tokens"], 6);

    let (status, body) = service(&host, "GET", "v1/status", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    let providers = body["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2);
    assert_eq!(providers[0]["name"], "replay");
    assert_eq!(providers[0]["kind"], "openai");
    assert_eq!(providers[0]["model"], "replay-model");
    assert_eq!(providers[0]["circuit"], "closed");
    assert_eq!(body["models"]["default"], json!(["replay"]));
}

#[tokio::test]
async fn service_rejects_invalid_input_naming_the_field() {
    let server = ReplayServer::start(vec![chat_reply("unused")]);
    let host = start(&server, "[]");
    let cases = [
        ("v1/infer", json!({"prompt": "hi"}), "tenant"),
        ("v1/infer", json!({"tenant": "t", "prompt": ""}), "prompt"),
        (
            "v1/infer",
            json!({"tenant": "t", "prompt": "hi", "max_tokens": 5000}),
            "max_tokens",
        ),
        (
            "v1/infer",
            json!({"tenant": "t", "prompt": "hi", "top_p": 1.5}),
            "top_p",
        ),
        ("v1/embed", json!({"tenant": "t", "texts": []}), "texts"),
    ];
    for (path, body, field) in cases {
        let (status, answer) = service(&host, "POST", path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["field"], field, "{path} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (status, answer) = service(&host, "GET", "v1/usage", Value::Null).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "tenant");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn service_answers_no_model_without_configuration() {
    let host = Host::start(&manifest("[]"));
    let (status, body) = service(
        &host,
        "POST",
        "v1/infer",
        json!({"tenant": "t", "prompt": "hi"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "no_model");
    assert_eq!(body["attempts"], json!([]));
    assert!(
        body["error"].as_str().unwrap().contains("default"),
        "{body}"
    );

    let (status, body) = service(&host, "GET", "v1/status", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["providers"], json!([]));
}

#[tokio::test]
async fn service_lists_every_failed_provider() {
    let server = ReplayServer::start(vec![(
        503,
        "",
        json!({"error": {"message": "The server is overloaded", "type": "server_error"}}),
    )]);
    let host = start(&server, "[]");
    let (status, body) = service(
        &host,
        "POST",
        "v1/infer",
        json!({"tenant": "t", "prompt": "hi"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "no_model");
    assert_eq!(
        body["attempts"],
        json!([{"provider": "replay", "error": "server error (HTTP 503): server_error: The server is overloaded"}])
    );
    // One attempt and one retry.
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn invalid_llm_config_stops_start_up() {
    let logs = crate::support::start_failure(
        &manifest("[]"),
        HostOptions {
            runtime_config: Some(
                "[llm.providers.x]\nkind = \"openai\"\nmodel = \"m\"\napi_key = \"sk-secret\"\n"
                    .into(),
            ),
            ..Default::default()
        },
    );
    assert!(logs.contains("llm.providers.x.api_key"), "{logs}");
    assert!(!logs.contains("sk-secret"), "{logs}");
}
