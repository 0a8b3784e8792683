//! The end-to-end training run behind `copycar train response-rate`: read a
//! CSV in the bank marketing layout, split, train, evaluate on the held-out
//! rows and store the result as the registry's next version.

use crate::{
    DataSource, Dataset, Metrics, ModelCard, ModelError, Progress, Registry, Split, SplitSummary,
    TrainConfig, bank_marketing_csv, bank_marketing_schema, train,
};
use std::path::Path;

/// The outcome of [`train_from_csv`].
#[derive(Debug, Clone)]
pub struct TrainRun {
    /// Registry version the model was saved as.
    pub version: String,
    pub rows: usize,
    pub seconds: f64,
    /// Scores on the held-out test rows.
    pub test: Metrics,
}

/// Trains on `csv` (semicolon-separated, bank marketing columns, target
/// `y`), reports each epoch to `progress`, and saves the model in `registry`.
pub fn train_from_csv(
    csv: &Path,
    registry: &Registry,
    config: TrainConfig,
    split_seed: u64,
    progress: impl FnMut(&Progress),
) -> Result<TrainRun, ModelError> {
    let options = bank_marketing_csv();
    let data = Dataset::from_csv(csv, &options)?;
    let split = Split::stratified(data.labels(), split_seed);
    let (model, summary) = train(
        &bank_marketing_schema(),
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &config,
        progress,
    )?;
    let test = model.evaluate(&data.subset(&split.test))?;

    let file_name = csv.file_name().map_or_else(
        || csv.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let source = DataSource {
        name: format!("bank marketing layout, {file_name}"),
        licence: "as stated by the data's owner".into(),
        rows: data.len(),
        target: format!("{} = \"{}\"", options.target, options.positive),
        dropped_columns: options.drop.clone(),
    };
    let seconds = summary.seconds;
    let card = ModelCard::new(
        &model,
        source,
        SplitSummary::of(&split),
        config,
        summary,
        test,
    );
    let version = registry.save(&model, card)?;
    Ok(TrainRun {
        version,
        rows: data.len(),
        seconds,
        test,
    })
}
