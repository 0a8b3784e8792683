//! The on-disk record frame and the two payload formats.
//!
//! Each record is `length: u32 LE | crc32: u32 LE | payload`, and the CRC32
//! (IEEE) covers the whole payload. The payload format depends on the
//! segment's format version ([`Format`]):
//!
//! - Version 1 ([`Format::Json`]), written by earlier releases in segments
//!   without a header: `offset: u64 LE` followed by the event as JSON. It is
//!   still read, but never written.
//! - Version 2 ([`Format::Binary`]), in segments that start with
//!   [`SEGMENT_MAGIC`] and the version byte 2:
//!
//! ```text
//! offset: u64 | received_at: i64 | occurred_at: i64 | present: u8 | type: u8
//! | tenant: str | event_id: str? | campaign: str? | account: str?
//! | recipient: str? | channel: str? | variant: str? | custom type: str?
//! | properties length: u32 | properties as JSON
//! ```
//!
//! Integers are little-endian. A `str` is a `u16` byte length followed by
//! UTF-8. Bit `i` of `present` is set when optional field `i` (event_id,
//! campaign, account, recipient, channel, variant, in that order) follows.
//! The custom type name is present only when `type` is [`TYPE_CUSTOM`], and a
//! properties length of 0 means an empty object.

use crate::event::{Event, EventError, EventType, MAX_PROPERTIES_BYTES};
use std::borrow::Cow;
use std::io::Write;

/// Bytes before the payload: the length and the checksum.
pub(crate) const HEADER_BYTES: usize = 8;

/// Largest payload a reader accepts. Real records are far smaller because
/// every event field is capped, so a larger length means a damaged header.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The first bytes of a segment in format version 2 or later, followed by
/// one version byte. Read as a little-endian `u32`, the first four bytes are
/// larger than [`MAX_PAYLOAD_BYTES`], so a version 1 segment, which starts
/// with a record length, never starts with them.
pub(crate) const SEGMENT_MAGIC: &[u8; 7] = b"CCEVLOG";

/// Length of a segment header: the magic and the version byte.
pub(crate) const SEGMENT_HEADER_BYTES: usize = SEGMENT_MAGIC.len() + 1;

/// The payload format of the records in one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Version 1: no segment header, JSON payloads. Read only.
    Json,
    /// Version 2: segment header, binary payloads.
    Binary,
}

impl Format {
    /// The format of newly written segments.
    pub const CURRENT: Format = Format::Binary;

    /// Returns the format version number stored in segment headers.
    pub fn version(self) -> u8 {
        match self {
            Format::Json => 1,
            Format::Binary => 2,
        }
    }

    /// Returns the segment header for this format, empty for version 1.
    pub fn segment_header(self) -> Vec<u8> {
        match self {
            Format::Json => Vec::new(),
            Format::Binary => {
                let mut header = SEGMENT_MAGIC.to_vec();
                header.push(self.version());
                header
            }
        }
    }

    /// Returns the bytes before the first record.
    pub fn header_len(self) -> u64 {
        match self {
            Format::Json => 0,
            Format::Binary => SEGMENT_HEADER_BYTES as u64,
        }
    }
}

/// `type` byte of a custom event type, whose name follows the optional
/// fields.
pub(crate) const TYPE_CUSTOM: u8 = 255;

/// Bytes of a binary payload before its strings: offset, received_at,
/// occurred_at, the presence bits and the type.
const FIXED_BYTES: usize = 8 + 8 + 8 + 1 + 1;

fn type_code(event_type: &EventType) -> u8 {
    match event_type {
        EventType::Sent => 1,
        EventType::Delivered => 2,
        EventType::Open => 3,
        EventType::Click => 4,
        EventType::Reply => 5,
        EventType::Bounce => 6,
        EventType::Unsubscribe => 7,
        EventType::Complaint => 8,
        EventType::Audit => 9,
        EventType::Custom(_) => TYPE_CUSTOM,
    }
}

fn type_from_code(code: u8) -> Option<EventType> {
    Some(match code {
        1 => EventType::Sent,
        2 => EventType::Delivered,
        3 => EventType::Open,
        4 => EventType::Click,
        5 => EventType::Reply,
        6 => EventType::Bounce,
        7 => EventType::Unsubscribe,
        8 => EventType::Complaint,
        9 => EventType::Audit,
        _ => return None,
    })
}

