//! The layout of one event as a Fluvio record.
//!
//! Key: the UTF-8 `tenant`, one NUL byte (0x00), then the UTF-8 `event_id`.
//! Validation rejects control characters in both fields, so the separator
//! cannot occur inside either of them.
//!
//! Value: the event as one JSON object in the serde form of [`Event`],
//! with `event_id` and `received_at` set: the field names are the columns
//! of a pipeline's source table and times are Unix milliseconds. An Arroyo
//! cluster reads it with `format = 'json'` and `'json.timestamp_format' =
//! 'unix_millis'`, so the same topic feeds the embedded engine and Arroyo.
//! This is format 1. A later format will start with a byte other than `{`,
//! and a reader rejects any value that does not start with `{` rather than
//! guess at its layout.

use copycar_events::Event;

/// The byte between `tenant` and `event_id` in a record key.
pub const KEY_SEPARATOR: u8 = 0x00;

/// The first byte of every format 1 record value: a JSON object.
pub const FORMAT_1_START: u8 = b'{';

/// A record that cannot be decoded into an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("record has no key, but every event record is keyed by tenant and event_id")]
    MissingKey,
    #[error("record key is not `tenant`, NUL, `event_id` in UTF-8: {reason}")]
    InvalidKey { reason: &'static str },
    #[error("record value is empty")]
    EmptyValue,
    #[error(
        "record value starts with byte {found:#04x}, not `{{`, so it is not format 1, the \
         only format this build reads; upgrade the reader"
    )]
    UnknownVersion { found: u8 },
    #[error("record value is truncated: {0}")]
    Truncated(#[source] serde_json::Error),
    #[error("record value is not a valid event: {0}")]
    Corrupt(#[source] serde_json::Error),
    #[error("record value has no event_id, but every stored event has one")]
    MissingEventId,
    #[error(
        "record key names ({key_tenant}, {key_event_id}) but its value holds \
         ({value_tenant}, {value_event_id})"
    )]
    KeyMismatch {
        key_tenant: String,
        key_event_id: String,
        value_tenant: String,
        value_event_id: String,
    },
}

/// Encodes the record key of (`tenant`, `event_id`).
pub fn encode_key(tenant: &str, event_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + 1 + event_id.len());
    key.extend_from_slice(tenant.as_bytes());
    key.push(KEY_SEPARATOR);
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// Decodes a record key into (`tenant`, `event_id`).
pub fn decode_key(key: &[u8]) -> Result<(String, String), CodecError> {
    let Some(split) = key.iter().position(|&b| b == KEY_SEPARATOR) else {
        return Err(CodecError::InvalidKey {
            reason: "the NUL separator is missing",
        });
    };
    let (tenant, rest) = (&key[..split], &key[split + 1..]);
    if tenant.is_empty() {
        return Err(CodecError::InvalidKey {
            reason: "the tenant is empty",
        });
    }
    if rest.is_empty() {
        return Err(CodecError::InvalidKey {
            reason: "the event_id is empty",
        });
    }
    if rest.contains(&KEY_SEPARATOR) {
        return Err(CodecError::InvalidKey {
            reason: "the key contains more than one NUL separator",
        });
    }
    let tenant = std::str::from_utf8(tenant).map_err(|_| CodecError::InvalidKey {
        reason: "the tenant is not UTF-8",
    })?;
    let event_id = std::str::from_utf8(rest).map_err(|_| CodecError::InvalidKey {
        reason: "the event_id is not UTF-8",
    })?;
    Ok((tenant.to_string(), event_id.to_string()))
}

/// Encodes an event as a format 1 record value.
pub fn encode_value(event: &Event) -> Vec<u8> {
    // Serializing an `Event` cannot fail, because every field is a string, an
    // integer or a JSON map with string keys.
    serde_json::to_vec(event).expect("an Event always serializes to JSON")
}

/// Decodes a record value into an event.
pub fn decode_value(value: &[u8]) -> Result<Event, CodecError> {
    let Some(&first) = value.first() else {
        return Err(CodecError::EmptyValue);
    };
    if first != FORMAT_1_START {
        return Err(CodecError::UnknownVersion { found: first });
    }
    serde_json::from_slice(value).map_err(|error| {
        if error.is_eof() {
            CodecError::Truncated(error)
        } else {
            CodecError::Corrupt(error)
        }
    })
}

