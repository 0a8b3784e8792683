//! Parsing events as producers send them in JSON, with one result per event.
//!
//! [`EventInput`] deserializes one JSON value into an [`Event`] or an
//! [`EventError`] that names the field. A wrong value in one event becomes
//! that event's error, and the parser still consumes the whole value, so a
//! batch such as `{"events": [...]}` parses in a single pass and the other
//! events are unaffected. Only malformed JSON fails the whole document.

use crate::event::{Event, EventError, EventType};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// One event as sent by a producer, parsed leniently.
///
/// The tenant is not read from the input: a `tenant` key is ignored and the
/// event's `tenant` is empty, so the caller sets it from the credential.
/// `received_at` is ignored as well, because the log sets it. Other unknown
/// keys are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput(pub Result<Event, EventError>);

impl<'de> Deserialize<'de> for EventInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = EventInput;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventInput, A::Error> {
        let mut event = Event::new(String::new(), EventType::Sent, 0);
        let mut seen_type = false;
        let mut seen_occurred_at = false;
        // The first problem is kept, and the rest of the object is still
        // read so the document stays in step.
        let mut problem: Option<EventError> = None;
        let mut seen = [false; Key::COUNT];

        while let Some(key) = map.next_key::<Key>()? {
            let Some(field) = key.name() else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value::<Input>()?;
            if problem.is_some() {
                continue;
            }
            if std::mem::replace(&mut seen[key as usize], true) {
                problem = Some(EventError::DuplicateField { field });
                continue;
            }
            let result = match key {
                Key::EventId => optional_text(field, value).map(|v| event.event_id = v),
                Key::Campaign => optional_text(field, value).map(|v| event.campaign = v),
                Key::Account => optional_text(field, value).map(|v| event.account = v),
                Key::Recipient => optional_text(field, value).map(|v| event.recipient = v),
                Key::Channel => optional_text(field, value).map(|v| event.channel = v),
                Key::Variant => optional_text(field, value).map(|v| event.variant = v),
                Key::Type => {
                    seen_type = true;
                    match value {
                        Input::String(text) => text.parse().map(|t| event.event_type = t),
                        other => Err(other.invalid(field, "a string")),
                    }
                }
                Key::OccurredAt => {
                    seen_occurred_at = true;
                    match value {
                        Input::Integer(ms) => {
                            event.occurred_at = ms;
                            Ok(())
                        }
                        other => Err(other.invalid(field, "an integer (Unix milliseconds)")),
                    }
                }
                Key::Properties => match value {
                    Input::Object(properties) => {
                        event.properties = properties;
                        Ok(())
                    }
                    other => Err(other.invalid(field, "an object")),
                },
                Key::Tenant | Key::ReceivedAt | Key::Other => Ok(()),
            };
            if let Err(error) = result {
                problem = Some(error);
            }
        }

