//! Spin's routing rules and routing headers.

use crate::support::{Host, client, get_json, wasm};

fn routing_manifest() -> String {
    let probe = wasm("probe");
    let hello = wasm("hello");
    format!(
        r#"spin_manifest_version = 2
[application]
name = "routing"
[application.trigger.http]
base = "/"

[[trigger.http]]
route = "/..."
component = "fallback"
[[trigger.http]]
route = "/api/..."
component = "api"
[[trigger.http]]
route = "/api/v1/..."
component = "v1"
[[trigger.http]]
route = "/api/hello"
component = "hello"
[[trigger.http]]
route = {{ private = true }}
component = "secret"

[component.fallback]
source = "{probe}"
[component.api]
source = "{probe}"
[component.v1]
source = "{probe}"
allowed_outbound_hosts = ["http://secret.spin.internal", "http://self"]
[component.hello]
source = "{hello}"
[component.secret]
source = "{probe}"
"#,
        probe = probe.display(),
        hello = hello.display()
    )
}

#[tokio::test]
async fn longest_match_and_exact_routes_win() {
    let host = Host::start(&routing_manifest());

    let response = client().get(host.url("/api/hello")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Hello from CopyCar\n");

    let (status, headers) = get_json(&host.url("/api/v1/headers")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["spin-matched-route"], "/api/v1/...");
    assert_eq!(headers["spin-component-route"], "/api/v1");
    assert_eq!(headers["spin-path-info"], "/headers");

    let (_, headers) = get_json(&host.url("/api/headers")).await;
    assert_eq!(headers["spin-matched-route"], "/api/...");

    let (_, headers) = get_json(&host.url("/headers?x=1")).await;
    assert_eq!(headers["spin-matched-route"], "/...");
    assert_eq!(headers["spin-path-info"], "/headers");
    assert_eq!(headers["spin-base-path"], "/");
    assert_eq!(headers["spin-full-url"], host.url("/headers?x=1"));
    let client_addr = headers["spin-client-addr"].as_str().unwrap();
    assert!(client_addr.starts_with("127.0.0.1:"), "{client_addr}");
}

#[tokio::test]
async fn client_cannot_forge_routing_headers() {
    let host = Host::start(&routing_manifest());
    let response = client()
        .get(host.url("/api/headers"))
        .header("spin-path-info", "/forged")
        .header("spin-client-addr", "6.6.6.6:1")
        .send()
        .await
        .unwrap();
    let headers: serde_json::Value = response.json().await.unwrap();
    assert_eq!(headers["spin-path-info"], "/headers");
    assert!(
        headers["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

#[tokio::test]
async fn private_component_has_no_public_route() {
    let host = Host::start(&routing_manifest());
    // `/secret/...` falls through to the catch-all, never to `secret`: the
    // catch-all probe receives the whole path and has no such endpoint.
    let (status, body) = get_json(&host.url("/secret/headers")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "no probe endpoint /secret/headers");
}

#[tokio::test]
async fn private_component_is_reachable_from_components() {
    let host = Host::start(&routing_manifest());
    let url = host.url("/api/v1/fetch?url=http://secret.spin.internal/headers");
    let response = client()
        .get(url)
        .header("x-request-id", "outer-7")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 200, "{body}");
    let inner: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["spin-path-info"], "/headers");
    // The nested call keeps the original request id.
    assert_eq!(inner["x-request-id"], "outer-7");
    let logs = host.wait_for_log("destination=Component(\"secret\")");
    assert!(logs.contains("destination=Component(\"secret\")"), "{logs}");
}

#[tokio::test]
async fn self_requests_go_through_the_router() {
    let host = Host::start(&routing_manifest());
    let (status, body) = get_json(&host.url("/api/v1/fetch?url=http://self/api/hello")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["body"], "Hello from CopyCar\n");
}

#[tokio::test]
async fn component_without_grant_cannot_call_private_component() {
    let host = Host::start(&routing_manifest());
    let (status, body) =
        get_json(&host.url("/api/fetch?url=http://secret.spin.internal/headers")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Denied"), "{body}");
}

#[tokio::test]
async fn unknown_path_without_catch_all_is_404() {
    let manifest = crate::support::probe_manifest("", "");
    let host = Host::start(&manifest);
    let response = client().get(host.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "no route matches /nowhere");
    assert_eq!(body["request_id"], request_id);
}
