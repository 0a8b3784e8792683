//! Segment files: naming, listing, headers and the recovery scan.
//!
//! A segment is named after the offset of its first record, zero-padded to
//! 20 digits so that names sort in offset order (`00000000000000000042.log`).
//! It starts with a header that names its format version
//! ([`record::SEGMENT_MAGIC`] and one version byte), except for version 1
//! segments, which have no header.

use crate::error::LogError;
use crate::record::{self, Format, Frame};
use std::path::{Path, PathBuf};

const EXTENSION: &str = "log";

/// One segment file and what the log keeps in memory about it.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    /// Length in bytes of the header and the valid records; 0 while the
    /// header is not written yet.
    pub size: u64,
    /// Format of the header and records.
    pub format: Format,
    /// File position of each record, indexed by `offset - base_offset`.
    pub positions: Vec<u64>,
    /// The newest `received_at` in the segment, or `i64::MIN` when empty.
    pub newest_received_at: i64,
}

impl Segment {
    pub fn empty(dir: &Path, base_offset: u64) -> Self {
        Segment {
            base_offset,
            path: segment_path(dir, base_offset),
            size: 0,
            format: Format::CURRENT,
            positions: Vec::new(),
            newest_received_at: i64::MIN,
        }
    }

    /// Returns the offset one past the last record.
    pub fn end_offset(&self) -> u64 {
        self.base_offset + self.positions.len() as u64
    }
}

pub(crate) fn segment_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.{EXTENSION}"))
}

/// Lists the base offsets of the segment files in `dir`, ascending. Other
/// files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("list", dir, e))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        if stem.len() == 20
            && let Ok(base) = stem.parse::<u64>()
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// The result of scanning one segment.
pub(crate) struct Scan {
    pub segment: Segment,
    /// True when bytes after the valid records form a torn write and should
    /// be cut off.
    pub torn_tail: bool,
}

/// Reads a whole segment and checks every record, calling `on_id` with the
/// tenant, event_id and offset of each record that has an event_id.
///
/// A bad frame at the end of the file is a torn write: the process or the
/// machine stopped during an append that was never acknowledged. A bad frame
/// followed by a valid one is corruption of acknowledged data, and the scan
/// fails with [`LogError::Corrupt`] instead of discarding the records after it.
/// A segment whose header names an unknown format version fails with
/// [`LogError::UnsupportedFormat`].
pub(crate) fn scan(
    dir: &Path,
    base_offset: u64,
    mut on_id: impl FnMut(&str, &str, u64),
) -> Result<Scan, LogError> {
    let mut segment = Segment::empty(dir, base_offset);
    let bytes = std::fs::read(&segment.path).map_err(|e| LogError::io("read", &segment.path, e))?;

    let header = Format::CURRENT.segment_header();
    if bytes.len() < header.len() && header.starts_with(&bytes) {
        // Empty, or a header cut short: the segment was created but never
        // held a record.
        return Ok(Scan {
            torn_tail: !bytes.is_empty(),
            segment,
        });
    }
    segment.format = segment_format(&bytes, &segment.path)?;
    let mut position = segment.format.header_len() as usize;

    while position < bytes.len() {
        let rest = &bytes[position..];
        match record::read_frame(rest) {
            Frame::Complete { payload, frame_len } => {
                let summary = record::decode_summary(payload, segment.format);
                // Offsets in a segment are consecutive from its base.
                let Some(summary) = summary.filter(|s| s.offset == segment.end_offset()) else {
                    return Err(LogError::Corrupt {
                        path: segment.path,
                        position: position as u64,
                    });
                };
                segment.positions.push(position as u64);
                segment.newest_received_at = segment.newest_received_at.max(summary.received_at);
                if let Some(event_id) = &summary.event_id {
                    on_id(&summary.tenant, event_id, summary.offset);
                }
                position += frame_len;
            }
            Frame::Incomplete => break,
            Frame::Corrupt { frame_len } => {
                let followed_by_record = frame_len
                    .and_then(|len| rest.get(len..))
                    .is_some_and(|next| is_record(next, segment.format));
                let rest_is_zero = rest.iter().all(|&b| b == 0);
                // NOTE: a damaged length field makes the next frame
                // unreachable, so a non-zero tail that cannot be parsed at all
                // is reported as corruption, although a power loss can leave
                // such a tail too.
                if followed_by_record || (frame_len.is_none() && !rest_is_zero) {
                    return Err(LogError::Corrupt {
                        path: segment.path,
                        position: position as u64,
                    });
                }
                break;
            }
        }
    }

    segment.size = position as u64;
    Ok(Scan {
        torn_tail: position < bytes.len(),
        segment,
    })
}

/// Returns the format of a segment that contains at least a whole header
/// or a version 1 record.
fn segment_format(bytes: &[u8], path: &Path) -> Result<Format, LogError> {
    let Some(rest) = bytes.strip_prefix(record::SEGMENT_MAGIC.as_slice()) else {
        return Ok(Format::Json);
    };
    match rest.first() {
        Some(&version) if version == Format::Binary.version() => Ok(Format::Binary),
        version => Err(LogError::UnsupportedFormat {
            path: path.to_path_buf(),
            version: version.copied(),
        }),
    }
}

/// Returns true when `bytes` starts with an intact record.
fn is_record(bytes: &[u8], format: Format) -> bool {
    match record::read_frame(bytes) {
        Frame::Complete { payload, .. } => record::decode_summary(payload, format).is_some(),
        _ => false,
    }
}