/// Appends the version 2 frame for `event` at `offset` to `out`.
///
/// The properties are serialized straight into `out`. When they exceed
/// [`MAX_PROPERTIES_BYTES`], `out` is cut back to its previous length and
/// [`EventError::PropertiesTooLarge`] is returned. Every other field must
/// already be valid ([`Event::validate`]), because string lengths are stored
/// as `u16`.
pub(crate) fn encode(offset: u64, event: &Event, out: &mut Vec<u8>) -> Result<(), EventError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&event.received_at.to_le_bytes());
    out.extend_from_slice(&event.occurred_at.to_le_bytes());

    let optional = [
        &event.event_id,
        &event.campaign,
        &event.account,
        &event.recipient,
        &event.channel,
        &event.variant,
    ];
    let mut present = 0u8;
    for (bit, value) in optional.iter().enumerate() {
        if value.is_some() {
            present |= 1 << bit;
        }
    }
    out.push(present);
    out.push(type_code(&event.event_type));
    put_str(out, &event.tenant);
    for value in optional.into_iter().flatten() {
        put_str(out, value);
    }
    if let EventType::Custom(name) = &event.event_type {
        put_str(out, name);
    }

    let length_at = out.len();
    out.extend_from_slice(&[0; 4]);
    if !event.properties.is_empty() {
        serde_json::to_writer(&mut *out, &event.properties)
            .expect("a JSON object always serializes");
    }
    let properties_len = out.len() - length_at - 4;
    if properties_len > MAX_PROPERTIES_BYTES {
        out.truncate(start);
        return Err(EventError::PropertiesTooLarge {
            len: properties_len,
            max: MAX_PROPERTIES_BYTES,
        });
    }
    // Fits: MAX_PROPERTIES_BYTES is far below u32::MAX.
    out[length_at..length_at + 4].copy_from_slice(&(properties_len as u32).to_le_bytes());

    finish_frame(out, start);
    Ok(())
}

/// Appends the version 1 (JSON) frame for `event` at `offset` to `out`.
/// Only tests write version 1 records, to check that they are still read.
#[cfg(test)]
pub(crate) fn encode_json(offset: u64, event: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.extend_from_slice(&offset.to_le_bytes());
    serde_json::to_writer(&mut *out, event).expect("an event always serializes to JSON");
    finish_frame(out, start);
}

/// Fills in the length and checksum of the frame that starts at `start`.
fn finish_frame(out: &mut [u8], start: usize) {
    let payload = &out[start + HEADER_BYTES..];
    let length = u32::try_from(payload.len()).expect("a validated event fits in u32 bytes");
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    let len = u16::try_from(value.len()).expect("validated strings are under 64 KiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// The frame at the start of a buffer, with its checksum verified.
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    /// A whole frame whose checksum matches, and the number of bytes it
    /// takes.
    Complete { payload: &'a [u8], frame_len: usize },
    /// The buffer ends before the frame does.
    Incomplete,
    /// The frame is complete but its length or checksum is invalid.
    /// `frame_len` is the length its header claims, when that is plausible.
    Corrupt { frame_len: Option<usize> },
}

/// Reads the frame at the start of `bytes` and verifies its checksum.
pub(crate) fn read_frame(bytes: &[u8]) -> Frame<'_> {
    if bytes.len() < HEADER_BYTES {
        return Frame::Incomplete;
    }
    let length = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    if !(8..=MAX_PAYLOAD_BYTES).contains(&length) {
        return Frame::Corrupt { frame_len: None };
    }
    let frame_len = HEADER_BYTES + length;
    if bytes.len() < frame_len {
        return Frame::Incomplete;
    }
    let payload = &bytes[HEADER_BYTES..frame_len];
    if crc32fast::hash(payload) != crc {
        return Frame::Corrupt {
            frame_len: Some(frame_len),
        };
    }
    Frame::Complete { payload, frame_len }
}

/// The fields of a record that recovery and the id index need, borrowed
/// from a binary payload where possible.
#[derive(Debug)]
pub(crate) struct Summary<'a> {
    pub offset: u64,
    pub received_at: i64,
    pub tenant: Cow<'a, str>,
    pub event_id: Option<Cow<'a, str>>,
}

/// Decodes the summary of a checksummed payload, or `None` when the payload
/// does not parse.
pub(crate) fn decode_summary(payload: &[u8], format: Format) -> Option<Summary<'_>> {
    match format {
        Format::Json => {
            let (offset, event) = decode_json(payload)?;
            Some(Summary {
                offset,
                received_at: event.received_at,
                tenant: Cow::Owned(event.tenant),
                event_id: event.event_id.map(Cow::Owned),
            })
        }
        Format::Binary => {
            let mut reader = Reader::new(payload);
            let offset = reader.u64()?;
            let received_at = reader.i64()?;
            let _occurred_at = reader.i64()?;
            let present = reader.u8()?;
            let _type = reader.u8()?;
            let tenant = reader.str()?;
            let event_id = if present & 1 != 0 {
                Some(Cow::Borrowed(reader.str()?))
            } else {
                None
            };
            Some(Summary {
                offset,
                received_at,
                tenant: Cow::Borrowed(tenant),
                event_id,
            })
        }
    }
}

