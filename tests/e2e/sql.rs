//! Ad-hoc SQL over the event history. Events ingested over HTTP for two
//! tenants are compacted in the background and queried. Every attempt to
//! reach the other tenant's rows or files is rejected or returns only the
//! caller's rows, and queries past the time, memory and row limits stop with
//! a clear error or a truncated result.

use crate::auth::{Account, register};
use crate::support::{Host, HostOptions, app_manifest, app_options, client};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

async fn query(host: &Host, token: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(host.url("/api/v1/sql"))
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

async fn sql(host: &Host, token: &str, text: &str) -> (u16, Value) {
    query(host, token, json!({ "sql": text })).await
}

/// Posts `count` events for the caller, each with a marker of its tenant in
/// the campaign, the recipient and the properties.
async fn ingest(host: &Host, token: &str, marker: &str, count: usize) {
    let events: Vec<Value> = (0..count)
        .map(|n| {
            json!({
                "event_id": format!("{marker}-{n}"),
                "type": if n % 3 == 0 { "open" } else { "click" },
                "occurred_at": 1_733_300_000_000_i64 + n as i64 * 60_000,
                "campaign": format!("{marker}-campaign"),
                "recipient": format!("{marker}-recipient-{n}"),
                "properties": {"marker": marker, "n": n},
            })
        })
        .collect();
    let response = client()
        .post(host.url("/api/v1/events"))
        .bearer_auth(token)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], count, "{body}");
}

