//! Pipeline tests on a real access-log trace and on small hand-made event
//! sequences, with results checked against values computed by hand.
//!
//! Each request of `fixtures/apache_logs_head.csv` becomes one event of
//! tenant `acme`. The client address is the recipient, the first path
//! segment the campaign and the byte count a property. The type follows the
//! response: 404 is a bounce, 304 a delivery, a 200 for an image an open and
//! any other 200 a click.

use copycar_events::{Event, EventLog, EventSource, EventType, LogOptions, StoredEvent};
use copycar_pipelines::{
    Pipeline, PipelineHandle, ResultRow, RunOptions, SqlError, UpdateOp, WindowBudget,
    parse_pipeline, row_key_parts,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TRACE: &str = include_str!("fixtures/apache_logs_head.csv");
const HOUR_10: i64 = 1_431_856_800_000; // 2015-05-17T10:00:00Z
const HOUR_11: i64 = 1_431_860_400_000; // 2015-05-17T11:00:00Z

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `2015-05-17T10:05:03+00:00` into Unix milliseconds.
fn parse_time(text: &str) -> i64 {
    let n = |a: usize, b: usize| text[a..b].parse::<i64>().unwrap();
    let days = days_from_civil(n(0, 4), n(5, 7), n(8, 10));
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1_000
}

fn trace_events() -> Vec<Event> {
    TRACE
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let (ip, time, path, status, bytes) =
                (fields[0], fields[1], fields[3], fields[5], fields[6]);
            let bare = path.split('?').next().unwrap();
            let event_type = match status {
                "404" => EventType::Bounce,
                "304" => EventType::Delivered,
                _ if [".png", ".jpg", ".gif", ".ico"]
                    .iter()
                    .any(|x| bare.ends_with(x)) =>
                {
                    EventType::Open
                }
                _ => EventType::Click,
            };
            let mut event = Event::new("acme", event_type, parse_time(time));
            let segment = path
                .split('/')
                .nth(1)
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap();
            event.campaign = (!segment.is_empty()).then(|| segment.to_string());
            event.recipient = Some(ip.to_string());
            event
                .properties
                .insert("bytes".into(), json!(bytes.parse::<i64>().unwrap_or(0)));
            event
        })
        .collect()
}

fn stored(events: Vec<Event>) -> Vec<StoredEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| StoredEvent {
            offset: i as u64,
            event,
        })
        .collect()
}

fn source(extra: &str, columns: &str) -> String {
    format!(
        "CREATE TABLE events (\n    {columns},\n    WATERMARK FOR occurred_at AS occurred_at - INTERVAL '1 minute'\n) WITH (\n    connector = 'event_log',\n    type = 'source'{extra}\n);\nCREATE TABLE out WITH (connector = 'preview', type = 'sink');\n"
    )
}

const ALL_COLUMNS: &str =
    "tenant TEXT, type TEXT, campaign TEXT, recipient TEXT, occurred_at TIMESTAMP, properties JSON";

async fn open(name: &str, sql: &str, dir: &Path) -> Pipeline {
    let spec = parse_pipeline(name, sql).unwrap_or_else(|e| panic!("{e}"));
    Pipeline::open(spec, sql, dir)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Feeds `events` in micro-batches of `size`, then a heartbeat an hour of
/// idle time later, which closes every window.
async fn run(pipeline: &mut Pipeline, events: &[StoredEvent], size: usize) {
    for chunk in events.chunks(size) {
        pipeline.process(chunk, 1_000).await.unwrap();
    }
    pipeline.heartbeat(1_000 + 3_600_000 * 2).await.unwrap();
}

fn by_window_and<'a>(
    rows: &'a [ResultRow],
    column: &str,
) -> BTreeMap<(i64, String), &'a ResultRow> {
    rows.iter()
        .map(|r| {
            let key = r.row[column].as_str().unwrap_or("").to_string();
            ((r.window_start, key), r)
        })
        .collect()
}

#[tokio::test]
async fn tumble_counts_trace_per_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let sql = source(", allowed_lateness = '1 hour'", ALL_COLUMNS)
        + "INSERT INTO out SELECT tumble(INTERVAL '15 minutes') AS window, campaign,
             count(*) AS requests,
             count(*) FILTER (WHERE type = 'open') AS opens,
             count(*) FILTER (WHERE type = 'click') AS clicks,
             sum(CAST(properties->>'bytes' AS BIGINT)) AS bytes,
             max(CAST(properties->>'bytes' AS BIGINT)) AS largest,
             avg(CAST(properties->>'bytes' AS BIGINT)) AS mean_bytes
           FROM events WHERE campaign IS NOT NULL GROUP BY window, campaign;";
    let mut pipeline = open("tumble", &sql, dir.path()).await;
    run(&mut pipeline, &stored(trace_events()), 7).await;

    let rows = pipeline.rows("acme");
    assert_eq!(rows.len(), 17);
    assert!(rows.iter().all(|r| r.closed));
    let rows = by_window_and(&rows, "campaign");

    let presentations = &rows[&(HOUR_10, "presentations".to_string())].row;
    assert_eq!(presentations["requests"], json!(23));
    assert_eq!(presentations["opens"], json!(14));
    assert_eq!(presentations["clicks"], json!(9));
    assert_eq!(presentations["bytes"], json!(4_400_563));
    assert_eq!(presentations["largest"], json!(1_168_622));
    let mean = presentations["mean_bytes"].as_f64().unwrap();
    assert!((mean - 4_400_563.0 / 23.0).abs() < 1e-6);
    assert_eq!(
        presentations["window"],
        json!({"start": HOUR_10, "end": HOUR_10 + 900_000})
    );
    assert_eq!(presentations["tenant"], json!("acme"));

    let blog = &rows[&(HOUR_10, "blog".to_string())].row;
    assert_eq!(blog["requests"], json!(18));
    assert_eq!(blog["clicks"], json!(18));
    assert_eq!(blog["bytes"], json!(318_050));

    let projects = &rows[&(HOUR_11, "projects".to_string())].row;
    assert_eq!(projects["requests"], json!(4));
    assert_eq!(projects["clicks"], json!(3));
    assert_eq!(projects["largest"], json!(14_352));
}

