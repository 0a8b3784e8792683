//! The embedded event log: append-only segment files in one directory.

use crate::error::LogError;
use crate::event::{Event, RandomIds};
use crate::index::IdIndex;
use crate::record::{self, Decoded, Format, Frame};
use crate::segment::{self, Segment};
use crate::stream::{Appended, EventSink, EventSource, ItemResult, StoredEvent};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A record's typical size in bytes, used to size the batch buffer up
/// front. Larger records only make the buffer grow.
const ESTIMATED_RECORD_BYTES: usize = 192;

/// Segment size and retention settings.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A new segment starts when the next batch would take the active one
    /// past this many bytes. One batch is never split, so a batch larger than
    /// the limit makes one segment larger than the limit.
    pub segment_max_bytes: u64,
    /// Delete a closed segment once its newest event was received longer ago
    /// than this.
    pub retention_max_age: Option<Duration>,
    /// Delete the oldest closed segments while all segments together exceed
    /// this many bytes.
    pub retention_max_bytes: Option<u64>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_max_bytes: 64 * 1024 * 1024,
            retention_max_age: None,
            retention_max_bytes: None,
        }
    }
}

/// A durable, append-only event log on the local file system.
///
/// Deduplication covers the retained segments only: once a segment is deleted,
/// its (tenant, event_id) pairs can be appended again.
pub struct EventLog {
    dir: PathBuf,
    options: LogOptions,
    state: Mutex<State>,
}

struct State {
    /// Oldest first; the last one is the active segment.
    segments: Vec<Segment>,
    /// The active segment opened for appending; `None` when the log was
    /// opened read-only.
    active: Option<File>,
    index: IdIndex,
    /// Set when a failed write could not be rolled back.
    failed: bool,
}

