//! `pipelines.copycar.internal`: the streaming SQL pipelines of the running
//! host, served in-process to components, which authenticate callers and
//! pass the tenant along.
//!
//! Two kinds of pipeline run here:
//!
//! - **shipped**: the `*.sql` files of the application's `pipelines/`
//!   folder. They read every tenant's events and keep rows per tenant; a
//!   tenant sees only its own rows and cannot pause or delete them.
//! - **custom**: created by a tenant over the API. They read only that
//!   tenant's events, are stored under the data directory and start again
//!   with the host, paused or not as they were left.
//!
//! Endpoints (every one takes `tenant`, in the query or the body):
//!
//! - `GET /v1/pipelines`: list with state and figures.
//! - `POST /v1/pipelines` `{"tenant", "name", "sql"}`: validates and starts
//!   a custom pipeline. SQL errors carry `line` and `column`.
//! - `GET /v1/pipelines/{name}`: one pipeline, with its SQL.
//! - `POST /v1/pipelines/{name}/pause` and `/resume`; `DELETE
//!   /v1/pipelines/{name}`: custom pipelines only.
//! - `GET /v1/pipelines/{name}/results?output=&limit=&closed=`: current rows
//!   and the update sequence they reflect.
//! - `GET /v1/pipelines/{name}/updates?after=&wait_ms=`: long poll for row
//!   changes after a sequence number, for server-sent events.
//!
//! The figures a tenant sees count that tenant's events only: how many were
//! read, how many per second over the last seconds, and how far behind the
//! log the pipeline is, in milliseconds of arrival time.

use crate::event_store::EventStore;
use crate::service_reply::reply;
use bytes::Bytes;
use copycar_events::EventSource;
use copycar_pipelines::{
    Pipeline, PipelineError, PipelineHandle, PipelineStats, ResultRow, RunOptions, TenantStats,
    Update, WindowBudget, parse_pipeline, row_key_parts,
};
use copycar_runtime::{InternalService, ServiceFuture, ServiceRequest};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex as AsyncMutex, broadcast, watch};

/// Custom pipelines one tenant may keep.
const MAX_CUSTOM_PER_TENANT: usize = 10;
/// Windows and live rows one tenant's custom pipelines may hold in all,
/// counted per pipeline as its outputs times the larger of
/// `max_open_windows` and `max_result_rows`. Both are kept in memory, so
/// this bounds what one tenant's pipelines can take.
pub(crate) const MAX_WINDOWS_PER_TENANT: usize = 500_000;
/// Largest pipeline SQL, in bytes.
const MAX_SQL_BYTES: usize = 64 * 1024;
/// Row changes kept per pipeline and tenant for long polls; a client
/// further behind gets a new snapshot instead.
const FEED_CAPACITY: usize = 2048;
/// Longest a long poll waits for a change.
const MAX_WAIT_MS: u64 = 25_000;
/// Largest `limit` on results.
const MAX_RESULT_ROWS: usize = 10_000;
/// Shortest time between two warnings about dropped row changes of one
/// pipeline.
const LAG_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Throughput is measured over this many one-second samples.
const RATE_SAMPLES: usize = 10;

/// Whose pipeline: one shipped with the application, or a tenant's own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Owner {
    Shipped,
    Tenant(String),
}

type Key = (Owner, String);

/// Row changes of one pipeline with sequence numbers per tenant, for long
/// polls. Numbers count only the tenant's own changes, so they reveal
/// nothing about other tenants' traffic.
struct Feed {
    /// Distinguishes this run's sequence numbers from an earlier run's.
    epoch: String,
    tenants: Mutex<HashMap<String, TenantFeed>>,
    /// Bumped on every change, to wake long polls.
    wake: watch::Sender<u64>,
}

#[derive(Default)]
struct TenantFeed {
    /// The newest sequence number; 0 before the first change.
    latest: u64,
    entries: VecDeque<(u64, Update)>,
}

impl Feed {
    fn new() -> Arc<Feed> {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        Arc::new(Feed {
            epoch: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            tenants: Mutex::new(HashMap::new()),
            wake: watch::Sender::new(0),
        })
    }

    fn push(&self, update: Update) {
        let mut tenants = self.tenants.lock().expect("feed lock");
        let feed = tenants.entry(update.tenant.clone()).or_default();
        feed.latest += 1;
        if feed.entries.len() == FEED_CAPACITY {
            feed.entries.pop_front();
        }
        feed.entries.push_back((feed.latest, update));
        self.wake.send_modify(|n| *n += 1);
    }

    /// Marks changes as lost (a subscriber lagged behind the pipeline), so
    /// every poll from an older sequence resets.
    fn lose(&self) {
        let mut tenants = self.tenants.lock().expect("feed lock");
        for feed in tenants.values_mut() {
            feed.entries.clear();
            feed.latest += 1;
        }
        self.wake.send_modify(|n| *n += 1);
    }

    fn latest(&self, tenant: &str) -> u64 {
        let tenants = self.tenants.lock().expect("feed lock");
        tenants.get(tenant).map_or(0, |f| f.latest)
    }

    /// Changes of `tenant` after `after`, the tenant's newest sequence
    /// number, and whether changes after `after` were dropped (then the
    /// client must reload the results).
    fn since(&self, tenant: &str, after: u64) -> (Vec<(u64, Update)>, u64, bool) {
        let tenants = self.tenants.lock().expect("feed lock");
        let Some(feed) = tenants.get(tenant) else {
            return (Vec::new(), 0, false);
        };
        let oldest_kept = feed
            .entries
            .front()
            .map(|(seq, _)| *seq)
            .unwrap_or(feed.latest + 1);
        let gap = after < feed.latest && after + 1 < oldest_kept;
        let updates = feed
            .entries
            .iter()
            .filter(|(seq, _)| *seq > after)
            .cloned()
            .collect();
        (updates, feed.latest, gap)
    }
}

enum Status {
    Running(PipelineHandle),
    /// Stopped by its owner; the pipeline is planned and its checkpoint
    /// loaded, so rows stay readable.
    Paused(Box<Pipeline>),
    /// Could not be planned or stopped with an error.
    Failed(String),
    /// Between states while pausing or resuming.
    Moving,
}

