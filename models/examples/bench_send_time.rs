//! Measures send-time model loading and in-process prediction latency for
//! batches of 1 and 1,000 recipients.
//!
//! Usage: cargo run --release -p copycar-models --example bench_send_time --
//!            REGISTRY_DIR [VERSION]
//!
//! REGISTRY_DIR is one tenant's folder, such as
//! `models/registry/send-time/<tenant>`; VERSION defaults to the active one.
//! The batch of 1,000 takes known recipients, then known segments without a
//! recipient, then unknown recipients, in the ratio 8:1:1.

use std::time::Instant;

use anyhow::Context;
use copycar_models::Registry;
use copycar_models::send_time::{Objective, SendTimeQuery};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let registry = Registry::open(
        args.next()
            .context("usage: bench_send_time REGISTRY_DIR [VERSION]")?,
    );
    let version = match args.next() {
        Some(version) => version,
        None => registry.active()?.context("the registry has no version")?,
    };

    let started = Instant::now();
    let (model, card) = registry.load_send_time(&version)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "loaded {version}: {} recipients, {} segments in {load_ms:.1} ms",
        card.data.recipients, card.data.segments
    );

    let recipients = model.recipient_names();
    let segments = model.segment_keys();
    let queries: Vec<SendTimeQuery> = (0..1000)
        .map(|i| match i % 10 {
            0 => SendTimeQuery {
                recipient: Some(format!("unknown-{i}")),
                ..SendTimeQuery::default()
            },
            1 => {
                let key = &segments[i % segments.len()];
                SendTimeQuery {
                    channel: key.channel.clone(),
                    segment: key.segment.clone(),
                    ..SendTimeQuery::default()
                }
            }
            _ => SendTimeQuery {
                recipient: Some(recipients[i % recipients.len()].clone()),
                utc_offset_minutes: 60,
                ..SendTimeQuery::default()
            },
        })
        .collect();

    for (batch, rounds) in [(1usize, 2000usize), (1000, 50)] {
        let mut times = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let start = (round * batch) % queries.len();
            let slice = &queries[start..(start + batch).min(queries.len())];
            let begin = Instant::now();
            let predictions: Vec<_> = slice
                .iter()
                .map(|q| model.predict(q, Objective::Open, 3))
                .collect();
            times.push(begin.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(predictions);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "batch {batch:>4}: p50 {:.3} ms, p95 {:.3} ms over {rounds} rounds",
            times[rounds / 2],
            times[rounds * 95 / 100]
        );
    }
    Ok(())
}
