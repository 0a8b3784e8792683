//! The on-disk record frame.
//!
//! Each record is `length: u32 LE | crc32: u32 LE | payload`, where the
//! payload is `offset: u64 LE` followed by the event as JSON, and the CRC32
//! (IEEE) covers the whole payload.

use crate::event::Event;

/// Bytes before the payload: the length and the checksum.
pub(crate) const HEADER_BYTES: usize = 8;

/// Largest payload a reader accepts. Real records are far smaller because
/// every event field is capped, so a larger length means a damaged header.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Appends the frame for `event` at `offset` to `out`.
pub(crate) fn encode(offset: u64, event: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.extend_from_slice(&offset.to_le_bytes());
    serde_json::to_writer(&mut *out, event).expect("an event always serializes to JSON");

    let payload = &out[start + HEADER_BYTES..];
    let length = u32::try_from(payload.len()).expect("a validated event fits in u32 bytes");
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
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
    /// The frame is complete but its length, checksum or payload is invalid.
    /// `frame_len` is the length its header claims, when that is plausible.
    Corrupt { frame_len: Option<usize> },
}

/// Decodes the frame at the start of `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Decoded {
    if bytes.len() < HEADER_BYTES {
        return Decoded::Incomplete;
    }
    let length = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    if !(8..=MAX_PAYLOAD_BYTES).contains(&length) {
        return Decoded::Corrupt { frame_len: None };
    }
    let frame_len = HEADER_BYTES + length;
    if bytes.len() < frame_len {
        return Decoded::Incomplete;
    }

    let payload = &bytes[HEADER_BYTES..frame_len];
    if crc32fast::hash(payload) != crc {
        return Decoded::Corrupt {
            frame_len: Some(frame_len),
        };
    }
    let offset = u64::from_le_bytes(payload[0..8].try_into().unwrap());
    match serde_json::from_slice::<Event>(&payload[8..]) {
        Ok(event) => Decoded::Record {
            offset,
            event: Box::new(event),
            frame_len,
        },
        Err(_) => Decoded::Corrupt {
            frame_len: Some(frame_len),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

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

    #[test]
    fn encode_then_decode_round_trips() {
        let mut buffer = Vec::new();
        encode(7, &sample(), &mut buffer);
        match decode(&buffer) {
            Decoded::Record {
                offset,
                event,
                frame_len,
            } => {
                assert_eq!(offset, 7);
                assert_eq!(*event, sample());
                assert_eq!(frame_len, buffer.len());
            }
            other => panic!("expected a record, got {other:?}"),
        }
    }

    #[test]
    fn truncated_frame_is_incomplete() {
        let mut buffer = Vec::new();
        encode(0, &sample(), &mut buffer);
        for cut in [0, 3, HEADER_BYTES, buffer.len() - 1] {
            assert!(
                matches!(decode(&buffer[..cut]), Decoded::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn flipped_payload_byte_is_corrupt() {
        let mut buffer = Vec::new();
        encode(0, &sample(), &mut buffer);
        let middle = HEADER_BYTES + (buffer.len() - HEADER_BYTES) / 2;
        buffer[middle] ^= 0x01;
        assert!(matches!(
            decode(&buffer),
            Decoded::Corrupt { frame_len: Some(_) }
        ));
    }

    #[test]
    fn implausible_length_is_corrupt() {
        let mut buffer = vec![0u8; 64];
        assert!(matches!(
            decode(&buffer),
            Decoded::Corrupt { frame_len: None }
        ));
        buffer[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&buffer),
            Decoded::Corrupt { frame_len: None }
        ));
    }
}
