//! Response-rate predictions: the predict component, the in-process models
//! service, `copycar train` and promotion without a restart.

use crate::auth::{call, register};
use crate::support::{Host, app_manifest, app_options, client, workspace_root};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn record() -> Value {
    json!({
        "age": 58, "job": "management", "marital": "married", "education": "tertiary",
        "default": "no", "balance": 2143, "housing": "yes", "loan": "no", "contact": "unknown",
        "day": 5, "month": "may", "campaign": 1, "pdays": -1, "previous": 0, "poutcome": "unknown"
    })
}

fn start_with_models(models_dir: &Path) -> Host {
    let mut options = app_options();
    options.args = vec!["--models-dir".into(), models_dir.display().to_string()];
    Host::start_with(&app_manifest(), options)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

async fn post(host: &Host, token: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(host.url("/api/v1/predict/response-rate"))
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

#[tokio::test]
async fn predicts_a_batch_with_factors() {
    let host = start_with_models(&workspace_root().join("models/registry"));
    let account = register(&host, "scorer@example.com", "Scorer").await;
    let mut second = record();
    second["poutcome"] = json!("success");
    second["month"] = json!("mar");

    let (status, body) = post(
        &host,
        &account.access,
        json!({"records": [record(), second]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["version"], "v1");
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    for prediction in predictions {
        let p = prediction["probability"].as_f64().unwrap();
        assert!(p > 0.0, "{prediction}");
        assert!(p < 1.0, "{prediction}");
        assert!(prediction["uncertainty"].as_f64().unwrap() >= 0.0);
        assert_eq!(
            prediction["factors"].as_array().unwrap().len(),
            3,
            "{prediction}"
        );
    }
    // A past success and a March contact are strong signals in this data.
    let first = predictions[0]["probability"].as_f64().unwrap();
    let strong = predictions[1]["probability"].as_f64().unwrap();
    assert!(strong > first, "{first} vs {strong}");

    let info = call(&host, "GET", "/me", Some(&account.access), None).await;
    assert_eq!(info.status, 200);
    let model = client()
        .get(host.url("/api/v1/predict/response-rate"))
        .bearer_auth(&account.access)
        .send()
        .await
        .unwrap();
    let model: Value = model.json().await.unwrap();
    assert_eq!(model["version"], "v1");
    assert!(model["test"]["roc_auc"].as_f64().unwrap() > 0.7, "{model}");
}

#[tokio::test]
async fn invalid_records_get_400_naming_the_field() {
    let host = start_with_models(&workspace_root().join("models/registry"));
    let account = register(&host, "checker@example.com", "Checker").await;

    let mut bad_job = record();
    bad_job["job"] = json!("astronaut");
    let (status, body) = post(
        &host,
        &account.access,
        json!({"records": [record(), bad_job]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "job");
    assert_eq!(body["index"], 1);

    let mut unknown = record();
    unknown["shoe_size"] = json!(43);
    let (status, body) = post(&host, &account.access, json!({"records": [unknown]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "shoe_size");

    let (status, body) = post(&host, &account.access, json!({"records": []})).await;
    assert_eq!(status, 400, "{body}");
    let many: Vec<Value> = (0..1001).map(|_| record()).collect();
    let (status, body) = post(&host, &account.access, json!({"records": many})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(&host, &account.access, json!({"rows": [record()]})).await;
    assert_eq!(status, 400);

    let anonymous = client()
        .post(host.url("/api/v1/predict/response-rate"))
        .json(&json!({"records": [record()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn empty_registry_is_503_not_a_crash() {
    let empty = tempfile::tempdir().unwrap();
    let host = start_with_models(empty.path());
    let account = register(&host, "early@example.com", "Early").await;
    let (status, body) = post(&host, &account.access, json!({"records": [record()]})).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("copycar train"),
        "{body}"
    );
}

#[tokio::test]
async fn promotion_switches_model_without_restart() {
    let models = tempfile::tempdir().unwrap();
    copy_dir(&workspace_root().join("models/registry"), models.path());
    let registry = models.path().join("response-rate");
    let host = start_with_models(models.path());
    let account = register(&host, "ops@example.com", "Ops").await;
    let (_, body) = post(&host, &account.access, json!({"records": [record()]})).await;
    assert_eq!(body["model"]["version"], "v1", "{body}");

    // A second version: the same weights under a new name is enough to see
    // which version serves.
    copy_dir(&registry.join("v1"), &registry.join("v2"));
    let card_path = registry.join("v2/card.json");
    let card = std::fs::read_to_string(&card_path)
        .unwrap()
        .replace("\"version\": \"v1\"", "\"version\": \"v2\"");
    std::fs::write(&card_path, card).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_copycar"))
        .args(["models", "promote", "v2", "--registry"])
        .arg(&registry)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut served = String::new();
    for _ in 0..50 {
        let (_, body) = post(&host, &account.access, json!({"records": [record()]})).await;
        served = body["model"]["version"].as_str().unwrap_or("").to_string();
        if served == "v2" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(served, "v2");
    assert!(
        host.wait_for_log("version=v2")
            .contains("loaded response-rate model")
    );

    let output = Command::new(env!("CARGO_BIN_EXE_copycar"))
        .args(["models", "promote", "v9", "--registry"])
        .arg(&registry)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("`v9` not found"));
}

#[test]
fn train_command_saves_and_promotes_a_version() {
    let registry = tempfile::tempdir().unwrap();
    let data = workspace_root().join("models/tests/fixtures/bank-sample.csv");
    let output = Command::new(env!("CARGO_BIN_EXE_copycar"))
        .args(["train", "response-rate", "--promote", "--data"])
        .arg(&data)
        .arg("--registry")
        .arg(registry.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("epoch"), "progress is shown: {stderr}");
    assert!(stdout.contains("Saved v1"), "{stdout}");
    assert!(stdout.contains("Promoted v1"), "{stdout}");
    assert!(registry.path().join("v1/card.json").is_file());

    let list = Command::new(env!("CARGO_BIN_EXE_copycar"))
        .args(["models", "list", "--registry"])
        .arg(registry.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "v1 (active)");

    let missing = Command::new(env!("CARGO_BIN_EXE_copycar"))
        .args(["train", "response-rate", "--data", "/nonexistent.csv"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));
}

/// 2024-01-01 00:00 UTC, a Monday.
const MONDAY_MS: i64 = 1_704_067_200_000;
const HOUR_MS: i64 = 3_600_000;

/// Returns the `index`-th output of a SplitMix64 generator seeded with 7.
fn splitmix(index: u64) -> u64 {
    let mut z = 7u64.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seeded events with a planted pattern: recipients `r-0` to `r-29` of
/// segment `emea`, one hour ahead of UTC, open sends made at 09:00 local
/// time with probability 0.7 (their neighbours 08:00 and 10:00 too) and
/// others with 0.05. Sends fall at random hours over four weeks.
fn planted_events() -> Vec<Value> {
    let mut events = Vec::new();
    let mut draw = 0u64;
    for r in 0..30 {
        for k in 0..60 {
            let hours = (splitmix(draw) % (4 * 168)) as i64;
            let chance = (splitmix(draw + 1) % 1000) as f64 / 1000.0;
            draw += 2;
            let sent_at = MONDAY_MS + hours * HOUR_MS + 5 * 60_000;
            let local_hour = (hours + 1) % 24;
            let p = if (8..=10).contains(&local_hour) {
                0.7
            } else {
                0.05
            };
            let id = format!("r-{r}-c{k}");
            events.push(json!({
                "event_id": format!("{id}-sent"), "type": "sent", "occurred_at": sent_at,
                "recipient": format!("r-{r}"), "campaign": format!("c{k}"), "channel": "email",
                "properties": {"segment": "emea", "utc_offset_minutes": 60}
            }));
            if chance < p {
                events.push(json!({
                    "event_id": format!("{id}-open"), "type": "open",
                    "occurred_at": sent_at + 20 * 60_000,
                    "recipient": format!("r-{r}"), "campaign": format!("c{k}")
                }));
            }
            if chance < p / 4.0 {
                events.push(json!({
                    "event_id": format!("{id}-reply"), "type": "reply",
                    "occurred_at": sent_at + HOUR_MS,
                    "recipient": format!("r-{r}"), "campaign": format!("c{k}")
                }));
            }
        }
    }
    events
}

async fn post_send_time(host: &Host, token: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(host.url("/api/v1/predict/send-time"))
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

async fn send_time_version(host: &Host, token: &str) -> Value {
    let response = client()
        .get(host.url("/api/v1/predict/send-time"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap_or(Value::Null)
}

fn copycar(args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_copycar"))
        .args(args)
        .output()
        .expect("failed to run copycar");
    assert!(
        output.status.success(),
        "copycar {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test]
async fn send_time_trains_from_ingested_events_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let data = dir.path().join("data");
    let mut options = app_options();
    options.args = vec!["--models-dir".into(), models.display().to_string()];
    options.data_dir = Some(data.clone());
    let host = Host::start_with(&app_manifest(), options);
    let account = register(&host, "timer@example.com", "Timer").await;
    let other = register(&host, "other@example.com", "Other").await;

    // Before training there is no model for the tenant.
    let (status, body) = post_send_time(&host, &account.access, json!({"recipients": [{}]})).await;
    assert_eq!(status, 503, "{body}");

    // Ingest over HTTP.
    let events = planted_events();
    for batch in events.chunks(1000) {
        let response = client()
            .post(host.url("/api/v1/events"))
            .bearer_auth(&account.access)
            .json(&json!({"events": batch}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["accepted"], batch.len(), "{body}");
    }

    // Train with the real CLI while the host keeps the log open.
    let registry = models.join("send-time");
    let args = [
        "train",
        "send-time",
        "--data-dir",
        data.to_str().unwrap(),
        "--tenant",
        &account.tenant_id,
        "--registry",
        registry.to_str().unwrap(),
    ];
    let output = copycar(&[&args[..], &["--promote"]].concat());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Saved send-time v1"), "{stdout}");
    assert!(stdout.contains("Promoted v1"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fitting on all 1800 sends"), "{stderr}");

    // The host picks the version up without a restart.
    let request = json!({"top_k": 2, "recipients": [
        {"recipient": "r-3", "utc_offset_minutes": 60},
        {"recipient": "new", "channel": "email", "segment": "emea", "utc_offset_minutes": 60},
        {}
    ]});
    let mut reply = (0, Value::Null);
    for _ in 0..100 {
        reply = post_send_time(&host, &account.access, request.clone()).await;
        if reply.0 != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, body) = reply;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["version"], "v1");
    let predictions = body["predictions"].as_array().unwrap();
    let levels: Vec<&str> = predictions
        .iter()
        .map(|p| p["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["recipient", "segment", "global"]);
    for prediction in predictions {
        let best = prediction["best_hours"].as_array().unwrap();
        assert_eq!(best.len(), 2, "{prediction}");
        let first = &best[0];
        let hour = first["hour"].as_u64().unwrap();
        assert!((8..=10).contains(&hour), "{prediction}");
        let p = first["open_probability"].as_f64().unwrap();
        let [low, high] = [
            first["open_interval"][0].as_f64().unwrap(),
            first["open_interval"][1].as_f64().unwrap(),
        ];
        assert!(low < p, "{first}");
        assert!(p < high, "{first}");
        assert!(first["effective_sample_size"].as_f64().unwrap() > 0.0);
        assert!(p >= best[1]["open_probability"].as_f64().unwrap());
    }
    // One hour ahead of UTC: the local hour starts 60 minutes earlier in UTC.
    let first = &predictions[0]["best_hours"][0];
    let local_minute = first["hour_of_week"].as_u64().unwrap() * 60;
    assert_eq!(
        first["utc_minute_of_week"].as_u64().unwrap(),
        (local_minute + 168 * 60 - 60) % (168 * 60)
    );

    // Invalid input names the field and the item.
    let (status, body) = post_send_time(
        &host,
        &account.access,
        json!({"recipients": [{}, {"utc_offset_minutes": 1000}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "utc_offset_minutes");
    assert_eq!(body["index"], 1);
    let (status, body) = post_send_time(
        &host,
        &account.access,
        json!({"recipients": [{"recipient": 5}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "recipient");
    assert_eq!(body["index"], 0);
    let (status, body) = post_send_time(
        &host,
        &account.access,
        json!({"tenant": other.tenant_id, "recipients": [{}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "tenant");

    // Another tenant has no model and cannot reach this one.
    let (status, body) = post_send_time(&host, &other.access, json!({"recipients": [{}]})).await;
    assert_eq!(status, 503, "{body}");

    // The card reports the holdout comparison. Every recipient shares one
    // hour here, so the model and the single best hour pick the same.
    let info = send_time_version(&host, &account.access).await;
    assert_eq!(info["version"], "v1", "{info}");
    assert_eq!(info["split"]["test_sends"], 360, "{info}");
    assert_eq!(info["holdout"]["baseline_open_hour"], 9, "{info}");
    assert!(info["holdout"]["open"]["lift"].is_f64(), "{info}");
    assert_eq!(info["data"]["tenant"], account.tenant_id.as_str());

    // A second version goes into service on promotion, without a restart.
    let output = copycar(&args);
    assert!(String::from_utf8_lossy(&output.stdout).contains("Saved send-time v2"));
    let tenant_registry = registry.join(&account.tenant_id);
    copycar(&[
        "models",
        "promote",
        "v2",
        "--registry",
        tenant_registry.to_str().unwrap(),
    ]);
    let mut version = Value::Null;
    for _ in 0..100 {
        version = send_time_version(&host, &account.access).await["version"].clone();
        if version == "v2" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(version, "v2");
}
