//! SmolLM2-135M-Instruct from a quantized GGUF file.

use std::path::Path;
use std::sync::Mutex;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use tokenizers::Tokenizer;

use super::LlmError;
use super::error::open_file;
use super::gguf_tokenizer;

/// The system message SmolLM2's chat template inserts when none is given.
const DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Prompt tokens fed to the model in one forward pass. Longer prompts go in
/// chunks so the attention matrix stays small.
const PROMPT_CHUNK: usize = 512;

/// Settings of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Maximum number of tokens to generate (at least 1).
    pub max_tokens: usize,
    /// Sampling temperature in `0..=2`; 0 picks the most likely token.
    pub temperature: f64,
    /// Nucleus sampling: sample from the smallest set of tokens whose
    /// probabilities add up to `top_p` (`0 < top_p <= 1`); `None` samples
    /// from all tokens.
    pub top_p: Option<f64>,
    /// Seed of the sampler, so a sampled generation can be repeated.
    pub seed: u64,
    /// Texts that end the generation; the text returned stops before the
    /// first one found.
    pub stop: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            temperature: 0.7,
            top_p: None,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

/// The output of one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The generated text, without the end-of-sequence token or the stop text.
    pub text: String,
    /// Tokens of the prompt after the chat template is applied.
    pub prompt_tokens: usize,
    /// Tokens the model generated, not counting the end-of-sequence token.
    pub generated_tokens: usize,
}

/// SmolLM2 run by candle's quantized llama on the CPU.
///
/// `generate` takes `&self` and may be called from several threads; the
/// calls take turns on one key-value cache.
pub struct SmolLm {
    name: String,
    weights: Mutex<ModelWeights>,
    tokenizer: Tokenizer,
    im_start: u32,
    im_end: u32,
    end_of_text: u32,
    device: Device,
}

impl SmolLm {
    /// Loads the weights and the tokenizer from a GGUF file.
    pub fn load(gguf: &Path) -> Result<SmolLm, LlmError> {
        let mut file = open_file(gguf)?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| LlmError::invalid_file(gguf, format!("not a readable GGUF file: {e}")))?;
        let architecture = content
            .metadata
            .get("general.architecture")
            .and_then(|value| value.to_string().ok())
            .map(String::as_str);
        if architecture != Some("llama") {
            return Err(LlmError::invalid_file(
                gguf,
                format!("architecture {architecture:?} is not supported; expected \"llama\""),
            ));
        }

        let tokenizer = gguf_tokenizer::from_gguf(&content, gguf)?;
        let im_start = gguf_tokenizer::token_id(&tokenizer, "<|im_start|>", gguf)?;
        let im_end = gguf_tokenizer::token_id(&tokenizer, "<|im_end|>", gguf)?;
        let end_of_text = gguf_tokenizer::token_id(&tokenizer, "<|endoftext|>", gguf)?;

