//! The compactor: reads the event log by offset and writes each tenant's new
//! events to Parquet files, then merges small files.

use crate::error::HistoryError;
use crate::manifest::{FileEntry, Manifest, delete_unlisted, sync_dir, tenant_dir};
use crate::schema::{event_schema, events_to_batch};
use copycar_events::{EventSource, StoredEvent};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Settings of the compactor.
#[derive(Debug, Clone)]
pub struct CompactorOptions {
    /// Events read from the log per call.
    pub read_batch: usize,
    /// Events written per run at most, which bounds the memory of one run.
    pub max_events_per_run: usize,
    /// A tenant's files with fewer rows than this count as small.
    pub small_file_rows: u64,
    /// Small files of one tenant that trigger a merge into one file.
    pub merge_min_files: usize,
    /// How long a file replaced by a merge stays on disk, so queries that
    /// listed it before the merge can finish reading it.
    pub retire_grace: Duration,
}

impl Default for CompactorOptions {
    fn default() -> Self {
        CompactorOptions {
            read_batch: 10_000,
            max_events_per_run: 100_000,
            small_file_rows: 1_000_000,
            merge_min_files: 8,
            retire_grace: Duration::from_secs(600),
        }
    }
}

/// The outcome of one compaction run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactionReport {
    /// Events written to new files.
    pub events: u64,
    /// New files written, merged files included.
    pub files_written: usize,
    /// Files replaced by merges.
    pub files_merged: usize,
    /// The next log offset to read.
    pub next_offset: u64,
}

/// A history directory: one subdirectory of Parquet files per tenant and
/// the progress file.
pub struct History {
    root: PathBuf,
    options: CompactorOptions,
    /// The committed manifest; queries clone the `Arc` to list files.
    committed: RwLock<Arc<Manifest>>,
    /// Serializes compaction runs, background and on demand.
    run: Mutex<Retired>,
    #[cfg(test)]
    pub(crate) fail_before_commit: std::sync::atomic::AtomicBool,
}

/// Files replaced by merges, waiting out the grace period.
#[derive(Default)]
struct Retired(Vec<(PathBuf, Instant)>);

