//! The content component: copy from the template engine for every content
//! type, template storage and validation, tenant isolation, stored
//! profiles, and the language-model path against a local server that
//! speaks the llm service's `/v1/infer` contract.

use crate::auth::register;
use crate::support::{Host, HostOptions, RedisServer, app_manifest, app_options, client};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn call(
    host: &Host,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = host.url(&format!("/api/v1/content{path}"));
    let mut request = client().request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

fn inline_account() -> Value {
    json!({
        "domain": "acme.com",
        "name": "Acme",
        "facts": [
            {"kind": "talking_point", "value": "You are hiring three data engineers"},
            {"kind": "pain", "value": "Slow month-end reporting"},
            {"kind": "product", "value": "a payroll app for small shops"}
        ]
    })
}

fn sender() -> Value {
    json!({"name": "Grace Hopper", "company": "Navy Tools", "title": "Head of Sales"})
}

/// Collects every string in the content.
fn texts(content: &Value) -> Vec<String> {
    match content {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().flat_map(texts).collect(),
        Value::Object(map) => map.values().flat_map(texts).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn template_engine_writes_every_type() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "content@example.com", "Content").await;
    for content_type in [
        "email",
        "email_sequence",
        "linkedin_post",
        "linkedin_message",
        "website_copy",
        "subject_lines",
    ] {
        let request = json!({
            "content_type": content_type,
            "account": inline_account(),
            "parameters": {"sender": sender(), "tone": "friendly", "length": "medium"}
        });
        let (status, body) = call(&host, "POST", "", Some(&account.access), Some(request)).await;
        assert_eq!(status, 200, "{content_type}: {body}");
        assert_eq!(body["engine"], "template", "{content_type}: {body}");
        assert!(
            body["model"]
                .as_str()
                .unwrap()
                .starts_with(&format!("builtin:{content_type}/default#")),
            "{content_type}: {}",
            body["model"]
        );
        assert!(body["fallback_reason"].is_string(), "{body}");
        let score = body["quality"]["score"].as_f64().unwrap();
        assert!(score >= 0.8, "{content_type}: {score} {body:#}");
        assert_eq!(body["quality"]["passed"], true, "{content_type}: {body:#}");
        let criteria = body["quality"]["criteria"].as_array().unwrap();
        for criterion in criteria {
            for field in ["name", "score", "weight", "pass", "detail"] {
                assert!(!criterion[field].is_null(), "{content_type}: {criterion}");
            }
        }
        for text in texts(&body["content"]) {
            assert!(
                !text.contains("{{") && !text.contains("[["),
                "{content_type}: {text}"
            );
        }
        let facts = body["facts_used"].as_array().unwrap();
        assert!(!facts.is_empty(), "{content_type}: {body}");
        for fact in facts {
            assert_eq!(fact["source"], "provided", "{fact}");
            assert!(fact["id"].as_str().unwrap().starts_with('f'), "{fact}");
        }
        assert!(body["generated_at"].as_u64().unwrap() > 1_700_000_000_000);
        let content = &body["content"];
        match content_type {
            "email" => {
                assert!(
                    content["subject"].as_str().unwrap().contains("Acme"),
                    "{content}"
                );
                assert!(
                    content["body"].as_str().unwrap().contains("Grace Hopper"),
                    "{content}"
                );
            }
            "email_sequence" => {
                let steps = content["steps"].as_array().unwrap();
                assert_eq!(steps.len(), 3, "three steps by default: {content}");
                assert_eq!(steps[0]["delay_days"], 0);
                assert!(steps[1]["delay_days"].as_u64().unwrap() > 0);
            }
            "website_copy" => assert!(content["headline"].is_string(), "{content}"),
            "subject_lines" => {
                assert_eq!(content["lines"].as_array().unwrap().len(), 5, "{content}")
            }
            _ => assert!(content["body"].is_string(), "{content}"),
        }
    }

    // Sequence length and subject-line count follow the parameters.
    let (status, body) = call(
        &host,
        "POST",
        "",
        Some(&account.access),
        Some(json!({"content_type": "email_sequence", "account": inline_account(), "parameters": {"steps": 5}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"]["steps"].as_array().unwrap().len(), 5);
    let (_, body) = call(
        &host,
        "POST",
        "",
        Some(&account.access),
        Some(json!({"content_type": "subject_lines", "account": inline_account(), "parameters": {"count": 2}})),
    )
    .await;
    assert_eq!(
        body["content"]["lines"].as_array().unwrap().len(),
        2,
        "{body}"
    );
}

#[tokio::test]
async fn bad_input_gets_4xx_naming_field() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "bad@example.com", "Bad").await;
    let token = Some(account.access.as_str());

    let (status, _) = call(
        &host,
        "POST",
        "",
        None,
        Some(json!({"content_type": "email"})),
    )
    .await;
    assert_eq!(status, 401);

    let cases = [
        (json!({"account": inline_account()}), "content_type"),
        (
            json!({"content_type": "fax", "account": inline_account()}),
            "content_type",
        ),
        (json!({"content_type": "email"}), "account_id"),
        (
            json!({"content_type": "email", "account": {"domain": "nope"}}),
            "account.domain",
        ),
        (
            json!({"content_type": "email", "account": {"domain": "a.com", "facts": [{"kind": "mood", "value": "x"}]}}),
            "account.facts",
        ),
        (
            json!({"content_type": "email", "account": inline_account(), "parameters": {"length": "epic"}}),
            "parameters.length",
        ),
        (
            json!({"content_type": "email", "account": inline_account(), "parameters": {"count": 3}}),
            "parameters.count",
        ),
    ];
    for (request, field) in cases {
        let text = request.to_string();
        let (status, body) = call(&host, "POST", "", token, Some(request)).await;
        assert_eq!(status, 400, "{text}: {body}");
        assert_eq!(body["field"], field, "{text}: {body}");
        assert!(body["error"].as_str().unwrap().len() > 10, "{body}");
    }

    let (status, body) = call(
        &host,
        "POST",
        "",
        token,
        Some(json!({"content_type": "email", "account_id": "unknown.example"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unknown.example"),
        "{body}"
    );

    let response = client()
        .post(host.url("/api/v1/content"))
        .bearer_auth(&account.access)
        .header("content-type", "text/plain")
        .body("email please")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let response = client()
        .post(host.url("/api/v1/content"))
        .bearer_auth(&account.access)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let (status, _) = call(&host, "GET", "", token, None).await;
    assert_eq!(status, 405);
    let (status, _) = call(&host, "GET", "/nothing", token, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn templates_crud_and_validation() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "templates@example.com", "Templates").await;
    let token = Some(account.access.as_str());

    let (status, body) = call(&host, "GET", "/templates", token, None).await;
    assert_eq!(status, 200, "{body}");
    let builtins = body["templates"].as_array().unwrap();
    assert_eq!(builtins.len(), 6, "{body}");
    assert!(builtins.iter().all(|t| t["source"] == "builtin"));

    let (status, body) = call(&host, "GET", "/templates/email/default", token, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "builtin");
    assert!(body["template"].as_str().unwrap().contains("@subject"));

    let (status, _) = call(&host, "GET", "/templates/email/saas", token, None).await;
    assert_eq!(status, 404);

    let template = "@subject\nPayroll questions at {{account.name}}\n@body\nHi {{account.name}} team,\n\n\
        [[I read that {{fact.talking_point}}. ]]Teams that grow fast often find that payroll takes more of their week than it should. \
        We help finance teams run it in a few clicks, and it fits the tools they already use. \
        [[Many teams like yours deal with {{fact.pain}}. ]]Nothing changes for your staff, and setup is quick.\n\n\
        {{cta}}\n\nBest,\n[[{{sender.name}}]]";
    let (status, body) = call(
        &host,
        "PUT",
        "/templates/email/saas",
        token,
        Some(json!({"template": template})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["variants"], json!(["main"]));

    let (status, body) = call(&host, "GET", "/templates/email/saas", token, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "tenant");
    assert_eq!(body["template"], template);
    let (_, body) = call(&host, "GET", "/templates", token, None).await;
    assert_eq!(body["templates"].as_array().unwrap().len(), 7, "{body}");

    // Generation for that industry uses the stored template.
    let (status, body) = call(
        &host,
        "POST",
        "",
        token,
        Some(
            json!({"content_type": "email", "industry": "saas", "account": inline_account(),
                    "parameters": {"sender": sender()}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["template"]["source"], "tenant", "{body}");
    assert_eq!(body["model"], "tenant:email/saas#main");
    assert_eq!(body["content"]["subject"], "Payroll questions at Acme");

    // Invalid templates are rejected with the line and column.
    let cases = [
        (
            "@subject\nHi\n@body\nHello {{account.nmae}}",
            4,
            7,
            "unknown placeholder",
        ),
        ("@subject\nHi\n@body\nA [[b", 4, 3, "not closed"),
        ("@subject\nHi\n@bdoy\nx", 3, 1, "unknown header"),
        ("@body\nOnly a body", 1, 1, "exactly one @subject"),
        (
            "@subject\nHi\n@body\nx\n@line\ny",
            5,
            1,
            "not a part of email",
        ),
    ];
    for (text, line, column, message) in cases {
        let (status, body) = call(
            &host,
            "PUT",
            "/templates/email/saas",
            token,
            Some(json!({"template": text})),
        )
        .await;
        assert_eq!(status, 400, "{text:?}: {body}");
        assert_eq!(body["field"], "template", "{body}");
        assert_eq!(body["line"], line, "{text:?}: {body}");
        assert_eq!(body["column"], column, "{text:?}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{text:?}: {body}"
        );
    }
    let (status, body) = call(
        &host,
        "PUT",
        "/templates/email/saas",
        token,
        Some(json!({"text": "x"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &host,
        "PUT",
        "/templates/fax/saas",
        token,
        Some(json!({"template": "@body\nx"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "content_type");
    let (status, body) = call(
        &host,
        "PUT",
        "/templates/email/Big%20Shops",
        token,
        Some(json!({"template": template})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "industry");

    // The rejected writes left the stored template alone.
    let (_, body) = call(&host, "GET", "/templates/email/saas", token, None).await;
    assert_eq!(body["template"], template);

    let (status, _) = call(&host, "DELETE", "/templates/email/saas", token, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&host, "DELETE", "/templates/email/saas", token, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&host, "GET", "/templates/email/saas", token, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&host, "POST", "/templates", token, Some(json!({}))).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn templates_are_isolated_per_tenant() {
    let host = Host::start_with(&app_manifest(), app_options());
    let a = register(&host, "a@tenants.example", "Tenant A").await;
    let b = register(&host, "b@tenants.example", "Tenant B").await;
    let template = "@line\nA note for {{account.name}}\n@line\nMore for {{account.name}} today";
    let (status, body) = call(
        &host,
        "PUT",
        "/templates/subject_lines/default",
        Some(&a.access),
        Some(json!({"template": template})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (_, mine) = call(
        &host,
        "GET",
        "/templates/subject_lines/default",
        Some(&a.access),
        None,
    )
    .await;
    assert_eq!(mine["source"], "tenant");
    let (_, theirs) = call(
        &host,
        "GET",
        "/templates/subject_lines/default",
        Some(&b.access),
        None,
    )
    .await;
    assert_eq!(theirs["source"], "builtin", "{theirs}");
    let (_, list) = call(&host, "GET", "/templates", Some(&b.access), None).await;
    assert!(
        list["templates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["source"] == "builtin")
    );

    let request = json!({"content_type": "subject_lines", "account": inline_account(), "parameters": {"count": 2}});
    let (_, body) = call(&host, "POST", "", Some(&a.access), Some(request.clone())).await;
    assert_eq!(body["model"], "tenant:subject_lines/default#main", "{body}");
    assert_eq!(body["content"]["lines"][0], "A note for Acme");
    let (_, body) = call(&host, "POST", "", Some(&b.access), Some(request)).await;
    assert_eq!(
        body["model"], "builtin:subject_lines/default#main",
        "{body}"
    );

    let (status, _) = call(
        &host,
        "DELETE",
        "/templates/subject_lines/default",
        Some(&b.access),
        None,
    )
    .await;
    assert_eq!(status, 404, "B cannot delete A's template");
    let (_, mine) = call(
        &host,
        "GET",
        "/templates/subject_lines/default",
        Some(&a.access),
        None,
    )
    .await;
    assert_eq!(mine["source"], "tenant");
}

#[tokio::test]
async fn stored_profile_supplies_facts() {
    let redis = RedisServer::start();
    let options = HostOptions {
        runtime_config: Some(format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n",
            redis.port
        )),
        ..app_options()
    };
    let host = Host::start_with(&app_manifest(), options);
    let account = register(&host, "profiles@example.com", "Profiles").await;
    let other = register(&host, "other@example.com", "Other").await;
    let profile = json!({
        "id": "globex.com", "domain": "globex.com", "name": "Globex",
        "facts": [
            {"id": "f1", "kind": "talking_point", "value": "Globex opened a second warehouse", "source": "https://globex.com/news"},
            {"id": "f2", "kind": "pain", "value": "Late shipments in peak season", "source": "model"}
        ],
        "industry": "Logistics", "size_band": null, "sells": [], "pains": ["f2"], "talking_points": ["f1"],
        "research": "fetched", "research_note": null, "engine": "rules", "model": null,
        "researched_at": 1_733_300_000_000_u64, "expires_at": 1_833_300_000_000_u64
    });
    let key = format!("account:{}:globex.com", account.tenant_id);
    redis.cli(&["HSET", "copycar:kv:default", &key, &profile.to_string()]);

    let request = json!({"content_type": "email", "account_id": "globex.com", "parameters": {"sender": sender()}});
    let (status, body) = call(
        &host,
        "POST",
        "",
        Some(&account.access),
        Some(request.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"]["id"], "globex.com");
    assert_eq!(
        body["industry"], "logistics",
        "the profile's industry picks templates"
    );
    assert_eq!(
        body["template"]["industry"], "default",
        "no logistics template exists"
    );
    let sources: Vec<&str> = body["facts_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap())
        .collect();
    assert!(sources.contains(&"https://globex.com/news"), "{body}");
    assert!(
        body["content"]["body"]
            .as_str()
            .unwrap()
            .contains("second warehouse"),
        "{body}"
    );

    // Another tenant cannot read this tenant's profile.
    let (status, _) = call(&host, "POST", "", Some(&other.access), Some(request)).await;
    assert_eq!(status, 404);
}

/// A local stand-in for the llm service. It returns the scripted replies to
/// `POST /v1/infer` in order and records each request body. It stops
/// accepting when dropped.
struct FakeModel {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
}

impl FakeModel {
    fn start(replies: Vec<(u16, Value)>) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let replies = Arc::new(Mutex::new(replies.into_iter()));
        let (seen, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => serve_infer(stream, &seen, &replies),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeModel {
            addr,
            requests,
            stop,
        }
    }

    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_infer(
    stream: TcpStream,
    seen: &Mutex<Vec<Value>>,
    replies: &Mutex<std::vec::IntoIter<(u16, Value)>>,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
            if name.eq_ignore_ascii_case("transfer-encoding") && value.trim() == "chunked" {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        read_chunked(&mut reader)
    } else {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok().map(|_| body)
    };
    let Some(body) = body else { return };
    seen.lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let (status, reply) = if request_line.starts_with("POST /v1/infer ") {
        replies.lock().unwrap().next().unwrap_or((
            503,
            json!({"error": "no replies left", "code": "no_model", "attempts": []}),
        ))
    } else {
        (404, json!({"error": "not found"}))
    };
    let text = reply.to_string();
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let mut stream = reader.into_inner();
    let _ = stream.write_all(response.as_bytes());
}

/// Reads a body sent with `transfer-encoding: chunked`.
fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).ok()?;
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        if size == 0 {
            // The last chunk is followed by an empty line (no trailers here).
            let mut end = String::new();
            reader.read_line(&mut end).ok()?;
            return Some(body);
        }
        reader.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..size]);
    }
}

fn infer_reply(text: &str) -> (u16, Value) {
    (
        200,
        json!({
            "text": text, "engine": "local", "provider": "fake", "model": "fake-model-1",
            "usage": {"prompt_tokens": 100, "generated_tokens": 50}, "cost_usd": 0.0,
            "attempts": 1, "elapsed_ms": 5
        }),
    )
}

#[tokio::test]
async fn model_path_regenerates_failing_draft() {
    let failing = json!({
        "subject": "FREE OFFER for {{first_name}}",
        "body": "ACT NOW!!! This is 100% free. Click here: https://a.example https://b.example <img src=x>"
    });
    let passing = json!({
        "subject": "A question about your hiring",
        "body": "Hi Acme team,\n\nI saw that you are hiring three data engineers [f1]. Teams that grow this fast \
                 often find that month-end reporting gets slow [f2]. We help them keep every report in one place, \
                 so nothing waits on a person at night. It takes a day to set up and your team keeps its tools. \
                 Many teams like yours start with one report and add more as they go. \
                 Would you be open to a short call next week?\n\nBest,\nGrace Hopper"
    });
    let model = FakeModel::start(vec![
        infer_reply(&failing.to_string()),
        infer_reply(&format!("Here is the e-mail:\n{passing}")),
        (
            503,
            json!({"error": "no provider serves this model", "code": "no_model", "attempts": []}),
        ),
    ]);
    let mut options = app_options();
    options.args = vec![
        "--variable".into(),
        format!("llm_url=http://127.0.0.1:{}", model.addr.port()),
    ];
    let host = Host::start_with(&app_manifest(), options);
    let account = register(&host, "model@example.com", "Model").await;

    let request = json!({"content_type": "email", "account": inline_account(),
                         "parameters": {"sender": sender()}});
    let (status, body) = call(
        &host,
        "POST",
        "",
        Some(&account.access),
        Some(request.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["engine"], "llm", "{body:#}");
    assert_eq!(body["model"], "fake-model-1");
    assert_eq!(body["provider"], "fake");
    let quality = &body["quality"];
    assert_eq!(quality["attempts"], 2, "{quality:#}");
    assert_eq!(quality["regenerations"], 1);
    assert_eq!(quality["passed"], true, "{quality:#}");
    let history = quality["history"].as_array().unwrap();
    assert_eq!(history[0]["passed"], false);
    let failed: Vec<&str> = history[0]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for name in ["spam_triggers", "placeholders", "links_and_images"] {
        assert!(failed.contains(&name), "{name} should fail: {failed:?}");
    }
    assert_eq!(history[1]["chosen"], true);

    // The marks are gone from the copy and reported as facts used.
    let text = body["content"]["body"].as_str().unwrap();
    assert!(!text.contains("[f"), "{text}");
    assert!(text.contains("three data engineers."), "{text}");
    let used: Vec<&str> = body["facts_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(used, ["f1", "f2"]);

    // The prompts carried the tenant, the tagged facts and then the feedback.
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["tenant"], account.tenant_id.as_str());
    assert_eq!(requests[0]["json"], true);
    let first = requests[0]["prompt"].as_str().unwrap();
    assert!(
        first.contains("[f2] (pain) Slow month-end reporting"),
        "{first}"
    );
    assert!(!first.contains("previous draft"), "{first}");
    let second = requests[1]["prompt"].as_str().unwrap();
    assert!(second.contains("Your previous draft failed"), "{second}");
    assert!(second.contains("spam_triggers"), "{second}");

    // With no model left, the template engine writes the copy and the
    // response gives the reason.
    let (status, body) = call(&host, "POST", "", Some(&account.access), Some(request)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["engine"], "template", "{body}");
    assert!(
        body["fallback_reason"]
            .as_str()
            .unwrap()
            .contains("no language model"),
        "{body}"
    );
    assert_eq!(model.requests().len(), 3);
}
