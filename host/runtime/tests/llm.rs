//! Language-model providers and the router against a local HTTP server
//! that checks what each provider sends and replays the vendors'
//! documented responses, errors and rate limits.

use bytes::Bytes;
use copycar_runtime::{
    ChatRequest, GenerateOptions, Generated, LlmConfig, LlmRouter, LocalEmbedder, LocalModels,
    LocalTextModel, RouteError,
};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: http::HeaderMap,
    body: Value,
}

/// One scripted response.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn ok(body: Value) -> Reply {
    Reply {
        status: 200,
        headers: Vec::new(),
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn status(status: u16, body: Value) -> Reply {
    Reply { status, ..ok(body) }
}

fn with_header(mut reply: Reply, name: &'static str, value: &str) -> Reply {
    reply.headers.push((name, value.to_string()));
    reply
}

/// An HTTP/1.1 server on 127.0.0.1 that replies with its script in order,
/// repeating the last reply, and records every request. It stops with the
/// test's runtime.
struct Replay {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Replay {
    async fn start(script: Vec<Reply>) -> Replay {
        assert!(!script.is_empty());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (log, script) = (log.clone(), script.clone());
                        async move { respond(request, &log, &script).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Replay { addr, received }
    }

    fn url(&self, prefix: &str) -> String {
        format!("http://{}{prefix}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn respond(
    request: http::Request<hyper::body::Incoming>,
    log: &Mutex<Vec<Received>>,
    script: &Mutex<VecDeque<Reply>>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    log.lock().unwrap().push(Received {
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    let reply = {
        let mut script = script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().unwrap().clone()
        }
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = http::Response::builder()
        .status(reply.status)
        .header("content-type", "application/json");
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    Ok(response.body(Full::new(Bytes::from(reply.body))).unwrap())
}

fn config(text: &str) -> LlmConfig {
    let table: toml::Table = toml::from_str(text).unwrap();
    LlmConfig::from_table(&table).unwrap()
}

fn router(text: &str) -> LlmRouter {
    router_with(text, LocalModels::default())
}

fn router_with(text: &str, local: LocalModels) -> LlmRouter {
    LlmRouter::new(config(text), local, |name| {
        (name == "TEST_API_KEY").then(|| "sk-test-123".to_string())
    })
    .unwrap()
}

fn chat(prompt: &str) -> ChatRequest {
    ChatRequest {
        system: None,
        prompt: prompt.to_string(),
        options: GenerateOptions::default(),
    }
}

fn openai_reply(text: &str, prompt_tokens: u32, completion_tokens: u32) -> Reply {
    ok(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    }))
}

fn openai_provider(name: &str, server: &Replay, extra: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"gpt-4o-mini\"\napi_key_env = \"TEST_API_KEY\"\n{extra}\n",
        server.url("/v1")
    )
}

fn header<'a>(request: &'a Received, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn openai_chat_request_and_response() {
    let server = Replay::start(vec![openai_reply("Hello there", 21, 3)]).await;
    let router = router(&format!(
        "{}[models]\ndefault = [\"openai\"]\n",
        openai_provider("openai", &server, "")
    ));
    let request = ChatRequest {
        system: Some("Be brief.".into()),
        prompt: "Say hello".into(),
        options: GenerateOptions {
            max_tokens: 50,
            temperature: 0.2,
            top_p: Some(0.9),
            stop: vec!["\n\n".into()],
            json: true,
            ..GenerateOptions::default()
        },
    };
    let completion = router
        .generate("t1", "default", &request, None)
        .await
        .unwrap();
    assert_eq!(completion.text, "Hello there");
    assert_eq!(completion.served.prompt_tokens, 21);
    assert_eq!(completion.served.generated_tokens, 3);
    assert_eq!(completion.served.provider, "openai");
    assert_eq!(completion.served.model, "gpt-4o-mini");
    assert_eq!(completion.served.attempts, 1);

    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(header(sent, "authorization"), "Bearer sk-test-123");
    assert_eq!(sent.body["model"], "gpt-4o-mini");
    assert_eq!(
        sent.body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"}
        ])
    );
    assert_eq!(sent.body["max_tokens"], 50);
    assert!((sent.body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert!((sent.body["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(sent.body["stop"], json!(["\n\n"]));
    assert_eq!(sent.body["response_format"], json!({"type": "json_object"}));
}

#[tokio::test]
async fn openai_embeddings_ordered_by_index() {
    let server = Replay::start(vec![ok(json!({
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8}
    }))])
    .await;
    let router = router(&format!(
        "{}[models]\nembeddings = [\"openai\"]\n",
        openai_provider("openai", &server, "")
    ));
    let texts = vec!["first".to_string(), "second".to_string()];
    let result = router
        .embed("t1", "embeddings", &texts, None)
        .await
        .unwrap();
    assert_eq!(result.vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    assert_eq!(result.served.prompt_tokens, 8);

    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(header(sent, "authorization"), "Bearer sk-test-123");
    assert_eq!(sent.body["input"], json!(["first", "second"]));
    assert_eq!(sent.body["model"], "gpt-4o-mini");
}

fn anthropic_config(server: &Replay, extra: &str) -> String {
    format!(
        "[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"claude-3-5-haiku-latest\"\napi_key_env = \"TEST_API_KEY\"\n{extra}\n[models]\ndefault = [\"claude\"]\n",
        server.url("")
    )
}

fn anthropic_reply(text: &str) -> Reply {
    ok(json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-latest",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 6}
    }))
}

#[tokio::test]
async fn anthropic_messages_request_and_response() {
    let server = Replay::start(vec![anthropic_reply("Hi from Claude")]).await;
    let router = router(&anthropic_config(&server, ""));
    let request = ChatRequest {
        system: Some("You write subject lines.".into()),
        prompt: "One subject line".into(),
        options: GenerateOptions {
            max_tokens: 64,
            temperature: 1.5,
            top_p: Some(0.9),
            top_k: Some(40),
            stop: vec!["END".into()],
            ..GenerateOptions::default()
        },
    };
    let completion = router
        .generate("t1", "default", &request, None)
        .await
        .unwrap();
    assert_eq!(completion.text, "Hi from Claude");
    assert_eq!(completion.served.prompt_tokens, 12);
    assert_eq!(completion.served.generated_tokens, 6);
    assert_eq!(completion.served.engine.as_str(), "anthropic");

    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(header(sent, "x-api-key"), "sk-test-123");
    assert_eq!(header(sent, "anthropic-version"), "2023-06-01");
    assert_eq!(header(sent, "authorization"), "");
    assert_eq!(sent.body["model"], "claude-3-5-haiku-latest");
    assert_eq!(sent.body["system"], "You write subject lines.");
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": "One subject line"}])
    );
    assert_eq!(sent.body["max_tokens"], 64);
    // The Messages API accepts temperatures up to 1.
    assert_eq!(sent.body["temperature"], 1.0);
    assert_eq!(sent.body["stop_sequences"], json!(["END"]));
    assert_eq!(sent.body["top_k"], 40);
    assert!(sent.body.get("top_p").is_none(), "{}", sent.body);
}

#[tokio::test]
async fn anthropic_overloaded_is_retried() {
    let overloaded = status(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let server = Replay::start(vec![overloaded, anthropic_reply("after retry")]).await;
    let router = router(&format!(
        "backoff_base_ms = 1\n{}",
        anthropic_config(&server, "retries = 2")
    ));
    let completion = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "after retry");
    assert_eq!(completion.served.attempts, 2);
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn anthropic_unauthorized_is_not_retried() {
    let unauthorized = status(
        401,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
    );
    let server = Replay::start(vec![unauthorized]).await;
    let router = router(&anthropic_config(&server, "retries = 3"));
    let error = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap_err();
    assert_eq!(server.received().len(), 1);
    let attempts = error.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].provider, "claude");
    assert_eq!(
        attempts[0].error,
        "request rejected (HTTP 401): authentication_error: invalid x-api-key"
    );
}

#[tokio::test]
async fn anthropic_has_no_embeddings() {
    let server = Replay::start(vec![anthropic_reply("unused")]).await;
    let router = router(&anthropic_config(&server, ""));
    let error = router
        .embed("t1", "default", &["text".to_string()], None)
        .await
        .unwrap_err();
    assert_eq!(server.received().len(), 0);
    assert!(
        error.attempts()[0].error.contains("no embeddings"),
        "{error:?}"
    );
}

fn gemini_config(server: &Replay) -> String {
    format!(
        "[providers.gemini]\nkind = \"gemini\"\nbase_url = \"{}\"\nmodel = \"gemini-2.0-flash\"\napi_key_env = \"TEST_API_KEY\"\n[models]\ndefault = [\"gemini\"]\n",
        server.url("/v1beta")
    )
}

#[tokio::test]
async fn gemini_generate_content_request_and_response() {
    let server = Replay::start(vec![ok(json!({
        "candidates": [{
            "content": {"parts": [{"text": "{\"subject\": "}, {"text": "\"Hi\"}"}], "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5, "totalTokenCount": 14},
        "modelVersion": "gemini-2.0-flash"
    }))])
    .await;
    let router = router(&gemini_config(&server));
    let request = ChatRequest {
        system: Some("Answer in JSON.".into()),
        prompt: "A subject".into(),
        options: GenerateOptions {
            max_tokens: 32,
            temperature: 0.5,
            top_p: Some(0.8),
            top_k: Some(20),
            stop: vec!["}}".into()],
            json: true,
            ..GenerateOptions::default()
        },
    };
    let completion = router
        .generate("t1", "default", &request, None)
        .await
        .unwrap();
    assert_eq!(completion.text, "{\"subject\": \"Hi\"}");
    assert_eq!(completion.served.prompt_tokens, 9);
    assert_eq!(completion.served.generated_tokens, 5);

    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(header(sent, "x-goog-api-key"), "sk-test-123");
    assert_eq!(
        sent.body["contents"],
        json!([{"role": "user", "parts": [{"text": "A subject"}]}])
    );
    assert_eq!(
        sent.body["systemInstruction"],
        json!({"parts": [{"text": "Answer in JSON."}]})
    );
    let config = &sent.body["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 32);
    assert_eq!(config["topK"], 20);
    assert_eq!(config["stopSequences"], json!(["}}"]));
    assert_eq!(config["responseMimeType"], "application/json");
}

#[tokio::test]
async fn gemini_blocked_prompt_is_an_error() {
    let server = Replay::start(vec![ok(json!({
        "promptFeedback": {"blockReason": "SAFETY"}
    }))])
    .await;
    let router = router(&gemini_config(&server));
    let error = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap_err();
    assert!(error.attempts()[0].error.contains("SAFETY"), "{error:?}");
}

#[tokio::test]
async fn gemini_embeddings_single_and_batch() {
    let server = Replay::start(vec![
        ok(json!({"embedding": {"values": [0.5, 0.25]}})),
        ok(json!({"embeddings": [{"values": [1.0, 0.0]}, {"values": [0.0, 1.0]}]})),
    ])
    .await;
    let router = router(&gemini_config(&server));
    let one = router
        .embed("t1", "default", &["only".to_string()], None)
        .await
        .unwrap();
    assert_eq!(one.vectors, vec![vec![0.5, 0.25]]);
    let two = router
        .embed("t1", "default", &["a".to_string(), "b".to_string()], None)
        .await
        .unwrap();
    assert_eq!(two.vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);

    let sent = server.received();
    assert_eq!(sent[0].path, "/v1beta/models/gemini-2.0-flash:embedContent");
    assert_eq!(
        sent[0].body,
        json!({"content": {"parts": [{"text": "only"}]}})
    );
    assert_eq!(
        sent[1].path,
        "/v1beta/models/gemini-2.0-flash:batchEmbedContents"
    );
    assert_eq!(
        sent[1].body["requests"][1],
        json!({"model": "models/gemini-2.0-flash", "content": {"parts": [{"text": "b"}]}})
    );
    assert_eq!(header(&sent[1], "x-goog-api-key"), "sk-test-123");
}

#[tokio::test]
async fn gemini_rate_limit_message_is_parsed() {
    let exhausted = status(
        429,
        json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}),
    );
    let server = Replay::start(vec![exhausted]).await;
    let router = router(&gemini_config(&server).replace(
        "model = \"gemini-2.0-flash\"",
        "model = \"gemini-2.0-flash\"\nretries = 0",
    ));
    let error = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap_err();
    assert_eq!(
        error.attempts()[0].error,
        "rate limited (HTTP 429): RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota)."
    );
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let limited = with_header(
        status(
            429,
            json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        ),
        "retry-after",
        "1",
    );
    let server = Replay::start(vec![limited, openai_reply("ok", 1, 1)]).await;
    let router = router(&format!(
        "{}[models]\ndefault = [\"a\"]\n",
        openai_provider("a", &server, "retries = 1")
    ));
    let completion = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.served.retry_waits, vec![Duration::from_secs(1)]);
    assert_eq!(completion.served.attempts, 2);
    assert!(completion.served.elapsed >= Duration::from_secs(1));
}

#[tokio::test]
async fn retry_after_is_capped() {
    let limited = with_header(
        status(503, json!({"error": {"message": "overloaded"}})),
        "retry-after",
        "3600",
    );
    let server = Replay::start(vec![limited, openai_reply("ok", 1, 1)]).await;
    let router = router(&format!(
        "max_retry_after_ms = 50\n{}[models]\ndefault = [\"a\"]\n",
        openai_provider("a", &server, "retries = 1")
    ));
    let completion = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap();
    assert_eq!(
        completion.served.retry_waits,
        vec![Duration::from_millis(50)]
    );
}

#[tokio::test]
async fn retry_after_past_the_deadline_falls_back() {
    let limited = with_header(
        status(429, json!({"error": {"message": "slow down"}})),
        "retry-after",
        "30",
    );
    let slow = Replay::start(vec![limited]).await;
    let fast = Replay::start(vec![openai_reply("from b", 1, 1)]).await;
    let router = router(&format!(
        "deadline_ms = 5000\nmax_retry_after_ms = 60000\n{}{}[models]\ndefault = [\"a\", \"b\"]\n",
        openai_provider("a", &slow, "retries = 3"),
        openai_provider("b", &fast, "")
    ));
    let completion = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "from b");
    assert_eq!(slow.received().len(), 1);
    assert!(completion.served.retry_waits.is_empty());
}

#[tokio::test]
async fn fallback_follows_the_configured_order() {
    let broken = Replay::start(vec![status(500, json!({"error": {"message": "boom"}}))]).await;
    let second = Replay::start(vec![openai_reply("from second", 4, 2)]).await;
    let third = Replay::start(vec![openai_reply("from third", 4, 2)]).await;
    let router = router(&format!(
        "backoff_base_ms = 1\n{}{}{}[models]\ndefault = [\"first\", \"second\", \"third\"]\n",
        openai_provider("first", &broken, "retries = 2"),
        openai_provider("second", &second, ""),
        openai_provider("third", &third, "")
    ));
    let completion = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "from second");
    assert_eq!(completion.served.provider, "second");
    // Three attempts at the first provider (one plus two retries), then one.
    assert_eq!(broken.received().len(), 3);
    assert_eq!(completion.served.attempts, 4);
    assert_eq!(completion.served.retry_waits.len(), 2);
    assert_eq!(third.received().len(), 0);
}

#[tokio::test]
async fn client_errors_are_not_retried_but_fall_back() {
    let rejecting = Replay::start(vec![status(
        400,
        json!({"error": {"message": "This model's maximum context length is 8192 tokens", "type": "invalid_request_error"}}),
    )])
    .await;
    let backup = Replay::start(vec![openai_reply("backup", 1, 1)]).await;
    let router = router(&format!(
        "{}{}[models]\ndefault = [\"a\", \"b\"]\n",
        openai_provider("a", &rejecting, "retries = 3"),
        openai_provider("b", &backup, "")
    ));
    let completion = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.served.provider, "b");
    assert_eq!(rejecting.received().len(), 1);
}

#[tokio::test]
async fn every_provider_failing_lists_each_error() {
    let a = Replay::start(vec![status(503, json!({"error": {"message": "down"}}))]).await;
    let b = Replay::start(vec![status(
        401,
        json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}),
    )])
    .await;
    let router = router(&format!(
        "backoff_base_ms = 1\n{}{}[models]\ndefault = [\"a\", \"b\"]\n",
        openai_provider("a", &a, "retries = 1"),
        openai_provider("b", &b, "retries = 1")
    ));
    let error = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap_err();
    let RouteError::Exhausted { alias, attempts } = &error else {
        panic!("expected every provider to fail: {error:?}");
    };
    assert_eq!(alias, "default");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].provider, "a");
    assert_eq!(attempts[0].error, "server error (HTTP 503): down");
    assert_eq!(attempts[1].provider, "b");
    assert_eq!(
        attempts[1].error,
        "request rejected (HTTP 401): invalid_request_error: Incorrect API key provided"
    );
    assert_eq!(a.received().len(), 2);
    assert_eq!(b.received().len(), 1);
    assert!(router.usage("t1").totals.requests == 0);
}