struct Entry {
    owner: Owner,
    name: String,
    sql: String,
    outputs: Vec<String>,
    /// Maximum windows and live rows the pipeline keeps for its tenant.
    window_capacity: usize,
    created_at: i64,
    status: Status,
    feed: Arc<Feed>,
    /// Figures at the last stop, for a paused or failed pipeline.
    last_stats: PipelineStats,
    samples: VecDeque<(Instant, PipelineStats)>,
}

impl Entry {
    fn state_name(&self) -> &'static str {
        match &self.status {
            Status::Running(handle) if handle.is_replaying() => "replaying",
            Status::Running(_) => "running",
            Status::Paused(_) => "paused",
            Status::Failed(_) => "failed",
            Status::Moving => "changing",
        }
    }

    fn stats(&self) -> PipelineStats {
        match &self.status {
            Status::Running(handle) => handle.stats(),
            Status::Paused(pipeline) => pipeline.stats(),
            _ => self.last_stats.clone(),
        }
    }

    fn rows(&self, tenant: &str) -> Vec<Arc<ResultRow>> {
        match &self.status {
            Status::Running(handle) => handle.shared_rows(tenant),
            Status::Paused(pipeline) => pipeline.shared_rows(tenant),
            _ => Vec::new(),
        }
    }

    /// Events of `tenant` per second over the sampled seconds.
    fn rate(&self, tenant: &str) -> f64 {
        let (Some((first_at, first)), Some((last_at, last))) =
            (self.samples.front(), self.samples.back())
        else {
            return 0.0;
        };
        let seconds = last_at.duration_since(*first_at).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        let count = |s: &PipelineStats| s.tenants.get(tenant).map_or(0, |t| t.events_read);
        count(last).saturating_sub(count(first)) as f64 / seconds
    }
}

#[derive(Deserialize, serde::Serialize)]
struct CustomMeta {
    paused: bool,
    created_at: i64,
}

#[derive(Clone)]
pub(crate) struct PipelinesService {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<EventStore>,
    /// `<data-dir>/pipelines`: custom SQL and every checkpoint.
    root: PathBuf,
    entries: AsyncMutex<BTreeMap<Key, Entry>>,
    /// Held for the whole of a create, so two concurrent creates cannot
    /// both pass the name, count and window checks.
    creating: AsyncMutex<()>,
    options: RunOptions,
    /// Windows that all pipelines on the host may hold together.
    window_budget: Arc<WindowBudget>,
    /// Open result streams: lease id to (tenant, expiry).
    streams: Mutex<HashMap<String, (String, Instant)>>,
}

/// Result streams one tenant may hold open at once.
const MAX_STREAMS_PER_TENANT: usize = 8;
/// Result streams open at once over all tenants. Each keeps a component
/// instance busy, so this keeps streams from taking every instance.
const MAX_STREAMS: usize = 64;
/// A stream lease lapses when no poll renews it for this long, so a stream
/// whose instance was stopped frees its place.
const STREAM_LEASE: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PipelinesService {
    /// Writes the host's pipeline figures in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let budget = &self.inner.window_budget;
        out.push_str("# HELP copycar_pipeline_windows Windows held in memory by all pipelines of all tenants.\n");
        out.push_str("# TYPE copycar_pipeline_windows gauge\n");
        let _ = writeln!(out, "copycar_pipeline_windows {}", budget.used());
        out.push_str("# HELP copycar_pipeline_window_budget Windows that all pipelines may hold together (--pipeline-max-windows).\n");
        out.push_str("# TYPE copycar_pipeline_window_budget gauge\n");
        let _ = writeln!(out, "copycar_pipeline_window_budget {}", budget.limit());
    }

    /// Starts the shipped pipelines found in `shipped_dir` (when it exists)
    /// and the custom ones stored under `root`, each writing its checkpoint
    /// at most once per `checkpoint_interval`. Together they open no window
    /// past `max_windows`, and windows restored from checkpoints count
    /// toward it even beyond it.
    pub async fn start(
        log: Arc<EventStore>,
        shipped_dir: &Path,
        root: PathBuf,
        checkpoint_interval: Duration,
        max_windows: usize,
    ) -> anyhow::Result<PipelinesService> {
        let inner = Arc::new(Inner {
            log,
            root,
            entries: AsyncMutex::new(BTreeMap::new()),
            creating: AsyncMutex::new(()),
            streams: Mutex::new(HashMap::new()),
            options: RunOptions {
                checkpoint_interval,
                ..RunOptions::default()
            },
            window_budget: Arc::new(WindowBudget::new(max_windows)),
        });
        std::fs::create_dir_all(inner.custom_dir()).map_err(|e| {
            anyhow::anyhow!("failed to create {}: {e}", inner.custom_dir().display())
        })?;

        let mut found = Vec::new();
        match std::fs::read_dir(shipped_dir) {
            Ok(dir) => {
                for entry in dir.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|x| x == "sql") {
                        found.push(path);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(dir = %shipped_dir.display(), "no pipelines folder; no shipped pipelines run");
            }
            Err(e) => anyhow::bail!("failed to read {}: {e}", shipped_dir.display()),
        }
        found.sort();
        for path in found {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if let Err(message) = check_name(&name) {
                tracing::error!(file = %path.display(), "skipped a pipeline file: {message}");
                continue;
            }
            let sql = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", path.display()))?;
            // A shipped pipeline dates from its file, so the time stays the
            // same across restarts.
            let created_at = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or_else(now_ms, |d| d.as_millis() as i64);
            inner
                .install(Owner::Shipped, name, sql, created_at, false)
                .await;
        }

        // Custom pipelines: <root>/custom/<tenant>/<name>.sql and .json.
        let custom = inner.custom_dir();
        for tenant_dir in std::fs::read_dir(&custom)
            .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", custom.display()))?
            .flatten()
        {
            let tenant = tenant_dir.file_name().to_string_lossy().to_string();
            if check_tenant(&tenant).is_err() {
                continue;
            }
            let Ok(files) = std::fs::read_dir(tenant_dir.path()) else {
                continue;
            };
            let mut sql_files: Vec<PathBuf> = files
                .flatten()
                .map(|f| f.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                .collect();
            sql_files.sort();
            for path in sql_files {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                let sql = match std::fs::read_to_string(&path) {
                    Ok(sql) => sql,
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "failed to read a custom pipeline");
                        continue;
                    }
                };
                let meta_path = path.with_extension("json");
                let meta = std::fs::read(&meta_path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<CustomMeta>(&b).map_err(|e| e.to_string())
                    });
                let meta = match meta {
                    Ok(meta) => meta,
                    Err(error) => {
                        tracing::warn!(file = %meta_path.display(), error, "failed to read a custom pipeline's settings; it runs unpaused with a new creation time");
                        CustomMeta {
                            paused: false,
                            created_at: now_ms(),
                        }
                    }
                };
                inner
                    .install(
                        Owner::Tenant(tenant.clone()),
                        name,
                        sql,
                        meta.created_at,
                        meta.paused,
                    )
                    .await;
            }
        }

        // One-second samples for throughput, and a check for pipelines
        // whose task ended with an error.
        let sampler = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(inner) = sampler.upgrade() else {
                    break;
                };
                inner.sample().await;
            }
        });
        Ok(PipelinesService { inner })
    }

    /// Stops every running pipeline, and each writes its last checkpoint,
    /// so the next start replays nothing. For a host that is shutting down:
    /// the pipelines stay stopped.
    pub async fn stop_all(&self) {
        let mut entries = self.inner.entries.lock().await;
        let mut stopped = 0;
        for entry in entries.values_mut() {
            if !matches!(entry.status, Status::Running(_)) {
                continue;
            }
            let Status::Running(handle) = std::mem::replace(&mut entry.status, Status::Moving)
            else {
                unreachable!("checked above");
            };
            stopped += 1;
            if let Err(e) = handle.stop().await {
                tracing::error!(pipeline = %entry.name, owner = ?entry.owner, error = %e, "pipeline failed while stopping");
                entry.status = Status::Failed(e.to_string());
            }
        }
        tracing::info!(pipelines = stopped, "stopped the pipelines");
    }
}