/// Decodes a whole checksummed payload into its offset and event, or `None`
/// when the payload does not parse.
pub(crate) fn decode_event(payload: &[u8], format: Format) -> Option<(u64, Event)> {
    match format {
        Format::Json => decode_json(payload),
        Format::Binary => decode_binary(payload),
    }
}

fn decode_json(payload: &[u8]) -> Option<(u64, Event)> {
    let offset = u64::from_le_bytes(payload.get(0..8)?.try_into().unwrap());
    let event = serde_json::from_slice::<Event>(&payload[8..]).ok()?;
    Some((offset, event))
}

fn decode_binary(payload: &[u8]) -> Option<(u64, Event)> {
    if payload.len() < FIXED_BYTES {
        return None;
    }
    let mut reader = Reader::new(payload);
    let offset = reader.u64()?;
    let received_at = reader.i64()?;
    let occurred_at = reader.i64()?;
    let present = reader.u8()?;
    let code = reader.u8()?;
    if present >> 6 != 0 {
        return None;
    }
    let tenant = reader.str()?.to_string();
    let mut optional: [Option<String>; 6] = Default::default();
    for (bit, slot) in optional.iter_mut().enumerate() {
        if present & (1 << bit) != 0 {
            *slot = Some(reader.str()?.to_string());
        }
    }
    let event_type = if code == TYPE_CUSTOM {
        let name = reader.str()?;
        match name.parse::<EventType>().ok()? {
            custom @ EventType::Custom(_) => custom,
            _ => return None,
        }
    } else {
        type_from_code(code)?
    };
    let properties_len = reader.u32()? as usize;
    let properties = if properties_len == 0 {
        serde_json::Map::new()
    } else {
        serde_json::from_slice(reader.bytes(properties_len)?).ok()?
    };
    if !reader.is_empty() {
        return None;
    }

    let [event_id, campaign, account, recipient, channel, variant] = optional;
    let event = Event {
        event_id,
        tenant,
        event_type,
        campaign,
        account,
        recipient,
        channel,
        variant,
        occurred_at,
        received_at,
        properties,
    };
    Some((offset, event))
}

/// A cursor over a binary payload. Every read returns `None` past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < len {
            return None;
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N).map(|b| b.try_into().unwrap())
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = self.array().map(u16::from_le_bytes)? as usize;
        std::str::from_utf8(self.bytes(len)?).ok()
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The result of decoding the frame at the start of a buffer.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A whole, intact record and the number of bytes its frame takes.
    Record {
        offset: u64,
        event: Box<Event>,
        frame_len: usize,
    },
    /// The buffer ends before the frame does.
    Incomplete,
    /// The frame's length, checksum or payload is invalid.
    Corrupt,
}

/// Decodes the frame at the start of `bytes`, whose payload is in `format`.
pub(crate) fn decode(bytes: &[u8], format: Format) -> Decoded {
    match read_frame(bytes) {
        Frame::Complete { payload, frame_len } => match decode_event(payload, format) {
            Some((offset, event)) => Decoded::Record {
                offset,
                event: Box::new(event),
                frame_len,
            },
            None => Decoded::Corrupt,
        },
        Frame::Incomplete => Decoded::Incomplete,
        Frame::Corrupt { .. } => Decoded::Corrupt,
    }
}