        let missing = if !seen_type {
            Some("type")
        } else if !seen_occurred_at {
            Some("occurred_at")
        } else {
            None
        };
        let result = match (problem, missing) {
            (Some(error), _) => Err(error),
            (None, Some(field)) => Err(EventError::Missing { field }),
            (None, None) => Ok(event),
        };
        Ok(EventInput(result))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EventInput, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(not_an_object("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<EventInput, E> {
        Ok(not_an_object("a string"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<EventInput, E> {
        Ok(not_an_object("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<EventInput, E> {
        Ok(not_an_object("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<EventInput, E> {
        Ok(not_an_object("a number"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<EventInput, E> {
        Ok(not_an_object("a boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<EventInput, E> {
        Ok(not_an_object("null"))
    }
}

fn not_an_object(found: &'static str) -> EventInput {
    EventInput(Err(EventError::NotAnObject { found }))
}

fn optional_text(field: &'static str, value: Input) -> Result<Option<String>, EventError> {
    match value {
        Input::String(text) => Ok(Some(text)),
        Input::Null => Ok(None),
        other => Err(other.invalid(field, "a string")),
    }
}

/// The keys of an event object.
#[derive(Debug, Clone, Copy)]
enum Key {
    EventId,
    Campaign,
    Account,
    Recipient,
    Channel,
    Variant,
    Type,
    OccurredAt,
    Properties,
    Tenant,
    ReceivedAt,
    Other,
}

impl Key {
    const COUNT: usize = Key::Other as usize + 1;

    /// Returns the field name of a key whose value is read, or `None` for
    /// an unknown key.
    fn name(self) -> Option<&'static str> {
        Some(match self {
            Key::EventId => "event_id",
            Key::Campaign => "campaign",
            Key::Account => "account",
            Key::Recipient => "recipient",
            Key::Channel => "channel",
            Key::Variant => "variant",
            Key::Type => "type",
            Key::OccurredAt => "occurred_at",
            Key::Properties => "properties",
            Key::Tenant => "tenant",
            Key::ReceivedAt => "received_at",
            Key::Other => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "event_id" => Key::EventId,
                    "campaign" => Key::Campaign,
                    "account" => Key::Account,
                    "recipient" => Key::Recipient,
                    "channel" => Key::Channel,
                    "variant" => Key::Variant,
                    "type" => Key::Type,
                    "occurred_at" => Key::OccurredAt,
                    "properties" => Key::Properties,
                    "tenant" => Key::Tenant,
                    "received_at" => Key::ReceivedAt,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// Any JSON value, kept only as far as an event field needs it.
enum Input {
    Null,
    Boolean,
    Integer(i64),
    /// A number that is not an `i64`: written with a decimal point or an
    /// exponent, or out of range.
    OtherNumber,
    String(String),
    Array,
    Object(Map<String, Value>),
}

impl Input {
    fn description(&self) -> &'static str {
        match self {
            Input::Null => "null",
            Input::Boolean => "a boolean",
            Input::Integer(_) => "an integer",
            Input::OtherNumber => {
                "a number with a decimal point or exponent, or an integer out of the i64 range"
            }
            Input::String(_) => "a string",
            Input::Array => "an array",
            Input::Object(_) => "an object",
        }
    }

    fn invalid(&self, field: &'static str, expected: &'static str) -> EventError {
        EventError::InvalidType {
            field,
            expected,
            found: self.description(),
        }
    }
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(InputVisitor)
    }
}

struct InputVisitor;

impl<'de> Visitor<'de> for InputVisitor {
    type Value = Input;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Input, E> {
        Ok(Input::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Input, E> {
        Ok(Input::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Input, D::Error> {
        Input::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Input, E> {
        Ok(Input::Boolean)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Input, E> {
        Ok(Input::Integer(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Input, E> {
        Ok(i64::try_from(value).map_or(Input::OtherNumber, Input::Integer))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Input, E> {
        Ok(Input::OtherNumber)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Input, E> {
        Ok(Input::String(value.to_string()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Input, E> {
        Ok(Input::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Input, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Input::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Input, A::Error> {
        let mut object = Map::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(Input::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(json: &str) -> Result<Event, EventError> {
        serde_json::from_str::<EventInput>(json).unwrap().0
    }

    #[test]
    fn full_event_parses() {
        let event = parse(
            r#"{"event_id":"e-1","type":"click","occurred_at":5,"campaign":"c",
                "account":"a","recipient":"r","channel":"email","variant":"b",
                "properties":{"url":"https://example.com","n":[1,2]}}"#,
        )
        .unwrap();
        let mut expected = Event::new("", EventType::Click, 5);
        expected.event_id = Some("e-1".into());
        expected.campaign = Some("c".into());
        expected.account = Some("a".into());
        expected.recipient = Some("r".into());
        expected.channel = Some("email".into());
        expected.variant = Some("b".into());
        expected.properties = json!({"url": "https://example.com", "n": [1, 2]})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(event, expected);
    }

    #[test]
    fn tenant_received_at_and_unknown_keys_are_ignored() {
        let event = parse(
            r#"{"tenant":"victim","received_at":"x","extra":{"a":1},"type":"open","occurred_at":1}"#,
        )
        .unwrap();
        assert_eq!(event.tenant, "");
        assert_eq!(event.received_at, 0);
    }

    #[test]
    fn null_optional_field_is_absent() {
        let event = parse(r#"{"type":"open","occurred_at":1,"campaign":null}"#).unwrap();
        assert_eq!(event.campaign, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"occurred_at":1}"#,
                EventError::Missing { field: "type" },
            ),
            (
                r#"{"type":"open"}"#,
                EventError::Missing {
                    field: "occurred_at",
                },
            ),
            (
                r#"{"type":"open","occurred_at":"yesterday"}"#,
                EventError::InvalidType {
                    field: "occurred_at",
                    expected: "an integer (Unix milliseconds)",
                    found: "a string",
                },
            ),
            (
                r#"{"type":"open","occurred_at":1.5}"#,
                EventError::InvalidType {
                    field: "occurred_at",
                    expected: "an integer (Unix milliseconds)",
                    found: "a number with a decimal point or exponent, or an integer out of the i64 range",
                },
            ),
            (
                r#"{"type":7,"occurred_at":1}"#,
                EventError::InvalidType {
                    field: "type",
                    expected: "a string",
                    found: "an integer",
                },
            ),
            (
                r#"{"type":"teleport","occurred_at":1}"#,
                EventError::UnknownType("teleport".into()),
            ),
            (
                r#"{"type":"open","occurred_at":1,"campaign":["a"]}"#,
                EventError::InvalidType {
                    field: "campaign",
                    expected: "a string",
                    found: "an array",
                },
            ),
            (
                r#"{"type":"open","occurred_at":1,"properties":[1]}"#,
                EventError::InvalidType {
                    field: "properties",
                    expected: "an object",
                    found: "an array",
                },
            ),
            (
                r#"{"type":"open","type":"click","occurred_at":1}"#,
                EventError::DuplicateField { field: "type" },
            ),
            ("[1, 2]", EventError::NotAnObject { found: "an array" }),
            ("null", EventError::NotAnObject { found: "null" }),
        ];
        for (json, expected) in cases {
            let error = parse(json).unwrap_err();
            assert_eq!(error, expected, "{json}");
            if let Some(field) = expected.field() {
                assert!(error.to_string().contains(field), "{json}: {error}");
            }
        }
    }

    #[test]
    fn bad_event_does_not_disturb_the_next() {
        #[derive(serde::Deserialize)]
        struct Batch {
            events: Vec<EventInput>,
        }
        let json = r#"{"events":[
            {"type":"open","occurred_at":{"nested":[1,{"x":2}]},"campaign":"a"},
            "text",
            {"type":"click","occurred_at":2,"campaign":"b"}
        ]}"#;
        let batch: Batch = serde_json::from_str(json).unwrap();
        assert_eq!(batch.events.len(), 3);
        assert!(matches!(
            batch.events[0].0,
            Err(EventError::InvalidType {
                field: "occurred_at",
                ..
            })
        ));
        assert!(matches!(
            batch.events[1].0,
            Err(EventError::NotAnObject { .. })
        ));
        let last = batch.events[2].0.as_ref().unwrap();
        assert_eq!(last.campaign.as_deref(), Some("b"));
    }

    #[test]
    fn malformed_json_fails_the_document() {
        assert!(serde_json::from_str::<Vec<EventInput>>(r#"[{"type":"open",}]"#).is_err());
    }

    #[test]
    fn escaped_strings_and_keys_parse() {
        let event = parse(r#"{"type":"open","occurred_at":1,"campaign":"sp\u00e9cial \"q\"","occurr\u0065d_at2":0}"#)
            .unwrap();
        assert_eq!(event.campaign.as_deref(), Some("spécial \"q\""));
    }
}
