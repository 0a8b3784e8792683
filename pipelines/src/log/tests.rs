use super::*;
use crate::event::{EventError, EventType};
use std::fs;

fn event(tenant: &str, id: Option<&str>) -> Event {
    let mut event = Event::new(tenant, EventType::Open, 1_700_000_000_000);
    event.event_id = id.map(String::from);
    event.recipient = Some("r-7f3a".into());
    event
}

fn ids(range: std::ops::Range<u32>) -> Vec<Event> {
    range
        .map(|i| event("acme", Some(&format!("e{i}"))))
        .collect()
}

fn offsets(results: &[ItemResult]) -> Vec<u64> {
    results.iter().map(|r| r.as_ref().unwrap().offset).collect()
}

/// Segments of a few records each, so tests roll over often.
const SMALL_SEGMENT_BYTES: u64 = 512;

fn small_segments() -> LogOptions {
    LogOptions {
        segment_max_bytes: SMALL_SEGMENT_BYTES,
        ..LogOptions::default()
    }
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();

    let results = log.append_batch(ids(0..3)).unwrap();
    assert_eq!(offsets(&results), [0, 1, 2]);
    let results = log.append_batch(vec![event("acme", None)]).unwrap();
    let assigned = results[0].as_ref().unwrap();
    assert_eq!(assigned.offset, 3);
    assert_eq!(assigned.event_id.len(), 32);

    let stored = log.read_from(1, 10).unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].offset, 1);
    assert_eq!(stored[0].event.event_id.as_deref(), Some("e1"));
    assert!(stored[0].event.received_at > 0);
    assert_eq!(
        stored[2].event.event_id.as_deref(),
        Some(assigned.event_id.as_str())
    );
    assert_eq!(log.read_from(0, 2).unwrap().len(), 2);
    assert!(log.read_from(4, 10).unwrap().is_empty());
}

#[test]
fn invalid_item_does_not_block_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();

    let batch = vec![
        event("acme", Some("a")),
        event("", Some("b")),
        event("acme", Some("c")),
    ];
    let results = log.append_batch(batch).unwrap();
    assert_eq!(results[0].as_ref().unwrap().offset, 0);
    assert_eq!(results[1], Err(EventError::Empty { field: "tenant" }));
    assert_eq!(results[2].as_ref().unwrap().offset, 1);
    assert_eq!(log.next_offset(), 2);
}

#[test]
fn duplicate_returns_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    log.append_batch(ids(0..2)).unwrap();

    let batch = vec![
        event("acme", Some("e1")),
        event("other", Some("e1")),
        event("acme", Some("new")),
        event("acme", Some("new")),
    ];
    let results = log.append_batch(batch).unwrap();
    let appended: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!((appended[0].offset, appended[0].duplicate), (1, true));
    assert_eq!((appended[1].offset, appended[1].duplicate), (2, false));
    assert_eq!((appended[2].offset, appended[2].duplicate), (3, false));
    assert_eq!((appended[3].offset, appended[3].duplicate), (3, true));
    assert_eq!(log.next_offset(), 4);
}

#[test]
fn dedupe_index_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), small_segments()).unwrap();
        for start in (0..40).step_by(4) {
            log.append_batch(ids(start..start + 4)).unwrap();
        }
        assert!(log.segment_count() > 1);
    }
    let log = EventLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.next_offset(), 40);
    let results = log.append_batch(vec![event("acme", Some("e5"))]).unwrap();
    assert_eq!(results[0].as_ref().unwrap().offset, 5);
    assert!(results[0].as_ref().unwrap().duplicate);
    let results = log.append_batch(vec![event("acme", Some("e40"))]).unwrap();
    assert_eq!(results[0].as_ref().unwrap().offset, 40);
}

#[test]
fn missing_middle_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), small_segments()).unwrap();
        for start in (0..30).step_by(3) {
            log.append_batch(ids(start..start + 3)).unwrap();
        }
    }
    let bases = segment::list_segments(dir.path()).unwrap();
    assert!(bases.len() > 2, "expected several segments, got {bases:?}");
    fs::remove_file(segment::segment_path(dir.path(), bases[1])).unwrap();

    let error = EventLog::open(dir.path(), small_segments()).err().unwrap();
    assert!(
        matches!(error, LogError::MissingSegment { found, .. } if found == bases[2]),
        "{error}"
    );
}