#[tokio::test]
async fn hop_counts_trace_in_overlapping_windows() {
    let dir = tempfile::tempdir().unwrap();
    let sql = source(", allowed_lateness = '1 hour'", ALL_COLUMNS)
        + "INSERT INTO out SELECT hop(INTERVAL '5 minutes', INTERVAL '15 minutes') AS window,
             count(*) AS requests FROM events GROUP BY window;";
    let mut pipeline = open("hop", &sql, dir.path()).await;
    run(&mut pipeline, &stored(trace_events()), 10).await;

    let rows = pipeline.rows("acme");
    let counts: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (r.window_start, r.row["requests"].as_i64().unwrap()))
        .collect();
    let five = 300_000;
    let expected: BTreeMap<i64, i64> = [
        (HOUR_10 - five, 74),
        (HOUR_10, 74),
        (HOUR_10 + five, 74),
        (HOUR_11 - five, 26),
        (HOUR_11, 26),
        (HOUR_11 + five, 26),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
}

#[tokio::test]
async fn session_groups_trace_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let sql = source(", allowed_lateness = '1 hour'", ALL_COLUMNS)
        + "INSERT INTO out SELECT session(INTERVAL '2 minutes') AS window, recipient,
             count(*) AS requests FROM events GROUP BY window, recipient;";
    let mut pipeline = open("session", &sql, dir.path()).await;
    run(&mut pipeline, &stored(trace_events()), 9).await;

    let rows = pipeline.rows("acme");
    assert_eq!(rows.len(), 31);
    let mut sizes: BTreeMap<i64, usize> = BTreeMap::new();
    for row in &rows {
        *sizes
            .entry(row.row["requests"].as_i64().unwrap())
            .or_default() += 1;
    }
    let expected: BTreeMap<i64, usize> = [
        (1, 15),
        (2, 5),
        (3, 3),
        (4, 1),
        (5, 1),
        (6, 4),
        (10, 1),
        (23, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(sizes, expected);

    // This recipient made two requests 15 seconds apart: the session runs
    // from the first to the last plus the 2-minute gap.
    let two = rows
        .iter()
        .find(|r| r.row["recipient"] == json!("10.117.11.0"))
        .unwrap();
    assert_eq!(
        two.row["window"],
        json!({"start": 1_431_857_115_000_i64, "end": 1_431_857_250_000_i64})
    );
    assert_eq!(two.row["requests"], json!(2));
}

fn event_at(tenant: &str, seconds: i64) -> Event {
    let mut event = Event::new(tenant, EventType::Sent, seconds * 1_000);
    event.campaign = Some("spring".into());
    event
}

const MINUTE_COUNTS: &str = "CREATE TABLE events (
    tenant TEXT, type TEXT, campaign TEXT, occurred_at TIMESTAMP,
    WATERMARK FOR occurred_at AS occurred_at
) WITH (connector = 'event_log', type = 'source', allowed_lateness = '30 seconds');
CREATE TABLE out WITH (connector = 'preview', type = 'sink');
INSERT INTO out SELECT tumble(INTERVAL '1 minute') AS window, campaign, count(*) AS sent
FROM events GROUP BY window, campaign;";

fn counts(rows: &[ResultRow]) -> BTreeMap<i64, (i64, bool)> {
    rows.iter()
        .map(|r| {
            (
                r.window_start / 1_000,
                (r.row["sent"].as_i64().unwrap(), r.closed),
            )
        })
        .collect()
}

#[tokio::test]
async fn late_event_within_lateness_updates_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = open("late", MINUTE_COUNTS, dir.path()).await;
    let events = stored(vec![
        event_at("acme", 0),
        event_at("acme", 70),
        event_at("acme", 10),
    ]);

    pipeline.process(&events[0..2], 0).await.unwrap();
    assert_eq!(counts(&pipeline.rows("acme"))[&0], (1, true));

    // Watermark 70 s: the window [0, 60) closed at 60 and accepts late
    // events until 60 + 30.
    let updates = pipeline.process(&events[2..3], 0).await.unwrap();
    assert_eq!(counts(&pipeline.rows("acme"))[&0], (2, true));
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].op, UpdateOp::Upsert);
    assert_eq!(updates[0].row.as_ref().unwrap()["sent"], json!(2));
    assert_eq!(pipeline.stats().dropped_late["out"], 0);
}

