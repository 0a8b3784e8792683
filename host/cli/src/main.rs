//! `copycar`: run a Spin application on the copycar host, or build its
//! components.

mod build;
mod up;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "copycar", version, about = "Runs Spin applications of WASI HTTP components on the copycar host")]
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmtime_cranelift=warn,cranelift=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Build(args) => build::run(args),
    }
}

/// `--from` accepts a manifest file or a directory holding `spin.toml`.
pub(crate) fn manifest_path(from: &Path) -> PathBuf {
    if from.is_dir() { from.join("spin.toml") } else { from.to_path_buf() }
}
