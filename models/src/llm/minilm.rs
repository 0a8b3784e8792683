//! all-MiniLM-L6-v2 sentence embeddings with candle's BERT.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::LlmError;
use super::error::read_file;
use super::files::EMBEDDING_FILES;

/// Texts embedded in one forward pass; longer inputs go in several batches.
const BATCH_SIZE: usize = 32;

/// A sentence-transformers BERT model: mean pooling over the tokens, then
/// L2 normalisation.
pub struct MiniLm {
    name: String,
    model: BertModel,
    tokenizer: Tokenizer,
    dims: usize,
    max_tokens: usize,
}

impl MiniLm {
    /// Loads a sentence-transformers directory: `config.json`,
    /// `tokenizer.json`, `model.safetensors` and, if present,
    /// `sentence_bert_config.json` for the maximum sequence length.
    pub fn load(dir: &Path) -> Result<MiniLm, LlmError> {
        if !dir.is_dir() {
            return Err(LlmError::Missing {
                path: dir.to_path_buf(),
            });
        }
        let [config_file, tokenizer_file, weights_file] = EMBEDDING_FILES.map(|name| dir.join(name));

        let config: Config = parse_json(&config_file)?;
        let max_tokens = max_sequence_length(dir, &config)?;

        let mut tokenizer = Tokenizer::from_bytes(read_file(&tokenizer_file)?)
            .map_err(|e| LlmError::invalid_file(&tokenizer_file, e))?;
        let pad_id = config.pad_token_id as u32;
        let pad_token = tokenizer
            .id_to_token(pad_id)
            .ok_or_else(|| LlmError::invalid_file(&tokenizer_file, format!("no token for pad id {pad_id}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| LlmError::invalid_file(&tokenizer_file, e))?;

        let weights = read_file(&weights_file)?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| LlmError::invalid_file(&weights_file, e))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| LlmError::invalid_file(&weights_file, e))?;

        let name = dir
            .parent()
            .filter(|_| dir.file_name().is_some_and(|n| n == "model"))
            .unwrap_or(dir)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "minilm".to_owned());
        Ok(MiniLm {
            name,
            model,
            tokenizer,
            dims: config.hidden_size,
            max_tokens,
        })
    }

    /// The model's name: its directory's name, or the package's name for a
    /// sentence-transformers `model/` directory inside a package.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The length of each embedding (384 for all-MiniLM-L6-v2).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Tokens read from each text; the rest is cut off.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Counts the tokens of each text as the model reads it, after truncation
    /// and with the `[CLS]` and `[SEP]` tokens.
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>, LlmError> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(LlmError::tokenizer("encoding"))?;
        Ok(encodings
            .iter()
            .map(|e| e.get_attention_mask().iter().filter(|&&m| m == 1).count())
            .collect())
    }

    /// Embeds each text into a unit-length vector of [`Self::dims`] values.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut embeddings = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH_SIZE) {
            embeddings.extend(self.embed_batch(batch)?);
        }
        Ok(embeddings)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LlmError> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(LlmError::tokenizer("encoding"))?;
        let stack = |field: fn(&tokenizers::Encoding) -> &[u32]| {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(field(e), &Device::Cpu))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::stack(&rows, 0)
        };

        let pooled = (|| {
            let input_ids = stack(tokenizers::Encoding::get_ids)?;
            let type_ids = stack(tokenizers::Encoding::get_type_ids)?;
            let mask = stack(tokenizers::Encoding::get_attention_mask)?;
            let hidden = self.model.forward(&input_ids, &type_ids, Some(&mask))?;

            // Mean over the real tokens only: padding is masked out of the
            // sum and the count.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        })()
        .map_err(LlmError::tensor("embedding"))?;
        Ok(pooled)
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LlmError> {
    let bytes = read_file(path)?;
    serde_json::from_slice(&bytes).map_err(|e| LlmError::invalid_file(path, format!("invalid JSON: {e}")))
}

/// Reads `max_seq_length` from `sentence_bert_config.json` (256 for
/// all-MiniLM-L6-v2), falling back to the position embeddings' length.
fn max_sequence_length(dir: &Path, config: &Config) -> Result<usize, LlmError> {
    #[derive(serde::Deserialize)]
    struct SentenceBertConfig {
        max_seq_length: usize,
    }

    let path = dir.join("sentence_bert_config.json");
    if !path.is_file() {
        return Ok(config.max_position_embeddings);
    }
    let settings: SentenceBertConfig = parse_json(&path)?;
    Ok(settings.max_seq_length.min(config.max_position_embeddings))
}
