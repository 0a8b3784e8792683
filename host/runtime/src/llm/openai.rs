//! OpenAI-compatible chat completions and embeddings (OpenAI, Ollama,
//! llama.cpp server, vLLM). The base URL includes the version prefix, as
//! in OpenAI's own clients: `https://api.openai.com/v1`.

use super::wire::{count_at, send_json, text_at, vector};
use super::{ChatRequest, Embedded, Generated, ProviderError};
use serde_json::{Value, json};
use std::time::Duration;

/// Builds the body of `POST /chat/completions`.
pub(crate) fn chat_body(model: &str, request: &ChatRequest) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": request.prompt}));
    let options = &request.options;
    let mut body = json!({
        "model": model,
        "messages": messages,
        // NOTE: OpenAI's reasoning models (o1 and later) reject `max_tokens`
        // and expect `max_completion_tokens`; Ollama, llama.cpp server and
        // vLLM accept `max_tokens`, so that is what is sent.
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
    });
    if let Some(top_p) = options.top_p {
        body["top_p"] = json!(top_p);
    }
    if !options.stop.is_empty() {
        body["stop"] = json!(options.stop);
    }
    if options.json {
        body["response_format"] = json!({"type": "json_object"});
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
        .post(format!("{base_url}/chat/completions"))
        .json(&chat_body(model, request));
    if let Some(key) = api_key {
        builder = builder.bearer_auth(key);
    }
    let response = send_json(builder, timeout).await?;
    let text = text_at(&response, "/choices/0/message/content")?;
    Ok(Generated {
        text: text.to_string(),
        prompt_tokens: count_at(&response, "/usage/prompt_tokens"),
        generated_tokens: count_at(&response, "/usage/completion_tokens"),
    })
}

pub(crate) async fn embed(
    http: &reqwest::Client,
    base_url: &str,
    model: &str,
    api_key: Option<&str>,
    texts: &[String],
    timeout: Duration,
) -> Result<Embedded, ProviderError> {
    let mut builder = http
        .post(format!("{base_url}/embeddings"))
        .json(&json!({"model": model, "input": texts}));
    if let Some(key) = api_key {
        builder = builder.bearer_auth(key);
    }
    let response = send_json(builder, timeout).await?;
    let data = response["data"]
        .as_array()
        .ok_or_else(|| ProviderError::InvalidResponse("missing array at `/data`".into()))?;
    if data.len() != texts.len() {
        return Err(ProviderError::InvalidResponse(format!(
            "{} embeddings for {} inputs",
            data.len(),
            texts.len()
        )));
    }

    // Each item carries the index of its input; order by it.
    let mut vectors = vec![Vec::new(); texts.len()];
    for (position, item) in data.iter().enumerate() {
        let index = item["index"]
            .as_u64()
            .map(|i| i as usize)
            .unwrap_or(position);
        let slot = vectors.get_mut(index).ok_or_else(|| {
            ProviderError::InvalidResponse(format!("embedding index {index} is out of range"))
        })?;
        *slot = vector(&item["embedding"], &format!("data[{position}].embedding"))?;
    }
    Ok(Embedded {
        vectors,
        prompt_tokens: count_at(&response, "/usage/prompt_tokens"),
    })
}