#[test]
fn log_works_through_sink_and_source_traits() {
    fn copy_all<S: EventSource, K: EventSink>(source: &S, sink: &K) -> usize {
        let events = source.read_from(0, 100).unwrap();
        let batch = events.into_iter().map(|stored| stored.event).collect();
        sink.append_batch(batch).unwrap().len()
    }

    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    log.append_batch(ids(0..5)).unwrap();

    // Copying a log into itself only finds duplicates.
    assert_eq!(copy_all(&log, &log), 5);
    assert_eq!(log.next_offset(), 5);
}

#[test]
fn segments_roll_at_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), small_segments()).unwrap();
    for start in (0..60).step_by(3) {
        log.append_batch(ids(start..start + 3)).unwrap();
    }

    let bases = segment::list_segments(dir.path()).unwrap();
    assert!(bases.len() > 2, "expected several segments, got {bases:?}");
    assert_eq!(bases[0], 0);
    for &base in &bases {
        let size = fs::metadata(segment::segment_path(dir.path(), base))
            .unwrap()
            .len();
        assert!(
            size <= SMALL_SEGMENT_BYTES,
            "segment {base} is {size} bytes"
        );
    }

    // A read that spans segments returns every offset once, in order.
    let stored = log.read_from(0, 1000).unwrap();
    let read: Vec<u64> = stored.iter().map(|s| s.offset).collect();
    assert_eq!(read, (0..60).collect::<Vec<_>>());
}

#[test]
fn batch_larger_than_segment_is_not_split() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), small_segments()).unwrap();
    log.append_batch(ids(0..1)).unwrap();
    log.append_batch(ids(1..50)).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.read_from(0, 100).unwrap().len(), 50);
}

#[test]
fn retention_by_size_deletes_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        retention_max_bytes: Some(3 * 1024),
        ..small_segments()
    };
    let log = EventLog::open(dir.path(), options).unwrap();
    for start in (0..200).step_by(4) {
        log.append_batch(ids(start..start + 4)).unwrap();
    }

    let bases = segment::list_segments(dir.path()).unwrap();
    let total: u64 = bases
        .iter()
        .map(|&b| {
            fs::metadata(segment::segment_path(dir.path(), b))
                .unwrap()
                .len()
        })
        .sum();
    assert!(total <= 3 * 1024 + 1024, "retained {total} bytes");
    let start = log.start_offset();
    assert!(start > 0);
    assert_eq!(bases[0], start);

    // A read from a deleted offset starts at the oldest retained one.
    assert_eq!(log.read_from(0, 1).unwrap()[0].offset, start);

    // A deleted event's id is no longer known, so it is written again.
    let results = log.append_batch(vec![event("acme", Some("e0"))]).unwrap();
    assert!(!results[0].as_ref().unwrap().duplicate);
}

#[test]
fn retention_by_age_keeps_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        retention_max_age: Some(Duration::from_secs(3600)),
        ..small_segments()
    };
    let log = EventLog::open(dir.path(), options).unwrap();
    for start in (0..60).step_by(3) {
        log.append_batch(ids(start..start + 3)).unwrap();
    }
    let before = log.segment_count();
    assert!(before > 2);

    // Nothing is an hour old yet.
    assert_eq!(log.enforce_retention().unwrap(), 0);

    let two_hours_later = now_millis() + 2 * 3600 * 1000;
    assert_eq!(
        log.enforce_retention_at(two_hours_later).unwrap(),
        before - 1
    );
    assert_eq!(log.segment_count(), 1);
    assert_eq!(segment::list_segments(dir.path()).unwrap().len(), 1);
    assert_eq!(log.next_offset(), 60);
}

#[test]
fn torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append_batch(ids(0..3)).unwrap();
    }
    let path = segment::segment_path(dir.path(), 0);
    let intact_len = fs::metadata(&path).unwrap().len();

    // Half of a fourth record, as a crash during `write` leaves it.
    let mut frame = Vec::new();
    record::encode(3, &event("acme", Some("torn")), &mut frame).unwrap();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&frame[..frame.len() / 2]).unwrap();
    drop(file);

    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), intact_len);
    assert_eq!(log.next_offset(), 3);
    assert_eq!(log.read_from(0, 10).unwrap().len(), 3);
    let results = log.append_batch(vec![event("acme", Some("torn"))]).unwrap();
    assert_eq!(results[0].as_ref().unwrap().offset, 3);
    assert_eq!(
        log.read_from(3, 10).unwrap()[0].event.event_id.as_deref(),
        Some("torn")
    );
}