#[tokio::test]
async fn unknown_model_alias() {
    let router = router("");
    let error = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap_err();
    assert_eq!(error, RouteError::UnknownModel("default".into()));
}

#[tokio::test]
async fn missing_api_key_skips_the_provider() {
    let server = Replay::start(vec![openai_reply("unused", 1, 1)]).await;
    let router = router(&format!(
        "{}[models]\ndefault = [\"a\"]\n",
        openai_provider("a", &server, "").replace("TEST_API_KEY", "UNSET_KEY")
    ));
    let error = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap_err();
    assert_eq!(server.received().len(), 0);
    assert!(error.attempts()[0].error.contains("UNSET_KEY"), "{error:?}");
    assert!(router.status()[0].unavailable.is_some());
}

#[tokio::test]
async fn circuit_opens_after_consecutive_failures() {
    let broken = Replay::start(vec![status(500, json!({"error": {"message": "boom"}}))]).await;
    let backup = Replay::start(vec![openai_reply("backup", 1, 1)]).await;
    let router = router(&format!(
        "circuit_failure_threshold = 2\ncircuit_cooldown_ms = 600000\n{}{}[models]\ndefault = [\"a\", \"b\"]\n",
        openai_provider("a", &broken, "retries = 0"),
        openai_provider("b", &backup, "")
    ));
    let circuit_of_a = |router: &LlmRouter| {
        router
            .status()
            .into_iter()
            .find(|p| p.name == "a")
            .unwrap()
            .circuit
    };

    router
        .generate("t1", "default", &chat("1"), None)
        .await
        .unwrap();
    assert_eq!(circuit_of_a(&router), "closed");
    router
        .generate("t1", "default", &chat("2"), None)
        .await
        .unwrap();
    assert_eq!(circuit_of_a(&router), "open");
    assert_eq!(broken.received().len(), 2);
    let mut metrics = String::new();
    router.render_metrics(&mut metrics);
    assert!(
        metrics.contains("copycar_llm_circuit_open{provider=\"a\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("copycar_llm_attempts_total{provider=\"a\",outcome=\"server_error\"} 2"),
        "{metrics}"
    );

    // While open, the provider is skipped without a request.
    let completion = router
        .generate("t1", "default", &chat("3"), None)
        .await
        .unwrap();
    assert_eq!(completion.served.provider, "b");
    assert_eq!(completion.served.attempts, 1);
    assert_eq!(broken.received().len(), 2);
}

#[tokio::test]
async fn circuit_half_open_probe_closes_it() {
    let flaky = Replay::start(vec![
        status(500, json!({"error": {"message": "boom"}})),
        openai_reply("recovered", 1, 1),
    ])
    .await;
    let router = router(&format!(
        "circuit_failure_threshold = 1\ncircuit_cooldown_ms = 0\n{}[models]\ndefault = [\"a\"]\n",
        openai_provider("a", &flaky, "retries = 0")
    ));
    router
        .generate("t1", "default", &chat("1"), None)
        .await
        .unwrap_err();
    // A cool-down of 0 makes the open circuit half-open at once.
    assert_eq!(router.status()[0].circuit, "half_open");
    let completion = router
        .generate("t1", "default", &chat("2"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "recovered");
    assert_eq!(router.status()[0].circuit, "closed");
}

#[tokio::test]
async fn dropped_probe_frees_the_half_open_slot() {
    let mut slow_success = openai_reply("slow", 1, 1);
    slow_success.delay = Duration::from_secs(5);
    let server = Replay::start(vec![
        status(500, json!({"error": {"message": "boom"}})),
        slow_success,
        openai_reply("recovered", 1, 1),
    ])
    .await;
    let router = router(&format!(
        "circuit_failure_threshold = 1\ncircuit_cooldown_ms = 0\n{}[models]\ndefault = [\"a\"]\n",
        openai_provider("a", &server, "retries = 0")
    ));
    router
        .generate("t1", "default", &chat("1"), None)
        .await
        .unwrap_err();

    // The caller gives up while the probe is in flight.
    let request = chat("2");
    let probe = router.generate("t1", "default", &request, None);
    let abandoned = tokio::time::timeout(Duration::from_millis(200), probe).await;
    assert!(abandoned.is_err());
    assert_eq!(server.received().len(), 2);

    let completion = router
        .generate("t1", "default", &chat("3"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "recovered");
    assert_eq!(router.status()[0].circuit, "closed");
}

#[tokio::test]
async fn attempt_timeout_falls_back() {
    let mut slow_reply = openai_reply("too late", 1, 1);
    slow_reply.delay = Duration::from_secs(5);
    let slow = Replay::start(vec![slow_reply]).await;
    let fast = Replay::start(vec![openai_reply("in time", 1, 1)]).await;
    let router = router(&format!(
        "{}{}[models]\ndefault = [\"a\", \"b\"]\n",
        openai_provider("a", &slow, "retries = 0\ntimeout_ms = 100"),
        openai_provider("b", &fast, "")
    ));
    let completion = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "in time");
    assert_eq!(slow.received().len(), 1);
}

#[tokio::test]
async fn usage_sums_per_tenant_and_provider() {
    let a = Replay::start(vec![openai_reply("a", 1000, 500)]).await;
    let b = Replay::start(vec![openai_reply("b", 2000, 100)]).await;
    let prices = "price_per_1k_prompt_tokens = 0.5\nprice_per_1k_generated_tokens = 2.0";
    let router = router(&format!(
        "{}{}[models]\nfirst = [\"a\"]\nsecond = [\"b\"]\n",
        openai_provider("a", &a, prices),
        openai_provider("b", &b, "")
    ));
    let first = router
        .generate("acme", "first", &chat("1"), None)
        .await
        .unwrap();
    assert!((first.served.cost_usd - 1.5).abs() < 1e-9);
    router
        .generate("acme", "first", &chat("2"), None)
        .await
        .unwrap();
    router
        .generate("acme", "second", &chat("3"), None)
        .await
        .unwrap();
    router
        .generate("other", "second", &chat("4"), None)
        .await
        .unwrap();

    let acme = router.usage("acme");
    assert_eq!(acme.tenant, "acme");
    assert_eq!(acme.totals.requests, 3);
    assert_eq!(acme.totals.prompt_tokens, 4000);
    assert_eq!(acme.totals.generated_tokens, 1100);
    assert!((acme.totals.cost_usd - 3.0).abs() < 1e-9);
    assert_eq!(acme.by_provider["a"].requests, 2);
    assert_eq!(acme.by_provider["b"].prompt_tokens, 2000);
    assert_eq!(acme.by_provider["b"].cost_usd, 0.0);

    let other = router.usage("other");
    assert_eq!(other.totals.requests, 1);
    assert!(!other.by_provider.contains_key("a"));
    assert_eq!(router.usage("nobody").totals.requests, 0);

    let status = router.status();
    let b_status = status.iter().find(|p| p.name == "b").unwrap();
    assert_eq!(b_status.usage.requests, 2);
    assert_eq!(b_status.usage.prompt_tokens, 4000);

    let mut metrics = String::new();
    router.render_metrics(&mut metrics);
    assert!(
        metrics.contains("copycar_llm_attempts_total{provider=\"a\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("copycar_llm_tokens_total{provider=\"b\",direction=\"prompt\"} 4000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("copycar_llm_cost_usd_total{provider=\"a\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("copycar_llm_circuit_open{provider=\"b\"} 0"),
        "{metrics}"
    );
}

/// A deterministic text model: replies with the prompt's words reversed
/// and counts whitespace-separated words as tokens.
struct ReverseWords;

impl LocalTextModel for ReverseWords {
    fn name(&self) -> &str {
        "reverse-words"
    }

    fn generate(
        &self,
        prompt: &str,
        system: Option<&str>,
        options: &GenerateOptions,
    ) -> anyhow::Result<Generated> {
        let words: Vec<&str> = prompt.split_whitespace().rev().collect();
        let kept: Vec<&str> = words
            .iter()
            .copied()
            .take(options.max_tokens as usize)
            .collect();
        let system_words = system.map(|s| s.split_whitespace().count()).unwrap_or(0);
        Ok(Generated {
            text: kept.join(" "),
            prompt_tokens: (words.len() + system_words) as u32,
            generated_tokens: kept.len() as u32,
        })
    }
}

/// A deterministic embedder: letter frequencies a–z, normalised to unit
/// length.
struct LetterFrequencies;

impl LocalEmbedder for LetterFrequencies {
    fn name(&self) -> &str {
        "letters"
    }

    fn dims(&self) -> usize {
        26
    }

    fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|text| {
                let mut counts = [0f32; 26];
                for c in text.chars().filter(char::is_ascii_alphabetic) {
                    counts[(c.to_ascii_lowercase() as u8 - b'a') as usize] += 1.0;
                }
                let norm = counts.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                counts.iter().map(|x| x / norm).collect()
            })
            .collect())
    }
}

fn local_models() -> LocalModels {
    let mut local = LocalModels::default();
    local.register_text(Arc::new(ReverseWords));
    local.register_embedder(Arc::new(LetterFrequencies));
    local
}

#[tokio::test]
async fn local_models_serve_after_http_failure() {
    let down = Replay::start(vec![status(
        502,
        json!({"error": {"message": "bad gateway"}}),
    )])
    .await;
    let router = router_with(
        &format!(
            "{}[providers.local-text]\nkind = \"local\"\nmodel = \"reverse-words\"\n[providers.local-embed]\nkind = \"local\"\nmodel = \"letters\"\n[models]\ndefault = [\"remote\", \"local-text\"]\nembeddings = [\"local-embed\"]\n",
            openai_provider("remote", &down, "retries = 0")
        ),
        local_models(),
    );
    let completion = router
        .generate("t1", "default", &chat("one two three"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "three two one");
    assert_eq!(completion.served.engine.as_str(), "local");
    assert_eq!(completion.served.provider, "local-text");
    assert_eq!(completion.served.model, "reverse-words");
    assert_eq!(completion.served.prompt_tokens, 3);
    assert_eq!(completion.served.attempts, 2);

    let embedded = router
        .embed(
            "t1",
            "embeddings",
            &["ab".to_string(), "zz".to_string()],
            None,
        )
        .await
        .unwrap();
    assert_eq!(embedded.vectors.len(), 2);
    assert_eq!(embedded.vectors[0].len(), 26);
    assert!((embedded.vectors[0][0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    assert_eq!(embedded.vectors[1][25], 1.0);
}

#[tokio::test]
async fn local_model_of_the_wrong_kind_is_unsupported() {
    let router = router_with(
        "[providers.embed-only]\nkind = \"local\"\nmodel = \"letters\"\n[models]\ndefault = [\"embed-only\"]\n",
        local_models(),
    );
    let error = router
        .generate("t1", "default", &chat("hi"), None)
        .await
        .unwrap_err();
    assert!(
        error.attempts()[0].error.contains("does not generate text"),
        "{error:?}"
    );
}

#[tokio::test]
async fn unregistered_local_model_is_unavailable() {
    let router = router(
        "[providers.missing]\nkind = \"local\"\nmodel = \"smollm2\"\n[models]\ndefault = [\"missing\"]\n",
    );
    let status = router.status();
    assert_eq!(
        status[0].unavailable.as_deref(),
        Some("no local model `smollm2` is registered")
    );
}
