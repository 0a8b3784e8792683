//! Measures freshness: the time from appending one event to the event log
//! until a subscriber receives the result row it changed.
//!
//! Usage: cargo run -p copycar-pipelines --example freshness [SAMPLES]

use copycar_events::{Event, EventLog, EventType, LogOptions};
use copycar_pipelines::{Pipeline, PipelineHandle, RunOptions, parse_pipeline};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[tokio::main]
async fn main() {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let log_dir = tempfile::tempdir().expect("temporary directory");
    let state_dir = tempfile::tempdir().expect("temporary directory");
    let log = Arc::new(EventLog::open(log_dir.path(), LogOptions::default()).expect("open log"));

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../campaign_hourly.sql");
    let sql = std::fs::read_to_string(path).expect("read campaign_hourly.sql");
    let spec = parse_pipeline("campaign_hourly", &sql).expect("parse");
    let pipeline = Pipeline::open(spec, &sql, state_dir.path())
        .await
        .expect("open pipeline");
    let options = RunOptions {
        poll_interval: Duration::from_millis(10),
        ..RunOptions::default()
    };
    println!("poll interval: {:?}", options.poll_interval);
    let handle = PipelineHandle::start(pipeline, log.clone(), options);
    let mut updates = handle.subscribe();

    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut event = Event::new("acme", EventType::Sent, now);
        event.campaign = Some(format!("campaign-{}", i % 5));
        let started = Instant::now();
        log.append_batch(vec![event]).expect("append");
        loop {
            let update = updates.recv().await.expect("update");
            if update
                .row
                .as_ref()
                .and_then(|r| r.get("campaign"))
                .and_then(|c| c.as_str())
                == Some(&format!("campaign-{}", i % 5))
            {
                break;
            }
        }
        latencies.push(started.elapsed());
    }
    handle.stop().await.expect("stop");

    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "samples: {samples}, p50: {:.1} ms, p99: {:.1} ms, max: {:.1} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}
