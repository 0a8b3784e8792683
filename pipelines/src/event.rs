//! The event record and its validation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Maximum length in bytes of `tenant` and `event_id`.
pub const MAX_ID_BYTES: usize = 128;

/// Maximum length in bytes of each optional string field.
pub const MAX_FIELD_BYTES: usize = 256;

/// Maximum size of `properties` once serialized as JSON, in bytes.
pub const MAX_PROPERTIES_BYTES: usize = 16 * 1024;

/// One outreach event.
///
/// Times are Unix milliseconds (UTC). `occurred_at` is when the event
/// happened at its source; `received_at` is set by the log on append, and any
/// value a producer supplies is replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique within a tenant; the log assigns 128 random bits as hex when it
    /// is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub tenant: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// A pseudonymous recipient id, never an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Event time in Unix milliseconds.
    pub occurred_at: i64,
    /// Append time in Unix milliseconds, set by the log.
    #[serde(default)]
    pub received_at: i64,
    #[serde(default)]
    pub properties: serde_json::Map<String, serde_json::Value>,
}

/// The kind of an event: a known outreach kind or `custom:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventType {
    Sent,
    Delivered,
    Open,
    Click,
    Reply,
    Bounce,
    Unsubscribe,
    Complaint,
    Audit,
    /// A producer-defined kind; the name is 1 to 64 characters of `a-z`,
    /// `0-9`, `_`, `-` and `.`.
    Custom(String),
}

