//! `fermyon:spin/key-value`: grants, durability of the embedded store, and
//! the Redis backend against a real redis-server.

use crate::support::{Host, HostOptions, RedisServer, client, get_json, probe_manifest};

async fn put(host: &Host, store: &str, key: &str, value: &str) -> u16 {
    client()
        .put(host.url(&format!("/probe/kv/{store}/{key}")))
        .body(value.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn embedded_store_survives_restart() {
    let manifest = probe_manifest("key_value_stores = [\"default\"]", "");
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..Default::default()
    };

    let host = Host::start_with(&manifest, options.clone());
    assert_eq!(put(&host, "default", "greeting", "hello").await, 200);
    assert_eq!(put(&host, "default", "gone", "x").await, 200);
    let response = client()
        .delete(host.url("/probe/kv/default/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A kill, not a clean stop: acknowledged writes must already be on disk.
    drop(host);

    let host = Host::start_with(&manifest, options);
    let (status, body) = get_json(&host.url("/probe/kv/default/greeting")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "hello");
    let (status, _) = get_json(&host.url("/probe/kv/default/gone")).await;
    assert_eq!(status, 404);
    let (_, body) = get_json(&host.url("/probe/kv/default")).await;
    assert_eq!(body["keys"], serde_json::json!(["greeting"]));
    assert!(data.path().join("kv/default.redb").exists());
}

#[tokio::test]
async fn store_not_granted_is_access_denied() {
    let runtime_config = "[key_value_store.other]\ntype = \"redb\"\n".to_string();
    let host = Host::start_with(
        &probe_manifest("key_value_stores = [\"default\"]", ""),
        HostOptions {
            runtime_config: Some(runtime_config),
            ..Default::default()
        },
    );
    let (status, body) = get_json(&host.url("/probe/kv/other/k")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "access-denied");
    let (status, body) = get_json(&host.url("/probe/kv/default/k")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not found");
}

#[tokio::test]
async fn component_without_grants_cannot_open_default() {
    let host = Host::start(&probe_manifest("", ""));
    let (status, body) = get_json(&host.url("/probe/kv/default/k")).await;
    assert_eq!(status, 403, "{body}");
}

#[test]
fn undefined_store_fails_at_start() {
    let logs = crate::support::start_failure(
        &probe_manifest("key_value_stores = [\"cache\"]", ""),
        HostOptions::default(),
    );
    assert!(
        logs.contains("key-value store `cache`, which is not defined"),
        "{logs}"
    );
}

#[tokio::test]
async fn redis_backend_round_trip() {
    let redis = RedisServer::start();
    let runtime_config = format!(
        "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n",
        redis.port
    );
    let options = HostOptions {
        runtime_config: Some(runtime_config),
        ..Default::default()
    };
    let manifest = probe_manifest("key_value_stores = [\"default\"]", "");
    let host = Host::start_with(&manifest, options.clone());

    assert_eq!(put(&host, "default", "account", "acme.example").await, 200);
    assert_eq!(put(&host, "default", "other", "1").await, 200);
    let (status, body) = get_json(&host.url("/probe/kv/default/account")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "acme.example");

    // The value is really in Redis, in the store's hash.
    assert_eq!(
        redis.cli(&["HGET", "copycar:kv:default", "account"]),
        "acme.example"
    );

    let response = client()
        .delete(host.url("/probe/kv/default/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, body) = get_json(&host.url("/probe/kv/default")).await;
    assert_eq!(body["keys"], serde_json::json!(["account"]));

    // A second host on the same Redis reads the same data.
    drop(host);
    let host = Host::start_with(&manifest, options);
    let (_, body) = get_json(&host.url("/probe/kv/default/account")).await;
    assert_eq!(body["value"], "acme.example");
    let logs = host.wait_for_log("backend=\"redis\"");
    assert!(logs.contains("backend=\"redis\""), "{logs}");
}

#[test]
fn unreachable_redis_fails_at_start() {
    let port = crate::support::free_port();
    let runtime_config = format!(
        "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n"
    );
    let logs = crate::support::start_failure(
        &probe_manifest("key_value_stores = [\"default\"]", ""),
        HostOptions {
            runtime_config: Some(runtime_config),
            ..Default::default()
        },
    );
    assert!(logs.contains("key-value store `default`"), "{logs}");
    assert!(logs.contains("Redis"), "{logs}");
}

#[tokio::test]
async fn redis_backend_recovers_after_restart() {
    let mut redis = RedisServer::start();
    let runtime_config = format!(
        "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n",
        redis.port
    );
    let host = Host::start_with(
        &probe_manifest("key_value_stores = [\"default\"]", ""),
        HostOptions {
            runtime_config: Some(runtime_config),
            ..Default::default()
        },
    );
    assert_eq!(put(&host, "default", "before", "1").await, 200);

    redis = redis.restart();
    // The first calls may fail while the connection is re-established;
    // within a bounded number of tries a write must succeed again.
    let mut recovered = false;
    for _ in 0..30 {
        if put(&host, "default", "after", "2").await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        recovered,
        "the Redis store did not recover:\n{}",
        host.logs()
    );
    assert_eq!(redis.cli(&["HGET", "copycar:kv:default", "after"]), "2");
}