impl Inner {
    fn custom_dir(&self) -> PathBuf {
        self.root.join("custom")
    }

    fn state_dir(&self, owner: &Owner) -> PathBuf {
        match owner {
            Owner::Shipped => self.root.join("state").join("shipped"),
            Owner::Tenant(tenant) => self.root.join("state").join("custom").join(tenant),
        }
    }

    /// Plans a pipeline, restores its checkpoint and starts it (or keeps it
    /// paused). A shipped pipeline whose SQL changed since its checkpoint
    /// was written recomputes from the start of the log.
    async fn install(
        &self,
        owner: Owner,
        name: String,
        sql: String,
        created_at: i64,
        paused: bool,
    ) {
        let (outputs, window_capacity) = parse_pipeline(&name, &sql)
            .map(|spec| (spec.sinks(), spec.window_capacity()))
            .unwrap_or_default();
        let mut entry = Entry {
            owner: owner.clone(),
            name: name.clone(),
            sql: sql.clone(),
            outputs,
            window_capacity,
            created_at,
            status: Status::Moving,
            feed: Feed::new(),
            last_stats: PipelineStats::default(),
            samples: VecDeque::new(),
        };
        entry.status = match self.open(&owner, &name, &sql).await {
            Ok(pipeline) if paused => Status::Paused(Box::new(pipeline)),
            Ok(pipeline) => Status::Running(self.run(pipeline, &entry.feed)),
            Err(e) => {
                tracing::error!(pipeline = %name, owner = ?owner, error = %e, "pipeline not started");
                Status::Failed(e.to_string())
            }
        };
        tracing::info!(pipeline = %name, owner = ?owner, state = entry.state_name(), "pipeline installed");
        self.entries.lock().await.insert((owner, name), entry);
    }

    async fn open(&self, owner: &Owner, name: &str, sql: &str) -> Result<Pipeline, PipelineError> {
        let state_dir = self.state_dir(owner);
        let spec = parse_pipeline(name, sql).map_err(|source| PipelineError::Sql {
            pipeline: name.to_string(),
            source,
        })?;
        let opened = match Pipeline::open(spec.clone(), sql, &state_dir).await {
            Err(PipelineError::CorruptCheckpoint { path, message, .. }) => {
                // Keep the old file for inspection and start over from the
                // beginning of the log.
                let aside = path.with_extension(format!("json.stale-{}", now_ms()));
                tracing::warn!(pipeline = %name, checkpoint = %path.display(), moved_to = %aside.display(), reason = %message, "recomputing the pipeline from the start of the log");
                std::fs::rename(&path, &aside).map_err(|source| PipelineError::Checkpoint {
                    pipeline: name.to_string(),
                    action: "move aside",
                    path: path.clone(),
                    source,
                })?;
                Pipeline::open(spec, sql, &state_dir).await
            }
            other => other,
        };
        let mut pipeline = opened?;
        if let Owner::Tenant(tenant) = owner {
            pipeline.scope_to_tenant(tenant.clone());
        }
        pipeline.set_window_budget(self.window_budget.clone());
        Ok(pipeline)
    }