/// Returns the size of `value` serialized as JSON, without allocating.
pub(crate) fn json_len(value: &impl serde::Serialize) -> usize {
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut event = Event::new("acme", EventType::Reply, 42);
        event.event_id = Some("e-1".into());
        event.campaign = Some("spring".into());
        event.received_at = 43;
        event
            .properties
            .insert("score".into(), serde_json::json!({"value": 0.5}));
        event
    }

    fn encoded(event: &Event) -> Vec<u8> {
        let mut buffer = Vec::new();
        encode(7, event, &mut buffer).unwrap();
        buffer
    }

    fn decoded(buffer: &[u8], format: Format) -> (u64, Event, usize) {
        match decode(buffer, format) {
            Decoded::Record {
                offset,
                event,
                frame_len,
            } => (offset, *event, frame_len),
            other => panic!("expected a record, got {other:?}"),
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let buffer = encoded(&sample());
        let (offset, event, frame_len) = decoded(&buffer, Format::Binary);
        assert_eq!(offset, 7);
        assert_eq!(event, sample());
        assert_eq!(frame_len, buffer.len());
    }

    #[test]
    fn every_field_combination_round_trips() {
        let mut full = sample();
        full.account = Some("acct".into());
        full.recipient = Some("r-1".into());
        full.channel = Some("email".into());
        full.variant = Some("b".into());
        full.event_type = EventType::Custom("custom:demo.booked".into());

        let mut minimal = Event::new("t", EventType::Audit, 0);
        minimal.received_at = -5;

        let mut unicode = sample();
        unicode.tenant = "ténant-ü".into();
        unicode.event_id = None;
        unicode.properties.clear();

        for event in [full, minimal, unicode] {
            let buffer = encoded(&event);
            assert_eq!(decoded(&buffer, Format::Binary).1, event);
        }
    }

    #[test]
    fn summary_borrows_tenant_and_id() {
        let buffer = encoded(&sample());
        let Frame::Complete { payload, .. } = read_frame(&buffer) else {
            panic!("expected a complete frame");
        };
        let summary = decode_summary(payload, Format::Binary).unwrap();
        assert_eq!(summary.offset, 7);
        assert_eq!(summary.received_at, 43);
        assert!(matches!(summary.tenant, Cow::Borrowed("acme")));
        assert_eq!(summary.event_id.as_deref(), Some("e-1"));
    }

    #[test]
    fn json_records_still_decode() {
        let mut buffer = Vec::new();
        encode_json(9, &sample(), &mut buffer);
        let (offset, event, _) = decoded(&buffer, Format::Json);
        assert_eq!(offset, 9);
        assert_eq!(event, sample());
        // The same bytes are not a valid binary record.
        assert!(matches!(decode(&buffer, Format::Binary), Decoded::Corrupt));
    }

    #[test]
    fn oversized_properties_leave_buffer_unchanged() {
        let mut event = sample();
        event.properties.insert(
            "blob".into(),
            serde_json::Value::String("x".repeat(MAX_PROPERTIES_BYTES)),
        );
        let mut buffer = vec![1, 2, 3];
        let error = encode(0, &event, &mut buffer).unwrap_err();
        assert!(matches!(error, EventError::PropertiesTooLarge { .. }));
        assert_eq!(buffer, [1, 2, 3]);
    }

    #[test]
    fn trailing_or_unknown_bytes_are_corrupt() {
        let frame = encoded(&sample());
        let payload = frame[HEADER_BYTES..].to_vec();

        let mut longer = payload.clone();
        longer.push(0);
        assert!(decode_event(&longer, Format::Binary).is_none());

        let mut unknown_type = payload.clone();
        unknown_type[FIXED_BYTES - 1] = 42;
        assert!(decode_event(&unknown_type, Format::Binary).is_none());

        let mut unknown_field = payload;
        unknown_field[FIXED_BYTES - 2] |= 0x80;
        assert!(decode_event(&unknown_field, Format::Binary).is_none());
    }

    #[test]
    fn truncated_frame_is_incomplete() {
        let buffer = encoded(&sample());
        for cut in [0, 3, HEADER_BYTES, buffer.len() - 1] {
            assert!(
                matches!(decode(&buffer[..cut], Format::Binary), Decoded::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn flipped_payload_byte_is_corrupt() {
        let mut buffer = encoded(&sample());
        let middle = HEADER_BYTES + (buffer.len() - HEADER_BYTES) / 2;
        buffer[middle] ^= 0x01;
        assert!(matches!(
            read_frame(&buffer),
            Frame::Corrupt { frame_len: Some(_) }
        ));
        assert!(matches!(decode(&buffer, Format::Binary), Decoded::Corrupt));
    }

    #[test]
    fn implausible_length_is_corrupt() {
        let mut buffer = vec![0u8; 64];
        assert!(matches!(
            read_frame(&buffer),
            Frame::Corrupt { frame_len: None }
        ));
        buffer[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_frame(&buffer),
            Frame::Corrupt { frame_len: None }
        ));
    }

    #[test]
    fn segment_magic_is_never_a_record_length() {
        let first_word = u32::from_le_bytes(SEGMENT_MAGIC[0..4].try_into().unwrap());
        assert!(first_word as usize > MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn json_len_matches_serialized_length() {
        let properties = sample().properties;
        assert_eq!(
            json_len(&properties),
            serde_json::to_vec(&properties).unwrap().len()
        );
    }
}