        let device = Device::Cpu;
        let weights = ModelWeights::from_gguf(content, &mut file, &device)
            .map_err(|e| LlmError::invalid_file(gguf, format!("invalid weights: {e}")))?;
        let name = gguf
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "smollm2".to_owned());
        Ok(SmolLm {
            name,
            weights: Mutex::new(weights),
            tokenizer,
            im_start,
            im_end,
            end_of_text,
            device,
        })
    }

    /// The model's name: the GGUF file name without its extension.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The longest prompt plus generation the model accepts, in tokens.
    pub fn context_length(&self) -> usize {
        MAX_SEQ_LEN
    }

    /// Counts the tokens of a prompt after the chat template is applied.
    pub fn count_prompt_tokens(&self, prompt: &str, system: Option<&str>) -> Result<usize, LlmError> {
        Ok(self.chat_prompt(prompt, system)?.len())
    }

    /// Generates a reply to `prompt` as the assistant, after an optional
    /// system message.
    ///
    /// Generation ends at the end-of-sequence token, at a stop text, after
    /// `max_tokens` tokens, or when the context window is full.
    pub fn generate(
        &self,
        prompt: &str,
        system: Option<&str>,
        options: &GenerateOptions,
    ) -> Result<Generated, LlmError> {
        validate(options)?;
        let prompt_ids = self.chat_prompt(prompt, system)?;
        let prompt_tokens = prompt_ids.len();
        if prompt_tokens >= MAX_SEQ_LEN {
            return Err(LlmError::ContextTooLong {
                prompt_tokens,
                max: MAX_SEQ_LEN,
            });
        }
        let max_tokens = options.max_tokens.min(MAX_SEQ_LEN - prompt_tokens);
        let sampling = if options.temperature == 0.0 {
            Sampling::ArgMax
        } else {
            match options.top_p {
                Some(p) if p < 1.0 => Sampling::TopP {
                    p,
                    temperature: options.temperature,
                },
                _ => Sampling::All {
                    temperature: options.temperature,
                },
            }
        };
        let mut sampler = LogitsProcessor::from_sampling(options.seed, sampling);

        // A poisoned lock only means another generation panicked; the cache
        // is rebuilt from position 0 below, so the weights are still usable.
        let mut weights = self
            .weights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());

        // Feeding the prompt from position 0 replaces any cache left by the
        // previous generation.
        let mut logits = None;
        for (index, chunk) in prompt_ids.chunks(PROMPT_CHUNK).enumerate() {
            let input = Tensor::new(chunk, &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(LlmError::tensor("prompt"))?;
            logits = Some(
                weights
                    .forward(&input, index * PROMPT_CHUNK)
                    .map_err(LlmError::tensor("prompt"))?,
            );
        }
        let mut logits = logits.expect("the chat template is never empty");

        let mut generated: Vec<u32> = Vec::new();
        let mut text = String::new();
        while generated.len() < max_tokens {
            let next = logits
                .squeeze(0)
                .and_then(|l| sampler.sample(&l))
                .map_err(LlmError::tensor("sampling"))?;
            if next == self.im_end || next == self.end_of_text {
                break;
            }
            generated.push(next);
            text = self.decode(&generated)?;
            if let Some(end) = find_stop(&text, &options.stop) {
                text.truncate(end);
                break;
            }
            if generated.len() == max_tokens {
                break;
            }

            let position = prompt_tokens + generated.len() - 1;
            let input = Tensor::new(&[next], &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(LlmError::tensor("generation"))?;
            logits = weights
                .forward(&input, position)
                .map_err(LlmError::tensor("generation"))?;
        }
        Ok(Generated {
            text,
            prompt_tokens,
            generated_tokens: generated.len(),
        })
    }

    /// Applies SmolLM2's chat template and returns the token ids:
    /// `<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n`.
    fn chat_prompt(&self, prompt: &str, system: Option<&str>) -> Result<Vec<u32>, LlmError> {
        let system = system.unwrap_or(DEFAULT_SYSTEM);
        let mut ids = Vec::new();
        for (role, content) in [("system", Some(system)), ("user", Some(prompt)), ("assistant", None)] {
            ids.push(self.im_start);
            let text = match content {
                Some(content) => format!("{role}\n{content}"),
                None => format!("{role}\n"),
            };
            ids.extend(self.encode(&text)?);
            if content.is_some() {
                ids.push(self.im_end);
                ids.extend(self.encode("\n")?);
            }
        }
        Ok(ids)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(LlmError::tokenizer("encoding"))?;
        Ok(encoding.get_ids().to_vec())
    }

    fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.tokenizer
            .decode(ids, false)
            .map_err(LlmError::tokenizer("decoding"))
    }
}

fn validate(options: &GenerateOptions) -> Result<(), LlmError> {
    if options.max_tokens == 0 {
        return Err(LlmError::InvalidInput {
            field: "max_tokens",
            message: "must be at least 1".to_owned(),
        });
    }
    if !(0.0..=2.0).contains(&options.temperature) {
        return Err(LlmError::InvalidInput {
            field: "temperature",
            message: format!("{} is outside 0..=2", options.temperature),
        });
    }
    if let Some(p) = options.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(LlmError::InvalidInput {
            field: "top_p",
            message: format!("{p} is outside 0 < top_p <= 1"),
        });
    }
    if options.stop.iter().any(String::is_empty) {
        return Err(LlmError::InvalidInput {
            field: "stop",
            message: "stop texts must not be empty".to_owned(),
        });
    }
    Ok(())
}

/// Returns the byte offset of the earliest stop text in `text`.
fn find_stop(text: &str, stop: &[String]) -> Option<usize> {
    stop.iter().filter_map(|s| text.find(s.as_str())).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_stop_picks_earliest() {
        let stop = vec!["world".to_owned(), "lo".to_owned()];
        assert_eq!(find_stop("hello world", &stop), Some(3));
        assert_eq!(find_stop("hey", &stop), None);
    }

    #[test]
    fn validate_names_field() {
        let cases = [
            (GenerateOptions { max_tokens: 0, ..Default::default() }, "max_tokens"),
            (GenerateOptions { temperature: 2.5, ..Default::default() }, "temperature"),
            (GenerateOptions { temperature: f64::NAN, ..Default::default() }, "temperature"),
            (GenerateOptions { top_p: Some(0.0), ..Default::default() }, "top_p"),
            (GenerateOptions { top_p: Some(1.5), ..Default::default() }, "top_p"),
            (GenerateOptions { stop: vec![String::new()], ..Default::default() }, "stop"),
        ];
        for (options, expected) in cases {
            match validate(&options) {
                Err(LlmError::InvalidInput { field, .. }) => assert_eq!(field, expected),
                other => panic!("expected invalid `{expected}`, got {other:?}"),
            }
        }
        assert!(validate(&GenerateOptions::default()).is_ok());
    }
}