/// Decodes a whole record and checks that its key names the event in its
/// value.
pub fn decode_record(key: Option<&[u8]>, value: &[u8]) -> Result<Event, CodecError> {
    let (key_tenant, key_event_id) = decode_key(key.ok_or(CodecError::MissingKey)?)?;
    let event = decode_value(value)?;
    let Some(value_event_id) = &event.event_id else {
        return Err(CodecError::MissingEventId);
    };
    if key_tenant != event.tenant || &key_event_id != value_event_id {
        return Err(CodecError::KeyMismatch {
            key_tenant,
            key_event_id,
            value_tenant: event.tenant.clone(),
            value_event_id: value_event_id.clone(),
        });
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use copycar_events::EventType;

    fn full_event() -> Event {
        let mut event = Event::new("acme", EventType::Custom("custom:demo.booked".into()), 5);
        event.event_id = Some("e-1".into());
        event.campaign = Some("spring".into());
        event.account = Some("acct-9".into());
        event.recipient = Some("r-42".into());
        event.channel = Some("email".into());
        event.variant = Some("b".into());
        event.occurred_at = 1_700_000_000_000;
        event.received_at = 1_700_000_000_123;
        event
            .properties
            .insert("url".into(), serde_json::json!("https://example.com/a"));
        event.properties.insert(
            "nested".into(),
            serde_json::json!({"n": [1, 2.5, null, true]}),
        );
        event
    }

    #[test]
    fn value_round_trips_every_field() {
        let event = full_event();
        let value = encode_value(&event);
        assert_eq!(value[0], FORMAT_1_START);
        // Plain JSON, as Arroyo's json format reads it.
        let json: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(json["type"], "custom:demo.booked");
        assert_eq!(json["occurred_at"], 1_700_000_000_000_i64);
        let decoded = decode_value(&value).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(decoded.event_id.as_deref(), Some("e-1"));
        assert_eq!(decoded.campaign.as_deref(), Some("spring"));
        assert_eq!(decoded.account.as_deref(), Some("acct-9"));
        assert_eq!(decoded.recipient.as_deref(), Some("r-42"));
        assert_eq!(decoded.channel.as_deref(), Some("email"));
        assert_eq!(decoded.variant.as_deref(), Some("b"));
        assert_eq!(decoded.occurred_at, 1_700_000_000_000);
        assert_eq!(decoded.received_at, 1_700_000_000_123);
        assert_eq!(decoded.properties, event.properties);
        assert_eq!(decoded.event_type.as_str(), "custom:demo.booked");
    }

    #[test]
    fn value_round_trips_minimal_event() {
        let mut event = Event::new("acme", EventType::Open, 0);
        event.event_id = Some("e-2".into());
        assert_eq!(decode_value(&encode_value(&event)).unwrap(), event);
    }

    #[test]
    fn record_round_trips_key_and_value() {
        let event = full_event();
        let key = encode_key("acme", "e-1");
        let decoded = decode_record(Some(&key), &encode_value(&event)).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn key_round_trips_unicode() {
        let key = encode_key("tenant-ü", "id/ß:1");
        assert_eq!(
            decode_key(&key).unwrap(),
            ("tenant-ü".to_string(), "id/ß:1".to_string())
        );
    }

    #[test]
    fn unknown_version_is_rejected() {
        let mut value = encode_value(&full_event());
        value[0] = 2;
        let error = decode_value(&value).unwrap_err();
        assert!(matches!(error, CodecError::UnknownVersion { found: 2 }));
        assert!(error.to_string().contains("0x02"), "{error}");

        value[0] = 0;
        assert!(matches!(
            decode_value(&value),
            Err(CodecError::UnknownVersion { found: 0 })
        ));
    }

    #[test]
    fn empty_value_is_rejected() {
        assert!(matches!(decode_value(&[]), Err(CodecError::EmptyValue)));
    }

    #[test]
    fn truncated_value_is_rejected() {
        let value = encode_value(&full_event());
        for len in [1, 2, value.len() / 2, value.len() - 1] {
            let error = decode_value(&value[..len]).unwrap_err();
            assert!(
                matches!(error, CodecError::Truncated(_)),
                "length {len}: {error}"
            );
        }
    }

    #[test]
    fn corrupt_value_is_rejected() {
        let cases: [&[u8]; 4] = [
            b"{not json}",
            b"{\"tenant\":\"acme\"}",
            b"{\"tenant\":\"acme\",\"type\":\"nope\",\"occurred_at\":1}",
            b"{\xff\xfe}",
        ];
        for value in cases {
            let error = decode_value(value).unwrap_err();
            assert!(
                matches!(error, CodecError::Corrupt(_)),
                "{value:?}: {error}"
            );
        }
    }

    #[test]
    fn bad_keys_are_rejected() {
        let cases: [&[u8]; 6] = [
            b"acme",
            b"\x00e-1",
            b"acme\x00",
            b"acme\x00e\x001",
            b"ac\xffme\x00e-1",
            b"acme\x00e-\xff",
        ];
        for key in cases {
            let error = decode_key(key).unwrap_err();
            assert!(
                matches!(error, CodecError::InvalidKey { .. }),
                "{key:?}: {error}"
            );
        }
    }

    #[test]
    fn missing_key_is_rejected() {
        let value = encode_value(&full_event());
        assert!(matches!(
            decode_record(None, &value),
            Err(CodecError::MissingKey)
        ));
    }

    #[test]
    fn key_value_mismatch_is_rejected() {
        let value = encode_value(&full_event());
        let key = encode_key("acme", "e-other");
        let error = decode_record(Some(&key), &value).unwrap_err();
        assert!(matches!(error, CodecError::KeyMismatch { .. }));
        assert!(error.to_string().contains("e-other"));

        let key = encode_key("other", "e-1");
        assert!(matches!(
            decode_record(Some(&key), &value),
            Err(CodecError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn value_without_event_id_is_rejected() {
        let mut event = full_event();
        event.event_id = None;
        let key = encode_key("acme", "e-1");
        assert!(matches!(
            decode_record(Some(&key), &encode_value(&event)),
            Err(CodecError::MissingEventId)
        ));
    }
}