#[tokio::test]
async fn event_past_lateness_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = open("dropped", MINUTE_COUNTS, dir.path()).await;
    let events = stored(vec![
        event_at("acme", 0),
        event_at("acme", 200),
        event_at("acme", 20),
        event_at("acme", 150),
    ]);

    pipeline.process(&events[0..2], 0).await.unwrap();
    // Watermark 200 s: [0, 60) expired at 90 s; [120, 180) still accepts
    // events until 210 s.
    let updates = pipeline.process(&events[2..4], 0).await.unwrap();
    let windows = counts(&pipeline.rows("acme"));
    assert_eq!(windows[&0], (1, true));
    assert_eq!(windows[&120], (1, true));
    assert_eq!(windows[&180], (1, false));
    assert_eq!(pipeline.stats().dropped_late["out"], 1);
    assert_eq!(updates.len(), 1);
    assert_eq!(pipeline.stats().next_offset, 4);
}

#[tokio::test]
async fn idle_heartbeat_closes_windows() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = open("idle", MINUTE_COUNTS, dir.path()).await;
    pipeline
        .process(&stored(vec![event_at("acme", 5)]), 1_000)
        .await
        .unwrap();
    assert_eq!(counts(&pipeline.rows("acme"))[&0], (1, false));

    // The default idle timeout is 5 s: before it nothing moves.
    assert!(pipeline.heartbeat(4_000).await.unwrap().is_empty());
    assert_eq!(counts(&pipeline.rows("acme"))[&0], (1, false));

    // 60 s without events moves event time from 5 s to 65 s.
    let updates = pipeline.heartbeat(61_000).await.unwrap();
    assert_eq!(updates.len(), 1);
    assert!(updates[0].closed);
    assert_eq!(counts(&pipeline.rows("acme"))[&0], (1, true));
}

#[tokio::test]
async fn tenants_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = open("tenants", MINUTE_COUNTS, dir.path()).await;
    let events = stored(vec![
        event_at("acme", 1),
        event_at("globex", 2),
        event_at("acme", 3),
    ]);
    pipeline.process(&events, 0).await.unwrap();

    let acme = pipeline.rows("acme");
    let globex = pipeline.rows("globex");
    assert_eq!(acme.len(), 1);
    assert_eq!(globex.len(), 1);
    assert_eq!(acme[0].row["sent"], json!(2));
    assert_eq!(acme[0].row["tenant"], json!("acme"));
    assert_eq!(globex[0].row["sent"], json!(1));
    assert_eq!(globex[0].row["tenant"], json!("globex"));
    assert!(pipeline.rows("initech").is_empty());
}

#[tokio::test]
async fn tenant_clocks_stay_independent() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = open("clocks", MINUTE_COUNTS, dir.path()).await;
    // acme's clock runs a day ahead; globex's events are from the first
    // minutes and must still count.
    let day = 86_400;
    let events = stored(vec![
        event_at("acme", day),
        event_at("globex", 10),
        event_at("globex", 20),
    ]);
    pipeline.process(&events, 0).await.unwrap();
    let globex = counts(&pipeline.rows("globex"));
    assert_eq!(globex, BTreeMap::from([(0, (2, false))]));
    assert_eq!(pipeline.stats().dropped_late["out"], 0);
    assert_eq!(pipeline.watermark("acme"), Some(day * 1_000));
    assert_eq!(pipeline.watermark("globex"), Some(20_000));

    // globex's own clock still drops its own late events.
    let ahead = [StoredEvent {
        offset: 3,
        event: event_at("globex", 200),
    }];
    pipeline.process(&ahead, 0).await.unwrap();
    let late = [StoredEvent {
        offset: 4,
        event: event_at("globex", 5),
    }];
    pipeline.process(&late, 0).await.unwrap();
    let stats = pipeline.stats();
    assert_eq!(stats.dropped_late["out"], 1);
    assert_eq!(stats.tenants["globex"].dropped_late["out"], 1);
    assert_eq!(stats.tenants["acme"].dropped_late["out"], 0);
    let globex = counts(&pipeline.rows("globex"));
    assert_eq!(globex[&0], (2, true));
}

#[tokio::test]
async fn rows_past_retention_leave_results() {
    let dir = tempfile::tempdir().unwrap();
    let sql = MINUTE_COUNTS.replace(
        "allowed_lateness = '30 seconds'",
        "allowed_lateness = '30 seconds', result_retention = '2 minutes'",
    );
    let mut pipeline = open("retention", &sql, dir.path()).await;
    let mut updates = pipeline
        .process(&stored(vec![event_at("acme", 1)]), 0)
        .await
        .unwrap();
    assert_eq!(pipeline.rows("acme").len(), 1);

    // Minute 0 ends at 60 s; with 30 s lateness and 2 minutes retention it
    // stays until the watermark reaches 210 s.
    let at = |offset, seconds| StoredEvent {
        offset,
        event: event_at("acme", seconds),
    };
    pipeline.process(&[at(1, 209)], 0).await.unwrap();
    assert!(counts(&pipeline.rows("acme")).contains_key(&0));
    updates.extend(pipeline.process(&[at(2, 210)], 0).await.unwrap());
    let rows = counts(&pipeline.rows("acme"));
    assert!(!rows.contains_key(&0), "{rows:?}");
    let delete = updates.iter().find(|u| u.op == UpdateOp::Delete).unwrap();
    assert!(delete.key.ends_with(&format!("{:020}", 0)));
}