    /// Starts `pipeline` on a task and copies its row changes into `feed`.
    fn run(&self, pipeline: Pipeline, feed: &Arc<Feed>) -> PipelineHandle {
        let handle = PipelineHandle::start(pipeline, self.log.clone(), self.options.clone());
        let mut updates = handle.subscribe();
        let feed = feed.clone();
        let name = handle.name().to_string();
        tokio::spawn(async move {
            // Under a burst the relay can lag many times a second, so the
            // warning sums the dropped changes over LAG_LOG_INTERVAL.
            let mut unlogged: u64 = 0;
            let mut last_logged: Option<Instant> = None;
            loop {
                match updates.recv().await {
                    Ok(update) => feed.push(update),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        feed.lose();
                        unlogged += missed;
                        if last_logged.is_none_or(|at| at.elapsed() >= LAG_LOG_INTERVAL) {
                            tracing::warn!(pipeline = %name, missed = unlogged, "row changes were dropped; subscribers reload the results");
                            unlogged = 0;
                            last_logged = Some(Instant::now());
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        handle
    }

    async fn sample(&self) {
        let mut entries = self.entries.lock().await;
        for entry in entries.values_mut() {
            if let Status::Running(handle) = &entry.status {
                if handle.is_finished() {
                    let Status::Running(handle) =
                        std::mem::replace(&mut entry.status, Status::Moving)
                    else {
                        unreachable!()
                    };
                    entry.last_stats = handle.stats();
                    let message = match handle.stop().await {
                        Ok(()) => "the pipeline task ended".to_string(),
                        Err(e) => e.to_string(),
                    };
                    tracing::error!(pipeline = %entry.name, owner = ?entry.owner, error = %message, "pipeline failed");
                    entry.status = Status::Failed(message);
                    continue;
                }
                entry.samples.push_back((Instant::now(), handle.stats()));
                if entry.samples.len() > RATE_SAMPLES + 1 {
                    entry.samples.pop_front();
                }
            }
        }
    }

    /// Returns how far behind the log the pipeline is: the age of the
    /// oldest event it has not read yet, 0 when it has read everything.
    fn lag_ms(&self, next_offset: u64) -> i64 {
        // A Fluvio backend replies over the network, so leave the worker
        // thread to other tasks meanwhile.
        tokio::task::block_in_place(|| self.lag_ms_blocking(next_offset))
    }

    fn lag_ms_blocking(&self, next_offset: u64) -> i64 {
        match self.log.next_offset() {
            Ok(end) if next_offset >= end => return 0,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the log's end for pipeline lag failed");
                return 0;
            }
        }
        match self.log.read_from(next_offset, 1) {
            Ok(events) => events
                .first()
                .map(|e| (now_ms() - e.event.received_at).max(0))
                .unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e, "reading the log for pipeline lag failed");
                0
            }
        }
    }

    fn describe(&self, entry: &Entry, tenant: &str, with_sql: bool) -> Value {
        let stats = entry.stats();
        let own = stats
            .tenants
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| TenantStats {
                dropped_late: entry.outputs.iter().map(|o| (o.clone(), 0)).collect(),
                ..TenantStats::default()
            });
        let mut value = json!({
            "name": entry.name,
            "kind": match entry.owner { Owner::Shipped => "shipped", Owner::Tenant(_) => "custom" },
            "state": entry.state_name(),
            "outputs": entry.outputs,
            "created_at": entry.created_at,
            "stats": {
                "events_read": own.events_read,
                "events_per_sec": (entry.rate(tenant) * 10.0).round() / 10.0,
                "lag_ms": match entry.status {
                    Status::Running(_) | Status::Paused(_) => self.lag_ms(stats.next_offset),
                    _ => 0,
                },
                "watermark": own.watermark,
                "open_windows": own.open_windows,
                "window_capacity": entry.window_capacity,
                "dropped_late": own.dropped_late,
                "dropped_over_limit": own.dropped_over_limit,
                "rows_trimmed": own.rows_trimmed,
            },
        });
        if let Status::Failed(message) = &entry.status {
            value["error"] = json!(message);
        }
        if with_sql {
            value["sql"] = json!(entry.sql);
        }
        value
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid pipeline name `{name}`: use 1 to 48 lowercase letters, digits and underscores, starting with a letter"
        ))
    }
}

fn check_tenant(tenant: &str) -> Result<(), String> {
    let valid = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err("tenant must be 1 to 64 letters, digits, `-` or `_`".to_string())
    }
}

fn error(status: u16, code: &str, message: impl Into<String>) -> http::Response<Bytes> {
    reply(status, json!({"error": message.into(), "code": code}))
}

impl InternalService for PipelinesService {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (parts, body) = request.request.into_parts();
            let query: HashMap<String, String> =
                serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
            let path = parts.uri.path().to_string();
            let segments: Vec<&str> = path
                .trim_start_matches("/v1/pipelines")
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            if !path.starts_with("/v1/pipelines") {
                return error(
                    404,
                    "not_found",
                    format!("no endpoint {path} on pipelines.copycar.internal"),
                );
            }
            let method = parts.method.as_str();
            if method == "POST" && segments.is_empty() {
                return inner.create(&body).await;
            }
            let Some(tenant) = query.get("tenant").cloned() else {
                return error(400, "invalid", "tenant is required");
            };
            if let Err(message) = check_tenant(&tenant) {
                return error(400, "invalid", message);
            }
            match (method, segments.as_slice()) {
                ("GET", []) => inner.list(&tenant).await,
                ("GET", [name]) => inner.show(&tenant, name).await,
                ("DELETE", [name]) => inner.delete(&tenant, name).await,
                ("POST", [name, "pause"]) => inner.pause(&tenant, name).await,
                ("POST", [name, "resume"]) => inner.resume(&tenant, name).await,
                ("GET", [name, "results"]) => inner.results(&tenant, name, &query).await,
                ("GET", [name, "updates"]) => inner.updates(&tenant, name, &query).await,
                ("POST", [name, "streams"]) => inner.open_stream(&tenant, name).await,
                ("DELETE", [_, "streams", lease]) => inner.close_stream(&tenant, lease),
                (_, [] | [_] | [_, "pause" | "resume" | "results" | "updates" | "streams"]) => {
                    error(
                        405,
                        "method_not_allowed",
                        format!("method {method} is not allowed on {path}"),
                    )
                }
                _ => error(404, "not_found", format!("no endpoint {path}")),
            }
        })
    }
}

impl Inner {
    /// Finds the pipeline `name` visible to `tenant`: its own custom one
    /// first, else a shipped one.
    fn find_key(entries: &BTreeMap<Key, Entry>, tenant: &str, name: &str) -> Option<Key> {
        let own = (Owner::Tenant(tenant.to_string()), name.to_string());
        if entries.contains_key(&own) {
            return Some(own);
        }
        let shipped = (Owner::Shipped, name.to_string());
        entries.contains_key(&shipped).then_some(shipped)
    }

