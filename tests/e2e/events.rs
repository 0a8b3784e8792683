//! Event ingest: per-item results, idempotency by event id, durability
//! across a host killed mid-ingest (repeatedly), and tenant-scoped reads.

use crate::auth::register;
use crate::support::{Host, HostOptions, app_manifest, app_options, client};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

async fn post(host: &Host, token: &str, events: Value) -> (u16, Value) {
    let response = client()
        .post(host.url("/api/v1/events"))
        .bearer_auth(token)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Posts `body` as it is, without wrapping it in `{"events": ...}`.
async fn post_body(host: &Host, token: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(host.url("/api/v1/events"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn read(host: &Host, token: &str, query: &str) -> (u16, Value) {
    let response = client()
        .get(host.url(&format!("/api/v1/events{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn batch_reports_each_item_and_dedupes() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "events@example.com", "Events").await;
    let batch = json!([
        {"event_id": "e-1", "type": "click", "occurred_at": 1_733_300_000_000_i64, "campaign": "spring", "recipient": "r-9"},
        {"type": "teleport", "occurred_at": 1_733_300_000_000_i64},
        {"type": "open"},
        {"type": "custom:demo.booked", "occurred_at": 1_733_300_000_500_i64, "properties": {"value": 3}},
    ]);
    let (status, body) = post(&host, &account.access, batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["rejected"], 2, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["event_id"], "e-1");
    assert!(
        results[1]["error"].as_str().unwrap().contains("type"),
        "{body}"
    );
    assert!(
        results[2]["error"]
            .as_str()
            .unwrap()
            .contains("occurred_at"),
        "{body}"
    );
    assert!(
        results[3]["event_id"].as_str().unwrap().len() >= 16,
        "an id is assigned"
    );

    let (_, again) = post(
        &host,
        &account.access,
        json!([{"event_id": "e-1", "type": "click", "occurred_at": 1_733_300_000_000_i64}]),
    )
    .await;
    assert_eq!(again["results"][0]["duplicate"], true, "{again}");
    assert_eq!(again["results"][0]["offset"], results[0]["offset"]);

    let (status, _) = post(&host, &account.access, json!([])).await;
    assert_eq!(status, 400);
    let (status, _) = read(&host, &account.access, "?tenant=someone-else").await;
    assert_eq!(status, 400, "the tenant comes from the credential only");
    let anonymous = client()
        .get(host.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn events_survive_kill_per_tenant() {
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    let host = Host::start_with(&app_manifest(), options.clone());
    let a = register(&host, "a@events.example", "A").await;
    let b = register(&host, "b@events.example", "B").await;
    let sent: Vec<Value> = (0..3)
        .map(|i| json!({"event_id": format!("a-{i}"), "type": "sent", "occurred_at": 1_733_300_000_000_i64 + i}))
        .collect();
    let (status, body) = post(&host, &a.access, Value::Array(sent)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 3);
    post(
        &host,
        &b.access,
        json!([{"event_id": "b-0", "type": "reply", "occurred_at": 1_733_300_000_005_i64}]),
    )
    .await;
    // SIGKILL: acknowledged events must already be on disk.
    drop(host);

    let host = Host::start_with(&app_manifest(), options);
    let (status, body) = read(&host, &a.access, "?from=0&limit=10").await;
    assert_eq!(status, 200, "{body}");
    // Registration's audit record comes first; the test's events follow.
    let events = body["events"].as_array().unwrap();
    assert_eq!(events[0]["type"], "audit");
    let ids: Vec<&str> = events[1..]
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-0", "a-1", "a-2"]);
    let first = &events[1]["offset"];
    let (_, page) = read(&host, &a.access, &format!("?from={first}&limit=2")).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let (_, rest) = read(&host, &a.access, &format!("?from={}", page["next_offset"])).await;
    assert_eq!(rest["events"][0]["event_id"], "a-2");
    let (_, theirs) = read(&host, &b.access, "").await;
    let ids: Vec<&str> = theirs["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] != "audit")
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b-0"]);
    let (status, _) = read(&host, &a.access, "?limit=0").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn full_batch_of_a_thousand_is_accepted() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "bulk@example.com", "Bulk").await;
    let events: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "open", "occurred_at": 1_733_300_000_000_i64 + i, "campaign": "bulk", "recipient": format!("r-{i}")}))
        .collect();
    let (status, body) = post(&host, &account.access, Value::Array(events)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1000);
}

#[tokio::test]
async fn audit_records_reach_the_event_log() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "audited@example.com", "Audited").await;
    let other = register(&host, "other@example.com", "Other").await;
    let login = client()
        .post(host.url("/api/v1/auth/login"))
        .json(&json!({"email": "audited@example.com", "password": crate::auth::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);

    let (status, body) = read(&host, &account.access, "").await;
    assert_eq!(status, 200, "{body}");
    let actions: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "audit")
        .map(|e| e["properties"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["register", "login"], "{body}");
    let first = &body["events"][0];
    assert!(first["event_id"].as_str().unwrap().starts_with("audit-"));
    assert_eq!(first["properties"]["actor"], account.user_id);

    // The other tenant's log holds only its own registration.
    let (_, theirs) = read(&host, &other.access, "").await;
    let events = theirs["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{theirs}");
    assert_eq!(events[0]["properties"]["actor"], other.user_id);
}

/// Reads every event id of the caller in the log, page by page.
async fn logged_ids(host: &Host, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut from = 0u64;
    loop {
        let (status, page) = read(host, token, &format!("?from={from}&limit=1000")).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        ids.extend(
            events
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_string()),
        );
        let next = page["next_offset"].as_u64().unwrap();
        if events.is_empty() && next == from {
            return ids;
        }
        from = next;
    }
}

/// Posts batches until the host stops responding and returns the ids of
/// every event the host acknowledged.
async fn ingest_until_killed(url: String, token: String, prefix: String) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for batch in 0.. {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                json!({
                    "event_id": format!("{prefix}-{batch}-{i}"),
                    "type": "sent",
                    "campaign": "kill",
                    "occurred_at": 1_733_300_000_000_i64 + i,
                })
            })
            .collect();
        let response = client()
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({ "events": events }))
            .send()
            .await;
        let Ok(response) = response else {
            return acknowledged;
        };
        match response.status().as_u16() {
            200 => {}
            429 | 503 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            other => panic!("ingest answered {other}"),
        }
        // A reply cut by the kill acknowledges nothing.
        let Ok(body) = response.json::<Value>().await else {
            return acknowledged;
        };
        assert_eq!(body["accepted"], 100, "{body}");
        acknowledged.extend(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["event_id"].as_str().unwrap().to_string()),
        );
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_repeated_kills_during_ingest() {
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let mut token = None;
    for cycle in 0..4u64 {
        let host = Host::start_with(&app_manifest(), options.clone());
        let access = match &token {
            Some(access) => access,
            None => &*token.insert(register(&host, "kill@events.example", "Kill").await.access),
        }
        .clone();
        let logged: BTreeSet<String> = logged_ids(&host, &access).await.into_iter().collect();
        let lost: Vec<_> = acknowledged.difference(&logged).collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: {} acknowledged events lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );

        let writers: Vec<_> = (0..3)
            .map(|w| {
                tokio::spawn(ingest_until_killed(
                    host.url("/api/v1/events"),
                    access.clone(),
                    format!("c{cycle}-w{w}"),
                ))
            })
            .collect();
        // Kill at a different point of the ingest in each cycle.
        tokio::time::sleep(Duration::from_millis(400 + 300 * cycle)).await;
        drop(host); // SIGKILL
        let mut this_cycle = 0;
        for writer in writers {
            let ids = writer.await.unwrap();
            this_cycle += ids.len();
            acknowledged.extend(ids);
        }
        eprintln!("cycle {cycle}: {this_cycle} events acknowledged before SIGKILL");
        assert!(
            this_cycle > 0,
            "cycle {cycle} acknowledged nothing before the kill"
        );
    }

    let host = Host::start_with(&app_manifest(), options);
    let access = token.unwrap();
    let logged = logged_ids(&host, &access).await;
    let unique: BTreeSet<String> = logged.iter().cloned().collect();
    assert_eq!(unique.len(), logged.len(), "the log holds an event twice");
    eprintln!(
        "{} acknowledged, {} in the log after 4 kills",
        acknowledged.len(),
        unique.len()
    );
    let lost: Vec<_> = acknowledged.difference(&unique).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        lost.first()
    );
}

