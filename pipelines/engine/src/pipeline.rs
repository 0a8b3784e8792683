//! One running pipeline: micro-batches of events in, window state merged,
//! result rows upserted, state and consumer offset checkpointed together.

use crate::batch::{ExtractJsonString, SlotTable, events_to_batch, source_schema};
use crate::error::{PipelineError, SqlError};
use crate::journal::{Journal, Step};
use crate::parse::PipelineSpec;
use crate::plan::OutputSpec;
use crate::state::{OutputState, Retraction, WindowBudget, WindowRef, is_expired};
use crate::value::{Value, json_of};
use copycar_events::{EventSource, StoredEvent};
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A change to one result row, pushed to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub pipeline: String,
    /// The sink table the row belongs to.
    pub output: String,
    pub tenant: String,
    /// Identifies the row within the output: group key and window start.
    pub key: String,
    /// Start of the row's window, in Unix milliseconds.
    pub window_start: i64,
    /// Upsert or delete (a session merged into another).
    pub op: UpdateOp,
    /// The row; null for a delete.
    pub row: Option<serde_json::Map<String, serde_json::Value>>,
    /// True once the watermark passed the window end. A late event within
    /// the allowed lateness can still update a closed row.
    pub closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateOp {
    Upsert,
    Delete,
}

/// A current result row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub output: String,
    pub tenant: String,
    pub key: String,
    pub window_start: i64,
    #[serde(default)]
    pub window_end: i64,
    pub row: serde_json::Map<String, serde_json::Value>,
    pub closed: bool,
}

/// Counters of one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStats {
    /// The next log offset to read.
    pub next_offset: u64,
    /// Figures per tenant, which a tenant may see without learning about
    /// other tenants' traffic.
    pub tenants: BTreeMap<String, TenantStats>,
    pub events_read: u64,
    /// Per output: events dropped because all their windows were past the
    /// allowed lateness.
    pub dropped_late: BTreeMap<String, u64>,
    pub open_windows: usize,
}

/// Counters of one tenant in one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantStats {
    pub events_read: u64,
    /// The tenant's watermark: each tenant's event time runs on its own, so
    /// one tenant's clock cannot make another tenant's events late.
    pub watermark: Option<i64>,
    /// Windows held in memory over all outputs: open ones, and closed ones
    /// that a late event may still update. `max_open_windows` limits each
    /// output's share.
    pub open_windows: usize,
    /// Per output: the tenant's events dropped as too late.
    pub dropped_late: BTreeMap<String, u64>,
    /// Rows refused because the tenant had the most open windows allowed
    /// (the source's `max_open_windows`), over all outputs.
    pub dropped_over_limit: u64,
    /// Rows of closed windows that left the live results before their
    /// retention ended because the tenant had `max_result_rows` rows in an
    /// output, over all outputs.
    pub rows_trimmed: u64,
}

/// Event time of one tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Clock {
    watermark: Option<i64>,
    max_event_time: Option<i64>,
    /// Wall-clock time of the tenant's last event, for idle heartbeats.
    last_event_wall_ms: i64,
}

/// Everything that survives a restart, written atomically in one file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    fingerprint: String,
    next_offset: u64,
    /// The number of the last step this state contains; the journal
    /// contains the steps after it.
    #[serde(default)]
    steps: u64,
    /// Event time per tenant.
    #[serde(default)]
    clocks: BTreeMap<String, Clock>,
    events_read: u64,
    #[serde(default)]
    events_by_tenant: BTreeMap<String, u64>,
    outputs: Vec<OutputState>,
    /// Shared with readers through [`Pipeline::results_handle`], so each
    /// row is kept once.
    results: BTreeMap<String, Arc<ResultRow>>,
}

struct OutputRuntime {
    spec: OutputSpec,
    partial: LogicalPlan,
    final_plan: LogicalPlan,
    /// Types of `__k{i}` then `__a{i}`, from the partial query's schema.
    state_schema: SchemaRef,
}

/// A pipeline and its state. The caller feeds it events in offset order
/// ([`Pipeline::process`]) and calls [`Pipeline::heartbeat`] when no events
/// arrive; [`crate::PipelineHandle`] does both on a task.
pub struct Pipeline {
    spec: PipelineSpec,
    ctx: SessionContext,
    source_slot: Arc<Mutex<Vec<RecordBatch>>>,
    source_schema: SchemaRef,
    state_slots: Vec<Arc<Mutex<Vec<RecordBatch>>>>,
    outputs: Vec<OutputRuntime>,
    state: Checkpoint,
    results: Arc<RwLock<BTreeMap<String, Arc<ResultRow>>>>,
    checkpoint_path: PathBuf,
    /// When set, events of other tenants are skipped (but their offsets
    /// still consumed).
    tenant_scope: Option<String>,
    /// Per tenant, the lowest watermark at which something changes. It is
    /// reset to `None` by every step and computed again by the next
    /// heartbeat, so idle heartbeats cost one lookup per tenant instead of
    /// a scan of every window and row.
    deadlines: Option<BTreeMap<String, i64>>,
    /// Shortest time between two checkpoint writes; zero writes one after
    /// every step.
    checkpoint_interval: Duration,
    /// When the checkpoint was last written or read at open. A new pipeline
    /// without one starts from offset 0 whether or not it writes one.
    last_saved: Instant,
    /// True when the state has changed since the last checkpoint write.
    unsaved: bool,
    /// Live result rows per output and tenant, counted from the checkpoint
    /// at open and kept up to date, for `max_result_rows`.
    row_counts: BTreeMap<(String, String), usize>,
    /// The steps taken since the checkpoint was written.
    journal: Journal,
    /// Journal steps read at open that [`Pipeline::replay`] takes again.
    pending: Vec<(u64, Step)>,
    /// True while replaying, when steps are neither journaled again nor
    /// checkpointed.
    replaying: bool,
    /// Room for windows, shared with other pipelines after
    /// [`Pipeline::set_window_budget`]. It counts this pipeline's windows
    /// until the pipeline is dropped.
    budget: Arc<WindowBudget>,
}

