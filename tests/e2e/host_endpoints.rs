//! The shipped application and the host's own endpoints: `/health`,
//! `/metrics`, `/ready`, request ids and the compile cache.

use crate::support::{Host, HostOptions, app_manifest, app_options, client, get_json};

#[tokio::test]
async fn health_reports_name_and_version() {
    let host = Host::start_with(&app_manifest(), app_options());
    let (status, body) = get_json(&host.url("/health")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["app"], "copycar");
    assert_eq!(body["version"], "0.1.0");
}

#[tokio::test]
async fn health_key_value_round_trip() {
    let host = Host::start_with(&app_manifest(), app_options());
    let (status, body) = get_json(&host.url("/health/kv")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"], "default");
    let (status, _) = get_json(&host.url("/health/nope")).await;
    assert_eq!(status, 404);
    let response = client().post(host.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn metrics_and_ready() {
    let host = Host::start_with(&app_manifest(), app_options());
    for _ in 0..3 {
        client().get(host.url("/hello")).send().await.unwrap();
    }
    client().get(host.url("/missing")).send().await.unwrap();

    let response = client().get(host.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("copycar_http_requests_total{component=\"hello\",code=\"200\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("copycar_http_requests_total{component=\"host\",code=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("copycar_instantiation_duration_seconds_count 3"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE copycar_http_request_duration_seconds histogram"),
        "{text}"
    );

    let (status, body) = get_json(&host.url("/ready")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["components"], component_count(&app_manifest()));
}

/// Counts the `[component.<id>]` tables of a manifest.
fn component_count(manifest: &str) -> usize {
    manifest
        .lines()
        .filter(|line| line.starts_with("[component.") && line.matches('.').count() == 1)
        .count()
}

#[tokio::test]
async fn request_id_is_kept_or_created() {
    let host = Host::start_with(&app_manifest(), app_options());
    let response = client()
        .get(host.url("/hello"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");

    let first = client().get(host.url("/hello")).send().await.unwrap();
    let second = client().get(host.url("/hello")).send().await.unwrap();
    let (a, b) = (
        &first.headers()["x-request-id"],
        &second.headers()["x-request-id"],
    );
    assert!(!a.is_empty());
    assert_ne!(a, b);

    // Ids with characters that could break logs or headers are replaced.
    let response = client()
        .get(host.url("/hello"))
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "bad id\twith spaces");
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    let manifest = app_manifest();
    let components = component_count(&manifest);
    let first = Host::start_with(&manifest, options.clone());
    let first_logs = first.stop();
    assert!(first_logs.contains("cache=Miss"), "{first_logs}");
    let entries = std::fs::read_dir(data.path().join("cache/components"))
        .unwrap()
        .count();
    assert_eq!(entries, components, "one cache entry per component");

    let second = Host::start_with(&manifest, options);
    let metrics = client()
        .get(second.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hits = format!("copycar_component_compilations_total{{cache=\"hit\"}} {components}");
    assert!(metrics.contains(&hits), "{metrics}");
    let (status, _) = get_json(&second.url("/health")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn corrupt_cache_entry_is_recompiled() {
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    drop(Host::start_with(&app_manifest(), options.clone()));
    for entry in std::fs::read_dir(data.path().join("cache/components")).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not a compiled component").unwrap();
    }
    let host = Host::start_with(&app_manifest(), options);
    let (status, _) = get_json(&host.url("/health")).await;
    assert_eq!(status, 200);
    let logs = host.wait_for_log("ignoring unreadable compile cache entry");
    assert!(
        logs.contains("ignoring unreadable compile cache entry"),
        "{logs}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_host() {
    let host = Host::start_with(&app_manifest(), app_options());
    let logs = host.stop();
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(logs.contains("stopped"), "{logs}");
}