/// Builds the events table of a runtime config that puts the log on Fluvio.
fn fluvio_config(endpoint: &str, topic: &str) -> String {
    format!("[events]\nbackend = \"fluvio\"\nendpoint = \"{endpoint}\"\ntopic = \"{topic}\"\n")
}

#[test]
fn unreachable_fluvio_cluster_stops_start_up() {
    let port = crate::support::free_port();
    let options = HostOptions {
        runtime_config: Some(fluvio_config(
            &format!("127.0.0.1:{port}"),
            "copycar-events",
        )),
        ..app_options()
    };
    let logs = crate::support::start_failure(&app_manifest(), options);
    assert!(
        logs.contains("failed to open the event log on Fluvio topic `copycar-events`"),
        "{logs}"
    );
}

/// Runs against the Fluvio cluster in `COPYCAR_FLUVIO_ENDPOINT`
/// (`pipelines/fluvio/cluster.sh start` runs one on 127.0.0.1). It prints a
/// notice and passes when none is configured.
#[tokio::test]
async fn events_and_pipelines_run_on_fluvio() {
    let Ok(endpoint) = std::env::var("COPYCAR_FLUVIO_ENDPOINT") else {
        eprintln!("skipped: COPYCAR_FLUVIO_ENDPOINT is not set, so no Fluvio cluster runs");
        return;
    };
    let topic = format!("copycar-e2e-{}", std::process::id());
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        runtime_config: Some(fluvio_config(&endpoint, &topic)),
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    let host = Host::start_with(&app_manifest(), options.clone());
    let account = register(&host, "fluvio@events.example", "Fluvio").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let events: Vec<Value> = (0..5)
        .map(|i| json!({"event_id": format!("f-{i}"), "type": "sent", "campaign": "fluvio", "occurred_at": now + i}))
        .collect();
    let (status, body) = post(&host, &account.access, Value::Array(events)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 5);
    let (_, again) = post(
        &host,
        &account.access,
        json!([{"event_id": "f-0", "type": "sent", "occurred_at": now}]),
    )
    .await;
    assert_eq!(again["results"][0]["duplicate"], true, "{again}");

    // The shipped pipelines read the topic.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = client()
            .get(host.url("/api/v1/pipelines/campaign_hourly/results"))
            .bearer_auth(&account.access)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        if body["rows"][0]["row"]["sent"] == 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{body}\n{}",
            host.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A restarted host reads the same topic and keeps deduplicating.
    drop(host);
    let host = Host::start_with(&app_manifest(), options);
    let ids = logged_ids(&host, &account.access).await;
    for i in 0..5 {
        assert!(ids.contains(&format!("f-{i}")), "{ids:?}");
    }
    let (_, again) = post(
        &host,
        &account.access,
        json!([{"event_id": "f-4", "type": "sent", "occurred_at": now}]),
    )
    .await;
    assert_eq!(again["results"][0]["duplicate"], true, "{again}");
}

