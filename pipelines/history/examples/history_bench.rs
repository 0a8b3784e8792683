//! Measures compaction of the event log into Parquet (events per second) and
//! the latency of typical ad-hoc queries over one tenant's history.
//!
//! Usage: `history_bench [events] [parent-dir]`, by default 1,000,000 events
//! of one tenant in a temporary directory under the current directory. The
//! events are appended first in batches of 10,000 (not timed), then
//! compacted until the history has caught up with the log (timed), then
//! each query runs five times and the median is printed.

use copycar_events::{Event, EventLog, EventType, LogOptions};
use copycar_history::{CompactorOptions, History, QueryLimits};
use std::time::{Duration, Instant};

const TENANT: &str = "acme";
const QUERIES: [(&str, &str); 3] = [
    ("count", "SELECT count(*) FROM events"),
    (
        "events per type and day",
        "SELECT date_trunc('day', occurred_at) AS day, type, count(*) AS n \
         FROM events GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    (
        "click rate per campaign and variant",
        "SELECT campaign, variant, \
         avg(CASE WHEN type = 'click' THEN 1.0 ELSE 0.0 END) AS click_rate, \
         count(DISTINCT recipient) AS recipients \
         FROM events WHERE occurred_at >= TIMESTAMP '2023-11-15T00:00:00Z' \
         GROUP BY campaign, variant ORDER BY click_rate DESC LIMIT 20",
    ),
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 1_000_000,
    };
    let parent = std::env::args().nth(2).unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&parent)?;
    let dir = tempfile::tempdir_in(&parent)?;

    let log = EventLog::open(dir.path().join("events"), LogOptions::default())?;
    let mut next = 0;
    while next < total {
        let end = (next + 10_000).min(total);
        let results = log.append_batch((next..end).map(sample_event).collect())?;
        if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
            return Err(format!("benchmark event rejected: {error}").into());
        }
        next = end;
    }

    let history = History::open(dir.path().join("history"), CompactorOptions::default())?;
    let started = Instant::now();
    let mut runs = 0;
    while history.next_offset() < log.next_offset() {
        history.compact(&log)?;
        runs += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let files = history.tenant_files(TENANT);
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    println!(
        "compaction: {total} events in {seconds:.2} s ({:.0} events/s), {runs} runs, \
         {} files, {:.1} MB of Parquet",
        total as f64 / seconds,
        files.len(),
        bytes as f64 / 1e6
    );

    let limits = QueryLimits {
        timeout: Duration::from_secs(300),
        ..QueryLimits::default()
    };
    println!("| query | median ms | rows |");
    println!("|---|---:|---:|");
    for (name, sql) in QUERIES {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let output = history.query(TENANT, sql, &limits).await?;
            times.push(started.elapsed());
            rows = output.rows.len();
        }
        times.sort();
        println!("| {name} | {:.0} | {rows} |", times[2].as_secs_f64() * 1e3);
    }
    Ok(())
}

/// Builds an event with every optional field set, spread over 30 days, 4
/// campaigns, 2 variants and 50,000 recipients.
fn sample_event(n: usize) -> Event {
    let types = [
        EventType::Sent,
        EventType::Open,
        EventType::Click,
        EventType::Reply,
    ];
    let occurred_at = 1_700_000_000_000 + (n as i64 % 30) * 86_400_000 + n as i64;
    let mut event = Event::new(TENANT, types[n % types.len()].clone(), occurred_at);
    event.event_id = Some(format!("bench-{n}"));
    event.campaign = Some(format!("campaign-{}", n % 4));
    event.account = Some(format!("acct-{}", n % 500));
    event.recipient = Some(format!(
        "r-{:08x}",
        (n % 50_000).wrapping_mul(2_654_435_761)
    ));
    event.channel = Some("email".into());
    event.variant = Some(if n % 2 == 0 { "a" } else { "b" }.into());
    event
        .properties
        .insert("url".into(), "https://example.com/pricing".into());
    event
}
