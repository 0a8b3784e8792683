//! Trains the response-rate model on the full bank marketing data with the
//! default settings and saves it as the next version in the registry.
//!
//! Usage: cargo run --release -p copycar-models --example train_response_rate --
//!            PATH/bank-full.csv [--registry DIR]
//!
//! The registry defaults to `models/registry/response-rate` in this
//! repository.

use std::path::PathBuf;

use anyhow::{Context, bail};
use copycar_models::{
    DataSource, Dataset, ModelCard, Registry, Split, SplitSummary, TrainConfig, bank_marketing_csv,
    bank_marketing_schema, train,
};

const SPLIT_SEED: u64 = 42;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut csv = None;
    let mut registry = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/registry/response-rate"
    ));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--registry" => registry = args.next().context("--registry needs a directory")?.into(),
            flag if flag.starts_with("--") => bail!("unknown option {flag}"),
            path => csv = Some(PathBuf::from(path)),
        }
    }
    let csv = csv.context("usage: train_response_rate PATH/bank-full.csv [--registry DIR]")?;

    let options = bank_marketing_csv();
    let data = Dataset::from_csv(&csv, &options)?;
    let split = Split::stratified(data.labels(), SPLIT_SEED);
    let config = TrainConfig::default();
    let (model, summary) = train(
        &bank_marketing_schema(),
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &config,
        |p| {
            eprintln!(
                "epoch {:>3}/{}: train loss {:.4}, validation loss {:.4}, best epoch {}",
                p.epoch, p.max_epochs, p.train_loss, p.validation_loss, p.best_epoch
            )
        },
    )?;
    let test = model.evaluate(&data.subset(&split.test))?;

    let file_name = csv.file_name().map_or_else(
        || csv.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let source = DataSource {
        name: format!("UCI bank marketing, {file_name} (DOI 10.24432/C5K306)"),
        licence: "CC BY 4.0, Moro, Cortez and Rita (2014)".into(),
        rows: data.len(),
        target: format!("{} = \"{}\"", options.target, options.positive),
        dropped_columns: options.drop.clone(),
    };
    let card = ModelCard::new(
        &model,
        source,
        SplitSummary::of(&split),
        config,
        summary,
        test,
    );
    let registry = Registry::open(registry);
    let version = registry.save(&model, card)?;
    println!(
        "saved {} in {}: test ROC AUC {:.4}, PR AUC {:.4}, Brier {:.4}, log-loss {:.4}",
        version,
        registry.root().display(),
        test.roc_auc,
        test.pr_auc,
        test.brier,
        test.log_loss
    );
    Ok(())
}
