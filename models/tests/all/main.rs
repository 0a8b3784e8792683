//! Integration tests: training on a slice of the real bank marketing data,
//! prediction and the registry, and the local language models.

mod llm;
mod registry;
mod training;

use std::path::PathBuf;

use copycar_models::{Dataset, Split, TrainConfig, bank_marketing_csv};

pub fn bank_sample() -> Dataset {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bank-sample.csv");
    Dataset::from_csv(&path, &bank_marketing_csv()).unwrap()
}

pub fn sample_split(data: &Dataset) -> Split {
    Split::stratified(data.labels(), 42)
}

/// Returns a small configuration that trains in about a second.
pub fn small_config() -> TrainConfig {
    let mut config = TrainConfig::default();
    config.architecture.hidden = 16;
    config.architecture.members = 3;
    config.max_epochs = 30;
    config
}