/// Polls until the caller's `events` table has `expected` rows, which the
/// background compaction makes true within a few of its intervals.
async fn wait_for_rows(host: &Host, token: &str, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // Registration's audit record is history too; count the test's events.
        let (status, body) = sql(
            host,
            token,
            "SELECT count(*) AS n FROM events WHERE type <> 'audit'",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if body["rows"][0][0] == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "history never reached {expected} rows: {body}\n{}",
            host.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

struct Setup {
    host: Host,
    /// The host's data directory; dropping it deletes the history files.
    data: tempfile::TempDir,
    alpha: Account,
    beta: Account,
}

/// Starts the app with fast compaction, registers two tenants and ingests
/// 30 events for `alpha` and 20 for `beta`.
async fn setup(extra_args: &[&str]) -> Setup {
    let data = tempfile::tempdir().unwrap();
    let mut args = vec!["--compact-interval-ms".to_string(), "200".to_string()];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let options = HostOptions {
        args,
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    let host = Host::start_with(&app_manifest(), options);
    let alpha = register(&host, "alpha@example.com", "Alpha").await;
    let beta = register(&host, "beta@example.com", "Beta").await;
    ingest(&host, &alpha.access, "alpha", 30).await;
    ingest(&host, &beta.access, "beta", 20).await;
    wait_for_rows(&host, &alpha.access, 30).await;
    wait_for_rows(&host, &beta.access, 20).await;
    Setup {
        host,
        data,
        alpha,
        beta,
    }
}

#[tokio::test]
async fn sql_queries_own_history() {
    let Setup {
        host,
        data: _data,
        alpha,
        beta,
    } = setup(&[]).await;

    let (status, body) = sql(
        &host,
        &alpha.access,
        "SELECT type, count(*) AS n, min(occurred_at) AS first\n\
         FROM events WHERE type <> 'audit' GROUP BY type ORDER BY type",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["truncated"], false);
    assert!(body["elapsed_ms"].is_u64(), "{body}");
    assert_eq!(body["columns"][0], json!({"name": "type", "type": "Utf8"}));
    assert_eq!(body["columns"][1]["name"], "n");
    assert_eq!(body["columns"][1]["type"], "Int64");
    assert_eq!(
        body["rows"],
        json!([
            ["click", 20, "2024-12-04T08:14:20Z"],
            ["open", 10, "2024-12-04T08:13:20Z"]
        ])
    );

    let (status, body) = sql(
        &host,
        &beta.access,
        "WITH p AS (SELECT properties FROM events)\n\
         SELECT count(*) FROM p WHERE properties LIKE '%\"marker\":\"beta\"%'",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[20]]));

    let (status, body) = query(
        &host,
        &alpha.access,
        json!({"sql": "SELECT event_id FROM events ORDER BY occurred_at", "max_rows": 7}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 7);
    assert_eq!(body["rows"][0], json!(["alpha-0"]));
    assert_eq!(body["truncated"], true);
}

#[tokio::test]
async fn sql_rejects_invalid_requests() {
    let Setup {
        host,
        data: _data,
        alpha,
        ..
    } = setup(&[]).await;

    let cases = [
        (json!({}), "sql"),
        (json!({"sql": 5}), "sql"),
        (json!({"sql": "  "}), "sql"),
        (json!({"sql": "SELECT 1", "max_rows": 0}), "max_rows"),
        (json!({"sql": "SELECT 1", "max_rows": 10_001}), "max_rows"),
        (json!({"sql": "SELECT 1", "max_rows": "9"}), "max_rows"),
        (json!({"sql": "SELECT 1", "tenant": "other"}), "body"),
    ];
    for (body, field) in cases {
        let (status, reply) = query(&host, &alpha.access, body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(reply["field"], field, "{body}: {reply}");
    }

    let (status, reply) = sql(
        &host,
        &alpha.access,
        "SELECT type,\n  count(*)\nFROM events\nGRUOP BY type",
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["code"], "syntax");
    assert_eq!(reply["line"], 4, "{reply}");
    assert_eq!(reply["column"], 7, "{reply}");

    let (status, reply) = sql(&host, &alpha.access, "SELECT type, nope\nFROM events").await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["code"], "plan");
    assert_eq!(reply["line"], 1, "{reply}");
    assert_eq!(reply["column"], 14, "{reply}");

    let anonymous = client()
        .post(host.url("/api/v1/sql"))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let get = client()
        .get(host.url("/api/v1/sql"))
        .bearer_auth(&alpha.access)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
}

#[tokio::test]
async fn sql_isolates_tenants_under_attack() {
    let Setup {
        host,
        data,
        alpha,
        beta,
    } = setup(&[]).await;
    let history = data.path().join("history");
    let beta_dir = history.join(&beta.tenant_id);
    let beta_file = parquet_files(&beta_dir)
        .into_iter()
        .next()
        .expect("beta has a history file")
        .display()
        .to_string();
    let beta_dir = beta_dir.display().to_string();
    let beta_tenant = beta.tenant_id.clone();
    let stolen = data.path().join("stolen.parquet").display().to_string();
    let alpha_files: Vec<String> = parquet_files(&history.join(&alpha.tenant_id))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(!alpha_files.is_empty());

    // Each of these must be rejected with a 4xx.
    let rejected = [
        format!("SELECT * FROM '{beta_file}'"),
        format!("SELECT * FROM \"{beta_file}\""),
        format!("SELECT * FROM '{beta_dir}/'"),
        format!("SELECT * FROM 'file://{beta_file}'"),
        format!("SELECT * FROM '../{beta_tenant}/'"),
        format!("SELECT * FROM read_parquet('{beta_file}')"),
        format!("SELECT * FROM parquet_scan('{beta_file}')"),
        format!("SELECT * FROM read_csv('{beta_file}')"),
        format!("CREATE EXTERNAL TABLE b STORED AS PARQUET LOCATION '{beta_dir}/'"),
        format!("cReAtE eXtErNaL tAbLe b StOrEd As PaRqUeT lOcAtIoN '{beta_dir}/'"),
        format!("/* read only */ CREATE EXTERNAL TABLE b STORED AS PARQUET LOCATION '{beta_dir}/'"),
        format!("SELECT 1; CREATE EXTERNAL TABLE b STORED AS PARQUET LOCATION '{beta_dir}/'"),
        format!("SELECT count(*) FROM events; SELECT * FROM '{beta_file}'"),
        format!("SELECT * FROM events UNION ALL SELECT * FROM '{beta_file}'"),
        format!("WITH b AS (SELECT * FROM '{beta_file}') SELECT * FROM b"),
        format!("SELECT * FROM events e JOIN '{beta_file}' b ON e.type = b.type"),
        format!("SELECT * FROM \"{beta_tenant}\".events"),
        format!("SELECT * FROM datafusion.\"{beta_tenant}\".events"),
        format!("SELECT * FROM \"events_{beta_tenant}\""),
        "SELECT * FROM information_schema.tables".to_string(),
        "SELECT * FROM INFORMATION_SCHEMA.COLUMNS".to_string(),
        "SELECT * FROM information_schema.df_settings".to_string(),
        "SHOW TABLES".to_string(),
        "SHOW ALL".to_string(),
        "SET datafusion.catalog.information_schema = true".to_string(),
        "SET datafusion.catalog.information_schema = true; SELECT * FROM information_schema.tables"
            .to_string(),
        format!("COPY events TO '{stolen}'"),
        format!("COPY (SELECT * FROM events) TO '{stolen}' STORED AS PARQUET"),
        "INSERT INTO events SELECT * FROM events".to_string(),
        "DELETE FROM events".to_string(),
        "DROP TABLE events".to_string(),
        "CREATE TABLE copied AS SELECT * FROM events".to_string(),
        "CREATE VIEW everything AS SELECT * FROM events".to_string(),
        "SELECT * INTO copied FROM events".to_string(),
        "EXPLAIN SELECT * FROM events".to_string(),
        "EXPLAIN ANALYZE SELECT * FROM events".to_string(),
    ];
    for attack in &rejected {
        let (status, reply) = sql(&host, &alpha.access, attack).await;
        assert!(
            (400..500).contains(&status),
            "not rejected ({status}): {attack}\n{reply}"
        );
        let text = reply.to_string();
        assert!(!text.contains("beta-"), "{attack} leaked: {text}");
        for own in &alpha_files {
            assert!(!text.contains(own), "{attack} revealed a file path: {text}");
        }
    }
    assert!(!Path::new(&stolen).exists(), "COPY wrote a file");

    // These run, and see only the caller's rows: 30 events and the audit
    // record of the caller's registration.
    let own_only = [
        (
            format!("SELECT count(*) FROM events WHERE tenant = '{beta_tenant}'"),
            json!([[0]]),
        ),
        (
            "SELECT count(*) FROM datafusion.public.events".to_string(),
            json!([[31]]),
        ),
        ("select COUNT(*) from EVENTS".to_string(), json!([[31]])),
        ("SELECT count(*) FROM \"events\"".to_string(), json!([[31]])),
        (
            format!("SELECT count(*) FROM events -- ; SELECT * FROM '{beta_file}'"),
            json!([[31]]),
        ),
        (
            "SELECT count(*) FROM events /* UNION ALL SELECT * FROM other */".to_string(),
            json!([[31]]),
        ),
        (
            "SELECT DISTINCT tenant FROM events".to_string(),
            json!([[alpha.tenant_id]]),
        ),
        (
            "SELECT count(*) FROM (SELECT * FROM events UNION ALL SELECT * FROM events)"
                .to_string(),
            json!([[62]]),
        ),
        (
            "SELECT count(*) FROM events WHERE campaign LIKE 'beta%' OR properties LIKE '%beta%'"
                .to_string(),
            json!([[0]]),
        ),
    ];
    for (text, expected) in &own_only {
        let (status, reply) = sql(&host, &alpha.access, text).await;
        assert_eq!(status, 200, "{text}: {reply}");
        assert_eq!(&reply["rows"], expected, "{text}");
    }

    // The other tenant, in turn, reads only its own rows.
    let (status, reply) = sql(
        &host,
        &beta.access,
        "SELECT DISTINCT campaign FROM events WHERE type <> 'audit'",
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["rows"], json!([["beta-campaign"]]));
}

#[tokio::test]
async fn sql_stops_at_memory_limit() {
    let Setup {
        host,
        data: _data,
        alpha,
        ..
    } = setup(&["--sql-memory-mb", "1"]).await;

    let (status, reply) = sql(
        &host,
        &alpha.access,
        "SELECT value, count(*) FROM generate_series(1, 5000000) GROUP BY value ORDER BY 2 DESC",
    )
    .await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["code"], "memory_limit", "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("memory limit"),
        "{reply}"
    );

    // The host still serves queries after the stopped one.
    let (status, reply) = sql(&host, &alpha.access, "SELECT count(*) FROM events").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["rows"],
        json!([[31]]),
        "30 events and one audit record"
    );
}

/// The time and row limits get a host of their own: under a 1 MiB memory
/// cap, the long scan reached the memory limit first on one CI machine.
#[tokio::test]
async fn sql_stops_at_time_and_row_limits() {
    let Setup {
        host,
        data: _data,
        alpha,
        ..
    } = setup(&["--sql-timeout-ms", "3000"]).await;

    // Far more rows than any machine sums within the time limit.
    let (status, reply) = sql(
        &host,
        &alpha.access,
        "SELECT sum(value) FROM generate_series(1, 1000000000000)",
    )
    .await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["code"], "timeout", "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("3000 ms"),
        "{reply}"
    );

    // Rows past the row limit are cut, not an error.
    let (status, reply) = sql(
        &host,
        &alpha.access,
        "SELECT * FROM generate_series(1, 50000)",
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["rows"].as_array().unwrap().len(), 1000);
    assert_eq!(reply["truncated"], true);

    // The host still serves queries after the stopped one.
    let (status, reply) = sql(&host, &alpha.access, "SELECT count(*) FROM events").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["rows"],
        json!([[31]]),
        "30 events and one audit record"
    );
}
