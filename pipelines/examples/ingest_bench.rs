//! Measures durable in-process ingest: events per second through
//! `EventLog::append_batch`, which syncs every batch to disk, for batch sizes
//! of 1, 100 and 10,000.
//!
//! Two rates are printed per run. `append events/s` times only the
//! `append_batch` calls. `end-to-end events/s` also counts building each
//! batch's `Event` values, which a caller pays before it can append.
//!
//! Usage: `ingest_bench [parent-dir]`. The log goes in a temporary directory
//! under `parent-dir` (default: the current directory). Put it on the disk
//! you want to measure, because fsync on tmpfs does not reach a disk.

use copycar_events::{Event, EventLog, EventType, LogOptions};
use std::time::{Duration, Instant};

/// (batch size, events written) for each run. Small batches write fewer
/// events because each batch waits for one fsync.
const RUNS: [(usize, usize); 3] = [(1, 2_000), (100, 100_000), (10_000, 500_000)];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let parent = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&parent)?;

    println!("| batch size | events | append seconds | append events/s | end-to-end events/s |");
    println!("|---:|---:|---:|---:|---:|");
    for (batch_size, total) in RUNS {
        let dir = tempfile::tempdir_in(&parent)?;
        let log = EventLog::open(dir.path(), LogOptions::default())?;

        let started = Instant::now();
        let mut appending = Duration::ZERO;
        let mut next_id = 0usize;
        while next_id < total {
            let batch = (next_id..next_id + batch_size).map(sample_event).collect();
            let append_started = Instant::now();
            let results = log.append_batch(batch)?;
            appending += append_started.elapsed();
            if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
                return Err(format!("benchmark event rejected: {error}").into());
            }
            next_id += batch_size;
        }
        let seconds = started.elapsed().as_secs_f64();
        let append_seconds = appending.as_secs_f64();

        println!(
            "| {batch_size} | {total} | {append_seconds:.2} | {:.0} | {:.0} |",
            total as f64 / append_seconds,
            total as f64 / seconds
        );
    }
    Ok(())
}

/// Builds a click with every optional field set, as a real one has.
fn sample_event(n: usize) -> Event {
    let mut event = Event::new("acme", EventType::Click, 1_700_000_000_000 + n as i64);
    event.event_id = Some(format!("bench-{n}"));
    event.campaign = Some("spring-launch".into());
    event.account = Some("acct-42".into());
    event.recipient = Some(format!("r-{:08x}", n.wrapping_mul(2_654_435_761)));
    event.channel = Some("email".into());
    event.variant = Some("b".into());
    event
        .properties
        .insert("url".into(), "https://example.com/pricing".into());
    event
}