impl EventLog {
    /// Opens the log in `dir`, creating it when missing, and recovers it: every
    /// segment is scanned to rebuild the id index, and a torn tail of the last
    /// segment is truncated.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<Self, LogError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io("create", &dir, e))?;
        Self::open_with(dir, options, true)
    }

    /// Opens an existing log in `dir` for reading only, so another process
    /// may keep appending to it.
    ///
    /// Nothing is created or truncated. A torn tail of the last segment,
    /// which may be a batch that a writer has not finished, ends the readable
    /// events; [`EventLog::append_batch`] returns [`LogError::ReadOnly`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, LogError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(LogError::io(
                "open",
                &dir,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Self::open_with(dir, LogOptions::default(), false)
    }

    fn open_with(dir: PathBuf, options: LogOptions, writable: bool) -> Result<Self, LogError> {
        let bases = segment::list_segments(&dir)?;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        let mut index = IdIndex::new();
        // (hash, offset) of every stored id, indexed once all segments are
        // known so that a hash collision can be checked against the files.
        let mut ids = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            // Retention deletes only the oldest segments, so the rest must
            // be contiguous.
            if let Some(previous) = segments.last()
                && base != previous.end_offset()
            {
                return Err(LogError::MissingSegment {
                    path: segment::segment_path(&dir, base),
                    expected: previous.end_offset(),
                    found: base,
                });
            }
            let scan = segment::scan(&dir, base, |tenant, event_id, offset| {
                ids.push((index.hash(tenant, event_id), offset));
            })?;
            let is_last = i + 1 == bases.len();
            // Only the last segment can be torn, because a segment is closed
            // only after its last write was synced.
            if scan.torn_tail && !is_last {
                return Err(LogError::Corrupt {
                    path: scan.segment.path,
                    position: scan.segment.size,
                });
            }
            if scan.torn_tail && writable {
                let found = std::fs::metadata(&scan.segment.path).map_or(0, |m| m.len());
                tracing::warn!(
                    segment = %scan.segment.path.display(),
                    kept_bytes = scan.segment.size,
                    cut_bytes = found.saturating_sub(scan.segment.size),
                    "cut an incomplete write off the end of the event log"
                );
                truncate(&scan.segment.path, scan.segment.size)?;
            }
            segments.push(scan.segment);
        }
        for (hash, offset) in ids {
            index_stored_id(&mut index, &segments, hash, offset)?;
        }

        if segments.is_empty() {
            segments.push(Segment::empty(&dir, 0));
        }
        let active = if writable {
            let last = segments.last_mut().unwrap();
            if last.format != Format::CURRENT {
                if last.positions.is_empty() {
                    // Nothing valid in it and its torn tail is cut off, so
                    // it can start over in the current format.
                    last.format = Format::CURRENT;
                } else {
                    // Records of one segment share a format, so appends go
                    // to a new segment and the old one stays as written.
                    let next = Segment::empty(&dir, last.end_offset());
                    segments.push(next);
                }
            }
            Some(open_for_append(&dir, segments.last_mut().unwrap())?)
        } else {
            None
        };
        Ok(EventLog {
            dir,
            options,
            state: Mutex::new(State {
                segments,
                active,
                index,
                failed: false,
            }),
        })
    }

    /// Returns the directory that contains the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the offset the next accepted event will get.
    pub fn next_offset(&self) -> u64 {
        self.lock().segments.last().unwrap().end_offset()
    }

    /// Returns the oldest retained offset.
    pub fn start_offset(&self) -> u64 {
        self.lock().segments[0].base_offset
    }

    /// Returns the number of segment files.
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Validates and appends `events`, then syncs the file before returning.
    ///
    /// Returns one result per input, in order. An event without an id gets a
    /// random one. A (tenant, event_id) already in the log, or earlier in the
    /// same batch, returns the earlier offset and is not written again. An I/O
    /// failure fails the whole batch and acknowledges none of it.
    pub fn append_batch(&self, events: Vec<Event>) -> Result<Vec<ItemResult>, LogError> {
        let mut state = self.lock();
        if state.active.is_none() {
            return Err(LogError::ReadOnly {
                path: self.dir.clone(),
            });
        }
        if state.failed {
            return Err(LogError::Failed {
                path: self.dir.clone(),
            });
        }
        let received_at = now_millis();
        let first_offset = state.segments.last().unwrap().end_offset();

        // Encode the accepted events into one buffer so the batch is a single
        // write followed by a single sync. Their ids go into a batch index,
        // which joins the log's index only once the batch is on disk, so an
        // error or a panic part-way leaves the log's index unchanged.
        let mut results = Vec::with_capacity(events.len());
        let mut buffer = Vec::with_capacity(events.len() * ESTIMATED_RECORD_BYTES);
        let mut relative_positions = Vec::with_capacity(events.len());
        let mut batch_ids = IdIndex::new();
        let mut random_ids = RandomIds::new();
        let state = &mut *state;
        for mut event in events {
            if let Err(error) = event.validate_fields() {
                results.push(Err(error));
                continue;
            }
            let event_id = match event.event_id.take() {
                Some(id) => id,
                None => random_ids.next_id().map_err(LogError::EventId)?,
            };

            // Encoding checks the size of the properties, so an invalid
            // event is rejected even when its id is a duplicate.
            let offset = first_offset + relative_positions.len() as u64;
            let position = buffer.len();
            event.event_id = Some(event_id);
            event.received_at = received_at;
            if let Err(error) = record::encode(offset, &event, &mut buffer) {
                results.push(Err(error));
                continue;
            }
            let event_id = event.event_id.take().unwrap();

            // The hash comes from the log's index, and the batch index is
            // only ever given hashes from it.
            let hash = state.index.hash(&event.tenant, &event_id);
            let batch = Batch {
                first_offset,
                buffer: &buffer[..position],
                relative_positions: &relative_positions,
            };
            let is_match = |candidate| {
                stored_key_matches(&state.segments, &batch, candidate, &event.tenant, &event_id)
            };
            let earlier = match state.index.find(hash, is_match)? {
                Some(stored) => Some(stored),
                None => batch_ids.find_or_insert(hash, offset, is_match)?,
            };
            if let Some(offset) = earlier {
                buffer.truncate(position);
                results.push(Ok(Appended {
                    offset,
                    event_id,
                    duplicate: true,
                }));
                continue;
            }

            relative_positions.push(position as u64);
            results.push(Ok(Appended {
                offset,
                event_id,
                duplicate: false,
            }));
        }
        if buffer.is_empty() {
            return Ok(results);
        }

        self.write_batch(state, first_offset, &buffer)?;

        // Only now, with the bytes on disk, does the batch become visible.
        state.index.merge(batch_ids);
        let active = state.segments.last_mut().unwrap();
        let start = active.size;
        active
            .positions
            .extend(relative_positions.iter().map(|p| start + p));
        active.size += buffer.len() as u64;
        active.newest_received_at = active.newest_received_at.max(received_at);
        Ok(results)
    }

    /// Writes an encoded batch that starts at `first_offset`, first starting
    /// a new segment when the batch would take the active one past its
    /// size limit.
    fn write_batch(
        &self,
        state: &mut State,
        first_offset: u64,
        buffer: &[u8],
    ) -> Result<(), LogError> {
        let active = state.segments.last().unwrap();
        let has_records = !active.positions.is_empty();
        if has_records && active.size + buffer.len() as u64 > self.options.segment_max_bytes {
            self.roll(state, first_offset)?;
            self.enforce_retention_locked(state, now_millis())?;
        }
        self.write_synced(state, buffer)
    }

    /// Returns up to `max` events from `offset` on. An `offset` older than the
    /// retained segments starts at [`EventLog::start_offset`]; one at or past
    /// the end returns nothing.
    pub fn read_from(&self, offset: u64, max: usize) -> Result<Vec<StoredEvent>, LogError> {
        let state = self.lock();
        let mut offset = offset.max(state.segments[0].base_offset);
        let mut events = Vec::new();
        let first = state.segments.partition_point(|s| s.end_offset() <= offset);

        for segment in &state.segments[first..] {
            if events.len() >= max {
                break;
            }
            if offset >= segment.end_offset() {
                continue;
            }
            let index = (offset - segment.base_offset) as usize;
            let start = segment.positions[index];
            let count = (segment.positions.len() - index).min(max - events.len());
            let last = index + count;
            let end = segment.positions.get(last).copied().unwrap_or(segment.size);

            let mut bytes = vec![0u8; (end - start) as usize];
            let mut file =
                File::open(&segment.path).map_err(|e| LogError::io("open", &segment.path, e))?;
            file.seek(SeekFrom::Start(start))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| LogError::io("read", &segment.path, e))?;

            let mut position = 0usize;
            for _ in 0..count {
                match record::decode(&bytes[position..], segment.format) {
                    Decoded::Record {
                        offset: stored,
                        event,
                        frame_len,
                    } if stored == offset => {
                        events.push(StoredEvent {
                            offset,
                            event: *event,
                        });
                        position += frame_len;
                        offset += 1;
                    }
                    _ => {
                        return Err(LogError::Corrupt {
                            path: segment.path.clone(),
                            position: start + position as u64,
                        });
                    }
                }
            }
        }
        Ok(events)
    }

    /// Deletes closed segments that are past the age or size limit and
    /// returns how many were deleted. The active segment is always kept.
    pub fn enforce_retention(&self) -> Result<usize, LogError> {
        let mut state = self.lock();
        self.enforce_retention_locked(&mut state, now_millis())
    }

    /// Like [`EventLog::enforce_retention`], with the current time given in
    /// Unix milliseconds.
    pub fn enforce_retention_at(&self, now_ms: i64) -> Result<usize, LogError> {
        let mut state = self.lock();
        self.enforce_retention_locked(&mut state, now_ms)
    }

    fn enforce_retention_locked(&self, state: &mut State, now_ms: i64) -> Result<usize, LogError> {
        let mut total: u64 = state.segments.iter().map(|s| s.size).sum();
        let mut deleted = 0;
        while state.segments.len() > 1 {
            let oldest = &state.segments[0];
            let too_old = self.options.retention_max_age.is_some_and(|age| {
                let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                oldest.newest_received_at < now_ms.saturating_sub(age_ms)
            });
            let too_big = self
                .options
                .retention_max_bytes
                .is_some_and(|max| total > max);
            if !too_old && !too_big {
                break;
            }

            std::fs::remove_file(&oldest.path)
                .map_err(|e| LogError::io("delete", &oldest.path, e))?;
            total -= oldest.size;
            state.segments.remove(0);
            deleted += 1;
            let start = state.segments[0].base_offset;
            state.index.retain(|offset| offset >= start);
        }
        if deleted > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(deleted)
    }

    /// Closes the active segment and starts a new one at `base_offset`.
    fn roll(&self, state: &mut State, base_offset: u64) -> Result<(), LogError> {
        let mut segment = Segment::empty(&self.dir, base_offset);
        let active = open_for_append(&self.dir, &mut segment)?;
        state.active = Some(active);
        state.segments.push(segment);
        Ok(())
    }

    /// Writes `buffer` to the active segment and syncs it. On failure the
    /// file is cut back to its previous length so no partial batch stays.
    fn write_synced(&self, state: &mut State, buffer: &[u8]) -> Result<(), LogError> {
        let segment = state.segments.last().unwrap();
        let active = state
            .active
            .as_mut()
            .expect("append_batch rejects writes to a read-only log");
        let written = active.write_all(buffer).and_then(|()| active.sync_data());
        if let Err(error) = written {
            let rolled_back = active
                .set_len(segment.size)
                .and_then(|()| active.sync_data());
            if rolled_back.is_err() {
                state.failed = true;
            }
            return Err(LogError::io("write", &segment.path, error));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state changes only after the file operation it records has
        // succeeded, so a holder that panicked left it consistent with the files.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl EventSink for EventLog {
    type Error = LogError;

    fn append_batch(&self, events: Vec<Event>) -> Result<Vec<ItemResult>, LogError> {
        EventLog::append_batch(self, events)
    }
}

impl EventSource for EventLog {
    type Error = LogError;

    fn read_from(&self, offset: u64, max: usize) -> Result<Vec<StoredEvent>, LogError> {
        EventLog::read_from(self, offset, max)
    }
}

/// Opens a segment for appending, creating it (and syncing the directory so
/// the new name survives a crash) when missing. An empty segment gets its
/// format header, synced before any record follows it.
fn open_for_append(dir: &Path, segment: &mut Segment) -> Result<File, LogError> {
    let existed = segment.path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&segment.path)
        .map_err(|e| LogError::io("open", &segment.path, e))?;
    if segment.size == 0 {
        let header = segment.format.segment_header();
        file.write_all(&header)
            .and_then(|()| file.sync_data())
            .map_err(|e| LogError::io("write the header of", &segment.path, e))?;
        segment.size = header.len() as u64;
    }
    if !existed {
        sync_dir(dir)?;
    }
    Ok(file)
}

