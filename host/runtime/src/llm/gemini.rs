//! The Gemini API: `models/{model}:generateContent` for text,
//! `:embedContent` and `:batchEmbedContents` for embeddings. The base URL
//! includes the version, by default
//! `https://generativelanguage.googleapis.com/v1beta`.

use super::wire::{count_at, estimate_tokens, send_json, vector};
use super::{ChatRequest, Embedded, Generated, ProviderError};
use serde_json::{Value, json};
use std::time::Duration;

/// Builds the body of `generateContent`.
pub(crate) fn generate_body(request: &ChatRequest) -> Value {
    let options = &request.options;
    let mut config = json!({
        "maxOutputTokens": options.max_tokens,
        "temperature": options.temperature,
    });
    if let Some(top_p) = options.top_p {
        config["topP"] = json!(top_p);
    }
    if let Some(top_k) = options.top_k {
        config["topK"] = json!(top_k);
    }
    if !options.stop.is_empty() {
        config["stopSequences"] = json!(options.stop);
    }
    if options.json {
        config["responseMimeType"] = json!("application/json");
    }
    let mut body = json!({
        "contents": [{"role": "user", "parts": [{"text": request.prompt}]}],
        "generationConfig": config,
    });
    if let Some(system) = &request.system {
        body["systemInstruction"] = json!({"parts": [{"text": system}]});
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
        .post(format!("{base_url}/models/{model}:generateContent"))
        .json(&generate_body(request));
    if let Some(key) = api_key {
        builder = builder.header("x-goog-api-key", key);
    }
    let response = send_json(builder, timeout).await?;

    let Some(candidate) = response["candidates"].get(0) else {
        // A prompt blocked by safety filters gets no candidates.
        let reason = response
            .pointer("/promptFeedback/blockReason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(ProviderError::InvalidResponse(format!(
            "no candidates in the reply (block reason: {reason})"
        )));
    };
    let text: String = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
        .unwrap_or_default();
    if text.is_empty() {
        let reason = candidate["finishReason"].as_str().unwrap_or("unknown");
        return Err(ProviderError::InvalidResponse(format!(
            "empty candidate (finish reason {reason})"
        )));
    }
    Ok(Generated {
        text,
        prompt_tokens: count_at(&response, "/usageMetadata/promptTokenCount"),
        generated_tokens: count_at(&response, "/usageMetadata/candidatesTokenCount"),
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
    let content = |text: &String| json!({"parts": [{"text": text}]});
    let (url, body) = if texts.len() == 1 {
        (
            format!("{base_url}/models/{model}:embedContent"),
            json!({"content": content(&texts[0])}),
        )
    } else {
        let requests: Vec<Value> = texts
            .iter()
            .map(|text| json!({"model": format!("models/{model}"), "content": content(text)}))
            .collect();
        (
            format!("{base_url}/models/{model}:batchEmbedContents"),
            json!({"requests": requests}),
        )
    };
    let mut builder = http.post(url).json(&body);
    if let Some(key) = api_key {
        builder = builder.header("x-goog-api-key", key);
    }
    let response = send_json(builder, timeout).await?;

    let vectors = if texts.len() == 1 {
        vec![vector(
            &response["embedding"]["values"],
            "embedding.values",
        )?]
    } else {
        let items = response["embeddings"].as_array().ok_or_else(|| {
            ProviderError::InvalidResponse("missing array at `/embeddings`".into())
        })?;
        if items.len() != texts.len() {
            return Err(ProviderError::InvalidResponse(format!(
                "{} embeddings for {} inputs",
                items.len(),
                texts.len()
            )));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| vector(&item["values"], &format!("embeddings[{i}].values")))
            .collect::<Result<_, _>>()?
    };
    // NOTE: the embedding endpoints return no token count, so usage is
    // estimated at four characters per token.
    Ok(Embedded {
        vectors,
        prompt_tokens: estimate_tokens(texts),
    })
}
