//! Validation of a generation request body. Every error names the field.

use crate::context::{Sender, name_from_domain};
use crate::kind::{ContentType, Length};
use copycar_guest::http::ApiError;
use copycar_guest::profile::{Fact, FactKind, Source};
use serde_json::{Map, Value};

/// Tones a request may ask for.
pub const TONES: &[&str] = &["friendly", "formal", "direct", "casual", "neutral"];
const MAX_STEPS: u64 = 5;
const MAX_LINES: u64 = 10;
const MAX_INLINE_FACTS: usize = 50;
const MAX_FACT_CHARS: usize = 1000;

/// The account a request names.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountRef {
    /// A stored profile, by id (the normalised domain).
    Stored(String),
    Inline {
        domain: String,
        name: String,
        facts: Vec<Fact>,
    },
}

/// A validated generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub content_type: ContentType,
    pub industry: Option<String>,
    pub account: AccountRef,
    pub tone: String,
    pub length: Length,
    pub call_to_action: String,
    pub sender: Option<Sender>,
    pub language: String,
    pub steps: usize,
    pub count: usize,
}

fn bad(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_field(field, message)
}

fn object<'a>(value: &'a Value, field: &'static str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| bad(field, format!("`{field}` must be an object")))
}

fn reject_unknown(
    map: &Map<String, Value>,
    field: &'static str,
    known: &[&str],
) -> Result<(), ApiError> {
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        let place = if field.is_empty() {
            "the body".to_string()
        } else {
            format!("`{field}`")
        };
        return Err(bad(
            if field.is_empty() { "body" } else { field },
            format!(
                "unknown field `{key}` in {place}; known fields: {}",
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

fn optional_string(
    map: &Map<String, Value>,
    key: &str,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.is_empty() || text.chars().count() > max_chars {
                return Err(bad(
                    field,
                    format!("`{field}` must be 1 to {max_chars} characters"),
                ));
            }
            Ok(Some(text.to_string()))
        }
        Some(_) => Err(bad(field, format!("`{field}` must be a string"))),
    }
}

/// Checks a key segment: lower-case letters, digits, `_` and `-`, 1 to 40
/// characters.
pub fn valid_slug(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 40
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Normalises a domain (`https://www.Acme.com/` → `acme.com`) or returns
/// `None` when it is not a host name.
pub fn normalise_domain(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    let text = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(&text);
    let host = text.split('/').next().unwrap_or("");
    let host = host.strip_prefix("www.").unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    let valid = host.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    valid.then(|| host.to_string())
}

/// Validates a generation request body.
pub fn parse_generate(body: &Value) -> Result<GenerateRequest, ApiError> {
    let map = object(body, "body")?;
    reject_unknown(
        map,
        "",
        &[
            "content_type",
            "industry",
            "account_id",
            "account",
            "parameters",
        ],
    )?;

    let content_type = match map.get("content_type") {
        Some(Value::String(name)) => ContentType::parse(name).ok_or_else(|| {
            bad(
                "content_type",
                format!(
                    "unknown content_type `{name}`; use one of {}",
                    ContentType::names()
                ),
            )
        })?,
        Some(_) => return Err(bad("content_type", "`content_type` must be a string")),
        None => {
            return Err(bad(
                "content_type",
                format!(
                    "missing `content_type`; use one of {}",
                    ContentType::names()
                ),
            ));
        }
    };

    let industry = optional_string(map, "industry", "industry", 40)?;
    if let Some(industry) = &industry
        && !valid_slug(industry)
    {
        return Err(bad(
            "industry",
            "`industry` must be lower-case letters, digits, `_` or `-`",
        ));
    }

    let account = match (map.get("account_id"), map.get("account")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "account",
                "send either `account_id` or `account`, not both",
            ));
        }
        (Some(Value::String(id)), None) => {
            AccountRef::Stored(normalise_domain(id).ok_or_else(|| {
                bad(
                    "account_id",
                    "`account_id` must be a domain such as acme.com",
                )
            })?)
        }
        (Some(_), None) => return Err(bad("account_id", "`account_id` must be a string")),
        (None, Some(account)) => parse_inline_account(account)?,
        (None, None) => {
            return Err(bad(
                "account_id",
                "missing account: send `account_id` of a researched account or an inline `account`",
            ));
        }
    };

    let empty = Map::new();
    let parameters = match map.get("parameters") {
        None | Some(Value::Null) => &empty,
        Some(value) => object(value, "parameters")?,
    };
    reject_unknown(
        parameters,
        "parameters",
        &[
            "tone",
            "length",
            "call_to_action",
            "sender",
            "language",
            "steps",
            "count",
        ],
    )?;

    let tone = optional_string(parameters, "tone", "parameters.tone", 20)?
        .unwrap_or_else(|| "friendly".into());
    if !TONES.contains(&tone.as_str()) {
        return Err(bad(
            "parameters.tone",
            format!("unknown tone `{tone}`; use one of {}", TONES.join(", ")),
        ));
    }
    let length = match optional_string(parameters, "length", "parameters.length", 10)? {
        None => Length::Medium,
        Some(text) => Length::parse(&text).ok_or_else(|| {
            bad(
                "parameters.length",
                format!("unknown length `{text}`; use short, medium or long"),
            )
        })?,
    };
    let call_to_action = optional_string(
        parameters,
        "call_to_action",
        "parameters.call_to_action",
        200,
    )?
    .unwrap_or_else(|| content_type.default_call_to_action().to_string());
    let sender = match parameters.get("sender") {
        None | Some(Value::Null) => None,
        Some(value) => Some(parse_sender(value)?),
    };
    let language = optional_string(parameters, "language", "parameters.language", 12)?
        .unwrap_or_else(|| "en".into());
    let valid_language = language.split('-').all(|part| {
        !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if !valid_language {
        return Err(bad(
            "parameters.language",
            "`parameters.language` must be a language tag such as en or de-CH",
        ));
    }

    let steps = count_parameter(parameters, "steps", "parameters.steps", MAX_STEPS, 3)?;
    if parameters.contains_key("steps") && content_type != ContentType::EmailSequence {
        return Err(bad(
            "parameters.steps",
            "`steps` applies to email_sequence only",
        ));
    }
    let count = count_parameter(parameters, "count", "parameters.count", MAX_LINES, 5)?;
    if parameters.contains_key("count") && content_type != ContentType::SubjectLines {
        return Err(bad(
            "parameters.count",
            "`count` applies to subject_lines only",
        ));
    }

    Ok(GenerateRequest {
        content_type,
        industry,
        account,
        tone,
        length,
        call_to_action,
        sender,
        language,
        steps,
        count,
    })
}

fn count_parameter(
    map: &Map<String, Value>,
    key: &str,
    field: &'static str,
    max: u64,
    default: usize,
) -> Result<usize, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_u64()
            .filter(|n| (1..=max).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| {
                bad(
                    field,
                    format!("`{field}` must be a whole number from 1 to {max}"),
                )
            }),
    }
}