    fn not_found(name: &str) -> http::Response<Bytes> {
        error(404, "not_found", format!("no pipeline named `{name}`"))
    }

    async fn list(&self, tenant: &str) -> http::Response<Bytes> {
        let entries = self.entries.lock().await;
        let list: Vec<Value> = entries
            .values()
            .filter(|e| match &e.owner {
                Owner::Shipped => true,
                Owner::Tenant(owner) => owner == tenant,
            })
            .map(|e| self.describe(e, tenant, false))
            .collect();
        reply(200, json!({"pipelines": list}))
    }

    async fn show(&self, tenant: &str, name: &str) -> http::Response<Bytes> {
        let entries = self.entries.lock().await;
        match Self::find_key(&entries, tenant, name) {
            Some(key) => reply(200, self.describe(&entries[&key], tenant, true)),
            None => Self::not_found(name),
        }
    }

    async fn create(&self, body: &[u8]) -> http::Response<Bytes> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Create {
            tenant: String,
            name: String,
            sql: String,
        }
        let request: Create = match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(e) => return error(400, "invalid", format!("invalid JSON body: {e}")),
        };
        if let Err(message) = check_tenant(&request.tenant) {
            return error(400, "invalid", message);
        }
        if let Err(message) = check_name(&request.name) {
            return reply(
                400,
                json!({"error": message, "code": "invalid", "field": "name"}),
            );
        }
        if request.sql.trim().is_empty() || request.sql.len() > MAX_SQL_BYTES {
            return reply(
                400,
                json!({"error": format!("sql must be 1 to {MAX_SQL_BYTES} bytes"), "code": "invalid", "field": "sql"}),
            );
        }
        let owner = Owner::Tenant(request.tenant.clone());
        let _creating = self.creating.lock().await;
        let windows_in_use: usize;
        {
            let entries = self.entries.lock().await;
            if entries.contains_key(&(Owner::Shipped, request.name.clone())) {
                return reply(
                    409,
                    json!({"error": format!("`{}` is the name of a shipped pipeline; choose another", request.name), "code": "conflict", "field": "name"}),
                );
            }
            if entries.contains_key(&(owner.clone(), request.name.clone())) {
                return reply(
                    409,
                    json!({"error": format!("a pipeline named `{}` exists; delete it first", request.name), "code": "conflict", "field": "name"}),
                );
            }
            let owned = entries.keys().filter(|(o, _)| *o == owner).count();
            if owned >= MAX_CUSTOM_PER_TENANT {
                return error(
                    409,
                    "limit",
                    format!(
                        "a tenant may keep {MAX_CUSTOM_PER_TENANT} pipelines; delete one first"
                    ),
                );
            }
            windows_in_use = entries
                .values()
                .filter(|e| e.owner == owner)
                .map(|e| e.window_capacity)
                .sum();
        }

        // Validate by planning it on DataFusion, which also checks column
        // names and types; nothing is written until that succeeds.
        let spec = match parse_pipeline(&request.name, &request.sql) {
            Ok(spec) => spec,
            Err(e) => return sql_error(&request.tenant, &e),
        };
        let capacity = spec.window_capacity();
        if windows_in_use + capacity > MAX_WINDOWS_PER_TENANT {
            return reply(
                409,
                json!({
                    "error": format!(
                        "the pipeline needs room for {capacity} windows and rows (outputs: {}, times {}, the larger of max_open_windows and max_result_rows), but {} of the tenant's {MAX_WINDOWS_PER_TENANT} are free ({windows_in_use} in use); lower max_open_windows and max_result_rows in the source's WITH options or delete a pipeline",
                        spec.sinks().len(),
                        spec.source.max_open_windows.max(spec.source.max_result_rows),
                        MAX_WINDOWS_PER_TENANT.saturating_sub(windows_in_use),
                    ),
                    "code": "limit",
                    "field": "sql",
                }),
            );
        }
        let probe_dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => {
                tracing::error!(error = %e, "no temporary directory for planning a pipeline");
                return error(
                    500,
                    "internal",
                    "could not plan the pipeline; see the host log",
                );
            }
        };
        match Pipeline::open(spec, &request.sql, probe_dir.path()).await {
            Ok(_) => {}
            Err(PipelineError::Sql { source, .. }) => return sql_error(&request.tenant, &source),
            Err(e) => {
                tracing::error!(pipeline = %request.name, error = %e, "planning a new pipeline failed");
                return error(
                    500,
                    "internal",
                    "could not plan the pipeline; see the host log",
                );
            }
        }

        // State left by an earlier pipeline of this name (a delete cut
        // short by a crash) must not be restored into the new one.
        for stale in Pipeline::state_files(&self.state_dir(&owner), &request.name) {
            match std::fs::remove_file(&stale) {
                Ok(()) => {
                    tracing::warn!(file = %stale.display(), pipeline = %request.name, tenant = %request.tenant, "removed state left by an earlier pipeline of the same name");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(file = %stale.display(), error = %e, "failed to remove stale pipeline state");
                    return error(
                        500,
                        "internal",
                        "could not remove the old state of a pipeline with this name; see the host log",
                    );
                }
            }
        }

        let created_at = now_ms();
        let dir = self.custom_dir().join(&request.tenant);
        let stored = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                write_synced(
                    &dir.join(format!("{}.sql", request.name)),
                    request.sql.as_bytes(),
                )
            })
            .and_then(|()| {
                write_meta(
                    &dir,
                    &request.name,
                    &CustomMeta {
                        paused: false,
                        created_at,
                    },
                )
            });
        if let Err(e) = stored {
            tracing::error!(pipeline = %request.name, tenant = %request.tenant, error = %e, "storing a new pipeline failed");
            return error(
                500,
                "internal",
                "could not store the pipeline; see the host log",
            );
        }
        self.install(
            owner.clone(),
            request.name.clone(),
            request.sql,
            created_at,
            false,
        )
        .await;
        tracing::info!(pipeline = %request.name, tenant = %request.tenant, "created a custom pipeline");
        let entries = self.entries.lock().await;
        let entry = &entries[&(owner, request.name)];
        reply(201, self.describe(entry, &request.tenant, true))
    }

    /// Looks up a custom pipeline of `tenant` for a change, or returns the
    /// response that says why it cannot be changed.
    fn own_key(
        entries: &BTreeMap<Key, Entry>,
        tenant: &str,
        name: &str,
    ) -> Result<Key, http::Response<Bytes>> {
        match Self::find_key(entries, tenant, name) {
            Some((Owner::Shipped, _)) => Err(error(
                403,
                "forbidden",
                format!(
                    "`{name}` is shipped with the application and runs for every tenant; it cannot be paused, resumed or deleted over the API"
                ),
            )),
            Some(key) => Ok(key),
            None => Err(Self::not_found(name)),
        }
    }

    async fn pause(&self, tenant: &str, name: &str) -> http::Response<Bytes> {
        let mut entries = self.entries.lock().await;
        let key = match Self::own_key(&entries, tenant, name) {
            Ok(key) => key,
            Err(response) => return response,
        };
        let entry = entries.get_mut(&key).expect("key was found");
        match std::mem::replace(&mut entry.status, Status::Moving) {
            Status::Running(handle) => {
                entry.last_stats = handle.stats();
                // The stopped pipeline is kept as it is: reopening it from
                // its checkpoint would give its windows' room in the host
                // budget away for a moment, and then count them past it.
                let stopped = match handle.stop_and_take().await {
                    Ok(stopped) => stopped,
                    Err(e) => {
                        tracing::error!(pipeline = %name, error = %e, "pipeline failed while pausing");
                        None
                    }
                };
                entry.status = match stopped {
                    Some(pipeline) => Status::Paused(Box::new(pipeline)),
                    None => match self.open(&key.0, name, &entry.sql).await {
                        Ok(pipeline) => Status::Paused(Box::new(pipeline)),
                        Err(e) => Status::Failed(e.to_string()),
                    },
                };
            }
            other => entry.status = other,
        }
        if let Err(e) = write_meta(
            &self.custom_dir().join(tenant),
            name,
            &CustomMeta {
                paused: true,
                created_at: entry.created_at,
            },
        ) {
            tracing::error!(pipeline = %name, error = %e, "storing the paused state failed");
        }
        entry.samples.clear();
        tracing::info!(pipeline = %name, tenant, state = entry.state_name(), "paused a pipeline");
        reply(200, self.describe(entry, tenant, false))
    }

    async fn resume(&self, tenant: &str, name: &str) -> http::Response<Bytes> {
        let mut entries = self.entries.lock().await;
        let key = match Self::own_key(&entries, tenant, name) {
            Ok(key) => key,
            Err(response) => return response,
        };
        let entry = entries.get_mut(&key).expect("key was found");
        entry.status = match std::mem::replace(&mut entry.status, Status::Moving) {
            Status::Paused(pipeline) => Status::Running(self.run(*pipeline, &entry.feed)),
            // A failed pipeline gets another try.
            Status::Failed(_) | Status::Moving => match self.open(&key.0, name, &entry.sql).await {
                Ok(pipeline) => Status::Running(self.run(pipeline, &entry.feed)),
                Err(e) => Status::Failed(e.to_string()),
            },
            running => running,
        };
        if let Err(e) = write_meta(
            &self.custom_dir().join(tenant),
            name,
            &CustomMeta {
                paused: false,
                created_at: entry.created_at,
            },
        ) {
            tracing::error!(pipeline = %name, error = %e, "storing the resumed state failed");
        }
        tracing::info!(pipeline = %name, tenant, state = entry.state_name(), "resumed a pipeline");
        reply(200, self.describe(entry, tenant, false))
    }

    async fn delete(&self, tenant: &str, name: &str) -> http::Response<Bytes> {
        let mut entries = self.entries.lock().await;
        let key = match Self::own_key(&entries, tenant, name) {
            Ok(key) => key,
            Err(response) => return response,
        };
        let entry = entries.remove(&key).expect("key was found");
        if let Status::Running(handle) = entry.status
            && let Err(e) = handle.stop().await
        {
            tracing::warn!(pipeline = %name, error = %e, "pipeline had failed before it was deleted");
        }
        let dir = self.custom_dir().join(tenant);
        // State first: a crash part-way then leaves a pipeline that starts
        // over, never a checkpoint that a new pipeline of the same name
        // would take for its own.
        let [checkpoint, journal] = Pipeline::state_files(&self.state_dir(&key.0), name);
        for path in [
            checkpoint,
            journal,
            dir.join(format!("{name}.sql")),
            dir.join(format!("{name}.json")),
        ] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::error!(file = %path.display(), error = %e, "failed to remove a deleted pipeline's file");
            }
        }
        tracing::info!(pipeline = %name, tenant, "deleted a pipeline");
        reply(200, json!({"deleted": name}))
    }

    async fn results(
        &self,
        tenant: &str,
        name: &str,
        query: &HashMap<String, String>,
    ) -> http::Response<Bytes> {
        let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
            None => 1000,
            Some(Ok(n)) if (1..=MAX_RESULT_ROWS).contains(&n) => n,
            Some(_) => {
                return reply(
                    400,
                    json!({"error": format!("limit must be an integer from 1 to {MAX_RESULT_ROWS}"), "code": "invalid", "field": "limit"}),
                );
            }
        };
        let closed = match query.get("closed").map(String::as_str) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                return reply(
                    400,
                    json!({"error": "closed must be true or false", "code": "invalid", "field": "closed"}),
                );
            }
        };
        let entries = self.entries.lock().await;
        let Some(key) = Self::find_key(&entries, tenant, name) else {
            return Self::not_found(name);
        };
        let entry = &entries[&key];
        if let Some(output) = query.get("output")
            && !entry.outputs.contains(output)
        {
            return reply(
                400,
                json!({"error": format!("`{name}` has no output `{output}`; it has {}", entry.outputs.join(", ")), "code": "invalid", "field": "output"}),
            );
        }
        let after = match query.get("after") {
            None => None,
            Some(text) => match Cursor::parse(text, &entry.outputs) {
                Some(cursor) if query.get("output").is_none_or(|o| o == cursor.output()) => {
                    Some(cursor)
                }
                _ => {
                    tracing::info!(
                        tenant,
                        pipeline = name,
                        "rejected an invalid results cursor"
                    );
                    return reply(
                        400,
                        json!({"error": format!("after must be the `next` value of an earlier page of `{name}` with the same output"), "code": "invalid", "field": "after"}),
                    );
                }
            },
        };
        // The sequence is read before the rows: a change after it is in
        // the rows or comes again as an update, and upserts are idempotent.
        let seq = entry.feed.latest(tenant);
        let mut rows: Vec<Arc<ResultRow>> = entry
            .rows(tenant)
            .into_iter()
            .filter(|r| query.get("output").is_none_or(|o| &r.output == o))
            .filter(|r| closed.is_none_or(|c| r.closed == c))
            .filter(|r| after.as_ref().is_none_or(|a| a.precedes(r)))
            .collect();
        // Newest windows first. Row keys are unique, so the order is total
        // and a page resumes exactly after its cursor. Only the page is
        // sorted: the rows past it are cut off in linear time first.
        let order = |a: &Arc<ResultRow>, b: &Arc<ResultRow>| {
            b.window_start.cmp(&a.window_start).then(a.key.cmp(&b.key))
        };
        let truncated = rows.len() > limit;
        if truncated {
            rows.select_nth_unstable_by(limit, order);
            rows.truncate(limit);
        }
        rows.sort_unstable_by(order);
        let next = match rows.last() {
            Some(last) if truncated => Value::String(Cursor::of(last).to_string()),
            _ => Value::Null,
        };
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                json!({"output": &r.output, "key": &r.key, "window_start": r.window_start, "closed": r.closed, "row": &r.row})
            })
            .collect();
        reply(
            200,
            json!({"pipeline": name, "state": entry.state_name(), "epoch": entry.feed.epoch, "seq": seq, "rows": rows, "truncated": truncated, "next": next}),
        )
    }

    /// Leases a place for a result stream of `name`, within the limits per
    /// tenant and overall.
    async fn open_stream(&self, tenant: &str, name: &str) -> http::Response<Bytes> {
        {
            let entries = self.entries.lock().await;
            if Self::find_key(&entries, tenant, name).is_none() {
                return Self::not_found(name);
            }
        }
        let mut streams = self.streams.lock().expect("streams lock");
        let now = Instant::now();
        streams.retain(|_, (_, expires)| *expires > now);
        let own = streams.values().filter(|(t, _)| t == tenant).count();
        if own >= MAX_STREAMS_PER_TENANT {
            tracing::info!(
                tenant,
                pipeline = name,
                "refused a result stream: tenant limit"
            );
            return error(
                429,
                "too_many_streams",
                format!(
                    "a tenant may have {MAX_STREAMS_PER_TENANT} result streams open; close one first"
                ),
            );
        }
        if streams.len() >= MAX_STREAMS {
            tracing::warn!(
                tenant,
                pipeline = name,
                "refused a result stream: host limit"
            );
            return error(
                503,
                "busy",
                format!("{MAX_STREAMS} result streams are open on this host; try again later"),
            );
        }
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        let lease: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        streams.insert(lease.clone(), (tenant.to_string(), now + STREAM_LEASE));
        reply(200, json!({"lease": lease}))
    }

    fn close_stream(&self, tenant: &str, lease: &str) -> http::Response<Bytes> {
        let mut streams = self.streams.lock().expect("streams lock");
        match streams.get(lease) {
            Some((owner, _)) if owner == tenant => {
                streams.remove(lease);
                reply(200, json!({"closed": lease}))
            }
            _ => error(404, "not_found", "no such stream lease"),
        }
    }

    /// Renews a stream lease on each poll.
    fn renew_stream(&self, tenant: &str, lease: &str) {
        let mut streams = self.streams.lock().expect("streams lock");
        if let Some((owner, expires)) = streams.get_mut(lease)
            && owner == tenant
        {
            *expires = Instant::now() + STREAM_LEASE;
        }
    }

    async fn updates(
        &self,
        tenant: &str,
        name: &str,
        query: &HashMap<String, String>,
    ) -> http::Response<Bytes> {
        let after = match query.get("after").map(|a| a.parse::<u64>()) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return reply(
                    400,
                    json!({"error": "after must be a non-negative integer", "code": "invalid", "field": "after"}),
                );
            }
        };
        let wait_ms = match query.get("wait_ms").map(|w| w.parse::<u64>()) {
            None => 0,
            Some(Ok(n)) if n <= MAX_WAIT_MS => n,
            Some(_) => {
                return reply(
                    400,
                    json!({"error": format!("wait_ms must be an integer from 0 to {MAX_WAIT_MS}"), "code": "invalid", "field": "wait_ms"}),
                );
            }
        };
        let feed = {
            let entries = self.entries.lock().await;
            let Some(key) = Self::find_key(&entries, tenant, name) else {
                return Self::not_found(name);
            };
            entries[&key].feed.clone()
        };
        if let Some(lease) = query.get("lease") {
            self.renew_stream(tenant, lease);
        }
        let epoch_matches = query.get("epoch").is_none_or(|e| *e == feed.epoch);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let mut wake = feed.wake.subscribe();
        loop {
            wake.borrow_and_update();
            let (updates, latest, gap) = feed.since(tenant, after);
            let reset = gap || !epoch_matches || after > latest;
            if reset || !updates.is_empty() || tokio::time::Instant::now() >= deadline {
                let updates: Vec<Value> = updates
                    .into_iter()
                    .map(|(seq, u)| {
                        json!({"seq": seq, "output": u.output, "key": u.key, "window_start": u.window_start, "op": u.op, "row": u.row, "closed": u.closed})
                    })
                    .collect();
                return reply(
                    200,
                    json!({"epoch": feed.epoch, "updates": updates, "next": latest, "reset": reset}),
                );
            }
            if tokio::time::timeout_at(deadline, wake.changed())
                .await
                .is_err()
            {
                continue;
            }
        }
    }
}

