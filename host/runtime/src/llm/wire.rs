//! Sending one JSON request to a vendor API and turning HTTP failures into
//! [`ProviderError`]s.

use super::ProviderError;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Maximum characters of an error body quoted in a message.
const MAX_MESSAGE_CHARS: usize = 300;

/// Sends `request` with a limit of `timeout` and returns the JSON body of a
/// 2xx response.
pub(crate) async fn send_json(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<Value, ProviderError> {
    let response = match tokio::time::timeout(timeout, request.timeout(timeout).send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) if e.is_timeout() => return Err(ProviderError::Timeout(timeout)),
        Ok(Err(e)) => return Err(ProviderError::Transport(describe(&e))),
        Err(_) => return Err(ProviderError::Timeout(timeout)),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = match tokio::time::timeout(timeout, response.bytes()).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) if e.is_timeout() => return Err(ProviderError::Timeout(timeout)),
        Ok(Err(e)) => return Err(ProviderError::Transport(describe(&e))),
        Err(_) => return Err(ProviderError::Timeout(timeout)),
    };

    if (200..300).contains(&status) {
        return serde_json::from_slice(&body)
            .map_err(|e| ProviderError::InvalidResponse(format!("the body is not JSON ({e})")));
    }
    let message = error_message(&body);
    Err(match status {
        429 => ProviderError::RateLimited {
            message,
            retry_after,
        },
        500..=599 => ProviderError::Server {
            status,
            message,
            retry_after,
        },
        _ => ProviderError::Rejected { status, message },
    })
}

/// Returns reqwest's error with its sources, which name the failed address.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads the message from a vendor error body. OpenAI, Anthropic and
/// Gemini all nest it as `{"error": {"message": …}}`, with a `type`
/// (OpenAI, Anthropic) or `status` (Gemini) beside it; other bodies are
/// quoted as text.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let error = &value["error"];
        let message = error["message"]
            .as_str()
            .or_else(|| error.as_str())
            .or_else(|| value["message"].as_str());
        let kind = error["type"].as_str().or_else(|| error["status"].as_str());
        match (kind, message) {
            (Some(kind), Some(message)) => return shorten(&format!("{kind}: {message}")),
            (None, Some(message)) => return shorten(message),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no error message in the response".to_string()
    } else {
        shorten(text)
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Parses `Retry-After` as seconds or as an HTTP date (RFC 9110, 10.2.3).
/// A date in the past means no wait.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Returns the first string found at `pointer` or an error naming it.
pub(crate) fn text_at<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, ProviderError> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::InvalidResponse(format!("missing string at `{pointer}`")))
}

/// Reads a token count, treating a missing one as 0.
pub(crate) fn count_at(value: &Value, pointer: &str) -> u32 {
    value
        .pointer(pointer)
        .and_then(Value::as_u64)
        .map(|n| n.min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

/// Reads one embedding vector.
pub(crate) fn vector(value: &Value, context: &str) -> Result<Vec<f32>, ProviderError> {
    let items = value.as_array().ok_or_else(|| {
        ProviderError::InvalidResponse(format!("{context} is not an array of numbers"))
    })?;
    items
        .iter()
        .map(|n| {
            n.as_f64().map(|f| f as f32).ok_or_else(|| {
                ProviderError::InvalidResponse(format!("{context} contains a non-number"))
            })
        })
        .collect()
}

/// Estimates tokens as one per four characters, for APIs that return no
/// count.
pub(crate) fn estimate_tokens<S: AsRef<str>>(texts: &[S]) -> u32 {
    let chars: usize = texts.iter().map(|t| t.as_ref().chars().count()).sum();
    chars.div_ceil(4).min(u32::MAX as usize) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn error_messages_from_vendor_bodies() {
        let openai = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(
            error_message(openai),
            "invalid_request_error: Incorrect API key provided"
        );
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(error_message(anthropic), "overloaded_error: Overloaded");
        let gemini = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            error_message(gemini),
            "RESOURCE_EXHAUSTED: Resource has been exhausted"
        );
        assert_eq!(error_message(b"upstream down"), "upstream down");
        assert_eq!(error_message(b""), "no error message in the response");
        assert_eq!(
            error_message(&[b'x'; 400]).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }
}
