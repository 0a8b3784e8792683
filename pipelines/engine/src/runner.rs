//! Running a pipeline continuously on a tokio task.

use crate::error::PipelineError;
use crate::pipeline::{Pipeline, PipelineStats, ResultRow, Update, rows_of, shared_rows_of};
use copycar_events::EventSource;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// How a running pipeline polls its source.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Wait between reads when the log has no new events.
    pub poll_interval: Duration,
    /// Maximum events per micro-batch.
    pub max_batch: usize,
    /// Updates buffered per subscriber; a slower subscriber sees `Lagged`.
    pub channel_capacity: usize,
    /// Shortest time between checkpoint writes (see
    /// [`Pipeline::set_checkpoint_interval`]); stopping writes the last one.
    pub checkpoint_interval: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            poll_interval: Duration::from_millis(50),
            max_batch: 8_192,
            channel_capacity: 1_024,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// A pipeline running on a task: read its current rows, subscribe to its
/// updates, stop it.
pub struct PipelineHandle {
    name: String,
    results: Arc<RwLock<BTreeMap<String, Arc<ResultRow>>>>,
    stats: Arc<Mutex<PipelineStats>>,
    /// True until the steps journaled before a crash are replayed.
    replaying: Arc<AtomicBool>,
    updates: broadcast::Sender<Update>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<Pipeline, PipelineError>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PipelineHandle {
    /// Starts reading `source` from the pipeline's checkpointed offset.
    pub fn start<S>(mut pipeline: Pipeline, source: Arc<S>, options: RunOptions) -> PipelineHandle
    where
        S: EventSource + Send + Sync + 'static,
    {
        let name = pipeline.name().to_string();
        pipeline.set_checkpoint_interval(options.checkpoint_interval);
        let results = pipeline.results_handle();
        let stats = Arc::new(Mutex::new(pipeline.stats()));
        let (updates, _) = broadcast::channel(options.channel_capacity.max(1));
        let (stop, mut stopped) = watch::channel(false);

        let replaying = Arc::new(AtomicBool::new(pipeline.steps_to_replay() > 0));

        let task_stats = stats.clone();
        let task_updates = updates.clone();
        let task_replaying = replaying.clone();
        let task = tokio::spawn(async move {
            let replayed = pipeline.replay(&source).await;
            task_replaying.store(false, Ordering::Release);
            if let Err(error) = replayed {
                tracing::error!(pipeline = %pipeline.name(), %error, "pipeline stopped");
                return Err(error);
            }
            *task_stats.lock().expect("stats lock") = pipeline.stats();
            tracing::info!(pipeline = %pipeline.name(), offset = pipeline.next_offset(), "pipeline started");
            loop {
                if *stopped.borrow() {
                    break;
                }
                let offset = pipeline.next_offset();
                let reader = source.clone();
                let max = options.max_batch;
                let read = tokio::task::spawn_blocking(move || reader.read_from(offset, max)).await;
                let events = match read {
                    Ok(Ok(events)) => events,
                    Ok(Err(error)) => {
                        tracing::warn!(pipeline = %pipeline.name(), offset, %error, "reading the event log failed; retrying");
                        Vec::new()
                    }
                    Err(error) if error.is_cancelled() => {
                        // The runtime is shutting down.
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(pipeline = %pipeline.name(), offset, %error, "the log reader task failed; retrying");
                        Vec::new()
                    }
                };
                let full = events.len() >= max;
                let result = if events.is_empty() {
                    pipeline.heartbeat(now_ms()).await
                } else {
                    pipeline.process(&events, now_ms()).await
                };
                let sent = match result {
                    Ok(sent) => sent,
                    Err(error) => {
                        tracing::error!(pipeline = %pipeline.name(), %error, "pipeline stopped");
                        return Err(error);
                    }
                };
                for update in sent {
                    // No subscriber is not an error: rows stay queryable.
                    let _ = task_updates.send(update);
                }
                *task_stats.lock().expect("stats lock") = pipeline.stats();
                if !full {
                    tokio::select! {
                        _ = tokio::time::sleep(options.poll_interval) => {}
                        _ = stopped.changed() => {}
                    }
                }
            }
            if let Err(error) = pipeline.flush() {
                tracing::error!(pipeline = %pipeline.name(), %error, "writing the last checkpoint failed; a restart replays from the one before");
                return Err(error);
            }
            tracing::info!(pipeline = %pipeline.name(), offset = pipeline.next_offset(), "pipeline stopped");
            Ok(pipeline)
        });

        PipelineHandle {
            name,
            results,
            stats,
            replaying,
            updates,
            stop,
            task,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current rows of `tenant`.
    pub fn rows(&self, tenant: &str) -> Vec<ResultRow> {
        rows_of(&self.results, tenant)
    }

    /// Current rows of `tenant`, shared with the pipeline instead of copied.
    pub fn shared_rows(&self, tenant: &str) -> Vec<Arc<ResultRow>> {
        shared_rows_of(&self.results, tenant)
    }

    /// Receives every update from now on, of all tenants; filter by
    /// [`Update::tenant`] before passing them on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    /// True once the task has ended: stopped, or failed (then
    /// [`PipelineHandle::stop`] returns the error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats.lock().expect("stats lock").clone()
    }

    /// Returns whether the steps journaled before a crash are still being
    /// replayed, so the rows are not yet complete.
    pub fn is_replaying(&self) -> bool {
        self.replaying.load(Ordering::Acquire)
    }

    /// Stops after the current micro-batch and writes the checkpoint.
    pub async fn stop(self) -> Result<(), PipelineError> {
        self.stop_and_take().await.map(drop)
    }

    /// Stops like [`PipelineHandle::stop`] and returns the pipeline with its
    /// state in memory, or `None` when its task panicked. A pipeline kept
    /// this way also keeps its room in a shared window budget.
    pub async fn stop_and_take(self) -> Result<Option<Pipeline>, PipelineError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result.map(Some),
            Err(join) => {
                tracing::error!(pipeline = %self.name, error = %join, "pipeline task panicked");
                Ok(None)
            }
        }
    }
}
