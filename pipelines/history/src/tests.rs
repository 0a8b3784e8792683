//! Unit tests of compaction and of the query guard over real log and
//! Parquet files in a temporary directory.

use crate::{CompactorOptions, History, HistoryError, QueryError, QueryLimits};
use copycar_events::{Event, EventLog, EventType, LogOptions};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn open_log(dir: &Path) -> EventLog {
    EventLog::open(dir.join("events"), LogOptions::default()).unwrap()
}

fn open_history(dir: &Path, options: CompactorOptions) -> History {
    History::open(dir.join("history"), options).unwrap()
}

/// Appends `count` click events for `tenant` with ids `<prefix>-<n>`.
fn append(log: &EventLog, tenant: &str, prefix: &str, count: usize) {
    let events = (0..count)
        .map(|n| {
            let mut event = Event::new(tenant, EventType::Click, 1_733_300_000_000 + n as i64);
            event.event_id = Some(format!("{prefix}-{n}"));
            event.campaign = Some("spring".into());
            event.properties.insert("n".into(), json!(n));
            event
        })
        .collect();
    for item in log.append_batch(events).unwrap() {
        item.unwrap();
    }
}

fn parquet_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn scalar(history: &History, tenant: &str, sql: &str) -> Value {
    let output = history
        .query(tenant, sql, &QueryLimits::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    output.rows[0][0].clone()
}

/// Returns (rows, distinct event ids) of a tenant's history.
async fn counts(history: &History, tenant: &str) -> (Value, Value) {
    let sql = "SELECT count(*), count(DISTINCT event_id) FROM events";
    let output = history
        .query(tenant, sql, &QueryLimits::default())
        .await
        .unwrap();
    (output.rows[0][0].clone(), output.rows[0][1].clone())
}

#[tokio::test]
async fn compaction_writes_each_tenant_apart() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let history = open_history(dir.path(), CompactorOptions::default());
    append(&log, "acme", "a", 30);
    append(&log, "globex", "g", 12);

    let report = history.compact(&log).unwrap();
    assert_eq!(report.events, 42);
    assert_eq!(report.files_written, 2);
    assert_eq!(report.next_offset, 42);
    assert_eq!(counts(&history, "acme").await, (json!(30), json!(30)));
    assert_eq!(counts(&history, "globex").await, (json!(12), json!(12)));
    assert_eq!(counts(&history, "initech").await, (json!(0), json!(0)));
    assert_eq!(parquet_files(&history.root().join("acme")).len(), 1);

    let again = history.compact(&log).unwrap();
    assert_eq!(again.events, 0);
    assert_eq!(again.files_written, 0);
    assert_eq!(counts(&history, "acme").await, (json!(30), json!(30)));
}

#[tokio::test]
async fn columns_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let history = open_history(dir.path(), CompactorOptions::default());
    append(&log, "acme", "a", 3);
    history.compact(&log).unwrap();

    let output = history
        .query(
            "acme",
            "SELECT type, campaign, occurred_at, properties, recipient FROM events \
             WHERE event_id = 'a-2'",
            &QueryLimits::default(),
        )
        .await
        .unwrap();
    let types: Vec<&str> = output
        .columns
        .iter()
        .map(|c| c.data_type.as_str())
        .collect();
    assert_eq!(types[0], "Utf8");
    assert!(types[2].starts_with("Timestamp(ms"), "{types:?}");
    let row = &output.rows[0];
    assert_eq!(row[0], "click");
    assert_eq!(row[1], "spring");
    assert_eq!(row[2], "2024-12-04T08:13:20.002Z");
    assert_eq!(row[3], r#"{"n":2}"#);
    assert_eq!(row[4], Value::Null);
}

#[tokio::test]
async fn crash_before_progress_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let history = open_history(dir.path(), CompactorOptions::default());
    append(&log, "acme", "a", 20);
    history.compact(&log).unwrap();
    append(&log, "acme", "b", 5);
    append(&log, "globex", "g", 7);

    // The run writes and renames both files, then stops before the
    // progress file, as a crash at that point would.
    history.fail_before_commit.store(true, Ordering::SeqCst);
    let error = history.compact(&log).unwrap_err();
    assert!(matches!(error, HistoryError::InjectedFault), "{error}");
    assert_eq!(parquet_files(&history.root().join("acme")).len(), 2);
    assert_eq!(parquet_files(&history.root().join("globex")).len(), 1);
    drop(history);

    // Reopening deletes the uncommitted files and reads the same offsets
    // again.
    let history = open_history(dir.path(), CompactorOptions::default());
    assert_eq!(history.next_offset(), 20);
    assert_eq!(parquet_files(&history.root().join("acme")).len(), 1);
    assert!(parquet_files(&history.root().join("globex")).is_empty());
    let report = history.compact(&log).unwrap();
    assert_eq!(report.events, 12);
    assert_eq!(counts(&history, "acme").await, (json!(25), json!(25)));
    assert_eq!(counts(&history, "globex").await, (json!(7), json!(7)));
}

#[tokio::test]
async fn progress_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    append(&log, "acme", "a", 10);
    open_history(dir.path(), CompactorOptions::default())
        .compact(&log)
        .unwrap();

    let history = open_history(dir.path(), CompactorOptions::default());
    assert_eq!(history.next_offset(), 10);
    assert_eq!(history.compact(&log).unwrap().events, 0);
    assert_eq!(counts(&history, "acme").await, (json!(10), json!(10)));
}