impl History {
    /// Opens (or creates) the history directory and deletes files left by a
    /// run that did not commit.
    pub fn open(root: impl Into<PathBuf>, options: CompactorOptions) -> Result<Self, HistoryError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| HistoryError::io("create", &root, e))?;
        let manifest = Manifest::load(&root)?;
        let deleted = delete_unlisted(&root, &manifest)?;
        tracing::info!(
            dir = %root.display(),
            next_offset = manifest.next_offset,
            tenants = manifest.tenants.len(),
            deleted,
            "opened event history"
        );
        Ok(History {
            root,
            options,
            committed: RwLock::new(Arc::new(manifest)),
            run: Mutex::new(Retired::default()),
            #[cfg(test)]
            fail_before_commit: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Returns the history directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the first log offset not yet written to a file.
    pub fn next_offset(&self) -> u64 {
        self.snapshot().next_offset
    }

    pub(crate) fn snapshot(&self) -> Arc<Manifest> {
        self.committed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Returns the paths of a tenant's committed files, oldest first.
    pub fn tenant_files(&self, tenant: &str) -> Vec<PathBuf> {
        let manifest = self.snapshot();
        let dir = tenant_dir(&self.root, tenant);
        manifest
            .tenants
            .get(tenant)
            .map(|files| files.iter().map(|f| dir.join(&f.name)).collect())
            .unwrap_or_default()
    }

    /// Reads the log from the committed offset, writes the new events of
    /// each tenant to one new file, commits the progress, and then merges
    /// small files. Blocks on file I/O.
    pub fn compact<S: EventSource>(&self, log: &S) -> Result<CompactionReport, HistoryError> {
        let mut retired = self.run.lock().unwrap_or_else(|e| e.into_inner());
        let mut manifest = (*self.snapshot()).clone();
        let mut report = CompactionReport::default();

        // Read up to the run's limit, in log order.
        let start = manifest.next_offset;
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut next = start;
        while events.len() < self.options.max_events_per_run {
            let want = self
                .options
                .read_batch
                .min(self.options.max_events_per_run - events.len());
            let read = log
                .read_from(next, want)
                .map_err(|e| HistoryError::Log(e.to_string()))?;
            if next == start
                && let Some(first) = read.first()
                && first.offset > start
            {
                tracing::warn!(
                    next_offset = start,
                    log_start = first.offset,
                    "events were deleted by log retention before they were compacted"
                );
            }
            let Some(last) = read.last() else { break };
            next = last.offset + 1;
            events.extend(read);
        }

        if !events.is_empty() {
            // One file per tenant for this run; each is complete and synced
            // before the progress names it.
            let mut by_tenant: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
            for stored in &events {
                by_tenant
                    .entry(stored.event.tenant.as_str())
                    .or_default()
                    .push(stored);
            }
            let mut written = Vec::new();
            for (tenant, tenant_events) in by_tenant {
                let dir = tenant_dir(&self.root, tenant);
                let name = format!("{:016}.parquet", manifest.take_file_number());
                let batch = events_to_batch(&tenant_events)
                    .map_err(|e| HistoryError::parquet("build a batch for", &dir, e))?;
                write_parquet(&dir, &name, [Ok(batch)])?;
                written.push((tenant.to_string(), name, tenant_events.len() as u64));
            }

            #[cfg(test)]
            if self
                .fail_before_commit
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return Err(HistoryError::InjectedFault);
            }

            for (tenant, name, rows) in written {
                manifest
                    .tenants
                    .entry(tenant)
                    .or_default()
                    .push(FileEntry { name, rows });
                report.files_written += 1;
            }
            report.events = events.len() as u64;
        }
        manifest.next_offset = next;
        if manifest != **self.committed.read().unwrap_or_else(|e| e.into_inner()) {
            self.commit(manifest.clone())?;
        }
        drop(events);

        // Merging runs after the commit, so a failed merge never holds back
        // new events.
        let (written, merged) = self.merge_small_files(&mut manifest, &mut retired)?;
        report.files_written += written;
        report.files_merged += merged;
        self.delete_retired(&mut retired);
        report.next_offset = manifest.next_offset;
        Ok(report)
    }

    fn commit(&self, manifest: Manifest) -> Result<(), HistoryError> {
        manifest.store(&self.root)?;
        *self.committed.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(manifest);
        Ok(())
    }

    /// Merges the small files of each tenant that has at least
    /// `merge_min_files` of them into one file, one commit per tenant.
    fn merge_small_files(
        &self,
        manifest: &mut Manifest,
        retired: &mut Retired,
    ) -> Result<(usize, usize), HistoryError> {
        let mut written = 0;
        let mut merged = 0;
        let tenants: Vec<String> = manifest.tenants.keys().cloned().collect();
        for tenant in tenants {
            let candidates: Vec<&FileEntry> = manifest.tenants[&tenant]
                .iter()
                .filter(|f| f.rows < self.options.small_file_rows)
                .collect();
            if candidates.len() < self.options.merge_min_files {
                continue;
            }

            // Oldest first, until the merged file is no longer small, so one
            // merge reads a bounded number of rows.
            let mut small: Vec<FileEntry> = Vec::new();
            let mut total = 0;
            for file in candidates {
                if small.len() >= 2 && total >= self.options.small_file_rows {
                    break;
                }
                total += file.rows;
                small.push(file.clone());
            }

            let dir = tenant_dir(&self.root, &tenant);
            let name = format!("{:016}.parquet", manifest.take_file_number());
            let sources: Vec<PathBuf> = small.iter().map(|f| dir.join(&f.name)).collect();
            let batches = sources
                .iter()
                .map(|path| read_parquet(path))
                .collect::<Result<Vec<_>, _>>()?;
            write_parquet(&dir, &name, batches.into_iter().flatten())?;

            let rows = small.iter().map(|f| f.rows).sum();
            let files = manifest.tenants.get_mut(&tenant).expect("tenant listed");
            files.retain(|f| !small.contains(f));
            files.push(FileEntry {
                name: name.clone(),
                rows,
            });
            self.commit(manifest.clone())?;
            tracing::debug!(tenant = %tenant, merged = small.len(), file = %name, rows, "merged history files");

            let now = Instant::now();
            retired
                .0
                .extend(small.iter().map(|f| (dir.join(&f.name), now)));
            written += 1;
            merged += small.len();
        }
        Ok((written, merged))
    }

    /// Deletes replaced files whose grace period is over. A failure is
    /// logged and the file is deleted on the next open instead.
    fn delete_retired(&self, retired: &mut Retired) {
        let grace = self.options.retire_grace;
        retired.0.retain(|(path, since)| {
            if since.elapsed() < grace {
                return true;
            }
            if let Err(e) = fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "failed to delete a merged history file");
            }
            false
        });
    }
}

/// Writes batches to `dir/name` through a temporary file: the data is synced
/// before the rename, and the directory after it.
fn write_parquet(
    dir: &Path,
    name: &str,
    batches: impl IntoIterator<Item = Result<RecordBatch, HistoryError>>,
) -> Result<(), HistoryError> {
    fs::create_dir_all(dir).map_err(|e| HistoryError::io("create", dir, e))?;
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.tmp"));
    let file = File::create(&temporary).map_err(|e| HistoryError::io("create", &temporary, e))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(file, event_schema(), Some(properties))
        .map_err(|e| HistoryError::parquet("open", &temporary, e))?;
    for batch in batches {
        writer
            .write(&batch?)
            .map_err(|e| HistoryError::parquet("write", &temporary, e))?;
    }
    let file = writer
        .into_inner()
        .map_err(|e| HistoryError::parquet("finish", &temporary, e))?;
    file.sync_all()
        .map_err(|e| HistoryError::io("sync", &temporary, e))?;
    fs::rename(&temporary, &path).map_err(|e| HistoryError::io("rename", &temporary, e))?;
    sync_dir(dir)
}

/// Opens a Parquet file and returns its batches, read one at a time as the
/// iterator advances.
fn read_parquet(
    path: &Path,
) -> Result<impl Iterator<Item = Result<RecordBatch, HistoryError>>, HistoryError> {
    let file = File::open(path).map_err(|e| HistoryError::io("open", path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| HistoryError::parquet("open", path, e))?;
    let path = path.to_path_buf();
    Ok(reader.map(move |batch| batch.map_err(|e| HistoryError::parquet("read", &path, e))))
}