impl Pipeline {
    /// Plans the pipeline on DataFusion and restores its checkpoint from
    /// `state_dir` when one exists.
    pub async fn open(
        spec: PipelineSpec,
        sql: &str,
        state_dir: &Path,
    ) -> Result<Pipeline, PipelineError> {
        let name = spec.name.clone();
        let df = |phase: &'static str| {
            let name = name.clone();
            move |source: DataFusionError| PipelineError::DataFusion {
                pipeline: name,
                phase,
                source,
            }
        };

        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        ctx.register_udf(ScalarUDF::from(ExtractJsonString::new()));
        let source_schema = source_schema(&spec.source.columns);
        let source_table = SlotTable::new(source_schema.clone());
        let source_slot = source_table.slot();
        ctx.register_table(spec.source.name.as_str(), Arc::new(source_table))
            .map_err(df("registering the source"))?;
        for view in &spec.views {
            ctx.sql(view).await.map_err(df("creating a view"))?;
        }

        let mut outputs = Vec::new();
        let mut state_slots = Vec::new();
        for output in &spec.outputs {
            let sql_error = |e: DataFusionError| {
                let mut message = datafusion_message(&e);
                if message.contains("No field named tenant") {
                    message.push_str(
                        " Every query groups by tenant, so the table or view it reads must have a `tenant` column; select it in the view.",
                    );
                }
                PipelineError::Sql {
                    pipeline: name.clone(),
                    source: SqlError::at(output.position.0, output.position.1, message),
                }
            };
            let partial = ctx
                .state()
                .create_logical_plan(&output.partial_sql)
                .await
                .map_err(sql_error)?;

            // The state table: tenant, window bounds, then the partial
            // query's key and aggregate columns with their types.
            let partial_schema = partial.schema();
            let mut fields = vec![
                Field::new("__tenant", DataType::Utf8, false),
                Field::new("__wstart", DataType::Int64, false),
                Field::new("__wend", DataType::Int64, false),
            ];
            for field in partial_schema.fields().iter().skip(2) {
                fields.push(Field::new(field.name(), field.data_type().clone(), true));
            }
            let state_schema = Arc::new(Schema::new(fields));
            let state_table = SlotTable::new(state_schema.clone());
            state_slots.push(state_table.slot());
            let state_ctx = ctx.clone();
            state_ctx
                .deregister_table("__state")
                .map_err(df("planning the final query"))?;
            state_ctx
                .register_table("__state", Arc::new(state_table))
                .map_err(df("planning the final query"))?;
            let final_plan = ctx
                .state()
                .create_logical_plan(&output.final_sql)
                .await
                .map_err(sql_error)?;
            outputs.push(OutputRuntime {
                spec: output.clone(),
                partial,
                final_plan,
                state_schema,
            });
        }