#[tokio::test]
async fn small_files_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let options = CompactorOptions {
        merge_min_files: 3,
        retire_grace: Duration::ZERO,
        ..CompactorOptions::default()
    };
    let history = open_history(dir.path(), options.clone());
    for run in 0..2 {
        append(&log, "acme", &format!("r{run}"), 4);
        let report = history.compact(&log).unwrap();
        assert_eq!(report.files_merged, 0, "run {run}");
    }
    append(&log, "acme", "r2", 4);
    let report = history.compact(&log).unwrap();
    assert_eq!(report.files_merged, 3);
    assert_eq!(report.files_written, 2, "one new file and one merged file");

    assert_eq!(history.tenant_files("acme").len(), 1);
    assert_eq!(parquet_files(&history.root().join("acme")).len(), 1);
    assert_eq!(counts(&history, "acme").await, (json!(12), json!(12)));
    drop(history);
    let history = open_history(dir.path(), options);
    assert_eq!(counts(&history, "acme").await, (json!(12), json!(12)));
}

#[tokio::test]
async fn tenant_sees_only_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let history = open_history(dir.path(), CompactorOptions::default());
    append(&log, "acme", "a", 5);
    append(&log, "globex", "g", 9);
    history.compact(&log).unwrap();

    let other_file = history.tenant_files("globex")[0].display().to_string();
    let other_dir = history.root().join("globex").display().to_string();
    let attacks = [
        format!("SELECT count(*) FROM '{other_file}'"),
        format!("SELECT count(*) FROM \"{other_file}\""),
        format!("SELECT count(*) FROM '{other_dir}/'"),
        format!("SELECT count(*) FROM read_parquet('{other_file}')"),
        "SELECT count(*) FROM information_schema.tables".to_string(),
        "SELECT count(*) FROM globex.events".to_string(),
        "SELECT count(*) FROM datafusion.globex.events".to_string(),
    ];
    for sql in &attacks {
        let error = history
            .query("acme", sql, &QueryLimits::default())
            .await
            .expect_err(sql);
        assert_eq!(error.status(), 400, "{sql}: {error:?}");
    }

    assert_eq!(
        scalar(
            &history,
            "acme",
            "SELECT count(*) FROM datafusion.public.EVENTS"
        )
        .await,
        json!(5)
    );
    assert_eq!(
        scalar(
            &history,
            "acme",
            "SELECT count(*) FROM events WHERE tenant <> 'acme'"
        )
        .await,
        json!(0)
    );
}

#[tokio::test]
async fn unknown_column_points_into_sql() {
    let dir = tempfile::tempdir().unwrap();
    let history = open_history(dir.path(), CompactorOptions::default());
    let error = history
        .query(
            "acme",
            "SELECT type,\n       nope\nFROM events",
            &QueryLimits::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "plan", "{error:?}");
    let position = error.position().expect("a position");
    assert_eq!((position.line, position.column), (2, 8), "{error}");
    assert!(error.to_string().contains("nope"), "{error}");
}

#[tokio::test]
async fn row_cap_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let history = open_history(dir.path(), CompactorOptions::default());
    let limits = QueryLimits {
        max_rows: 10,
        ..QueryLimits::default()
    };
    let output = history
        .query("acme", "SELECT * FROM generate_series(1, 100)", &limits)
        .await
        .unwrap();
    assert_eq!(output.rows.len(), 10);
    assert!(output.truncated);

    let output = history
        .query("acme", "SELECT * FROM generate_series(1, 10)", &limits)
        .await
        .unwrap();
    assert_eq!(output.rows.len(), 10);
    assert!(!output.truncated);
}

#[tokio::test]
async fn memory_cap_stops_query() {
    let dir = tempfile::tempdir().unwrap();
    let history = open_history(dir.path(), CompactorOptions::default());
    let limits = QueryLimits {
        memory_bytes: 1 << 20,
        ..QueryLimits::default()
    };
    let error = history
        .query(
            "acme",
            "SELECT value, count(*) FROM generate_series(1, 5000000) GROUP BY value ORDER BY 2 DESC",
            &limits,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::MemoryLimit { .. }), "{error:?}");
    assert_eq!(error.status(), 422);
}

#[tokio::test]
async fn timeout_stops_query() {
    let dir = tempfile::tempdir().unwrap();
    let history = open_history(dir.path(), CompactorOptions::default());
    let limits = QueryLimits {
        timeout: Duration::from_millis(300),
        ..QueryLimits::default()
    };
    // Far more rows than any machine sums in the time limit.
    let error = history
        .query(
            "acme",
            "SELECT sum(value) FROM generate_series(1, 1000000000000)",
            &limits,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::Timeout(_)), "{error:?}");
    assert!(error.to_string().contains("300 ms"), "{error}");
}

#[tokio::test]
async fn select_into_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let history = open_history(dir.path(), CompactorOptions::default());
    let error = history
        .query(
            "acme",
            "SELECT 1 AS x INTO copied FROM events",
            &QueryLimits::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400, "{error:?}");
}