/// A batch being encoded: the records before the current event, which the
/// dedupe check reads before they are on disk.
struct Batch<'a> {
    first_offset: u64,
    buffer: &'a [u8],
    relative_positions: &'a [u64],
}

/// Returns true when the record at `offset` has this tenant and event_id.
/// The record is in `batch` or in one of `segments`.
fn stored_key_matches(
    segments: &[Segment],
    batch: &Batch<'_>,
    offset: u64,
    tenant: &str,
    event_id: &str,
) -> Result<bool, LogError> {
    if offset >= batch.first_offset {
        let index = (offset - batch.first_offset) as usize;
        let position = batch.relative_positions[index] as usize;
        let Frame::Complete { payload, .. } = record::read_frame(&batch.buffer[position..]) else {
            unreachable!("the batch buffer contains only whole frames");
        };
        let summary = record::decode_summary(payload, Format::CURRENT)
            .expect("the batch buffer contains only records encoded by this batch");
        return Ok(summary.tenant == tenant && summary.event_id.as_deref() == Some(event_id));
    }
    let (stored_tenant, stored_id) = read_stored_key(segments, offset)?;
    Ok(stored_tenant == tenant && stored_id.as_deref() == Some(event_id))
}

/// Reads the tenant and event_id of the record at `offset` from its segment.
fn read_stored_key(
    segments: &[Segment],
    offset: u64,
) -> Result<(String, Option<String>), LogError> {
    let index = segments.partition_point(|s| s.end_offset() <= offset);
    let segment = segments
        .get(index)
        .filter(|s| offset >= s.base_offset)
        .expect("indexed offsets are in a retained segment");
    let index_in_segment = (offset - segment.base_offset) as usize;
    let start = segment.positions[index_in_segment];
    let end = segment
        .positions
        .get(index_in_segment + 1)
        .copied()
        .unwrap_or(segment.size);

    let mut bytes = vec![0u8; (end - start) as usize];
    let mut file = File::open(&segment.path).map_err(|e| LogError::io("open", &segment.path, e))?;
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| LogError::io("read", &segment.path, e))?;
    let corrupt = || LogError::Corrupt {
        path: segment.path.clone(),
        position: start,
    };
    let Frame::Complete { payload, .. } = record::read_frame(&bytes) else {
        return Err(corrupt());
    };
    let summary = record::decode_summary(payload, segment.format).ok_or_else(corrupt)?;
    Ok((
        summary.tenant.into_owned(),
        summary.event_id.map(|id| id.into_owned()),
    ))
}

/// Adds the stored id at `offset` to `index` while the log opens. A pair
/// that is already indexed, which only a log written without the dedupe
/// check can hold, keeps its newest offset.
fn index_stored_id(
    index: &mut IdIndex,
    segments: &[Segment],
    hash: u64,
    offset: u64,
) -> Result<(), LogError> {
    // Reading the key costs a file read, so it happens only on a hash match.
    let mut key = None;
    let earlier = index.find(hash, |candidate| {
        if key.is_none() {
            key = Some(read_stored_key(segments, offset)?);
        }
        Ok::<bool, LogError>(read_stored_key(segments, candidate)? == *key.as_ref().unwrap())
    })?;
    match earlier {
        Some(earlier) => index.replace(hash, earlier, offset),
        None => index.insert(hash, offset),
    }
    Ok(())
}

fn truncate(path: &Path, len: u64) -> Result<(), LogError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| LogError::io("open", path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| LogError::io("truncate", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("sync", dir, e))
}

fn now_millis() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
