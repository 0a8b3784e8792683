//! `copycar pipelines`: check pipeline files, or export them for Arroyo.

use crate::pipelines_service::MAX_WINDOWS_PER_TENANT;
use clap::{Args, Subcommand, ValueEnum};
use copycar_pipelines::{ArroyoTarget, Pipeline, PipelineError, export_arroyo, parse_pipeline};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest pipeline file, the same limit as the API's.
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Subcommand)]
pub(crate) enum PipelinesCommand {
    /// Parse and plan pipeline files; errors point at line and column.
    Check(CheckArgs),
    /// Write pipelines for another engine.
    Export(ExportArgs),
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// Pipeline files, or folders of `*.sql` files.
    #[arg(default_value = "pipelines")]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    /// An Arroyo cluster reading the events topic on Fluvio.
    Arroyo,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The engine to export for.
    #[arg(long, value_enum)]
    target: Target,
    /// The Fluvio topic that holds the events.
    #[arg(long, default_value = "copycar-events")]
    topic: String,
    /// The Fluvio cluster's SC address, such as fluvio-sc:9003 [default:
    /// Arroyo's Fluvio profile].
    #[arg(long)]
    endpoint: Option<String>,
    /// Folder to write `<name>.sql` files to; standard output when unset.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Pipeline files, or folders of `*.sql` files.
    #[arg(default_value = "pipelines")]
    paths: Vec<PathBuf>,
}

pub(crate) fn run(command: PipelinesCommand) -> anyhow::Result<()> {
    match command {
        PipelinesCommand::Check(args) => check(args),
        PipelinesCommand::Export(args) => export(args),
    }
}

/// Lists the `.sql` files named by `paths`, folders expanded, sorted.
fn pipeline_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", path.display()))?
                .flatten()
                .map(|entry| entry.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                .collect();
            found.sort();
            if found.is_empty() {
                anyhow::bail!("{} contains no .sql files", path.display());
            }
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            anyhow::bail!("{} does not exist", path.display());
        }
    }
    Ok(files)
}

fn read(path: &Path) -> anyhow::Result<(String, String)> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow::anyhow!("{} has no usable file name", path.display()))?
        .to_string();
    // A pipeline is at most 64 KiB; reading stops there, so a device file
    // or a huge file fails fast.
    let mut sql = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut sql))
        .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", path.display()))?;
    if sql.len() as u64 > MAX_FILE_BYTES {
        anyhow::bail!(
            "{} is larger than {MAX_FILE_BYTES} bytes, the most a pipeline may be",
            path.display()
        );
    }
    Ok((name, sql))
}

/// Parses and plans a pipeline as the host does. Planning on DataFusion
/// checks columns and types too, such as a view that drops `tenant`.
fn plan(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    sql: &str,
) -> Result<Pipeline, PipelineError> {
    let spec = parse_pipeline(name, sql).map_err(|source| PipelineError::Sql {
        pipeline: name.to_string(),
        source,
    })?;
    let scratch = tempfile::tempdir().expect("a temporary directory");
    runtime.block_on(Pipeline::open(spec, sql, scratch.path()))
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let files = pipeline_files(&args.paths)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let mut failed = 0;
    let mut total_capacity = 0;
    for path in &files {
        let (name, sql) = read(path)?;
        match plan(&runtime, &name, &sql) {
            Ok(pipeline) => {
                let capacity = pipeline.spec().window_capacity();
                total_capacity += capacity;
                println!(
                    "ok    {}: writes {}; room for {capacity} windows and rows",
                    path.display(),
                    pipeline.spec().sinks().join(", ")
                );
                // Shipped pipelines have no such cap, so this is only a warning.
                if capacity > MAX_WINDOWS_PER_TENANT {
                    println!(
                        "warn  {}: over the {MAX_WINDOWS_PER_TENANT} that a tenant's own pipelines share, so the API would reject it; lower max_open_windows or max_result_rows",
                        path.display()
                    );
                }
            }
            Err(PipelineError::Sql { source, .. }) => {
                failed += 1;
                println!(
                    "error {}:{}:{}: {}",
                    path.display(),
                    source.line,
                    source.column,
                    source.message
                );
            }
            Err(e) => {
                failed += 1;
                println!("error {}: {e}", path.display());
            }
        }
    }
    // The cap is shared, so files that pass alone may not fit together.
    if files.len() > 1 && total_capacity > MAX_WINDOWS_PER_TENANT {
        println!(
            "warn  together these pipelines need room for {total_capacity} windows and rows, over the {MAX_WINDOWS_PER_TENANT} that a tenant's own pipelines share, so the API would reject the last ones created"
        );
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} pipelines have errors", files.len());
    }
    Ok(())
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let Target::Arroyo = args.target;
    if args.topic.trim().is_empty() {
        anyhow::bail!("--topic must not be empty");
    }
    let target = ArroyoTarget {
        topic: args.topic.clone(),
        endpoint: args.endpoint.clone(),
    };
    let files = pipeline_files(&args.paths)?;

    // Every file is planned and exported before anything is written, so an
    // invalid file leaves no partial output.
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let mut exports = Vec::new();
    for path in &files {
        let (name, sql) = read(path)?;
        let positioned = |e: &copycar_pipelines::SqlError| {
            anyhow::anyhow!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
        };
        match plan(&runtime, &name, &sql) {
            Ok(_) => {}
            Err(PipelineError::Sql { source, .. }) => return Err(positioned(&source)),
            Err(e) => anyhow::bail!("{}: {e}", path.display()),
        }
        let exported = export_arroyo(&name, &sql, &target).map_err(|e| positioned(&e))?;
        exports.push((path, name, exported));
    }

    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .map_err(|e| anyhow::anyhow!("failed to create {}: {e}", out.display()))?;
    }
    for (path, name, exported) in exports {
        match &args.out {
            Some(out) => {
                let written = out.join(format!("{name}.sql"));
                if std::fs::canonicalize(&written).ok() == std::fs::canonicalize(path).ok() {
                    anyhow::bail!(
                        "exporting {} would overwrite it; choose another --out folder",
                        path.display()
                    );
                }
                std::fs::write(&written, exported)
                    .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", written.display()))?;
                eprintln!("wrote {}", written.display());
            }
            None => {
                if files.len() > 1 {
                    println!("-- file: {name}.sql");
                }
                print!("{exported}");
                if files.len() > 1 {
                    println!();
                }
            }
        }
    }
    Ok(())
}