#[tokio::test]
async fn idle_tenant_rows_expire_by_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let sql = MINUTE_COUNTS.replace(
        "allowed_lateness = '30 seconds'",
        "allowed_lateness = '30 seconds', result_retention = '2 minutes'",
    );
    let mut pipeline = open("idle-retention", &sql, dir.path()).await;
    pipeline
        .process(&stored(vec![event_at("acme", 1)]), 0)
        .await
        .unwrap();

    // The heartbeat at wall time 61 s closes minute 0. The one at 100 s
    // evicts its window (end 60 s plus 30 s lateness), but the row stays.
    let closed = pipeline.heartbeat(61_000).await.unwrap();
    assert_eq!(closed.len(), 1);
    assert!(closed[0].closed);
    pipeline.heartbeat(100_000).await.unwrap();
    assert_eq!(pipeline.stats().tenants["acme"].open_windows, 0);
    assert_eq!(counts(&pipeline.rows("acme"))[&0], (1, true));

    // No event ever arrives again: the row still leaves once the idle
    // watermark reaches 60 + 30 + 120 = 210 s.
    assert!(pipeline.heartbeat(200_000).await.unwrap().is_empty());
    assert_eq!(pipeline.rows("acme").len(), 1);
    let expired = pipeline.heartbeat(215_000).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].op, UpdateOp::Delete);
    assert!(pipeline.rows("acme").is_empty());

    // Nothing is left to expire, so later heartbeats change nothing.
    assert!(pipeline.heartbeat(900_000).await.unwrap().is_empty());
}

#[tokio::test]
async fn max_result_rows_trims_oldest_closed() {
    let dir = tempfile::tempdir().unwrap();
    let sql = MINUTE_COUNTS.replace(
        "allowed_lateness = '30 seconds'",
        "allowed_lateness = '30 seconds', max_result_rows = '3'",
    );
    let mut pipeline = open("trimmed", &sql, dir.path()).await;
    // acme: one event in each of minutes 0 to 5; globex: minutes 0 and 1.
    let mut events: Vec<Event> = (0..6).map(|m| event_at("acme", m * 60 + 5)).collect();
    events.extend([event_at("globex", 5), event_at("globex", 65)]);
    let updates = pipeline.process(&stored(events), 0).await.unwrap();

    // Watermark 305 s: minutes 0 to 4 are closed, minute 5 is open. Six
    // rows are over the limit of 3, so the three oldest closed ones leave.
    let acme = counts(&pipeline.rows("acme"));
    let starts: Vec<i64> = acme.keys().copied().collect();
    assert_eq!(starts, vec![180, 240, 300], "{acme:?}");
    assert_eq!(acme[&300], (1, false));
    let deleted: Vec<&str> = updates
        .iter()
        .filter(|u| u.op == UpdateOp::Delete)
        .map(|u| u.tenant.as_str())
        .collect();
    assert_eq!(deleted, vec!["acme"; 3]);
    let stats = pipeline.stats();
    assert_eq!(stats.tenants["acme"].rows_trimmed, 3);
    assert_eq!(stats.tenants["globex"].rows_trimmed, 0);
    assert_eq!(pipeline.rows("globex").len(), 2);

    // The count survives a restart, and so does the trimmed state.
    drop(pipeline);
    let reopened = open("trimmed", &sql, dir.path()).await;
    assert_eq!(reopened.rows("acme").len(), 3);
    assert_eq!(reopened.stats().tenants["acme"].rows_trimmed, 3);

    let error = error_of(&MINUTE_COUNTS.replace(
        "allowed_lateness = '30 seconds'",
        "allowed_lateness = '30 seconds', max_result_rows = '0'",
    ));
    assert_eq!(error.line, 4, "{error}");
    assert!(error.message.contains("max_result_rows"), "{error}");
}

#[tokio::test]
async fn scoped_pipeline_skips_other_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = open("scoped", MINUTE_COUNTS, dir.path()).await;
    pipeline.scope_to_tenant("acme");
    let events = stored(vec![
        event_at("acme", 1),
        event_at("globex", 2),
        event_at("acme", 3),
        event_at("globex", 4),
    ]);
    pipeline.process(&events, 0).await.unwrap();
    assert_eq!(pipeline.next_offset(), 4);
    assert_eq!(pipeline.rows("acme")[0].row["sent"], json!(2));
    assert!(pipeline.rows("globex").is_empty());
    let stats = pipeline.stats();
    assert_eq!(stats.events_read, 2);
    assert_eq!(stats.tenants["acme"].events_read, 2);
    assert_eq!(stats.tenants["acme"].open_windows, 1);
    assert!(!stats.tenants.contains_key("globex"));

    // A batch with only other tenants' events moves the offset on.
    let offset_four = vec![StoredEvent {
        offset: 4,
        event: event_at("globex", 5),
    }];
    pipeline.process(&offset_four, 0).await.unwrap();
    assert_eq!(pipeline.next_offset(), 5);
    assert_eq!(pipeline.stats().events_read, 2);
}

#[tokio::test]
async fn restart_resumes_from_checkpoint_exactly() {
    let sql = source(", allowed_lateness = '1 hour'", ALL_COLUMNS)
        + "INSERT INTO out SELECT tumble(INTERVAL '15 minutes') AS window, campaign,
             count(*) AS requests FROM events GROUP BY window, campaign;";
    let events = stored(trace_events());

    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = open("restart", &sql, straight_dir.path()).await;
    run(&mut straight, &events, 8).await;

    let dir = tempfile::tempdir().unwrap();
    let mut first = open("restart", &sql, dir.path()).await;
    for chunk in events[..53].chunks(8) {
        first.process(chunk, 1_000).await.unwrap();
    }
    drop(first);

    // The restarted pipeline is given the whole log again; it skips what its
    // checkpoint already covers.
    let mut second = open("restart", &sql, dir.path()).await;
    assert_eq!(second.next_offset(), 53);
    run(&mut second, &events, 8).await;

    let strip = |rows: Vec<ResultRow>| -> Vec<(i64, serde_json::Value)> {
        rows.into_iter()
            .map(|r| (r.window_start, serde_json::Value::Object(r.row)))
            .collect()
    };
    assert_eq!(strip(second.rows("acme")), strip(straight.rows("acme")));
    assert_eq!(second.stats().events_read, 100);
}