#[test]
fn zeroed_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append_batch(ids(0..2)).unwrap();
    }
    let path = segment::segment_path(dir.path(), 0);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[0u8; 4096]).unwrap();
    drop(file);

    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.next_offset(), 2);
    assert_eq!(log.read_from(0, 10).unwrap().len(), 2);
}

/// Returns the file position of the payload middle of record `n` of a
/// segment.
fn middle_of_record(path: &Path, n: usize) -> usize {
    let bytes = fs::read(path).unwrap();
    let mut position = record::SEGMENT_HEADER_BYTES;
    for _ in 0..n {
        let len = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap());
        position += record::HEADER_BYTES + len as usize;
    }
    let len = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap()) as usize;
    position + record::HEADER_BYTES + len / 2
}

fn flip_byte(path: &Path, position: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

#[test]
fn flipped_byte_in_middle_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append_batch(ids(0..3)).unwrap();
    }
    let path = segment::segment_path(dir.path(), 0);
    let len_before = fs::metadata(&path).unwrap().len();
    flip_byte(&path, middle_of_record(&path, 1));

    let error = EventLog::open(dir.path(), LogOptions::default())
        .err()
        .unwrap();
    assert!(matches!(error, LogError::Corrupt { .. }), "{error}");
    assert!(
        error.to_string().contains("00000000000000000000.log"),
        "{error}"
    );
    // Open must not have cut off the intact record after the damaged one.
    assert_eq!(fs::metadata(&path).unwrap().len(), len_before);
}

#[test]
fn flipped_byte_in_closed_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), small_segments()).unwrap();
        for start in (0..30).step_by(3) {
            log.append_batch(ids(start..start + 3)).unwrap();
        }
    }
    // The last record of the first segment has no record after it in that
    // file, but the segment is closed, so damage there is still corruption.
    let path = segment::segment_path(dir.path(), 0);
    let count = segment::scan(dir.path(), 0, |_, _, _| {})
        .unwrap()
        .segment
        .positions
        .len();
    flip_byte(&path, middle_of_record(&path, count - 1));

    let error = EventLog::open(dir.path(), small_segments()).err().unwrap();
    assert!(matches!(error, LogError::Corrupt { .. }), "{error}");
}

#[test]
fn flipped_byte_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    log.append_batch(ids(0..3)).unwrap();
    let path = segment::segment_path(dir.path(), 0);
    flip_byte(&path, middle_of_record(&path, 1));

    assert_eq!(log.read_from(0, 1).unwrap().len(), 1);
    let error = log.read_from(0, 3).unwrap_err();
    assert!(matches!(error, LogError::Corrupt { .. }), "{error}");
}

#[test]
fn damaged_last_record_is_treated_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append_batch(ids(0..3)).unwrap();
    }
    let path = segment::segment_path(dir.path(), 0);
    flip_byte(&path, middle_of_record(&path, 2));

    // NOTE: a flipped byte in the newest record is indistinguishable from a
    // torn write, so that record is dropped.
    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.next_offset(), 2);
}

#[test]
fn read_only_open_keeps_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let writer = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    writer.append_batch(ids(0..3)).unwrap();
    let path = segment::segment_path(dir.path(), 0);

    // Half of a fourth record, as a writer in the middle of a batch leaves it.
    let mut frame = Vec::new();
    record::encode(3, &event("acme", Some("half")), &mut frame).unwrap();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&frame[..frame.len() / 2]).unwrap();
    drop(file);
    let torn_len = fs::metadata(&path).unwrap().len();

    let reader = EventLog::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.next_offset(), 3);
    assert_eq!(reader.read_from(0, 10).unwrap().len(), 3);
    assert_eq!(fs::metadata(&path).unwrap().len(), torn_len);
    assert!(matches!(
        reader.append_batch(ids(10..11)),
        Err(LogError::ReadOnly { .. })
    ));
}

#[test]
fn read_only_open_of_missing_dir_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("events");
    assert!(EventLog::open_read_only(&missing).is_err());
    assert!(!missing.exists());
}

