//! Measures what open windows cost as the shipped `campaign_hourly`
//! pipeline keeps more and more windows of one tenant. At each size it
//! prints resident memory, checkpoint size, the time of a micro-batch and
//! the time of writing the whole checkpoint after it.
//!
//! Every event has its own campaign in the same hour, so each opens one
//! window and one result row. Linux only: memory is read from
//! `/proc/self/status`.
//!
//! Usage: cargo run -p copycar-pipelines --example window_memory [WINDOWS] [BATCH]

use copycar_events::{Event, EventType, StoredEvent};
use copycar_pipelines::{Pipeline, parse_pipeline};
use std::time::Instant;

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let windows: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let state_dir = tempfile::tempdir().expect("temporary directory");

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../campaign_hourly.sql");
    let shipped = std::fs::read_to_string(path).expect("read campaign_hourly.sql");
    let sql = shipped.replace(
        "idle_timeout = '30 seconds'",
        &format!("idle_timeout = '30 seconds',\n    max_open_windows = '{windows}'"),
    );
    assert_ne!(
        sql, shipped,
        "campaign_hourly.sql no longer sets idle_timeout"
    );
    let spec = parse_pipeline("campaign_hourly", &sql).expect("parse");
    let mut pipeline = Pipeline::open(spec, &sql, state_dir.path())
        .await
        .expect("open pipeline");
    // Checkpoints are written by `flush` only, to time them apart.
    pipeline.set_checkpoint_interval(std::time::Duration::from_secs(86_400));
    let checkpoint = state_dir.path().join("campaign_hourly.checkpoint.json");

    // 2026-01-05T10:00:00Z; every event falls in that hour.
    let hour = 1_767_607_200_000_i64;
    let kinds = [EventType::Sent, EventType::Delivered, EventType::Open];
    let base = rss_bytes();
    println!(
        "windows={windows} batch={batch} rss_before={:.1} MiB",
        base as f64 / 1_048_576.0
    );
    println!(
        "| open windows | RSS growth MiB | bytes per window | checkpoint MiB | batch ms | checkpoint write ms |"
    );
    println!("|---|---|---|---|---|---|");
    let mut offset = 0u64;
    while (offset as usize) < windows {
        let n = batch.min(windows - offset as usize);
        let events: Vec<StoredEvent> = (0..n)
            .map(|i| {
                let at = offset + i as u64;
                let mut event = Event::new(
                    "acme",
                    kinds[at as usize % 3].clone(),
                    hour + (at % 3_600_000) as i64,
                );
                event.campaign = Some(format!("campaign-{at:07}"));
                StoredEvent { offset: at, event }
            })
            .collect();
        let started = Instant::now();
        pipeline.process(&events, 0).await.expect("process");
        let took = started.elapsed();
        let started = Instant::now();
        pipeline.flush().expect("write checkpoint");
        let wrote = started.elapsed();
        offset += n as u64;

        let open = pipeline.stats().tenants["acme"].open_windows;
        let grown = rss_bytes().saturating_sub(base);
        let size = std::fs::metadata(&checkpoint).map(|m| m.len()).unwrap_or(0);
        println!(
            "| {open} | {:.1} | {} | {:.1} | {:.0} | {:.0} |",
            grown as f64 / 1_048_576.0,
            grown / open.max(1) as u64,
            size as f64 / 1_048_576.0,
            took.as_secs_f64() * 1e3,
            wrote.as_secs_f64() * 1e3
        );
    }
}