#[tokio::test]
async fn checkpoint_interval_defers_writes_until_flush() {
    let sql = source(", allowed_lateness = '1 hour'", ALL_COLUMNS)
        + "INSERT INTO out SELECT tumble(INTERVAL '15 minutes') AS window, campaign,
             count(*) AS requests FROM events GROUP BY window, campaign;";
    let events = stored(trace_events());
    let dir = tempfile::tempdir().unwrap();
    let mut first = open("deferred", &sql, dir.path()).await;
    first.set_checkpoint_interval(Duration::from_secs(3_600));

    // Both steps fall inside the interval, so nothing is written yet.
    first.process(&events[..10], 1_000).await.unwrap();
    first.process(&events[10..30], 1_000).await.unwrap();
    assert_eq!(first.next_offset(), 30);
    let reopened = open("deferred", &sql, dir.path()).await;
    assert_eq!(reopened.next_offset(), 0);
    drop(reopened);
    first.flush().unwrap();
    first.process(&events[30..60], 1_000).await.unwrap();
    let reopened = open("deferred", &sql, dir.path()).await;
    assert_eq!(reopened.next_offset(), 30);
    drop(reopened);

    first.flush().unwrap();
    let reopened = open("deferred", &sql, dir.path()).await;
    assert_eq!(reopened.next_offset(), 60);
    assert_eq!(reopened.rows("acme"), first.rows("acme"));
}

/// Copies the files of `dir` as they are, as a crash would leave them.
fn crash_copy(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    copy
}

#[tokio::test]
async fn crash_replay_takes_the_same_steps() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EventLog::open(log_dir.path(), LogOptions::default()).unwrap());
    log.append_batch(vec![event_at("acme", 5), event_at("acme", 20)])
        .unwrap();
    let events = stored(vec![event_at("acme", 5), event_at("acme", 20)]);

    // Live: the event at 5 s, an idle heartbeat at wall time 300 s that
    // moves the watermark to 305 s, then the event at 20 s, which is past
    // the 30 s lateness of minute 0 and dropped.
    let dir = tempfile::tempdir().unwrap();
    let mut live = open("journaled", MINUTE_COUNTS, dir.path()).await;
    live.set_checkpoint_interval(Duration::from_secs(3_600));
    live.process(&events[..1], 0).await.unwrap();
    assert_eq!(live.heartbeat(300_000).await.unwrap().len(), 1);
    live.process(&events[1..], 301_000).await.unwrap();
    assert_eq!(live.stats().dropped_late["out"], 1);

    let crashed = crash_copy(dir.path());
    let mut restarted = open("journaled", MINUTE_COUNTS, crashed.path()).await;
    assert_eq!(restarted.next_offset(), 0);
    assert_eq!(restarted.replay(&log).await.unwrap(), 3);
    assert_eq!(restarted.next_offset(), 2);
    assert_eq!(restarted.rows("acme"), live.rows("acme"));
    assert_eq!(restarted.stats().dropped_late["out"], 1);
    assert_eq!(restarted.watermark("acme"), live.watermark("acme"));

    // Reading the log again in one batch would have counted the late event.
    let other = tempfile::tempdir().unwrap();
    let mut one_batch = open("journaled", MINUTE_COUNTS, other.path()).await;
    one_batch.process(&events, 301_000).await.unwrap();
    assert_eq!(one_batch.stats().dropped_late["out"], 0);

    // After the replay, a flush empties the journal and a second restart
    // has nothing to replay.
    restarted.flush().unwrap();
    let mut again = open("journaled", MINUTE_COUNTS, crashed.path()).await;
    assert_eq!(again.next_offset(), 2);
    assert_eq!(again.replay(&log).await.unwrap(), 0);
    assert_eq!(again.rows("acme"), live.rows("acme"));
}

#[tokio::test]
async fn stale_journal_is_ignored_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = open("stale", MINUTE_COUNTS, dir.path()).await;
    first.set_checkpoint_interval(Duration::from_secs(3_600));
    first
        .process(&stored(vec![event_at("acme", 5)]), 0)
        .await
        .unwrap();
    drop(first);
    assert!(dir.path().join("stale.journal").exists());

    // The pipeline is deleted (its checkpoint removed) and created again.
    std::fs::remove_file(dir.path().join("stale.checkpoint.json")).unwrap();
    let second = open("stale", MINUTE_COUNTS, dir.path()).await;
    assert!(!dir.path().join("stale.journal").exists());
    assert_eq!(second.next_offset(), 0);
    assert!(second.rows("acme").is_empty());
}