/// Writes a version 1 segment, as earlier releases did: no header and JSON
/// payloads.
fn write_json_segment(dir: &Path, base: u64, events: &[Event]) {
    let mut bytes = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let mut event = event.clone();
        event.received_at = 1_700_000_000_001;
        record::encode_json(base + i as u64, &event, &mut bytes);
    }
    fs::write(segment::segment_path(dir, base), bytes).unwrap();
}

#[test]
fn json_segment_reads_and_rolls_on_append() {
    let dir = tempfile::tempdir().unwrap();
    write_json_segment(dir.path(), 0, &ids(0..3));
    let legacy_path = segment::segment_path(dir.path(), 0);
    let legacy_bytes = fs::read(&legacy_path).unwrap();

    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.next_offset(), 3);
    let stored = log.read_from(0, 10).unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[2].event.event_id.as_deref(), Some("e2"));

    let results = log.append_batch(ids(2..4)).unwrap();
    let appended: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!((appended[0].offset, appended[0].duplicate), (2, true));
    assert_eq!((appended[1].offset, appended[1].duplicate), (3, false));

    // The old segment is left as written; the new one has a header.
    assert_eq!(fs::read(&legacy_path).unwrap(), legacy_bytes);
    let new_bytes = fs::read(segment::segment_path(dir.path(), 3)).unwrap();
    assert_eq!(&new_bytes[..7], record::SEGMENT_MAGIC);
    assert_eq!(new_bytes[7], 2);
    drop(log);

    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    let read: Vec<_> = log
        .read_from(0, 10)
        .unwrap()
        .into_iter()
        .map(|s| s.event.event_id.unwrap())
        .collect();
    assert_eq!(read, ["e0", "e1", "e2", "e3"]);
    let results = log.append_batch(ids(0..1)).unwrap();
    assert!(results[0].as_ref().unwrap().duplicate);
}

#[test]
fn unknown_format_version_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append_batch(ids(0..2)).unwrap();
    }
    let path = segment::segment_path(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[record::SEGMENT_MAGIC.len()] = 9;
    fs::write(&path, &bytes).unwrap();

    let error = EventLog::open(dir.path(), LogOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            LogError::UnsupportedFormat {
                version: Some(9),
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("format version 9"), "{message}");
    assert!(message.contains("00000000000000000000.log"), "{message}");
    // Open must leave the file alone.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn torn_segment_header_is_rewritten_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(dir.path(), small_segments()).unwrap();
        log.append_batch(ids(0..20)).unwrap();
    }
    // A crash right after a roll created the next segment and wrote part of
    // its header.
    let path = segment::segment_path(dir.path(), 20);
    fs::write(&path, &record::SEGMENT_MAGIC[..3]).unwrap();

    let log = EventLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.next_offset(), 20);
    assert_eq!(
        fs::read(&path).unwrap(),
        Format::CURRENT.segment_header(),
        "the header is written whole"
    );
    let results = log.append_batch(ids(20..21)).unwrap();
    assert_eq!(results[0].as_ref().unwrap().offset, 20);
    drop(log);

    let log = EventLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.read_from(0, 100).unwrap().len(), 21);
}

#[test]
fn new_log_segment_starts_with_header() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    let path = segment::segment_path(dir.path(), 0);
    assert_eq!(fs::read(&path).unwrap(), Format::CURRENT.segment_header());
    log.append_batch(ids(0..1)).unwrap();
    assert_eq!(log.read_from(0, 1).unwrap().len(), 1);
}

#[test]
fn duplicate_within_batch_and_oversized_properties() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
    let mut oversized = event("acme", Some("a"));
    oversized.properties.insert(
        "blob".into(),
        serde_json::Value::String("x".repeat(crate::MAX_PROPERTIES_BYTES)),
    );
    let batch = vec![
        event("acme", Some("a")),
        oversized,
        event("acme", Some("b")),
    ];
    let results = log.append_batch(batch).unwrap();
    assert_eq!(results[0].as_ref().unwrap().offset, 0);
    assert!(matches!(
        results[1],
        Err(EventError::PropertiesTooLarge { .. })
    ));
    assert_eq!(results[2].as_ref().unwrap().offset, 1);
    let stored = log.read_from(0, 10).unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].event.event_id.as_deref(), Some("b"));
}
