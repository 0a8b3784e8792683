//! The Anthropic Messages API (`POST /v1/messages`). Anthropic offers no
//! embeddings endpoint.

use super::wire::{count_at, send_json};
use super::{ChatRequest, Generated, ProviderError};
use serde_json::{Value, json};
use std::time::Duration;

/// The API version sent in `anthropic-version`.
pub(crate) const API_VERSION: &str = "2023-06-01";

/// Added to the system prompt when JSON output is requested, because the
/// Messages API has no JSON mode flag.
const JSON_INSTRUCTION: &str = "Reply with one JSON object and nothing else.";

/// Builds the body of `POST /v1/messages`.
pub(crate) fn messages_body(model: &str, request: &ChatRequest) -> Value {
    let options = &request.options;
    let system = match (&request.system, options.json) {
        (Some(system), true) => Some(format!("{system}\n\n{JSON_INSTRUCTION}")),
        (Some(system), false) => Some(system.clone()),
        (None, true) => Some(JSON_INSTRUCTION.to_string()),
        (None, false) => None,
    };
    let mut body = json!({
        "model": model,
        "max_tokens": options.max_tokens,
        "messages": [{"role": "user", "content": request.prompt}],
        // The Messages API accepts temperatures from 0 to 1.
        "temperature": options.temperature.clamp(0.0, 1.0),
    });
    if let Some(system) = system {
        body["system"] = json!(system);
    }
    // NOTE: `top_p` is not sent. Anthropic's Messages API documentation
    // advises setting temperature or top_p but not both, and recent Claude
    // models reject requests that set both; the temperature is always set.
    if let Some(top_k) = options.top_k {
        body["top_k"] = json!(top_k);
    }
    if !options.stop.is_empty() {
        body["stop_sequences"] = json!(options.stop);
    }
    body
}

pub(crate) async fn generate(
    http: &reqwest::Client,
    base_url: &str,
    model: &str,
    api_key: Option<&str>,
    request: &ChatRequest,
    timeout: Duration,
) -> Result<Generated, ProviderError> {
    let mut builder = http
        .post(format!("{base_url}/v1/messages"))
        .header("anthropic-version", API_VERSION)
        .json(&messages_body(model, request));
    if let Some(key) = api_key {
        builder = builder.header("x-api-key", key);
    }
    let response = send_json(builder, timeout).await?;

    // The reply is a list of content blocks; text blocks are joined.
    let blocks = response["content"]
        .as_array()
        .ok_or_else(|| ProviderError::InvalidResponse("missing array at `/content`".into()))?;
    let text: String = blocks
        .iter()
        .filter(|block| block["type"] == "text")
        .filter_map(|block| block["text"].as_str())
        .collect();
    if text.is_empty() && blocks.is_empty() {
        let reason = response["stop_reason"].as_str().unwrap_or("unknown");
        return Err(ProviderError::InvalidResponse(format!(
            "no content in the reply (stop_reason {reason})"
        )));
    }
    Ok(Generated {
        text,
        prompt_tokens: count_at(&response, "/usage/input_tokens"),
        generated_tokens: count_at(&response, "/usage/output_tokens"),
    })
}
