//! Rebuilds a GPT-2 style byte-level BPE tokenizer from the vocabulary and
//! merges that a GGUF file stores in its metadata.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::Tokenizer;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use super::LlmError;

/// Builds the tokenizer described by `tokenizer.ggml.*` in a GGUF file.
///
/// Only the `gpt2` model is supported. The `smollm` pre-tokenizer splits
/// every digit on its own before the byte-level split, as SmolLM2's
/// tokenizer does. Control tokens such as `<|im_start|>` stay ordinary
/// vocabulary entries: callers insert their ids directly, so text that
/// contains `<|im_start|>` is never read as a control token.
pub(crate) fn from_gguf(content: &Content, path: &Path) -> Result<Tokenizer, LlmError> {
    let metadata = |key: &str| {
        content
            .metadata
            .get(key)
            .ok_or_else(|| LlmError::invalid_file(path, format!("metadata `{key}` is missing")))
    };
    let invalid = |key: &str, error: candle_core::Error| {
        LlmError::invalid_file(path, format!("metadata `{key}` is invalid: {error}"))
    };

    let kind = metadata("tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| invalid("tokenizer.ggml.model", e))?;
    if kind != "gpt2" {
        return Err(LlmError::invalid_file(
            path,
            format!("tokenizer model `{kind}` is not supported; expected `gpt2`"),
        ));
    }
    let pre = match content.metadata.get("tokenizer.ggml.pre") {
        Some(value) => value
            .to_string()
            .map_err(|e| invalid("tokenizer.ggml.pre", e))?
            .clone(),
        None => "default".to_owned(),
    };

    let tokens = string_array(metadata("tokenizer.ggml.tokens")?)
        .map_err(|e| invalid("tokenizer.ggml.tokens", e))?;
    let merges = string_array(metadata("tokenizer.ggml.merges")?)
        .map_err(|e| invalid("tokenizer.ggml.merges", e))?;

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.to_string(), id as u32))
        .collect();
    let mut pairs = Vec::with_capacity(merges.len());
    for merge in merges {
        let (left, right) = merge.split_once(' ').ok_or_else(|| {
            LlmError::invalid_file(path, format!("merge {merge:?} has no space"))
        })?;
        pairs.push((left.to_owned(), right.to_owned()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .build()
        .map_err(|e| LlmError::invalid_file(path, format!("invalid BPE vocabulary: {e}")))?;

    let byte_level = ByteLevel::new(false, true, true);
    let pre_tokenizer: PreTokenizerWrapper = match pre.as_str() {
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            byte_level.clone().into(),
        ])
        .into(),
        "default" | "gpt-2" => byte_level.clone().into(),
        other => {
            return Err(LlmError::invalid_file(
                path,
                format!("pre-tokenizer `{other}` is not supported; expected `smollm` or `gpt-2`"),
            ));
        }
    };
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_pre_tokenizer(Some(pre_tokenizer))
        .with_decoder(Some(byte_level));
    Ok(tokenizer)
}

fn string_array(value: &Value) -> candle_core::Result<Vec<&String>> {
    value.to_vec()?.iter().map(Value::to_string).collect()
}

/// Returns the id of a vocabulary entry, or an error naming the GGUF file.
pub(crate) fn token_id(tokenizer: &Tokenizer, token: &str, path: &Path) -> Result<u32, LlmError> {
    tokenizer.token_to_id(token).ok_or_else(|| {
        LlmError::invalid_file(path, format!("token `{token}` is not in the vocabulary"))
    })
}
