//! Event ingest: per-item results, idempotency by event id, durability
//! across a killed host, and tenant-scoped reads.

use crate::auth::register;
use crate::support::{Host, HostOptions, app_manifest, app_options, client};
use serde_json::{Value, json};

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
        json!([{"event_id": "e-1", "type": "click", "occurred_at": 1}]),
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
        json!([{"event_id": "b-0", "type": "reply", "occurred_at": 5}]),
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

#[tokio::test]
async fn item_errors_name_index_and_field() {
    let host = Host::start_with(&app_manifest(), app_options());
    let account = register(&host, "fields@example.com", "Fields").await;
    let batch = json!([
        {"type": "open", "occurred_at": 1_733_300_000_000_i64},
        {"type": "open", "occurred_at": "yesterday"},
        "not an event",
        {"type": "open", "occurred_at": 1, "campaign": ""},
        {"type": "open", "occurred_at": 1, "properties": [1]},
    ]);
    let (status, body) = post(&host, &account.access, batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["rejected"], 4, "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(results[0]["offset"].is_u64(), "{body}");

    let expected = [
        (1, Some("occurred_at"), "must be an integer"),
        (2, None, "must be a JSON object"),
        (3, Some("campaign"), "is empty"),
        (4, Some("properties"), "must be an object"),
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
        json!({"tenant": other.tenant_id, "events": [{"type": "open", "occurred_at": 1}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("tenant"), "{body}");
    assert!(body["request_id"].is_string(), "{body}");

    // A tenant inside an event is ignored: the event is the caller's.
    let (status, body) = post(
        &host,
        &account.access,
        json!([{"event_id": "t-1", "tenant": other.tenant_id, "type": "open", "occurred_at": 1}]),
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