fn parse_sender(value: &Value) -> Result<Sender, ApiError> {
    let map = object(value, "parameters.sender")?;
    reject_unknown(map, "parameters.sender", &["name", "company", "title"])?;
    let name = optional_string(map, "name", "parameters.sender.name", 80)?
        .ok_or_else(|| bad("parameters.sender.name", "missing `parameters.sender.name`"))?;
    let company =
        optional_string(map, "company", "parameters.sender.company", 120)?.ok_or_else(|| {
            bad(
                "parameters.sender.company",
                "missing `parameters.sender.company`",
            )
        })?;
    let title = optional_string(map, "title", "parameters.sender.title", 80)?;
    Ok(Sender {
        name,
        company,
        title,
    })
}

fn parse_inline_account(value: &Value) -> Result<AccountRef, ApiError> {
    let map = object(value, "account")?;
    reject_unknown(map, "account", &["domain", "name", "facts"])?;
    let domain = match map.get("domain") {
        Some(Value::String(text)) => normalise_domain(text).ok_or_else(|| {
            bad(
                "account.domain",
                format!("`account.domain` `{text}` is not a domain such as acme.com"),
            )
        })?,
        Some(_) => return Err(bad("account.domain", "`account.domain` must be a string")),
        None => return Err(bad("account.domain", "missing `account.domain`")),
    };
    let name = optional_string(map, "name", "account.name", 120)?
        .unwrap_or_else(|| name_from_domain(&domain));
    let facts = match map.get("facts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_INLINE_FACTS {
                return Err(bad(
                    "account.facts",
                    format!("send at most {MAX_INLINE_FACTS} facts"),
                ));
            }
            let mut facts = Vec::new();
            for (index, item) in items.iter().enumerate() {
                facts.push(parse_inline_fact(item, index)?);
            }
            facts
        }
        Some(_) => return Err(bad("account.facts", "`account.facts` must be a list")),
    };
    Ok(AccountRef::Inline {
        domain,
        name,
        facts,
    })
}