#[tokio::test]
async fn item_errors_name_index_and_field() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "fields@example.com", "Fields").await;
    let batch = json!([
        {"type": "open", "occurred_at": 1_733_300_000_000_i64},
        {"type": "open", "occurred_at": "yesterday"},
        "not an event",
        {"type": "open", "occurred_at": 1_733_300_000_000_i64, "campaign": ""},
        {"type": "open", "occurred_at": 1_733_300_000_000_i64, "properties": [1]},
        // Microseconds, a common unit mistake, land far in the future.
        {"type": "open", "occurred_at": 1_733_300_000_000_000_i64},
        // Seconds, the other one, land in January 1970.
        {"type": "open", "occurred_at": 1_733_300_000_i64},
    ]);
    let (status, body) = post(&host, &account.access, batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["rejected"], 6, "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(results[0]["offset"].is_u64(), "{body}");

    let expected = [
        (1, Some("occurred_at"), "must be an integer"),
        (2, None, "must be a JSON object"),
        (3, Some("campaign"), "is empty"),
        (4, Some("properties"), "must be an object"),
        (
            5,
            Some("occurred_at"),
            "more than 5 minutes after the server's clock",
        ),
        (6, Some("occurred_at"), "not seconds"),
    ];
    for (index, field, message) in expected {
        let item = &results[index];
        assert_eq!(item["index"], index, "{item}");
        match field {
            Some(field) => assert_eq!(item["field"], field, "{item}"),
            None => assert!(item.get("field").is_none(), "{item}"),
        }
        let error = item["error"].as_str().unwrap();
        assert!(error.contains(message), "item {index}: {error}");
    }
}

#[tokio::test]
async fn body_cannot_choose_the_tenant() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "mine@example.com", "Mine").await;
    let other = register(&host, "theirs@example.com", "Theirs").await;

    // A top-level tenant is an unknown field and fails the whole batch.
    let (status, body) = post_body(
        &host,
        &account.access,
        json!({"tenant": other.tenant_id, "events": [{"type": "open", "occurred_at": 1_733_300_000_000_i64}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("tenant"), "{body}");
    assert!(body["request_id"].is_string(), "{body}");

    // A tenant inside an event is ignored: the event is the caller's.
    let (status, body) = post(
        &host,
        &account.access,
        json!([{"event_id": "t-1", "tenant": other.tenant_id, "type": "open", "occurred_at": 1_733_300_000_000_i64}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    let (_, mine) = read(&host, &account.access, "").await;
    let ids: Vec<&str> = mine["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert!(ids.contains(&"t-1"), "{mine}");
    let (_, theirs) = read(&host, &other.access, "").await;
    assert!(
        theirs["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event_id"] != "t-1"),
        "{theirs}"
    );
}

#[tokio::test]
async fn batch_shape_errors_are_rejected() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "shape@example.com", "Shape").await;
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"type": "open", "occurred_at": i}))
        .collect();
    let (status, body) = post(&host, &account.access, Value::Array(too_many)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "events", "{body}");

    let (status, body) = post_body(&host, &account.access, json!({"events": 5})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON body"),
        "{body}"
    );

    let response = client()
        .post(host.url("/api/v1/events"))
        .bearer_auth(&account.access)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}
