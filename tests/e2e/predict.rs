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
