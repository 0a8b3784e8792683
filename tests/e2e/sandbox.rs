//! Deadlines, memory caps and traps end the offending request only.

use crate::support::{Host, HostOptions, client, get_json, probe_manifest};
use std::time::{Duration, Instant};

fn start(args: &[&str]) -> Host {
    Host::start_with(
        &probe_manifest("", ""),
        HostOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn infinite_loop_gets_504_and_host_keeps_serving() {
    let host = start(&["--request-timeout-ms", "1500"]);
    let looping = tokio::spawn({
        let url = host.url("/probe/loop");
        async move {
            let started = Instant::now();
            let response = client().get(url).send().await.unwrap();
            (
                response.status().as_u16(),
                response.headers().get("x-request-id").cloned(),
                response.text().await.unwrap(),
                started.elapsed(),
            )
        }
    });

    // While the loop runs, other requests are served promptly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let (status, body) = get_json(&host.url("/probe/echo")).await;
        assert_eq!(status, 200, "{body}");
    }

    let (status, request_id, body, elapsed) = looping.await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["request_id"], request_id.unwrap().to_str().unwrap());
    assert!(
        body["error"].as_str().unwrap().contains("1500 ms"),
        "{body}"
    );

    // The host is unaffected afterwards, and it counted the timeout.
    let (status, _) = get_json(&host.url("/probe/echo")).await;
    assert_eq!(status, 200);
    let metrics = client()
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("copycar_instance_failures_total{component=\"probe\",kind=\"timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn blocking_host_call_past_deadline_gets_504() {
    let host = start(&["--request-timeout-ms", "500"]);
    let started = Instant::now();
    let response = client()
        .get(host.url("/probe/sleep?ms=5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn allocation_past_cap_gets_500_and_under_cap_succeeds() {
    let host = start(&["--memory-limit-mb", "32"]);

    let (status, body) = get_json(&host.url("/probe/alloc?mb=8")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allocated_bytes"], 8 << 20);

    let (status, body) = get_json(&host.url("/probe/alloc?mb=64")).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("memory limit of 32 MiB"),
        "{body}"
    );
    assert!(body["request_id"].is_string());

    // A fresh instance per request: the next one starts from a clean memory.
    let (status, _) = get_json(&host.url("/probe/alloc?mb=8")).await;
    assert_eq!(status, 200);
    assert!(
        host.wait_for_log("exceeded its memory limit")
            .contains("exceeded its memory limit")
    );
}

#[tokio::test]
async fn memory_cap_comes_from_runtime_config() {
    let host = Host::start_with(
        &probe_manifest("", ""),
        HostOptions {
            runtime_config: Some(
                "[sandbox]\nmemory_limit_mb = 16\nrequest_timeout_ms = 700\n".into(),
            ),
            ..Default::default()
        },
    );
    let (status, body) = get_json(&host.url("/probe/alloc?mb=20")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body["error"].as_str().unwrap().contains("16 MiB"), "{body}");
    let response = client().get(host.url("/probe/loop")).send().await.unwrap();
    assert_eq!(response.status(), 504);
}

#[tokio::test]
async fn panic_gets_500_with_request_id() {
    let host = start(&[]);
    let response = client()
        .get(host.url("/probe/panic"))
        .header("x-request-id", "trace-panic-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-request-id"], "trace-panic-1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-panic-1");
    // The client sees no trap details; the log has them.
    assert!(!body.to_string().contains("wasm"), "{body}");
    let logs = host.wait_for_log("trapped");
    assert!(logs.contains("trace-panic-1"), "{logs}");
    assert!(logs.contains("trapped"), "{logs}");
}

#[tokio::test]
async fn concurrent_failures_leave_other_requests_intact() {
    let host = start(&["--request-timeout-ms", "3000", "--memory-limit-mb", "24"]);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let path = match i % 4 {
            0 => "/probe/loop",
            1 => "/probe/alloc?mb=48",
            2 => "/probe/panic",
            _ => "/probe/echo",
        };
        let url = host.url(path);
        tasks.push(tokio::spawn(async move {
            (
                i % 4,
                client().get(url).send().await.unwrap().status().as_u16(),
            )
        }));
    }
    for task in tasks {
        let (kind, status) = task.await.unwrap();
        let expected = [504, 500, 500, 200][kind];
        assert_eq!(status, expected, "request kind {kind}");
    }
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let host = Host::start_with(
        &probe_manifest("", ""),
        HostOptions {
            runtime_config: Some("[sandbox]\nmax_request_body_bytes = 1024\n".into()),
            ..Default::default()
        },
    );
    let response = client()
        .post(host.url("/probe/echo"))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Without Content-Length the limit applies while the body streams in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'b'; 512])).collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = client()
        .post(host.url("/probe/echo"))
        .body(streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("1024 bytes"),
        "{body}"
    );

    let response = client()
        .post(host.url("/probe/echo"))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["length"], 1000);
}

#[tokio::test]
async fn instances_share_no_memory() {
    let host = start(&[]);
    for i in 0..20 {
        let (status, body) =
            get_json(&host.url(&format!("/probe/remember?value=secret-{i}"))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["previous"], "",
            "request {i} saw a value left by an earlier request"
        );
    }
}

#[tokio::test]
async fn abandoned_requests_free_their_slots() {
    let host = start(&["--max-instances", "2", "--request-timeout-ms", "60000"]);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for _ in 0..2 {
        assert!(
            impatient.get(host.url("/probe/loop")).send().await.is_err(),
            "the loop cannot answer in time"
        );
    }
    // Both slots were held by the loops; they must be free again long
    // before the 60 s deadline.
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let response = patient.get(host.url("/probe/echo")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    host.wait_for_log("client disconnected before the response was ready");
    let metrics = client()
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("copycar_http_requests_total{component=\"probe\",code=\"499\"} 2"),
        "{metrics}"
    );
}
