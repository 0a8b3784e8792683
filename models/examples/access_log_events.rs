//! Derives send-time training events from a real web access log and appends
//! them to an event log directory, or writes them as request bodies for
//! `POST /api/v1/events`.
//!
//! Usage: cargo run --release -p copycar-models --example access_log_events --
//!            PATH/apache_logs.csv (--data-dir DIR --tenant TENANT | --jsonl FILE)
//!            [--sends-per-client N] [--seed S]
//!
//! What is real: each pseudonymous client address of the log is one
//! recipient, and the times of its requests are its real active hours. The
//! user agent gives the recipient's segment (`crawler`, `mobile` or
//! `desktop`).
//!
//! What is derived: there were no e-mails. Each recipient gets
//! `--sends-per-client` sends (default 24), each in its own campaign, at
//! times drawn uniformly at random over the log's span with a seeded
//! SplitMix64 generator. A send is opened when the client made a request
//! within 3 hours after it, and the open event carries that request's time.
//! It is replied to when the client made at least 5 requests within the
//! hour after the open, and the reply carries the time of the fifth.
//!
//! With `--data-dir`, the events go into `DIR/events` through the event log
//! API, in batches of 1,000. Do not run this while a host serves the same
//! data directory: the log has one writer. With `--jsonl`, each line of FILE
//! is one `{"events": [...]}` body of up to 1,000 events without a tenant,
//! for `POST /api/v1/events`, which takes the tenant from the credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use copycar_events::{Event, EventLog, EventType, LogOptions};
use serde_json::json;

const HOUR_MS: i64 = 3_600_000;
/// A request this long after a send counts as opening it.
const OPEN_WINDOW_MS: i64 = 3 * HOUR_MS;
/// Requests within an hour of the open that make it a reply.
const REPLY_REQUESTS: usize = 5;
const REPLY_WINDOW_MS: i64 = HOUR_MS;
const BATCH: usize = 1000;

struct Client {
    segment: &'static str,
    /// Request times in Unix milliseconds, sorted.
    times: Vec<i64>,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut csv, mut data_dir, mut tenant, mut jsonl) = (None, None, None, None);
    let mut sends_per_client = 24usize;
    let mut seed = 42u64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => {
                data_dir = Some(PathBuf::from(
                    args.next().context("--data-dir needs a directory")?,
                ))
            }
            "--tenant" => tenant = Some(args.next().context("--tenant needs an id")?),
            "--jsonl" => jsonl = Some(PathBuf::from(args.next().context("--jsonl needs a file")?)),
            "--sends-per-client" => {
                sends_per_client = args
                    .next()
                    .context("--sends-per-client needs a number")?
                    .parse()?
            }
            "--seed" => seed = args.next().context("--seed needs a number")?.parse()?,
            flag if flag.starts_with("--") => bail!("unknown option {flag}"),
            path => csv = Some(PathBuf::from(path)),
        }
    }
    let usage = "usage: access_log_events PATH/apache_logs.csv \
                 (--data-dir DIR --tenant TENANT | --jsonl FILE)";
    let csv = csv.context(usage)?;
    // The tenant of `--jsonl` output is replaced by the events service.
    let tenant = match (&data_dir, &jsonl) {
        (Some(_), None) => tenant.context(usage)?,
        (None, Some(_)) => "jsonl".to_owned(),
        _ => bail!(usage),
    };

    let clients = read_clients(&csv)?;
    let start = clients
        .values()
        .flat_map(|c| c.times.first())
        .min()
        .copied()
        .unwrap_or(0);
    let end = clients
        .values()
        .flat_map(|c| c.times.last())
        .max()
        .copied()
        .unwrap_or(0);
    anyhow::ensure!(
        end - start > OPEN_WINDOW_MS,
        "{} spans less than the open window",
        csv.display()
    );

    let mut events = Vec::new();
    let mut stream = 0u64;
    let (mut sends, mut opens, mut replies) = (0, 0, 0);
    for (address, client) in &clients {
        let recipient = format!("client-{address}");
        for k in 0..sends_per_client {
            // Sends fall where the open window still lies inside the log.
            let span = (end - OPEN_WINDOW_MS - start) as u64;
            let sent_at = start + (splitmix64(seed, stream) % span) as i64;
            stream += 1;
            let campaign = format!("trace-{k}");
            let event = |kind: EventType, at: i64, suffix: &str| {
                let mut event = Event::new(tenant.clone(), kind, at);
                event.event_id = Some(format!("{recipient}-{campaign}-{suffix}"));
                event.recipient = Some(recipient.clone());
                event.campaign = Some(campaign.clone());
                event.channel = Some("email".into());
                event
            };
            let mut sent = event(EventType::Sent, sent_at, "sent");
            sent.properties
                .insert("segment".into(), json!(client.segment));
            events.push(sent);
            sends += 1;

            let after = client.times.partition_point(|&t| t <= sent_at);
            let Some(&opened_at) = client
                .times
                .get(after)
                .filter(|&&t| t - sent_at <= OPEN_WINDOW_MS)
            else {
                continue;
            };
            events.push(event(EventType::Open, opened_at, "open"));
            opens += 1;
            let fifth = client.times.get(after + REPLY_REQUESTS - 1);
            if let Some(&replied_at) = fifth.filter(|&&t| t - opened_at <= REPLY_WINDOW_MS) {
                events.push(event(EventType::Reply, replied_at, "reply"));
                replies += 1;
            }
        }
    }

    let summary = format!(
        "{} clients: {sends} sends, {opens} opens, {replies} replies",
        clients.len()
    );
    if let Some(path) = jsonl {
        write_jsonl(&path, &events)?;
        println!("{summary} written to {}", path.display());
        return Ok(());
    }
    let log_dir = data_dir.expect("checked with the usage").join("events");
    let log = EventLog::open(&log_dir, LogOptions::default())
        .with_context(|| format!("failed to open the event log in {}", log_dir.display()))?;
    let first = log.next_offset();
    let mut rejected = 0;
    for batch in events.chunks(BATCH) {
        let results = log.append_batch(batch.to_vec())?;
        rejected += results.iter().filter(|r| r.is_err()).count();
    }
    println!(
        "{summary} appended to {} (offsets {first}..{}, {rejected} rejected)",
        log_dir.display(),
        log.next_offset()
    );
    Ok(())
}

