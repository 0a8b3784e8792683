//! `copycar train send-time`: read one tenant's events from the embedded
//! event log, train the send-time model and store it in the registry.

use anyhow::Context;
use copycar_events::EventLog;
use copycar_models::send_time::{
    EventRange, LiftEstimate, OutcomeJoin, SendTimeConfig, SendTimeStage, tenant_registry,
    train_send_time,
};

use crate::train::SendTimeArgs;

/// Events read from the log per call.
const READ_CHUNK: usize = 10_000;

pub(crate) fn run(args: SendTimeArgs) -> anyhow::Result<()> {
    let config = SendTimeConfig {
        holdout_fraction: args.holdout,
        attribution_window_hours: args.attribution_window_hours,
        seed: args.seed,
        ..SendTimeConfig::default()
    };
    config.validate()?;
    let registry = tenant_registry(&args.registry, &args.tenant)?;
    let log_dir = args.data_dir.join("events");
    let log = EventLog::open_read_only(&log_dir)
        .with_context(|| format!("failed to open the event log in {}", log_dir.display()))?;

    // Read everything up to the end seen now; events appended later wait
    // for the next training run.
    let first_offset = log.start_offset();
    let end_offset = log.next_offset();
    eprintln!(
        "Reading events of tenant {} from {} (offsets {first_offset}..{end_offset})",
        args.tenant,
        log_dir.display()
    );
    let window_ms = i64::from(config.attribution_window_hours) * 3_600_000;
    let mut join = OutcomeJoin::new(window_ms);
    let mut offset = first_offset;
    let mut tenant_events = 0u64;
    while offset < end_offset {
        let batch = log
            .read_from(offset, READ_CHUNK.min((end_offset - offset) as usize))
            .with_context(|| format!("failed to read {} at offset {offset}", log_dir.display()))?;
        let Some(last) = batch.last() else { break };
        offset = last.offset + 1;
        for stored in batch.iter().filter(|s| s.event.tenant == args.tenant) {
            join.push(&stored.event);
            tenant_events += 1;
        }
        eprintln!(
            "  read {}/{} events, {tenant_events} of the tenant",
            offset - first_offset,
            end_offset - first_offset
        );
    }
    let (outcomes, stats) = join.finish();
    eprintln!(
        "Joined {} sends with {} opens and {} replies ({} responses without a matching send)",
        outcomes.len(),
        stats.opens,
        stats.replies,
        stats.unmatched_responses
    );
    anyhow::ensure!(
        !outcomes.is_empty(),
        "tenant {} has no `sent` events with a recipient in {}; record sends before training",
        args.tenant,
        log_dir.display()
    );

    let range = EventRange {
        log: log_dir.display().to_string(),
        tenant: args.tenant.clone(),
        first_offset,
        end_offset: offset,
        description: args.description.clone(),
    };
    let (model, card, seconds) =
        train_send_time(&outcomes, stats, range, &config, |stage| match stage {
            SendTimeStage::FitTraining { train_sends } => {
                eprintln!("  fitting on {train_sends} sends before the time cutoff")
            }
            SendTimeStage::Evaluate { test_sends } => eprintln!(
                "  evaluating on {test_sends} held-out sends ({} bootstrap resamples)",
                config.bootstrap_samples
            ),
            SendTimeStage::FitAll { sends } => eprintln!("  fitting on all {sends} sends"),
        })
        .context("send-time training failed")?;

    let holdout = card.holdout.clone();
    let version = registry.save_send_time(&model, card)?;
    println!(
        "Saved send-time {version} in {} ({} recipients, {} segments, {:.2} s)",
        registry.root().display(),
        model.recipient_count(),
        model.segment_keys().len(),
        seconds
    );
    println!("  open lift:  {}", describe(&holdout.open));
    println!("  reply lift: {}", describe(&holdout.reply));
    if args.promote {
        registry.promote(&version)?;
        println!("Promoted {version} to active");
    }
    Ok(())
}

/// Formats a lift estimate as percentage points with its interval.
fn describe(estimate: &LiftEstimate) -> String {
    let percent = |rate: Option<f64>| match rate {
        Some(rate) => format!("{:.2}%", rate * 100.0),
        None => "n/a".into(),
    };
    let interval = match estimate.lift_interval {
        Some([low, high]) => format!("95% CI [{:+.2}, {:+.2}] pp", low * 100.0, high * 100.0),
        None => "no interval: too few matched sends".into(),
    };
    format!(
        "model {} of {} matched sends, baseline {} of {}, lift {} pp, {interval}",
        percent(estimate.model.rate),
        estimate.model.matched,
        percent(estimate.baseline.rate),
        estimate.baseline.matched,
        estimate
            .lift
            .map_or("n/a".into(), |l| format!("{:+.2}", l * 100.0)),
    )
}