        fs::create_dir_all(state_dir).map_err(|source| PipelineError::Checkpoint {
            pipeline: name.clone(),
            action: "create the directory of",
            path: state_dir.to_path_buf(),
            source,
        })?;
        let [checkpoint_path, journal_path] = Pipeline::state_files(state_dir, &name);
        let mut journal = Journal::new(journal_path);
        let journal_error =
            |action: &'static str, path: &Path, source: std::io::Error| PipelineError::Checkpoint {
                pipeline: name.clone(),
                action,
                path: path.to_path_buf(),
                source,
            };
        let fingerprint = fingerprint(sql);
        let mut fresh = false;
        let state = match fs::read(&checkpoint_path) {
            Ok(bytes) => {
                let state: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
                    PipelineError::CorruptCheckpoint {
                        pipeline: name.clone(),
                        path: checkpoint_path.clone(),
                        message: e.to_string(),
                    }
                })?;
                if state.fingerprint != fingerprint || state.outputs.len() != outputs.len() {
                    return Err(PipelineError::CorruptCheckpoint {
                        pipeline: name.clone(),
                        path: checkpoint_path.clone(),
                        message: "it was written by a different version of the pipeline's SQL; delete it to recompute from the start of the log".to_string(),
                    });
                }
                tracing::info!(pipeline = %name, next_offset = state.next_offset, "restored checkpoint");
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fresh = true;
                Checkpoint {
                    fingerprint,
                    outputs: vec![OutputState::default(); outputs.len()],
                    ..Checkpoint::default()
                }
            }
            Err(source) => {
                return Err(PipelineError::Checkpoint {
                    pipeline: name,
                    action: "read",
                    path: checkpoint_path,
                    source,
                });
            }
        };
        // A journal without a checkpoint belongs to an earlier pipeline of
        // the same name, so it is removed. A new pipeline writes an empty
        // checkpoint at once, so its own journal always has one to follow.
        let pending = if fresh {
            let removed = journal
                .clear()
                .map_err(|e| journal_error("remove the stale journal of", journal.path(), e))?;
            if removed {
                tracing::warn!(pipeline = %name, journal = %journal.path().display(), "removed a step journal that had no checkpoint; the pipeline starts from offset 0");
            }
            Vec::new()
        } else {
            journal
                .read_after(state.steps)
                .map_err(|e| journal_error("read the journal of", journal.path(), e))?
        };
        if !pending.is_empty() {
            tracing::info!(pipeline = %name, steps = pending.len(), "steps after the checkpoint will be replayed");
        }
        let results = Arc::new(RwLock::new(state.results.clone()));
        let mut row_counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for row in state.results.values() {
            *row_counts
                .entry((row.output.clone(), row.tenant.clone()))
                .or_default() += 1;
        }

        let mut pipeline = Pipeline {
            spec,
            ctx,
            source_slot,
            source_schema,
            state_slots,
            outputs,
            state,
            results,
            checkpoint_path,
            tenant_scope: None,
            deadlines: None,
            checkpoint_interval: Duration::ZERO,
            last_saved: Instant::now(),
            unsaved: fresh,
            row_counts,
            journal,
            pending,
            replaying: false,
            budget: Arc::new(WindowBudget::unlimited()),
        };
        let windows = pipeline.window_count();
        pipeline.budget.add(windows);
        if fresh {
            pipeline.save_checkpoint()?;
        }
        Ok(pipeline)
    }

    /// Returns the files that pipeline `name` keeps in `state_dir`: its
    /// checkpoint and its step journal. Removing both makes a pipeline of
    /// that name start from offset 0.
    pub fn state_files(state_dir: &Path, name: &str) -> [PathBuf; 2] {
        [
            state_dir.join(format!("{name}.checkpoint.json")),
            state_dir.join(format!("{name}.journal")),
        ]
    }

    /// Makes the pipeline read only `tenant`'s events: a pipeline a tenant
    /// defines must never aggregate another tenant's rows.
    pub fn scope_to_tenant(&mut self, tenant: impl Into<String>) {
        self.tenant_scope = Some(tenant.into());
    }

    /// Writes the checkpoint at most once per `interval` instead of after
    /// every step; [`Pipeline::flush`] writes what is left. Each step in
    /// between is appended to a journal (its event range and wall-clock
    /// time) before its rows are published, and [`Pipeline::replay`] takes
    /// those steps again after a restart, so the state ends exactly as
    /// readers last saw it. Subscribers may see the replayed rows' upserts
    /// a second time, with the same values.
    pub fn set_checkpoint_interval(&mut self, interval: Duration) {
        self.checkpoint_interval = interval;
    }

    /// Makes the pipeline count its windows in `budget`, which other
    /// pipelines may share. Once the budget is full, rows that would open a
    /// window are rejected and counted in [`TenantStats::dropped_over_limit`].
    /// Those refusals depend on the other pipelines' windows, so a replay
    /// after a crash may admit a row that was rejected live.
    pub fn set_window_budget(&mut self, budget: Arc<WindowBudget>) {
        let windows = self.window_count();
        self.budget.release(windows);
        budget.add(windows);
        self.budget = budget;
    }

    /// Returns the windows this pipeline holds, over all outputs and
    /// tenants.
    pub fn window_count(&mut self) -> usize {
        self.state
            .outputs
            .iter_mut()
            .map(|o| o.window_count())
            .sum()
    }

    /// Returns the number of journaled steps that [`Pipeline::replay`] has
    /// yet to take.
    pub fn steps_to_replay(&self) -> usize {
        self.pending.len()
    }

    /// Takes again the journaled steps that the checkpoint does not contain,
    /// reading their events from `source`, and returns how many it took.
    /// Call it before the first new step; [`crate::PipelineHandle`] does.
    pub async fn replay<S>(&mut self, source: &Arc<S>) -> Result<usize, PipelineError>
    where
        S: EventSource + Send + Sync + 'static,
    {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(0);
        }
        self.replaying = true;
        let result = self.replay_steps(source, &pending).await;
        self.replaying = false;
        result?;
        tracing::info!(pipeline = %self.spec.name, steps = pending.len(), next_offset = self.state.next_offset, "replayed the journal");
        Ok(pending.len())
    }

    async fn replay_steps<S>(
        &mut self,
        source: &Arc<S>,
        pending: &[(u64, Step)],
    ) -> Result<(), PipelineError>
    where
        S: EventSource + Send + Sync + 'static,
    {
        for &(seq, step) in pending {
            match step {
                Step::Process { end, now_ms } => {
                    let events = self.read_range(source, end).await?;
                    self.process(&events, now_ms).await?;
                }
                Step::Heartbeat { now_ms } => {
                    self.heartbeat(now_ms).await?;
                }
            }
            if self.state.steps != seq {
                tracing::warn!(pipeline = %self.spec.name, expected = seq, reached = self.state.steps, "a replayed step did not match the journal");
                self.state.steps = seq;
            }
        }
        Ok(())
    }

    /// Reads the events from the next offset up to `end` (exclusive).
    async fn read_range<S>(
        &self,
        source: &Arc<S>,
        end: u64,
    ) -> Result<Vec<StoredEvent>, PipelineError>
    where
        S: EventSource + Send + Sync + 'static,
    {
        let mut events = Vec::new();
        let mut offset = self.state.next_offset;
        while offset < end {
            let reader = source.clone();
            let read = tokio::task::spawn_blocking(move || reader.read_from(offset, 8_192))
                .await
                .map_err(|e| self.replay_error(e.to_string()))?
                .map_err(|e| self.replay_error(e.to_string()))?;
            let Some(last) = read.last().map(|e| e.offset) else {
                break;
            };
            events.extend(read.into_iter().filter(|e| e.offset < end));
            offset = last + 1;
        }
        Ok(events)
    }

    fn replay_error(&self, message: String) -> PipelineError {
        PipelineError::Replay {
            pipeline: self.spec.name.clone(),
            message,
        }
    }

    /// Writes the checkpoint now if the state changed since the last write.
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        if self.unsaved {
            self.save_checkpoint()?;
        }
        Ok(())
    }

    /// Writes the checkpoint if the state changed and the interval has
    /// passed since the last write.
    fn save_if_due(&mut self) -> Result<(), PipelineError> {
        if self.replaying {
            return Ok(());
        }
        let due = self.last_saved.elapsed() >= self.checkpoint_interval;
        if self.unsaved && due {
            self.save_checkpoint()?;
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The next log offset this pipeline reads.
    pub fn next_offset(&self) -> u64 {
        self.state.next_offset
    }

    /// Returns the watermark of `tenant`'s events.
    pub fn watermark(&self, tenant: &str) -> Option<i64> {
        self.state.clocks.get(tenant).and_then(|c| c.watermark)
    }

    pub fn stats(&self) -> PipelineStats {
        let mut tenants: BTreeMap<String, TenantStats> = self
            .state
            .events_by_tenant
            .iter()
            .map(|(tenant, read)| {
                let stats = TenantStats {
                    events_read: *read,
                    watermark: self.state.clocks.get(tenant).and_then(|c| c.watermark),
                    ..TenantStats::default()
                };
                (tenant.clone(), stats)
            })
            .collect();
        for (output, state) in self.outputs.iter().zip(&self.state.outputs) {
            for group in state.groups.values() {
                tenants
                    .entry(group.tenant.clone())
                    .or_default()
                    .open_windows += group.windows.len();
            }
            for (tenant, refused) in &state.dropped_over_limit_by_tenant {
                tenants
                    .entry(tenant.clone())
                    .or_default()
                    .dropped_over_limit += refused;
            }
            for (tenant, trimmed) in &state.rows_trimmed_by_tenant {
                tenants.entry(tenant.clone()).or_default().rows_trimmed += trimmed;
            }
            for (tenant, dropped) in &state.dropped_late_by_tenant {
                tenants
                    .entry(tenant.clone())
                    .or_default()
                    .dropped_late
                    .insert(output.spec.sink.clone(), *dropped);
            }
        }
        for stats in tenants.values_mut() {
            for output in &self.outputs {
                stats
                    .dropped_late
                    .entry(output.spec.sink.clone())
                    .or_insert(0);
            }
        }
        PipelineStats {
            next_offset: self.state.next_offset,
            tenants,
            events_read: self.state.events_read,
            dropped_late: self
                .outputs
                .iter()
                .zip(&self.state.outputs)
                .map(|(o, s)| (o.spec.sink.clone(), s.dropped_late))
                .collect(),
            open_windows: self
                .state
                .outputs
                .iter()
                .flat_map(|s| s.groups.values())
                .map(|g| g.windows.len())
                .sum(),
        }
    }

    /// The shared result table, for readers on other tasks.
    pub(crate) fn results_handle(&self) -> Arc<RwLock<BTreeMap<String, Arc<ResultRow>>>> {
        self.results.clone()
    }

    /// Current rows of `tenant`, all outputs, ordered by output, key and
    /// window start.
    pub fn rows(&self, tenant: &str) -> Vec<ResultRow> {
        rows_of(&self.results, tenant)
    }

    /// Current rows of `tenant` as [`Pipeline::rows`] orders them, shared
    /// with the pipeline instead of copied.
    pub fn shared_rows(&self, tenant: &str) -> Vec<Arc<ResultRow>> {
        shared_rows_of(&self.results, tenant)
    }

    /// Processes one micro-batch of events read from the log in offset
    /// order, at wall-clock time `now_ms`, and checkpoints. Events below the
    /// next offset (already processed) are skipped.
    pub async fn process(
        &mut self,
        events: &[StoredEvent],
        now_ms: i64,
    ) -> Result<Vec<Update>, PipelineError> {
        let unread: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.offset >= self.state.next_offset)
            .collect();
        let Some(last_offset) = unread.last().map(|e| e.offset) else {
            return self.heartbeat(now_ms).await;
        };
        let fresh: Vec<&StoredEvent> = match &self.tenant_scope {
            Some(tenant) => unread
                .into_iter()
                .filter(|e| &e.event.tenant == tenant)
                .collect(),
            None => unread,
        };
        if fresh.is_empty() {
            // Only other tenants' events: consume their offsets. Rereading
            // them after a restart skips them again.
            self.state.next_offset = last_offset + 1;
            self.unsaved = true;
            return self.heartbeat(now_ms).await;
        }
        let lateness = self.spec.source.allowed_lateness_ms;
        let time_of = |e: &StoredEvent| match self.spec.source.event_time {
            crate::parse::EventColumn::ReceivedAt => e.event.received_at,
            _ => e.event.occurred_at,
        };

        // Late events: count the ones no output can use, and keep the rest
        // in event-time order for DataFusion.
        let mut batch_events: Vec<&StoredEvent> = Vec::with_capacity(fresh.len());
        for event in &fresh {
            let ts = time_of(event);
            let watermark = self
                .state
                .clocks
                .get(&event.event.tenant)
                .and_then(|c| c.watermark);
            let mut used = false;
            for (output, state) in self.outputs.iter().zip(self.state.outputs.iter_mut()) {
                if is_expired(output.spec.window, ts, watermark, lateness) {
                    state.dropped_late += 1;
                    *state
                        .dropped_late_by_tenant
                        .entry(event.event.tenant.clone())
                        .or_default() += 1;
                } else {
                    state.accepted += 1;
                    used = true;
                }
            }
            if used {
                batch_events.push(event);
            }
        }
        batch_events.sort_by_key(|e| time_of(e));

        let over_limit_before = self.over_limit_total();
        let mut changed: Vec<BTreeSet<WindowRef>> = vec![BTreeSet::new(); self.outputs.len()];
        let mut retracted: Vec<Vec<Retraction>> = vec![Vec::new(); self.outputs.len()];
        if !batch_events.is_empty() {
            let batch = events_to_batch(
                &self.source_schema,
                &self.spec.source.columns,
                &batch_events,
            )
            .map_err(|e| self.df_error("building a record batch", e))?;
            *self.source_slot.lock().expect("slot lock") = vec![batch];
            for (index, output) in self.outputs.iter().enumerate() {
                let partials = self
                    .ctx
                    .execute_logical_plan(output.partial.clone())
                    .await
                    .map_err(|e| self.df_error("planning the partial aggregation", e))?
                    .collect()
                    .await
                    .map_err(|e| self.df_error("running the partial aggregation", e))?;
                let state = &mut self.state.outputs[index];
                for batch in &partials {
                    merge_partials(
                        output,
                        state,
                        batch,
                        &self.state.clocks,
                        lateness,
                        self.spec.source.max_open_windows,
                        &self.budget,
                        &mut changed[index],
                        &mut retracted[index],
                    )
                    .map_err(|e| PipelineError::DataFusion {
                        pipeline: self.spec.name.clone(),
                        phase: "merging partial aggregates",
                        source: e,
                    })?;
                }
            }
            self.source_slot.lock().expect("slot lock").clear();
        }

        let refused = self.over_limit_total() - over_limit_before;
        if refused > 0 {
            tracing::warn!(
                pipeline = %self.spec.name,
                refused,
                limit = self.spec.source.max_open_windows,
                host_windows = self.budget.used(),
                host_limit = self.budget.limit(),
                "rows rejected: a tenant has max_open_windows windows, or the host's window budget is spent"
            );
        }

        // Advance each tenant's event time.
        self.state.events_read += fresh.len() as u64;
        let mut touched = BTreeSet::new();
        for event in &fresh {
            let tenant = &event.event.tenant;
            *self
                .state
                .events_by_tenant
                .entry(tenant.clone())
                .or_default() += 1;
            let clock = self.state.clocks.entry(tenant.clone()).or_default();
            clock.max_event_time = clock.max_event_time.max(Some(time_of(event)));
            clock.last_event_wall_ms = now_ms;
            touched.insert(tenant.clone());
        }
        self.state.next_offset = last_offset + 1;
        let delay = self.spec.source.watermark_delay_ms;
        for tenant in touched {
            let clock = self.state.clocks.get_mut(&tenant).expect("clock was added");
            if let Some(max) = clock.max_event_time {
                raise_watermark(clock, max - delay);
            }
        }

        let step = Step::Process {
            end: self.state.next_offset,
            now_ms,
        };
        self.finish_step(step, changed, retracted).await
    }

    /// Advances each tenant's watermark with the wall clock once no event
    /// of that tenant has arrived for the source's idle timeout, so windows
    /// close when traffic stops.
    pub async fn heartbeat(&mut self, now_ms: i64) -> Result<Vec<Update>, PipelineError> {
        let delay = self.spec.source.watermark_delay_ms;
        let idle_timeout = self.spec.source.idle_timeout_ms;
        if self.deadlines.is_none() {
            self.deadlines = Some(self.next_deadlines());
        }
        let deadlines = self.deadlines.as_ref().expect("computed above");
        let mut moves = Vec::new();
        for (tenant, clock) in &self.state.clocks {
            let Some(max) = clock.max_event_time else {
                continue;
            };
            let idle = now_ms - clock.last_event_wall_ms;
            if idle < idle_timeout {
                continue;
            }
            let candidate = max + idle - delay;
            let Some(&deadline) = deadlines.get(tenant) else {
                continue;
            };
            if candidate >= deadline && clock.watermark.is_none_or(|w| candidate > w) {
                moves.push((tenant.clone(), candidate));
            }
        }
        if moves.is_empty() {
            self.save_if_due()?;
            return Ok(Vec::new());
        }
        for (tenant, candidate) in moves {
            let clock = self.state.clocks.get_mut(&tenant).expect("listed above");
            raise_watermark(clock, candidate);
        }
        let n = self.outputs.len();
        let step = Step::Heartbeat { now_ms };
        self.finish_step(step, vec![BTreeSet::new(); n], vec![Vec::new(); n])
            .await
    }

    /// Computes, per tenant, the earliest watermark at which something
    /// happens: an open window closes (its end), a closed one is evicted
    /// (end plus allowed lateness) or a result row leaves the live results
    /// (end plus lateness plus retention). A watermark moves only when it
    /// would pass one, so an idle pipeline does not rewrite its checkpoint
    /// on every poll, yet rows of a tenant that went quiet still expire.
    fn next_deadlines(&self) -> BTreeMap<String, i64> {
        let lateness = self.spec.source.allowed_lateness_ms;
        let keep_for = lateness.saturating_add(self.spec.source.result_retention_ms);
        let mut deadlines: BTreeMap<String, i64> = BTreeMap::new();
        let mut note = |tenant: &str, at: i64| match deadlines.get_mut(tenant) {
            Some(earliest) => *earliest = (*earliest).min(at),
            None => {
                deadlines.insert(tenant.to_string(), at);
            }
        };
        for group in self.state.outputs.iter().flat_map(|s| s.groups.values()) {
            for window in group.windows.values() {
                let at = if window.closed {
                    window.end.saturating_add(lateness)
                } else {
                    window.end
                };
                note(&group.tenant, at);
            }
        }
        for row in self.state.results.values() {
            if row.window_end > 0 {
                note(&row.tenant, row.window_end.saturating_add(keep_for));
            }
        }
        deadlines
    }

    fn insert_result(&mut self, row: Arc<ResultRow>) {
        let previous = self.state.results.insert(row.key.clone(), row.clone());
        if previous.is_none() {
            let id = (row.output.clone(), row.tenant.clone());
            *self.row_counts.entry(id).or_default() += 1;
        }
    }

    fn remove_result(&mut self, key: &str) -> Option<Arc<ResultRow>> {
        let row = self.state.results.remove(key)?;
        let id = (row.output.clone(), row.tenant.clone());
        if let Some(count) = self.row_counts.get_mut(&id) {
            *count -= 1;
            if *count == 0 {
                self.row_counts.remove(&id);
            }
        }
        Some(row)
    }

    /// Removes the oldest rows of closed windows of each output and tenant
    /// over `max_result_rows`, down to 90% of it so that a tenant at the
    /// limit is not scanned on every step, and returns them. Rows of open
    /// windows stay: `max_open_windows` bounds those.
    fn trim_results(&mut self) -> Vec<Arc<ResultRow>> {
        let max_rows = self.spec.source.max_result_rows;
        let over: Vec<((String, String), usize)> = self
            .row_counts
            .iter()
            .filter(|(_, count)| **count > max_rows)
            .map(|(id, count)| (id.clone(), *count))
            .collect();
        let mut trimmed = Vec::new();
        for ((output, tenant), count) in over {
            let mut closed: Vec<(i64, String)> = self
                .state
                .results
                .values()
                .filter(|r| r.closed && r.output == output && r.tenant == tenant)
                .map(|r| (r.window_end, r.key.clone()))
                .collect();
            closed.sort_unstable();
            let excess = count - (max_rows - max_rows / 10);
            let mut removed = 0;
            for (_, key) in closed.into_iter().take(excess) {
                if let Some(row) = self.remove_result(&key) {
                    trimmed.push(row);
                    removed += 1;
                }
            }
            if let Some(index) = self.outputs.iter().position(|o| o.spec.sink == output) {
                *self.state.outputs[index]
                    .rows_trimmed_by_tenant
                    .entry(tenant.clone())
                    .or_default() += removed;
            }
            tracing::debug!(pipeline = %self.spec.name, %output, %tenant, removed, "trimmed live rows to max_result_rows");
        }
        trimmed
    }

    fn over_limit_total(&self) -> u64 {
        self.state
            .outputs
            .iter()
            .flat_map(|s| s.dropped_over_limit_by_tenant.values())
            .sum()
    }

    fn df_error(&self, phase: &'static str, source: DataFusionError) -> PipelineError {
        PipelineError::DataFusion {
            pipeline: self.spec.name.clone(),
            phase,
            source,
        }
    }

    /// Closes windows at the current watermark, computes the changed rows
    /// with the final query, evicts expired windows and checkpoints.
    async fn finish_step(
        &mut self,
        step: Step,
        mut changed: Vec<BTreeSet<WindowRef>>,
        retracted: Vec<Vec<Retraction>>,
    ) -> Result<Vec<Update>, PipelineError> {
        self.deadlines = None;
        let lateness = self.spec.source.allowed_lateness_ms;
        let clocks = &self.state.clocks;
        let watermark_of = |tenant: &str| clocks.get(tenant).and_then(|c| c.watermark);
        for (state, changed) in self.state.outputs.iter_mut().zip(changed.iter_mut()) {
            state.advance(watermark_of, changed);
        }

        let mut updates = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        let mut upserted: Vec<Arc<ResultRow>> = Vec::new();
        for index in 0..self.outputs.len() {
            for r in &retracted[index] {
                let key = row_key(&self.outputs[index].spec.sink, &r.group, r.start);
                // A session created and absorbed in the same step was never
                // published, so it needs no delete.
                if self.remove_result(&key).is_none() {
                    continue;
                }
                removed.push(key.clone());
                updates.push(Update {
                    pipeline: self.spec.name.clone(),
                    output: self.outputs[index].spec.sink.clone(),
                    tenant: r.tenant.clone(),
                    key,
                    window_start: r.start,
                    op: UpdateOp::Delete,
                    row: None,
                    closed: false,
                });
            }
            if changed[index].is_empty() {
                continue;
            }
            let rows = self.final_rows(index, &changed[index]).await?;
            for row in rows {
                updates.push(Update {
                    pipeline: self.spec.name.clone(),
                    output: row.output.clone(),
                    tenant: row.tenant.clone(),
                    key: row.key.clone(),
                    window_start: row.window_start,
                    op: UpdateOp::Upsert,
                    row: Some(row.row.clone()),
                    closed: row.closed,
                });
                let row = Arc::new(row);
                upserted.push(row.clone());
                self.insert_result(row);
            }
        }

        let clocks = &self.state.clocks;
        let watermark_of = |tenant: &str| clocks.get(tenant).and_then(|c| c.watermark);
        for state in &mut self.state.outputs {
            state.evict(watermark_of, lateness, &self.budget);
        }
        // Rows whose window ended more than the retention before their
        // tenant's watermark leave the live results; the Parquet history
        // keeps the events for ad-hoc SQL.
        let keep_for = lateness.saturating_add(self.spec.source.result_retention_ms);
        let expired: Vec<(String, String, String, i64)> = self
            .state
            .results
            .values()
            .filter(|r| {
                r.window_end > 0
                    && watermark_of(&r.tenant)
                        .is_some_and(|wm| r.window_end.saturating_add(keep_for) <= wm)
            })
            .map(|r| {
                (
                    r.key.clone(),
                    r.output.clone(),
                    r.tenant.clone(),
                    r.window_start,
                )
            })
            .collect();
        for (key, output, tenant, window_start) in expired {
            self.remove_result(&key);
            removed.push(key.clone());
            updates.push(Update {
                pipeline: self.spec.name.clone(),
                output,
                tenant,
                key,
                window_start,
                op: UpdateOp::Delete,
                row: None,
                closed: true,
            });
        }

        for trimmed in self.trim_results() {
            removed.push(trimmed.key.clone());
            updates.push(Update {
                pipeline: self.spec.name.clone(),
                output: trimmed.output.clone(),
                tenant: trimmed.tenant.clone(),
                key: trimmed.key.clone(),
                window_start: trimmed.window_start,
                op: UpdateOp::Delete,
                row: None,
                closed: true,
            });
        }

        // The step is on disk, in the checkpoint or the journal, before
        // anyone can see its rows.
        self.state.steps += 1;
        self.unsaved = true;
        if !self.replaying {
            if self.last_saved.elapsed() >= self.checkpoint_interval {
                self.save_checkpoint()?;
            } else {
                let seq = self.state.steps;
                self.journal
                    .append(seq, step)
                    .map_err(|source| PipelineError::Checkpoint {
                        pipeline: self.spec.name.clone(),
                        action: "append to the journal",
                        path: self.journal.path().to_path_buf(),
                        source,
                    })?;
            }
        }

        // Readers see the changed rows only, not a fresh copy of the table.
        {
            let mut shared = self.results.write().expect("results lock");
            for row in upserted {
                shared.insert(row.key.clone(), row);
            }
            for key in &removed {
                shared.remove(key);
            }
        }
        Ok(updates)
    }

    async fn final_rows(
        &self,
        index: usize,
        changed: &BTreeSet<WindowRef>,
    ) -> Result<Vec<ResultRow>, PipelineError> {
        let output = &self.outputs[index];
        let state = &self.state.outputs[index];
        let windows: Vec<_> = changed
            .iter()
            .filter_map(|r| state.window(r).map(|w| (r, w)))
            .collect();
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let schema = &output.state_schema;
        let key_count = output.spec.key_count;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(
                windows
                    .iter()
                    .map(|(_, (g, _))| Some(g.tenant.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(Int64Array::from_iter_values(
                windows.iter().map(|(_, (_, w))| w.start),
            )),
            Arc::new(Int64Array::from_iter_values(
                windows.iter().map(|(_, (_, w))| w.end),
            )),
        ];
        for i in 0..(schema.fields().len() - 3) {
            let values: Vec<Value> = windows
                .iter()
                .map(|(_, (g, w))| {
                    if i < key_count {
                        g.keys[i].clone()
                    } else {
                        w.aggs[i - key_count].clone()
                    }
                })
                .collect();
            let array = Value::to_array(&values, schema.field(i + 3).data_type())
                .map_err(|e| self.df_error("building the window state batch", e))?;
            columns.push(array);
        }
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| self.df_error("building the window state batch", e.into()))?;
        *self.state_slots[index].lock().expect("slot lock") = vec![batch];
        let batches = self
            .ctx
            .execute_logical_plan(output.final_plan.clone())
            .await
            .map_err(|e| self.df_error("planning the final projection", e))?
            .collect()
            .await
            .map_err(|e| self.df_error("running the final projection", e))?;
        self.state_slots[index].lock().expect("slot lock").clear();

        // A projection keeps row order, so output row i is window i.
        let mut rows = Vec::with_capacity(windows.len());
        let mut i = 0;
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let (reference, (group, window)) = windows[i];
                i += 1;
                let mut object = serde_json::Map::new();
                for (c, name) in output.spec.columns.iter().enumerate() {
                    let value = json_of(batch.column(c), row)
                        .map_err(|e| self.df_error("reading the final projection", e))?;
                    object.insert(name.clone(), value);
                }
                rows.push(ResultRow {
                    output: output.spec.sink.clone(),
                    tenant: group.tenant.clone(),
                    key: row_key(&output.spec.sink, &reference.0, reference.1),
                    window_start: window.start,
                    window_end: window.end,
                    row: object,
                    closed: window.closed,
                });
            }
        }
        Ok(rows)
    }

    /// Writes the checkpoint to a temporary file, syncs it and renames it
    /// over the old one, so a crash leaves either the old or the new state,
    /// each with its own consumer offset.
    fn save_checkpoint(&mut self) -> Result<(), PipelineError> {
        let error =
            |action: &'static str, path: &Path, source: std::io::Error| PipelineError::Checkpoint {
                pipeline: self.spec.name.clone(),
                action,
                path: path.to_path_buf(),
                source,
            };
        // NOTE: each write contains the whole state, so its cost grows with the
        // open windows and retained rows of all tenants (about 0.9 KB per
        // window of `campaign_hourly`). The checkpoint interval bounds how
        // often that is paid; an append-only change log with periodic
        // snapshots would make a write grow with the change only.
        let tmp = self.checkpoint_path.with_extension("json.tmp");
        let file = fs::File::create(&tmp).map_err(|e| error("create", &tmp, e))?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer(&mut writer, &self.state)
            .map_err(|e| error("write", &tmp, std::io::Error::from(e)))?;
        let file = writer
            .into_inner()
            .map_err(|e| error("write", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| error("sync", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, &self.checkpoint_path)
            .map_err(|e| error("rename", &self.checkpoint_path, e))?;
        if let Some(dir) = self.checkpoint_path.parent()
            && let Ok(dir_file) = fs::File::open(dir)
        {
            dir_file
                .sync_all()
                .map_err(|e| error("sync the directory of", dir, e))?;
        }
        self.journal
            .clear()
            .map_err(|e| error("clear the journal after", &self.checkpoint_path, e))?;
        self.unsaved = false;
        self.last_saved = Instant::now();
        Ok(())
    }
}