#[tokio::test]
async fn pipelines_share_a_window_budget() {
    let sql = source(", allowed_lateness = '1 day'", ALL_COLUMNS)
        + "INSERT INTO out SELECT tumble(INTERVAL '1 minute') AS window, campaign,
             count(*) AS requests FROM events GROUP BY window, campaign;";
    let budget = Arc::new(WindowBudget::new(5));
    let events = stored(trace_events());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open("budget_a", &sql, dir_a.path()).await;
    let mut b = open("budget_b", &sql, dir_b.path()).await;
    a.set_window_budget(budget.clone());
    b.set_window_budget(budget.clone());

    // The trace opens windows in both pipelines.
    a.process(&events, 0).await.unwrap();
    b.process(&events, 0).await.unwrap();
    let open_windows = a.window_count() + b.window_count();
    assert_eq!(budget.used(), open_windows);
    assert!(open_windows <= 5, "{open_windows} windows open");
    let over_limit = |p: &Pipeline| p.stats().tenants["acme"].dropped_over_limit;
    assert!(
        over_limit(&a) + over_limit(&b) > 0,
        "the trace needs more than 5 windows"
    );

    // Without a shared budget the same events open more windows.
    let alone_dir = tempfile::tempdir().unwrap();
    let mut alone = open("budget_a", &sql, alone_dir.path()).await;
    alone.process(&events, 0).await.unwrap();
    assert!(
        alone.window_count() > open_windows,
        "{}",
        alone.window_count()
    );

    // A dropped pipeline gives its room back.
    let from_b = b.window_count();
    drop(b);
    assert_eq!(budget.used(), open_windows - from_b);

    // A pipeline taken back from its task keeps its room: the budget still
    // counts exactly its windows.
    let log_dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EventLog::open(log_dir.path(), LogOptions::default()).unwrap());
    let handle = PipelineHandle::start(a, log, RunOptions::default());
    let mut stopped = handle.stop_and_take().await.unwrap().unwrap();
    assert_eq!(budget.used(), stopped.window_count());
    drop(stopped);
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn row_keys_split_into_output_and_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = open("keys", MINUTE_COUNTS, dir.path()).await;
    pipeline
        .process(&stored(trace_events()[..20].to_vec()), 0)
        .await
        .unwrap();
    let rows = pipeline.rows("acme");
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(
            row_key_parts(&row.key),
            Some((row.output.as_str(), row.window_start)),
            "{}",
            row.key
        );
    }
    assert_eq!(row_key_parts("out"), None);
    assert_eq!(
        row_key_parts("out\u{1f}[]\u{1f}12"),
        None,
        "not zero-padded"
    );
}

