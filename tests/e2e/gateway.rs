//! Gateway policies from `[application.tool.copycar.gateway]`: rate limits
//! per client, per user and per API key, failed-login limits, per-route
//! body limits and CORS.

use crate::auth::{PASSWORD, call, register};
use crate::support::{Host, app_options, client, wasm};
use serde_json::json;

fn manifest(policies: &str) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "gateway-test"
[variables]
token_signing_key = {{ required = true, secret = true }}

[application.tool.copycar.gateway]
cors_origins = ["http://app.localhost:5173"]
{policies}

[[trigger.http]]
route = "/api/v1/auth/..."
component = "auth"
[[trigger.http]]
route = "/hello"
component = "hello"

[component.auth]
source = "{auth}"
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://locks.copycar.internal"]
[component.auth.variables]
token_signing_key = "{{{{ token_signing_key }}}}"
[component.hello]
source = "{hello}"
"#,
        auth = wasm("auth").display(),
        hello = wasm("hello").display(),
    )
}

fn start(policies: &str) -> Host {
    Host::start_with(&manifest(policies), app_options())
}

#[tokio::test]
async fn per_client_limit_returns_429_with_retry_after() {
    let host = start(
        "[[application.tool.copycar.gateway.routes]]\nroute = \"/hello\"\nrate_per_client = \"3/min\"\n",
    );
    for _ in 0..3 {
        assert_eq!(
            client()
                .get(host.url("/hello"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let limited = client().get(host.url("/hello")).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "rate limit for this client address exceeded");
    assert!(
        host.wait_for_log("request rate-limited")
            .contains("request rate-limited")
    );
}

#[tokio::test]
async fn per_user_and_per_key_limits_are_separate() {
    let host = start(
        "[[application.tool.copycar.gateway.routes]]\nroute = \"/api/v1/auth/me\"\nrate_per_subject = \"2/min\"\nrate_per_key = \"2/min\"\n",
    );
    let a = register(&host, "a@limits.example", "A").await;
    let b = register(&host, "b@limits.example", "B").await;
    for _ in 0..2 {
        assert_eq!(
            call(&host, "GET", "/me", Some(&a.access), None)
                .await
                .status,
            200
        );
    }
    assert_eq!(
        call(&host, "GET", "/me", Some(&a.access), None)
            .await
            .status,
        429
    );
    assert_eq!(
        call(&host, "GET", "/me", Some(&b.access), None)
            .await
            .status,
        200,
        "B has its own bucket"
    );

    let key = call(
        &host,
        "POST",
        "/api-keys",
        Some(&b.access),
        Some(json!({"name": "k"})),
    )
    .await;
    let key = key.body["key"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(
            call(&host, "GET", "/me", Some(&key), None).await.status,
            200
        );
    }
    let limited = call(&host, "GET", "/me", Some(&key), None).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.body["error"],
        "rate limit for this API key exceeded"
    );

    // A forged token is not a user: it cannot drain a user's bucket.
    let forged = format!("{}x", a.access);
    assert_eq!(
        call(&host, "GET", "/me", Some(&forged), None).await.status,
        401
    );
}

#[tokio::test]
async fn failed_logins_per_client_are_limited() {
    let host = start(
        "[[application.tool.copycar.gateway.routes]]\nroute = \"/api/v1/auth/login\"\nfailed_logins_per_client = \"2/15min\"\n",
    );
    register(&host, "f@limits.example", "F").await;
    for other in ["x1@limits.example", "x2@limits.example"] {
        let reply = call(
            &host,
            "POST",
            "/login",
            None,
            Some(json!({"email": other, "password": "wrong password!"})),
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    // Even the right password is refused from this address now.
    let blocked = call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "f@limits.example", "password": PASSWORD})),
    )
    .await;
    assert_eq!(blocked.status, 429, "{}", blocked.body);
    assert_eq!(
        blocked.body["error"],
        "too many failed logins from this address"
    );
    assert!(blocked.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn route_body_limit_applies() {
    let host = start(
        "[[application.tool.copycar.gateway.routes]]\nroute = \"/api/v1/auth/...\"\nmax_body_bytes = 256\n",
    );
    let body = json!({"email": "a@b.example", "password": "p".repeat(300), "organisation": "x"});
    let reply = call(&host, "POST", "/register", None, Some(body)).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let host = start("");
    let preflight = client()
        .request(reqwest::Method::OPTIONS, host.url("/api/v1/auth/me"))
        .header("origin", "http://app.localhost:5173")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://app.localhost:5173"
    );
    assert!(
        preflight.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );

    let denied = client()
        .request(reqwest::Method::OPTIONS, host.url("/api/v1/auth/me"))
        .header("origin", "http://evil.localhost")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert!(!denied.headers().contains_key("access-control-allow-origin"));

    let simple = client()
        .get(host.url("/hello"))
        .header("origin", "http://app.localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "http://app.localhost:5173"
    );
    let other = client()
        .get(host.url("/hello"))
        .header("origin", "http://evil.localhost")
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[test]
fn invalid_gateway_config_fails_at_start() {
    let logs = crate::support::start_failure(
        &manifest(
            "[[application.tool.copycar.gateway.routes]]\nroute = \"/hello\"\nrate_per_client = \"lots\"\n",
        ),
        app_options(),
    );
    assert!(
        logs.contains("application.tool.copycar.gateway.routes[0].rate_per_client"),
        "{logs}"
    );
}

#[test]
fn short_signing_key_fails_at_start() {
    let mut options = app_options();
    options.env = vec![("SPIN_VARIABLE_TOKEN_SIGNING_KEY".into(), "too-short".into())];
    let logs = crate::support::start_failure(&manifest(""), options);
    assert!(logs.contains("at least 32"), "{logs}");
}

#[tokio::test]
async fn odd_paths_and_repeated_credentials_are_rejected() {
    let host = start(
        "[[application.tool.copycar.gateway.routes]]\nroute = \"/api/v1/auth/login\"\nfailed_logins_per_client = \"2/hour\"\n",
    );
    // An empty segment would select another policy than the component runs.
    // (reqwest normalises `.` and `..` before sending, so the unit tests of
    // the path check cover those.)
    for path in [
        "/api/v1/auth//login",
        "/api/v1/auth///login",
        "//api/v1/auth/login",
    ] {
        let response = client()
            .post(format!("http://{}{path}", host.addr))
            .json(&json!({"email": "a@b.example", "password": "wrong password!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
    }
    let a = register(&host, "dup@headers.example", "D").await;
    for (first, second) in [
        ("authorization", "authorization"),
        ("x-api-key", "x-api-key"),
    ] {
        let response = client()
            .get(host.url("/api/v1/auth/me"))
            .header(first, "Bearer junk")
            .header(second, format!("Bearer {}", a.access))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{first} twice");
    }
}

#[tokio::test]
async fn max_concurrent_queues_requests_on_a_route() {
    let policy =
        "[[application.tool.copycar.gateway.routes]]\nroute = \"/probe/...\"\nmax_concurrent = 1\n";
    let host = Host::start_with(
        &crate::support::probe_manifest("", policy),
        crate::support::HostOptions {
            args: vec!["--request-timeout-ms".into(), "2000".into()],
            ..Default::default()
        },
    );
    // One slot: the second sleeper waits for the first (1.5 s), and its
    // deadline runs from arrival, so its own 1.5 s cannot finish in 2 s.
    let url = host.url("/probe/sleep?ms=1500");
    let (a, b) = tokio::join!(client().get(&url).send(), async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        client().get(&url).send().await
    });
    let first = a.unwrap().status().as_u16();
    let second = b.unwrap().status().as_u16();
    assert_eq!(first, 200);
    assert!(second == 503 || second == 504, "{second}");
    // Once the slot is free, requests run again.
    let (status, _) = crate::support::get_json(&host.url("/probe/echo")).await;
    assert_eq!(status, 200);
}