/// Writes `events` as lines of `{"events": [...]}` with up to 1,000 events
/// each, leaving out the fields the log sets.
fn write_jsonl(path: &std::path::Path, events: &[Event]) -> anyhow::Result<()> {
    let mut text = String::new();
    for batch in events.chunks(BATCH) {
        let mut items = Vec::with_capacity(batch.len());
        for event in batch {
            let mut value = serde_json::to_value(event)?;
            if let Some(object) = value.as_object_mut() {
                object.remove("tenant");
                object.remove("received_at");
            }
            items.push(value);
        }
        text.push_str(&json!({ "events": items }).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}

/// Reads the request times and user-agent segment of each client address.
fn read_clients(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, Client>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no `{name}` column", path.display()))
    };
    let (ip, timestamp, agent) = (column("ip")?, column("timestamp")?, column("user_agent")?);
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{} line {}", path.display(), line + 2))?;
        let at = chrono::DateTime::parse_from_rfc3339(&record[timestamp])
            .with_context(|| format!("{} line {}: invalid timestamp", path.display(), line + 2))?
            .timestamp_millis();
        let client = clients
            .entry(record[ip].to_owned())
            .or_insert_with(|| Client {
                segment: segment_of(&record[agent]),
                times: Vec::new(),
            });
        client.times.push(at);
    }
    for client in clients.values_mut() {
        client.times.sort_unstable();
    }
    Ok(clients)
}

/// Classifies a user agent: automated clients, phones and tablets, the rest.
fn segment_of(user_agent: &str) -> &'static str {
    let agent = user_agent.to_ascii_lowercase();
    if ["bot", "spider", "crawl", "slurp"]
        .iter()
        .any(|w| agent.contains(w))
    {
        "crawler"
    } else if ["mobile", "android", "iphone", "ipad"]
        .iter()
        .any(|w| agent.contains(w))
    {
        "mobile"
    } else {
        "desktop"
    }
}

/// Returns the `index`-th output of a SplitMix64 generator seeded with `seed`.
fn splitmix64(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