pub(crate) fn rows_of(
    results: &RwLock<BTreeMap<String, Arc<ResultRow>>>,
    tenant: &str,
) -> Vec<ResultRow> {
    shared_rows_of(results, tenant)
        .into_iter()
        .map(|r| ResultRow::clone(&r))
        .collect()
}

pub(crate) fn shared_rows_of(
    results: &RwLock<BTreeMap<String, Arc<ResultRow>>>,
    tenant: &str,
) -> Vec<Arc<ResultRow>> {
    results
        .read()
        .expect("results lock")
        .values()
        .filter(|r| r.tenant == tenant)
        .cloned()
        .collect()
}

/// Moves a tenant's watermark forward, never back.
fn raise_watermark(clock: &mut Clock, candidate: i64) {
    clock.watermark = Some(clock.watermark.map_or(candidate, |w| w.max(candidate)));
}

/// Returns the key of a result row: output, group and window start joined
/// by U+001F, which neither an output name nor a group's JSON contains.
fn row_key(output: &str, group: &str, start: i64) -> String {
    format!("{output}\u{1f}{group}\u{1f}{start:020}")
}

/// Splits a result row's key into its output and window start, or returns
/// `None` when `key` is not one.
pub fn row_key_parts(key: &str) -> Option<(&str, i64)> {
    let (output, rest) = key.split_once('\u{1f}')?;
    let (group, start) = rest.rsplit_once('\u{1f}')?;
    let start_ms: i64 = start.parse().ok()?;
    if output.is_empty() || group.is_empty() || row_key(output, group, start_ms) != key {
        return None;
    }
    Some((output, start_ms))
}

