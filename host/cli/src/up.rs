//! `copycar up`: load the application and serve it.

use clap::Args;
use copycar_manifest::App;
use copycar_runtime::{
    LlmRouter, Runtime, RuntimeConfig, RuntimeOptions, SandboxLimits, SandboxSection,
    ServiceRegistry,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub(crate) struct UpArgs {
    /// Manifest file, or a directory containing spin.toml.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Set an application variable: NAME=VALUE (repeatable).
    #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = copycar_runtime::parse_variable_arg)]
    variables: Vec<(String, String)>,
    /// Runtime configuration file: key-value stores, sandbox limits and
    /// language-model providers.
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
    /// Directory for key-value data and the compile cache
    /// [default: .copycar beside the manifest].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Wall-clock limit for one request, in milliseconds [default: 30000].
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Memory limit of one component instance, in MiB [default: 128].
    #[arg(long)]
    memory_limit_mb: Option<u64>,
    /// Instances that may run at once [default: 256].
    #[arg(long)]
    max_instances: Option<u32>,
    /// Run the components' build commands before starting.
    #[arg(long)]
    build: bool,
    /// Model registry served at models.copycar.internal
    /// [default: models/registry beside the manifest].
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// How often the event log is compacted into the Parquet history, in
    /// milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..))]
    compact_interval_ms: u64,
    /// Wall-clock limit of one ad-hoc SQL query, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    sql_timeout_ms: u64,
    /// Folder of the shipped streaming SQL pipelines (`*.sql`), which run
    /// for every tenant [default: pipelines beside the manifest].
    #[arg(long)]
    pipelines_dir: Option<PathBuf>,
    /// Shortest time between two checkpoint writes of a running pipeline,
    /// in milliseconds, from 0 (after every step) to 3600000. Each write
    /// contains the pipeline's whole state. Steps in between go to a small
    /// journal that a restart after a crash replays.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pipeline_checkpoint_ms: u64,
    /// Windows that all pipelines of all tenants may hold in memory
    /// together. Once they do, rows that would open a window are rejected
    /// and counted per tenant as over the limit. Windows restored from
    /// checkpoints count even past it. Result rows of expired windows are
    /// not counted: `max_result_rows` and retention bound those per tenant.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pipeline_max_windows: u64,
    /// Memory that one ad-hoc SQL query may use for sorts, joins and
    /// aggregates, in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    sql_memory_mb: u64,
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // DataFusion plans and optimises by recursion. The SQL services
        // bound expression depth (copycar_history::MAX_EXPRESSION_DEPTH), and the
        // larger stack leaves a wide margin below an abort.
        .thread_stack_size(16 << 20)
        .build()?
        .block_on(serve(args))
}

async fn serve(args: UpArgs) -> anyhow::Result<()> {
    let app = App::load(&crate::manifest_path(&args.from))?;
    if args.build {
        crate::build::build_components(&app, &[])?;
    }
    let runtime_config = match &args.runtime_config_file {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    // Command-line limits override the runtime config file.
    let overrides = SandboxSection {
        request_timeout_ms: args.request_timeout_ms,
        memory_limit_mb: args.memory_limit_mb,
        max_instances: args.max_instances,
        max_request_body_bytes: None,
    };
    let limits = SandboxLimits::default()
        .with_section(&runtime_config.sandbox)?
        .with_section(&overrides)?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        app.manifest_path()
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(".copycar")
    });

    // One host per data directory: a second one would append to the same
    // event log and checkpoints without coordination.
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| anyhow::anyhow!("failed to create {}: {e}", data_dir.display()))?;
    let lock_path = data_dir.join(".lock");
    let data_lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| anyhow::anyhow!("failed to open {}: {e}", lock_path.display()))?;
    match data_lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "data directory {} is in use by another copycar process; stop it or choose another --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("failed to lock {}: {e}", lock_path.display())
        }
    }

    let models_dir = args.models_dir.clone().unwrap_or_else(|| {
        app.manifest_path()
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("models/registry")
    });
    let mut services = ServiceRegistry::default();
    let models = crate::models_service::ModelsService::start(
        copycar_models::Registry::open(models_dir.join("response-rate")),
        models_dir.join("send-time"),
    );
    services.register("models", models);
    let events_dir = data_dir.join("events");
    let events = tokio::task::block_in_place(|| {
        crate::event_store::EventStore::open(&runtime_config.events, &events_dir)
    })?;
    let events = std::sync::Arc::new(events);
    services.register(
        "events",
        crate::events_service::EventsService::new(events.clone()),
    );
    let pipelines_dir = args.pipelines_dir.clone().unwrap_or_else(|| {
        app.manifest_path()
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("pipelines")
    });
    let pipelines = crate::pipelines_service::PipelinesService::start(
        events.clone(),
        &pipelines_dir,
        data_dir.join("pipelines"),
        std::time::Duration::from_millis(args.pipeline_checkpoint_ms),
        args.pipeline_max_windows as usize,
    )
    .await?;
    services.register("pipelines", pipelines.clone());
    let history_dir = data_dir.join("history");
    let sql_timeout = std::time::Duration::from_millis(args.sql_timeout_ms);
    let compactor_options = copycar_history::CompactorOptions {
        // A file replaced by a merge must outlive every query that listed it.
        retire_grace: std::cmp::max(
            copycar_history::CompactorOptions::default().retire_grace,
            2 * sql_timeout,
        ),
        ..Default::default()
    };
    let history = tokio::task::block_in_place(|| {
        copycar_history::History::open(&history_dir, compactor_options)
    })
    .map_err(|e| anyhow::anyhow!("failed to open the event history: {e}"))?;
    let query_limits = copycar_history::QueryLimits {
        timeout: sql_timeout,
        memory_bytes: (args.sql_memory_mb as usize) << 20,
        ..Default::default()
    };
    services.register(
        "sql",
        crate::sql_service::SqlService::start(
            history,
            events,
            query_limits,
            std::time::Duration::from_millis(args.compact_interval_ms),
        ),
    );
    let vectors = tokio::task::block_in_place(|| {
        crate::vectors_service::VectorsService::open(&data_dir.join("vectors.redb"))
    })?;
    services.register("vectors", vectors);

    // Loading the local models reads a few hundred MB when installed.
    let local_models = tokio::task::block_in_place(|| crate::local_models::load(&models_dir));
    let llm_config =
        crate::local_models::with_local_defaults(runtime_config.llm.clone(), &local_models);
    let llm = Arc::new(LlmRouter::new(llm_config, local_models, |name| {
        std::env::var(name).ok()
    })?);
    services.register("llm", crate::llm_service::LlmService::new(llm.clone()));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("failed to listen on {}: {e}", args.listen))?;
    let runtime = Runtime::load(
        app,
        RuntimeOptions {
            data_dir,
            variables: args.variables,
            runtime_config,
            limits,
            services,
            llm: Some(llm),
        },
    )
    .await?;
    let pipeline_metrics = pipelines.clone();
    runtime
        .metrics()
        .add_source(Box::new(move |out| pipeline_metrics.render_metrics(out)));

    // Install the signal handlers before announcing the address, so a
    // SIGTERM sent right after start-up still shuts down cleanly.
    let shutdown = shutdown_signal()?;
    let local = listener.local_addr()?;
    println!("Serving http://{local}");
    println!("Available Routes:");
    for (route, component) in runtime.router().routes() {
        match route.strip_suffix("/...") {
            Some(prefix) => println!("  {component}: http://{local}{prefix} (wildcard)"),
            None => println!("  {component}: http://{local}{route}"),
        }
    }
    tracing::info!(
        listen = %local,
        request_timeout_ms = limits.request_timeout.as_millis() as u64,
        memory_limit_mb = limits.memory_limit >> 20,
        max_instances = limits.max_instances,
        "serving application `{}`",
        runtime.app().name()
    );

    copycar_runtime::serve(runtime, listener, shutdown).await?;
    pipelines.stop_all().await;
    drop(data_lock);
    tracing::info!("stopped");
    Ok(())
}

/// Registers SIGINT and SIGTERM handlers and returns a future that resolves
/// when either signal arrives.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
