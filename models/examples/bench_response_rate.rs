//! Trains the response-rate model on the bank marketing data, prints the
//! test metrics in the same table as `models/bench/compare.py`, then times
//! prediction for one row and for 1,000 rows.
//!
//! Usage: cargo run --release -p copycar-models --example bench_response_rate --
//!            PATH/bank-full.csv [--hidden N] [--members N] [--learning-rate X]
//!            [--weight-decay X] [--batch-size N] [--patience N] [--seed N]
//!            [--no-latency] [--no-month-day]
//!
//! `--no-month-day` leaves the month-by-day cross out of the schema.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use copycar_models::{
    Dataset, Metrics, Schema, Split, TrainConfig, bank_marketing_csv, bank_marketing_schema, train,
};

const SPLIT_SEED: u64 = 42;
const SINGLE_ROW_RUNS: usize = 5_000;
const BATCH_RUNS: usize = 100;
const BATCH_ROWS: usize = 1_000;

struct Options {
    csv: PathBuf,
    config: TrainConfig,
    latency: bool,
    month_day: bool,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut csv = None;
    let mut config = TrainConfig::default();
    let mut latency = true;
    let mut month_day = true;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--hidden" => config.architecture.hidden = value(&arg)?.parse()?,
            "--members" => config.architecture.members = value(&arg)?.parse()?,
            "--learning-rate" => config.learning_rate = value(&arg)?.parse()?,
            "--weight-decay" => config.weight_decay = value(&arg)?.parse()?,
            "--batch-size" => config.batch_size = value(&arg)?.parse()?,
            "--patience" => config.patience = value(&arg)?.parse()?,
            "--seed" => config.seed = value(&arg)?.parse()?,
            "--no-latency" => latency = false,
            "--no-month-day" => month_day = false,
            flag if flag.starts_with("--") => bail!("unknown option {flag}"),
            path => csv = Some(PathBuf::from(path)),
        }
    }
    let csv = csv.context("usage: bench_response_rate PATH/bank-full.csv [options]")?;
    Ok(Options {
        csv,
        config,
        latency,
        month_day,
    })
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let data = Dataset::from_csv(&options.csv, &bank_marketing_csv())?;
    let split = Split::stratified(data.labels(), SPLIT_SEED);
    println!(
        "split: train {}, validation {}, test {}, test fingerprint {}",
        split.train.len(),
        split.validation.len(),
        split.test.len(),
        split.test_fingerprint()
    );
    println!("config: {}", serde_json::to_string(&options.config)?);

    let mut schema = bank_marketing_schema();
    if !options.month_day {
        let fields = schema.fields().iter().filter(|f| f.name() != "month_day");
        schema = Schema::new(fields.cloned().collect());
    }
    let (model, summary) = train(
        &schema,
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &options.config,
        |p| {
            eprintln!(
                "epoch {:>3}/{}: train loss {:.4}, validation loss {:.4}, best epoch {}",
                p.epoch, p.max_epochs, p.train_loss, p.validation_loss, p.best_epoch
            )
        },
    )?;
    let test = model.evaluate(&data.subset(&split.test))?;
    println!(
        "trained {} epochs (best {}) in {:.2} s; calibration scale {:.3}, bias {:.3}",
        summary.epochs_run,
        summary.best_epoch,
        summary.seconds,
        summary.calibration.scale,
        summary.calibration.bias
    );
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "model", "ROC AUC", "PR AUC", "Brier", "log-loss", "train s"
    );
    print_row(
        "copycar validation (optimistic)",
        &summary.validation,
        summary.seconds,
    );
    print_row("copycar test", &test, summary.seconds);

    if options.latency {
        let records = data.subset(&split.test);
        let rows = &records.records()[..BATCH_ROWS];
        let single = time_runs(SINGLE_ROW_RUNS, |i| {
            model
                .predict(&rows[i % BATCH_ROWS..i % BATCH_ROWS + 1])
                .map(|_| ())
        })?;
        let batch = time_runs(BATCH_RUNS, |_| model.predict(rows).map(|_| ()))?;
        println!(
            "{:<24} {:>6} {:>10} {:>10} {:>10}",
            "prediction latency", "runs", "p50 µs", "p99 µs", "µs/row"
        );
        for (name, runs, rows_per_run, mut times) in [
            ("1 row", SINGLE_ROW_RUNS, 1, single),
            ("1,000 rows", BATCH_RUNS, BATCH_ROWS, batch),
        ] {
            times.sort_by(f64::total_cmp);
            let p50 = times[times.len() / 2];
            let p99 = times[(times.len() * 99).div_ceil(100) - 1];
            println!(
                "{name:<24} {runs:>6} {p50:>10.1} {p99:>10.1} {:>10.2}",
                p50 / rows_per_run as f64
            );
        }
    }
    Ok(())
}

fn print_row(name: &str, metrics: &Metrics, seconds: f64) {
    println!(
        "{name:<32} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {seconds:>8.2}",
        metrics.roc_auc, metrics.pr_auc, metrics.brier, metrics.log_loss
    );
}

/// Runs `work` after a short warm-up and returns each run's time in µs.
fn time_runs(
    runs: usize,
    mut work: impl FnMut(usize) -> Result<(), copycar_models::ModelError>,
) -> anyhow::Result<Vec<f64>> {
    for i in 0..runs.min(50) {
        work(i)?;
    }
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let start = Instant::now();
        work(i)?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(times)
}