fn merge_partials(
    output: &OutputRuntime,
    state: &mut OutputState,
    batch: &RecordBatch,
    clocks: &BTreeMap<String, Clock>,
    lateness: i64,
    max_open: usize,
    budget: &WindowBudget,
    changed: &mut BTreeSet<WindowRef>,
    retracted: &mut Vec<Retraction>,
) -> datafusion::error::Result<()> {
    let key_count = output.spec.key_count;
    let agg_count = output.spec.merges.len();
    for row in 0..batch.num_rows() {
        let Value::Str(tenant) = Value::from_array(batch.column(0), row)? else {
            continue;
        };
        let Value::Int(start) = Value::from_array(batch.column(1), row)? else {
            continue;
        };
        let keys = (0..key_count)
            .map(|k| Value::from_array(batch.column(2 + k), row))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let aggs = (0..agg_count)
            .map(|a| Value::from_array(batch.column(2 + key_count + a), row))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let watermark = clocks.get(&tenant).and_then(|c| c.watermark);
        state.merge_row(
            output.spec.window,
            &output.spec.merges,
            tenant,
            keys,
            start,
            aggs,
            watermark,
            lateness,
            max_open,
            budget,
            changed,
            retracted,
        );
    }
    Ok(())
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let windows = self.window_count();
        self.budget.release(windows);
    }
}

/// DataFusion's message without its category prefix.
fn datafusion_message(error: &DataFusionError) -> String {
    let text = error.to_string();
    text.split_once(": ")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or(text)
}

/// FNV-1a of the SQL text: a checkpoint only resumes the same pipeline.
fn fingerprint(sql: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in sql.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}