fn sql_error(tenant: &str, e: &copycar_pipelines::SqlError) -> http::Response<Bytes> {
    tracing::info!(tenant, error = %e, "rejected a pipeline");
    reply(
        400,
        json!({"error": e.message, "code": "invalid_sql", "field": "sql", "line": e.line, "column": e.column}),
    )
}

/// Writes `bytes` to `path` through a synced temporary file and a rename,
/// so a crash leaves the old file or the new one.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn write_meta(dir: &Path, name: &str, meta: &CustomMeta) -> std::io::Result<()> {
    write_synced(
        &dir.join(format!("{name}.json")),
        &serde_json::to_vec(meta).expect("meta serializes"),
    )
}

/// A position in the results order (newest window first, then row key):
/// the last row key of a page, in lowercase hex so it survives a URL as is.
/// The key contains the row's output and window start, so a cursor cannot
/// name one window and point into another.
#[derive(Debug, PartialEq)]
struct Cursor {
    window_start: i64,
    key: String,
}

impl Cursor {
    fn of(row: &ResultRow) -> Self {
        Self {
            window_start: row.window_start,
            key: row.key.clone(),
        }
    }

    /// Parses a cursor of one of `outputs`. Only the form that
    /// [`Cursor::to_string`] writes is accepted.
    fn parse(text: &str, outputs: &[String]) -> Option<Self> {
        if text.is_empty() || text.len() % 2 != 0 {
            return None;
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let key = String::from_utf8(bytes).ok()?;
        let (output, window_start) = row_key_parts(&key)?;
        if !outputs.iter().any(|o| o == output) {
            return None;
        }
        let cursor = Self {
            window_start,
            key: key.clone(),
        };
        (cursor.to_string() == text).then_some(cursor)
    }

    /// Returns the output whose rows this cursor pages through.
    fn output(&self) -> &str {
        row_key_parts(&self.key).map_or("", |(output, _)| output)
    }

    /// Returns whether `row` comes after this position.
    fn precedes(&self, row: &ResultRow) -> bool {
        row.window_start < self.window_start
            || (row.window_start == self.window_start && row.key > self.key)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.key.bytes().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use copycar_pipelines::UpdateOp;

    fn update(tenant: &str) -> Update {
        Update {
            pipeline: "p".into(),
            output: "out".into(),
            tenant: tenant.into(),
            key: "k".into(),
            window_start: 0,
            op: UpdateOp::Upsert,
            row: None,
            closed: false,
        }
    }

    #[test]
    fn feed_numbers_changes_per_tenant_and_reports_gaps() {
        let feed = Feed::new();
        feed.push(update("a"));
        feed.push(update("b"));
        feed.push(update("a"));
        let (updates, latest, gap) = feed.since("a", 0);
        assert_eq!(updates.iter().map(|u| u.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(latest, 2);
        assert!(!gap);
        // b's numbers do not move with a's changes.
        assert_eq!(feed.latest("b"), 1);
        assert_eq!(feed.since("c", 0), (Vec::new(), 0, false));

        for _ in 0..FEED_CAPACITY {
            feed.push(update("a"));
        }
        let (_, _, gap) = feed.since("a", 1);
        assert!(gap, "changes after 1 were dropped from the feed");
        let (_, _, gap) = feed.since("a", feed.latest("a"));
        assert!(!gap);
        let (_, _, gap) = feed.since("b", 0);
        assert!(!gap, "b's one change is still kept");

        feed.lose();
        let (updates, _, gap) = feed.since("a", feed.latest("a"));
        assert!(updates.is_empty());
        assert!(!gap, "a client at the newest sequence has lost nothing");
        let (_, _, gap) = feed.since("a", feed.latest("a") - 1);
        assert!(gap, "changes before the loss marker are gone");
    }

    #[test]
    fn names_and_tenants_are_checked() {
        assert!(check_name("campaign_hourly").is_ok());
        for bad in ["", "Hourly", "1st", "a-b", "../x", &"x".repeat(49)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_tenant("t-1_A").is_ok());
        for bad in ["", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(check_tenant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursor_round_trips_and_orders_rows() {
        let row = |start: i64, group: &str| ResultRow {
            output: "out".into(),
            tenant: "t".into(),
            key: format!("out\u{1f}{group}\u{1f}{start:020}"),
            window_start: start,
            window_end: start + 10,
            row: Default::default(),
            closed: false,
        };
        let outputs = ["out".to_string()];
        let cursor = Cursor::of(&row(-5, "[\"t\",\"é\"]"));
        let text = cursor.to_string();
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
        assert_eq!(Cursor::parse(&text, &outputs), Some(cursor));
        assert_eq!(Cursor::parse(&text, &["other".to_string()]), None);
        assert_eq!(Cursor::parse(&text.to_uppercase(), &outputs), None);

        let cursor = Cursor::parse(&Cursor::of(&row(100, "b")).to_string(), &outputs).unwrap();
        assert_eq!(cursor.output(), "out");
        assert!(!cursor.precedes(&row(100, "b")), "the cursor's own row");
        assert!(!cursor.precedes(&row(100, "a")));
        assert!(!cursor.precedes(&row(200, "z")), "a newer window");
        assert!(cursor.precedes(&row(100, "c")));
        assert!(cursor.precedes(&row(99, "a")));

        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        for bad in [
            String::new(),
            "6".into(),
            "zz".into(),
            "ff".into(),
            hex("out"),
            hex("out\u{1f}g\u{1f}12"),
            hex("out\u{1f}g\u{1f}+0000000000000000012"),
            hex("\u{1f}g\u{1f}00000000000000000012"),
        ] {
            assert_eq!(Cursor::parse(&bad, &outputs), None, "{bad}");
        }
    }
}