/// The real log behind a gate: reads wait until the gate opens, so a test
/// can look at a handle while its replay is under way.
struct GatedLog {
    log: Arc<EventLog>,
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl GatedLog {
    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl EventSource for GatedLog {
    type Error = copycar_events::LogError;

    fn read_from(&self, offset: u64, max: usize) -> Result<Vec<StoredEvent>, Self::Error> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        self.log.read_from(offset, max)
    }
}

#[tokio::test]
async fn handle_reports_replay_until_done() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EventLog::open(log_dir.path(), LogOptions::default()).unwrap());
    log.append_batch(trace_events()[..20].to_vec()).unwrap();
    let events = stored(trace_events()[..20].to_vec());

    let dir = tempfile::tempdir().unwrap();
    let mut live = open("gated", MINUTE_COUNTS, dir.path()).await;
    live.set_checkpoint_interval(Duration::from_secs(3_600));
    live.process(&events[..10], 0).await.unwrap();
    live.process(&events[10..], 0).await.unwrap();
    let crashed = crash_copy(dir.path());

    let gated = Arc::new(GatedLog {
        log: log.clone(),
        open: std::sync::Mutex::new(false),
        opened: std::sync::Condvar::new(),
    });
    let restarted = open("gated", MINUTE_COUNTS, crashed.path()).await;
    assert_eq!(restarted.steps_to_replay(), 2);
    let handle = PipelineHandle::start(restarted, gated.clone(), RunOptions::default());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        handle.is_replaying(),
        "the replay cannot read past the gate"
    );
    assert_eq!(handle.stats().next_offset, 0);

    gated.open_gate();
    wait_for_offset(&handle, 20).await;
    assert!(!handle.is_replaying());
    // Rows are not compared: the live loop's first heartbeat runs at today's
    // clock and expires these 2015 windows.
    assert_eq!(handle.stats().events_read, live.stats().events_read);
    handle.stop().await.unwrap();

    // Without journaled steps there is nothing to replay.
    let fresh = tempfile::tempdir().unwrap();
    let handle = PipelineHandle::start(
        open("gated", MINUTE_COUNTS, fresh.path()).await,
        log.clone(),
        RunOptions::default(),
    );
    assert!(!handle.is_replaying());
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn stopped_handle_writes_last_checkpoint() {
    let log_dir = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EventLog::open(log_dir.path(), LogOptions::default()).unwrap());
    let sql = source(", allowed_lateness = '1 hour'", ALL_COLUMNS)
        + "INSERT INTO out SELECT tumble(INTERVAL '15 minutes') AS window,
             count(*) AS requests FROM events GROUP BY window;";
    let options = RunOptions {
        poll_interval: Duration::from_millis(10),
        max_batch: 16,
        checkpoint_interval: Duration::from_secs(3_600),
        ..RunOptions::default()
    };
    let handle = PipelineHandle::start(
        open("flushed", &sql, state_dir.path()).await,
        log.clone(),
        options,
    );
    log.append_batch(trace_events()).unwrap();
    wait_for_offset(&handle, 100).await;
    handle.stop().await.unwrap();

    let reopened = open("flushed", &sql, state_dir.path()).await;
    assert_eq!(reopened.next_offset(), 100);
    let total: i64 = reopened
        .rows("acme")
        .iter()
        .map(|r| r.row["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 100);
}

#[tokio::test]
async fn handle_reads_log_and_pushes_updates() {
    let log_dir = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EventLog::open(log_dir.path(), LogOptions::default()).unwrap());
    log.append_batch(trace_events()[..40].to_vec()).unwrap();

    let sql = source(", allowed_lateness = '1 hour'", ALL_COLUMNS)
        + "INSERT INTO out SELECT tumble(INTERVAL '15 minutes') AS window,
             count(*) AS requests FROM events GROUP BY window;";
    let options = RunOptions {
        poll_interval: Duration::from_millis(10),
        max_batch: 16,
        ..RunOptions::default()
    };
    let handle = PipelineHandle::start(
        open("live", &sql, state_dir.path()).await,
        log.clone(),
        options.clone(),
    );
    let mut updates = handle.subscribe();
    wait_for_offset(&handle, 40).await;
    handle.stop().await.unwrap();

    // Append the rest while stopped; the restarted pipeline reads it once.
    log.append_batch(trace_events()[40..].to_vec()).unwrap();
    let handle = PipelineHandle::start(
        open("live", &sql, state_dir.path()).await,
        log.clone(),
        options,
    );
    let mut later = handle.subscribe();
    wait_for_offset(&handle, 100).await;
    let total: i64 = handle
        .rows("acme")
        .iter()
        .map(|r| r.row["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 100);
    assert_eq!(handle.stats().events_read, 100);
    handle.stop().await.unwrap();

    let pushed = updates.try_recv();
    let pushed_later = later.try_recv();
    assert!(pushed.is_ok() || pushed_later.is_ok());
}

async fn wait_for_offset(handle: &PipelineHandle, offset: u64) {
    // A hang guard, not a timing check: the log is local and small.
    for _ in 0..3_000 {
        if handle.stats().next_offset >= offset {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "pipeline did not reach offset {offset}: {:?}",
        handle.stats()
    );
}

fn error_of(sql: &str) -> SqlError {
    match parse_pipeline("broken", sql) {
        Ok(_) => panic!("expected an error for:\n{sql}"),
        Err(e) => e,
    }
}

#[test]
fn sql_errors_point_at_line_and_column() {
    let unknown_column = "CREATE TABLE events (\n    tenant TEXT,\n    colour TEXT\n) WITH (connector = 'event_log', type = 'source');";
    let e = error_of(unknown_column);
    assert_eq!((e.line, e.column), (3, 5), "{e}");
    assert!(e.message.contains("`colour` is not an event field"), "{e}");

    let bad_option = "CREATE TABLE events (tenant TEXT) WITH (\n  connector = 'event_log',\n  lateness = '5 minutes'\n);";
    let e = error_of(bad_option);
    assert_eq!((e.line, e.column), (3, 3), "{e}");
    assert!(
        e.message.contains("unknown source option `lateness`"),
        "{e}"
    );

    let header = "CREATE TABLE events (tenant TEXT, occurred_at TIMESTAMP)\nWITH (connector = 'event_log', type = 'source');\n";
    let bad_interval = format!(
        "{header}SELECT count(*),\n       tumble(INTERVAL 'soon') AS w\nFROM events GROUP BY w;"
    );
    let e = error_of(&bad_interval);
    assert_eq!((e.line, e.column), (4, 24), "{e}");
    assert!(e.message.contains("is not a fixed interval"), "{e}");

    let not_grouped = format!(
        "{header}SELECT tumble(INTERVAL '1 minute') AS w,\n  campaign, count(*)\nFROM events GROUP BY w;"
    );
    let e = error_of(&not_grouped);
    assert_eq!((e.line, e.column), (4, 3), "{e}");
    assert!(
        e.message.contains("`campaign` must be a GROUP BY key"),
        "{e}"
    );

    let control = format!("{header}CREATE TABLE \"out\u{1f}x\" WITH (type = 'sink');");
    let e = error_of(&control);
    assert_eq!((e.line, e.column), (3, 14), "{e}");
    assert!(e.message.contains("contains a control character"), "{e}");

    let no_window = format!("{header}SELECT campaign, count(*) FROM events\nGROUP BY campaign;");
    let e = error_of(&no_window);
    assert_eq!((e.line, e.column), (4, 10), "{e}");
    assert!(e.message.contains("GROUP BY has no window"), "{e}");

    let syntax = format!(
        "{header}SELECT count(*) FROM events\nGROUP BY tumble(INTERVAL '1 minute'),, campaign;"
    );
    let e = error_of(&syntax);
    assert_eq!(e.line, 4, "{e}");
    assert!(e.column > 30, "{e}");

    let bad_watermark = "CREATE TABLE events (\n  occurred_at TIMESTAMP,\n  WATERMARK FOR occurred_at AS received_at - INTERVAL '1 second'\n) WITH (connector = 'event_log', type = 'source');";
    let e = error_of(bad_watermark);
    assert_eq!((e.line, e.column), (3, 32), "{e}");

    let twice = format!(
        "{header}CREATE TABLE out WITH (connector = 'preview', type = 'sink');\nINSERT INTO out SELECT tumble(INTERVAL '1 minute') AS w, count(*) FROM events GROUP BY w;\nINSERT INTO out SELECT tumble(INTERVAL '1 hour') AS w, count(*) FROM events GROUP BY w;"
    );
    let e = error_of(&twice);
    assert!(e.message.contains("already has an INSERT"), "{e}");
    assert_eq!((e.line, e.column), (5, 13), "{e}");

    let distinct = format!(
        "{header}SELECT tumble(INTERVAL '1 minute') AS w, count(DISTINCT recipient)\nFROM events GROUP BY w;"
    );
    let e = error_of(&distinct);
    assert_eq!((e.line, e.column), (3, 42), "{e}");
}

#[test]
fn source_options_reject_signs_and_repeats() {
    for (options, expected) in [
        ("max_result_rows = '+5'", "max_result_rows `+5`"),
        ("max_open_windows = '+5'", "max_open_windows `+5`"),
        (
            "max_result_rows = '5', max_result_rows = '7'",
            "option `max_result_rows` is given twice",
        ),
    ] {
        let sql = MINUTE_COUNTS.replace(
            "allowed_lateness = '30 seconds'",
            &format!("allowed_lateness = '30 seconds', {options}"),
        );
        let error = error_of(&sql);
        assert_eq!(error.line, 4, "{options}: {error}");
        assert!(error.message.contains(expected), "{options}: {error}");
    }
}

#[test]
fn shipped_pipelines_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "sql") {
            let sql = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            parse_pipeline(&name, &sql).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            names.push(name);
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "campaign_hourly",
            "sender_domain_health",
            "variant_comparison"
        ]
    );
}