/// A validation failure. Each variant names the rejected field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("field `{field}` is empty")]
    Empty { field: &'static str },
    #[error("field `{field}` is {len} bytes long, over the maximum of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("field `{field}` contains a control character")]
    ControlCharacter { field: &'static str },
    #[error(
        "field `occurred_at` is {0}, but it must be Unix milliseconds at or after \
         2000-01-01T00:00:00Z"
    )]
    NegativeTime(i64),
    #[error(
        "field `occurred_at` is {0}, more than {minutes} minutes after the server's clock; \
         send Unix milliseconds (not microseconds) of when the event happened, from a clock \
         that is at most {minutes} minutes ahead",
        minutes = MAX_FUTURE_MS / 60_000
    )]
    InFuture(i64),
    #[error(
        "field `occurred_at` is {0}, before 2000-01-01T00:00:00Z; send Unix milliseconds \
         (not seconds) of when the event happened"
    )]
    TooOld(i64),
    #[error("field `properties` is {len} bytes as JSON, over the maximum of {max}")]
    PropertiesTooLarge { len: usize, max: usize },
    #[error(
        "field `type` is `{0}`, but it must be one of sent, delivered, open, click, reply, \
         bounce, unsubscribe, complaint, audit or custom:<name> with a name of 1 to 64 \
         characters from a-z, 0-9, `_`, `-` and `.`"
    )]
    UnknownType(String),
    #[error("field `{field}` is missing")]
    Missing { field: &'static str },
    #[error("field `{field}` must be {expected}, not {found}")]
    InvalidType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{field}` appears more than once")]
    DuplicateField { field: &'static str },
    #[error("an event must be a JSON object, not {found}")]
    NotAnObject { found: &'static str },
}

impl EventError {
    /// Returns the name of the rejected field, or `None` when the event as a
    /// whole is rejected.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            EventError::Empty { field }
            | EventError::TooLong { field, .. }
            | EventError::ControlCharacter { field }
            | EventError::Missing { field }
            | EventError::InvalidType { field, .. }
            | EventError::DuplicateField { field } => Some(field),
            EventError::NegativeTime(_) | EventError::InFuture(_) | EventError::TooOld(_) => {
                Some("occurred_at")
            }
            EventError::PropertiesTooLarge { .. } => Some("properties"),
            EventError::UnknownType(_) => Some("type"),
            EventError::NotAnObject { .. } => None,
        }
    }
}

/// How far past the server's clock an event's `occurred_at` may be, for
/// clock skew: 5 minutes. An event moves its tenant's pipeline watermarks
/// to its time, so a later one would make the tenant's on-time events late
/// in any pipeline whose allowed lateness is shorter than the skew (10
/// minutes in `sender_domain_health`).
pub const MAX_FUTURE_MS: i64 = 5 * 60_000;

/// The earliest `occurred_at` that ingest accepts: 2000-01-01T00:00:00Z in
/// Unix milliseconds. Earlier values are most likely seconds sent as
/// milliseconds: today's time in seconds, read as milliseconds, is in
/// January 1970.
pub const MIN_OCCURRED_AT_MS: i64 = 946_684_800_000;

impl Event {
    /// Rejects an `occurred_at` before [`MIN_OCCURRED_AT_MS`] or more than
    /// [`MAX_FUTURE_MS`] after `now_ms`.
    pub fn check_time(&self, now_ms: i64) -> Result<(), EventError> {
        if self.occurred_at < 0 {
            return Err(EventError::NegativeTime(self.occurred_at));
        }
        if self.occurred_at < MIN_OCCURRED_AT_MS {
            return Err(EventError::TooOld(self.occurred_at));
        }
        if self.occurred_at > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(EventError::InFuture(self.occurred_at));
        }
        Ok(())
    }
}

impl EventType {
    /// Returns the wire name, such as `click` or `custom:demo.booked`.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::Sent => "sent",
            EventType::Delivered => "delivered",
            EventType::Open => "open",
            EventType::Click => "click",
            EventType::Reply => "reply",
            EventType::Bounce => "bounce",
            EventType::Unsubscribe => "unsubscribe",
            EventType::Complaint => "complaint",
            EventType::Audit => "audit",
            EventType::Custom(name) => name,
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = EventError;

    fn from_str(text: &str) -> Result<Self, EventError> {
        let known = match text {
            "sent" => EventType::Sent,
            "delivered" => EventType::Delivered,
            "open" => EventType::Open,
            "click" => EventType::Click,
            "reply" => EventType::Reply,
            "bounce" => EventType::Bounce,
            "unsubscribe" => EventType::Unsubscribe,
            "complaint" => EventType::Complaint,
            "audit" => EventType::Audit,
            _ => {
                let name = text.strip_prefix("custom:").unwrap_or("");
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b)
                    });
                if !valid {
                    return Err(EventError::UnknownType(text.to_string()));
                }
                // The stored string keeps its prefix so `as_str` needs no
                // allocation.
                EventType::Custom(text.to_string())
            }
        };
        Ok(known)
    }
}

impl TryFrom<String> for EventType {
    type Error = EventError;

    fn try_from(text: String) -> Result<Self, EventError> {
        text.parse()
    }
}

impl From<EventType> for String {
    fn from(event_type: EventType) -> String {
        event_type.as_str().to_string()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// Creates an event with only the required fields set.
    pub fn new(tenant: impl Into<String>, event_type: EventType, occurred_at: i64) -> Self {
        Event {
            event_id: None,
            tenant: tenant.into(),
            event_type,
            campaign: None,
            account: None,
            recipient: None,
            channel: None,
            variant: None,
            occurred_at,
            received_at: 0,
            properties: serde_json::Map::new(),
        }
    }

    /// Checks every field against the limits above and returns the first
    /// problem found.
    pub fn validate(&self) -> Result<(), EventError> {
        self.validate_fields()?;
        let len = crate::record::json_len(&self.properties);
        if len > MAX_PROPERTIES_BYTES {
            return Err(EventError::PropertiesTooLarge {
                len,
                max: MAX_PROPERTIES_BYTES,
            });
        }
        Ok(())
    }

    /// Checks every field except the size of `properties`, which the log
    /// checks while it serializes them into the record.
    pub(crate) fn validate_fields(&self) -> Result<(), EventError> {
        if let Some(id) = &self.event_id {
            check_text("event_id", id, MAX_ID_BYTES)?;
        }
        check_text("tenant", &self.tenant, MAX_ID_BYTES)?;

        // A custom type built in code bypasses `FromStr`, so it is checked
        // here as well.
        if let EventType::Custom(name) = &self.event_type {
            name.parse::<EventType>()?;
        }

        let optional = [
            ("campaign", &self.campaign),
            ("account", &self.account),
            ("recipient", &self.recipient),
            ("channel", &self.channel),
            ("variant", &self.variant),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                check_text(field, value, MAX_FIELD_BYTES)?;
            }
        }

        if self.occurred_at < 0 {
            return Err(EventError::NegativeTime(self.occurred_at));
        }
        Ok(())
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), EventError> {
    if value.is_empty() {
        return Err(EventError::Empty { field });
    }
    if value.len() > max {
        return Err(EventError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    // Printable ASCII, the common case, needs no UTF-8 decoding.
    let printable_ascii = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !printable_ascii && value.chars().any(char::is_control) {
        return Err(EventError::ControlCharacter { field });
    }
    Ok(())
}

/// Returns 128 random bits as 32 lowercase hex digits, the id a log backend
/// assigns to an event that arrives without one.
pub fn random_event_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A source of random event ids that reads random bytes from the operating
/// system once per 64 ids rather than once per id.
pub(crate) struct RandomIds {
    bytes: [u8; 16 * 64],
    used: usize,
}

impl RandomIds {
    pub fn new() -> Self {
        RandomIds {
            bytes: [0; 16 * 64],
            used: 16 * 64,
        }
    }

    /// Returns 128 random bits as 32 lowercase hex digits.
    pub fn next_id(&mut self) -> Result<String, getrandom::Error> {
        if self.used == self.bytes.len() {
            getrandom::fill(&mut self.bytes)?;
            self.used = 0;
        }
        let id = &self.bytes[self.used..self.used + 16];
        self.used += 16;

        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(32);
        for &b in id {
            text.push(HEX[usize::from(b >> 4)] as char);
            text.push(HEX[usize::from(b & 0x0f)] as char);
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click() -> Event {
        Event::new("acme", EventType::Click, 1_700_000_000_000)
    }

    #[test]
    fn minimal_event_is_valid() {
        assert_eq!(click().validate(), Ok(()));
    }

    #[test]
    fn empty_tenant_is_rejected_by_name() {
        let mut event = click();
        event.tenant.clear();
        assert_eq!(event.validate(), Err(EventError::Empty { field: "tenant" }));
    }

    #[test]
    fn long_optional_field_is_rejected_by_name() {
        let mut event = click();
        event.campaign = Some("c".repeat(MAX_FIELD_BYTES + 1));
        let error = event.validate().unwrap_err();
        assert_eq!(
            error,
            EventError::TooLong {
                field: "campaign",
                len: MAX_FIELD_BYTES + 1,
                max: MAX_FIELD_BYTES
            }
        );
        assert!(error.to_string().contains("`campaign`"));
    }

    #[test]
    fn control_character_in_recipient_is_rejected() {
        let mut event = click();
        event.recipient = Some("r\n1".into());
        assert_eq!(
            event.validate(),
            Err(EventError::ControlCharacter { field: "recipient" })
        );
    }

    #[test]
    fn negative_occurred_at_is_rejected() {
        let mut event = click();
        event.occurred_at = -1;
        assert_eq!(event.validate(), Err(EventError::NegativeTime(-1)));
    }

    #[test]
    fn oversized_properties_are_rejected() {
        let mut event = click();
        event.properties.insert(
            "blob".into(),
            serde_json::Value::String("x".repeat(MAX_PROPERTIES_BYTES)),
        );
        assert!(matches!(
            event.validate(),
            Err(EventError::PropertiesTooLarge { .. })
        ));
    }

    #[test]
    fn event_types_parse_known_and_custom_names() {
        assert_eq!("bounce".parse::<EventType>(), Ok(EventType::Bounce));
        assert_eq!(
            "custom:demo.booked".parse::<EventType>().unwrap().as_str(),
            "custom:demo.booked"
        );
        for bad in ["Click", "custom:", "custom:Demo", "opened", ""] {
            assert_eq!(
                bad.parse::<EventType>(),
                Err(EventError::UnknownType(bad.to_string())),
                "{bad}"
            );
        }
    }

    #[test]
    fn custom_type_built_in_code_is_validated() {
        let mut event = click();
        event.event_type = EventType::Custom("custom:Bad Name".into());
        assert!(matches!(event.validate(), Err(EventError::UnknownType(_))));
    }

    #[test]
    fn json_uses_type_field_and_rejects_non_object_properties() {
        let json = r#"{"tenant":"acme","type":"custom:demo","occurred_at":5}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        assert_eq!(event.event_type, EventType::Custom("custom:demo".into()));
        let text = serde_json::to_string(&event).unwrap();
        assert!(text.contains(r#""type":"custom:demo""#));

        let bad = r#"{"tenant":"acme","type":"open","occurred_at":5,"properties":[1]}"#;
        assert!(serde_json::from_str::<Event>(bad).is_err());
    }

    #[test]
    fn random_event_ids_are_32_hex_digits() {
        let mut ids = RandomIds::new();
        // More than one refill of the random buffer.
        let all: Vec<String> = (0..200).map(|_| ids.next_id().unwrap()).collect();
        for id in &all {
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
        let distinct: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
    }

    #[test]
    fn control_characters_outside_ascii_are_rejected() {
        let mut event = click();
        // U+0085 (next line) is a C1 control character.
        event.channel = Some("email\u{85}".into());
        assert_eq!(
            event.validate(),
            Err(EventError::ControlCharacter { field: "channel" })
        );
        event.channel = Some("e-mail ✉".into());
        assert_eq!(event.validate(), Ok(()));
    }
}
