//! `copycar`: run a Spin application on the copycar host, or build its
//! components.

mod build;
mod event_store;
mod events_service;
mod llm_service;
mod local_models;
mod models;
mod models_service;
mod outreach;
mod pipelines;
mod pipelines_service;
mod send_time_service;
mod service_reply;
mod sql_service;
mod train;
mod train_send_time;
mod up;
mod vectors_service;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "copycar",
    version,
    about = "Runs Spin applications of WASI HTTP components on the copycar host"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application's components over HTTP.
    Up(up::UpArgs),
    /// Run each component's build command from the manifest.
    Build(build::BuildArgs),
    /// Train a model and store it as the registry's next version.
    Train(train::TrainArgs),
    /// List or promote stored model versions.
    Models(train::ModelsArgs),
    /// Research the companies in a CSV file and write copy for each.
    Outreach(outreach::OutreachArgs),
    /// Check streaming SQL pipelines or export them for another engine.
    #[command(subcommand)]
    Pipelines(pipelines::PipelinesCommand),
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Printed by hand: anyhow's own report adds a backtrace whenever
            // RUST_BACKTRACE is set, which buries the message.
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // candle spreads small matrix products over every core, which is
    // several times slower for these models than one thread (measured in
    // docs/benchmarks.md). A value the user set wins.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet; the runtime starts below.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,wasmtime_cranelift=warn,cranelift=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Build(args) => build::run(args),
        Command::Train(args) => train::run_train(args),
        Command::Models(args) => train::run_models(args),
        Command::Outreach(args) => outreach::run(args),
        Command::Pipelines(command) => pipelines::run(command),
    }
}

/// `--from` accepts a manifest file or a directory holding `spin.toml`.
pub(crate) fn manifest_path(from: &Path) -> PathBuf {
    if from.is_dir() {
        from.join("spin.toml")
    } else {
        from.to_path_buf()
    }
}