fn parse_inline_fact(item: &Value, index: usize) -> Result<Fact, ApiError> {
    let field = "account.facts";
    let map = item.as_object().ok_or_else(|| {
        bad(
            field,
            format!("fact {index} must be an object with kind and value"),
        )
    })?;
    if let Some(key) = map.keys().find(|k| *k != "kind" && *k != "value") {
        return Err(bad(
            field,
            format!("fact {index} has unknown field `{key}`; use kind and value"),
        ));
    }
    let kind: FactKind = serde_json::from_value(map.get("kind").cloned().unwrap_or(Value::Null))
        .map_err(|_| {
            bad(
                field,
                format!(
                    "fact {index} needs a `kind`: name, title, description, heading, product, technology, location, social, industry, size_band, sells, pain, talking_point, remote_policy or other"
                ),
            )
        })?;
    let value = map
        .get("value")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.chars().count() <= MAX_FACT_CHARS)
        .ok_or_else(|| {
            bad(
                field,
                format!("fact {index} needs a `value` of 1 to {MAX_FACT_CHARS} characters"),
            )
        })?;
    Ok(Fact {
        id: format!("f{}", index + 1),
        kind,
        value: value.to_string(),
        source: Source::Provided,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(body: Value) -> (String, String) {
        let error = parse_generate(&body).unwrap_err();
        assert_eq!(error.status, 400);
        (error.field.unwrap().into_owned(), error.message)
    }

    #[test]
    fn inline_account_gets_ids_and_provided_source() {
        let request = parse_generate(&json!({
            "content_type": "email",
            "account": {"domain": "https://www.Acme.com/about", "facts": [{"kind": "pain", "value": "slow invoicing"}]},
            "parameters": {"length": "short", "sender": {"name": "Grace", "company": "Navy"}}
        }))
        .unwrap();
        let AccountRef::Inline {
            domain,
            name,
            facts,
        } = request.account
        else {
            panic!()
        };
        assert_eq!(domain, "acme.com");
        assert_eq!(name, "Acme");
        assert_eq!(facts[0].id, "f1");
        assert_eq!(facts[0].source, Source::Provided);
        assert_eq!(request.length, Length::Short);
        assert_eq!(request.tone, "friendly");
        assert_eq!(request.steps, 3);
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (json!({}), "content_type"),
            (
                json!({"content_type": "fax", "account_id": "a.com"}),
                "content_type",
            ),
            (json!({"content_type": "email"}), "account_id"),
            (
                json!({"content_type": "email", "account_id": "a.com", "account": {}}),
                "account",
            ),
            (
                json!({"content_type": "email", "account_id": "not a domain"}),
                "account_id",
            ),
            (
                json!({"content_type": "email", "account": {"name": "x"}}),
                "account.domain",
            ),
            (
                json!({"content_type": "email", "account": {"domain": "a.com", "facts": [{"kind": "mood", "value": "x"}]}}),
                "account.facts",
            ),
            (
                json!({"content_type": "email", "account": {"domain": "a.com", "facts": [{"kind": "pain"}]}}),
                "account.facts",
            ),
            (
                json!({"content_type": "email", "account_id": "a.com", "parameters": {"tone": "angry"}}),
                "parameters.tone",
            ),
            (
                json!({"content_type": "email", "account_id": "a.com", "parameters": {"length": "huge"}}),
                "parameters.length",
            ),
            (
                json!({"content_type": "email", "account_id": "a.com", "parameters": {"steps": 3}}),
                "parameters.steps",
            ),
            (
                json!({"content_type": "email_sequence", "account_id": "a.com", "parameters": {"steps": 9}}),
                "parameters.steps",
            ),
            (
                json!({"content_type": "subject_lines", "account_id": "a.com", "parameters": {"count": 0}}),
                "parameters.count",
            ),
            (
                json!({"content_type": "email", "account_id": "a.com", "parameters": {"sender": {"name": "x"}}}),
                "parameters.sender.company",
            ),
            (
                json!({"content_type": "email", "account_id": "a.com", "parameters": {"language": "en_GB!"}}),
                "parameters.language",
            ),
            (
                json!({"content_type": "email", "account_id": "a.com", "parameters": {"colour": 1}}),
                "parameters",
            ),
            (
                json!({"content_type": "email", "account_id": "a.com", "industry": "Big Retail"}),
                "industry",
            ),
            (
                json!({"content_type": "email", "account_id": "a.com", "extra": 1}),
                "body",
            ),
        ];
        for (body, field) in cases {
            let text = body.to_string();
            let (got, message) = field_of(body);
            assert_eq!(got, field, "{text}: {message}");
        }
    }

    #[test]
    fn domains_normalise() {
        assert_eq!(normalise_domain("Acme.COM"), Some("acme.com".into()));
        assert_eq!(
            normalise_domain("http://www.acme.co.uk/x"),
            Some("acme.co.uk".into())
        );
        assert_eq!(normalise_domain("localhost"), None);
        assert_eq!(normalise_domain("-bad.com"), None);
    }
}