#[tokio::test]
async fn shipped_sender_domain_pipeline_computes_rates() {
    let dir = tempfile::tempdir().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sender_domain_health.sql");
    let sql = std::fs::read_to_string(path).unwrap();
    let mut pipeline = open("sender_domain_health", &sql, dir.path()).await;

    let mut events = Vec::new();
    for (i, kind) in ["sent", "sent", "sent", "sent", "bounce", "complaint"]
        .iter()
        .enumerate()
    {
        let mut event = Event::new("acme", kind.parse().unwrap(), HOUR_10 + i as i64 * 1_000);
        event
            .properties
            .insert("sender_domain".into(), json!("mail.example.com"));
        events.push(event);
    }
    events.push(Event::new("acme", EventType::Sent, HOUR_10 + 10_000));
    pipeline.process(&stored(events), 0).await.unwrap();

    let rows = pipeline.rows("acme");
    // 12 hop windows of an hour, sliding by 5 minutes, contain 10:00.
    assert_eq!(rows.len(), 12);
    for row in &rows {
        assert_eq!(row.row["sender_domain"], json!("mail.example.com"));
        assert_eq!(row.row["sent"], json!(4));
        assert_eq!(row.row["bounce_rate"], json!(0.25));
        assert_eq!(row.row["complaint_rate"], json!(0.25));
    }
}

#[tokio::test]
async fn datafusion_errors_point_at_statement() {
    let dir = tempfile::tempdir().unwrap();
    let sql = "CREATE TABLE events (tenant TEXT, type TEXT, occurred_at TIMESTAMP)
WITH (connector = 'event_log', type = 'source');
CREATE TABLE out WITH (connector = 'preview', type = 'sink');
INSERT INTO out
SELECT tumble(INTERVAL '1 minute') AS w, count(*) FILTER (WHERE colour = 'red') AS red
FROM events GROUP BY w;";
    let spec = parse_pipeline("unknown_column", sql).unwrap();
    let error = match Pipeline::open(spec, sql, dir.path()).await {
        Ok(_) => panic!("an unknown column must not plan"),
        Err(e) => e,
    };
    let copycar_pipelines::PipelineError::Sql { source, .. } = &error else {
        panic!("expected a SQL error, got {error}");
    };
    assert_eq!((source.line, source.column), (5, 1), "{source}");
    assert!(source.message.contains("colour"), "{source}");
}

#[tokio::test]
async fn session_merge_deletes_absorbed_row() {
    let dir = tempfile::tempdir().unwrap();
    let sql = "CREATE TABLE events (tenant TEXT, type TEXT, recipient TEXT, occurred_at TIMESTAMP,
  WATERMARK FOR occurred_at AS occurred_at - INTERVAL '1 hour')
WITH (connector = 'event_log', type = 'source');
CREATE TABLE out WITH (connector = 'preview', type = 'sink');
INSERT INTO out SELECT session(INTERVAL '10 seconds') AS window, count(*) AS events
FROM events GROUP BY window;";
    let mut pipeline = open("sessions", sql, dir.path()).await;
    let events = stored(vec![
        event_at("acme", 0),
        event_at("acme", 16),
        event_at("acme", 8),
    ]);
    pipeline.process(&events[0..2], 0).await.unwrap();
    assert_eq!(pipeline.rows("acme").len(), 2);

    // 8 s is within 10 s of both sessions, so they become one: the row of
    // the session that started at 16 s is deleted.
    let updates = pipeline.process(&events[2..3], 0).await.unwrap();
    let deletes: Vec<_> = updates
        .iter()
        .filter(|u| u.op == UpdateOp::Delete)
        .collect();
    assert_eq!(deletes.len(), 1);
    let rows = pipeline.rows("acme");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].row["events"], json!(3));
    assert_eq!(rows[0].row["window"], json!({"start": 0, "end": 26_000}));
}
