//! Versioned model artefacts on disk.
//!
//! Each version is a directory `<root>/v<N>/` holding `model.safetensors`
//! (the network weights), `pipeline.json` (the fitted feature pipeline,
//! network shape and calibration) and `card.json` (a [`ModelCard`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::calibration::PlattScaling;
use crate::error::ModelError;
use crate::features::FeaturePipeline;
use crate::metrics::Metrics;
use crate::model::ResponseRateModel;
use crate::network::{Architecture, Weights};
use crate::schema::Schema;
use crate::split::Split;
use crate::train::{TrainConfig, TrainSummary};

const WEIGHTS_FILE: &str = "model.safetensors";
const PIPELINE_FILE: &str = "pipeline.json";
pub(crate) const CARD_FILE: &str = "card.json";
/// Names the promoted version; without it the newest version is active.
const ACTIVE_FILE: &str = "ACTIVE";

/// A description of a trained model for people: its data, features, split,
/// settings and scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Set by [`Registry::save`].
    pub version: String,
    /// RFC 3339 UTC time of [`ModelCard::new`].
    pub created_at: String,
    /// Crate name and version that trained the model.
    pub trainer: String,
    pub data: DataSource,
    pub features: Schema,
    pub split: SplitSummary,
    pub config: TrainConfig,
    pub training: TrainSummary,
    /// Calibrated scores on the held-out test rows.
    pub test: Metrics,
}

/// The origin and licence of the training data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    pub name: String,
    pub licence: String,
    pub rows: usize,
    pub target: String,
    pub dropped_columns: Vec<String>,
}

/// Sizes and identity of the split a model was trained and scored on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    pub rule: String,
    pub seed: u64,
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    pub test_fingerprint: String,
}

impl SplitSummary {
    pub fn of(split: &Split) -> Self {
        SplitSummary {
            rule: "stratified 70/15/15, rows ordered by SplitMix64(seed, row) within each class"
                .into(),
            seed: split.seed,
            train: split.train.len(),
            validation: split.validation.len(),
            test: split.test.len(),
            test_fingerprint: split.test_fingerprint(),
        }
    }
}

impl ModelCard {
    /// A card for `model`, stamped with the current time and this crate's
    /// version; [`Registry::save`] sets the version.
    pub fn new(
        model: &ResponseRateModel,
        data: DataSource,
        split: SplitSummary,
        config: TrainConfig,
        training: TrainSummary,
        test: Metrics,
    ) -> Self {
        ModelCard {
            version: String::new(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            trainer: concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION")).into(),
            data,
            features: model.pipeline().schema().clone(),
            split,
            config,
            training,
            test,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PipelineFile {
    pipeline: FeaturePipeline,
    architecture: Architecture,
    calibration: PlattScaling,
}

/// A directory of model versions, such as `models/registry/response-rate`.
#[derive(Clone, Debug)]
pub struct Registry {
    root: PathBuf,
}

impl Registry {
    /// Opens the registry at `root`; the directory is created on first save.
    pub fn open(root: impl Into<PathBuf>) -> Self {
        Registry { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stored versions, oldest first (`v1`, `v2`, ..., `v10`).
    pub fn versions(&self) -> Result<Vec<String>, ModelError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ModelError::io("list", &self.root, e)),
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ModelError::io("list", &self.root, e))?;
            let name = entry.file_name();
            let number = name
                .to_str()
                .and_then(|n| n.strip_prefix('v'))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(number) = number.filter(|_| entry.path().join(CARD_FILE).is_file()) {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        Ok(numbers.into_iter().map(|n| format!("v{n}")).collect())
    }

    /// The newest version, if any.
    pub fn latest(&self) -> Result<Option<String>, ModelError> {
        Ok(self.versions()?.pop())
    }

    /// Writes `model` and `card` as the next version and returns its name.
    ///
    /// The files are written to a temporary directory that is then renamed,
    /// so a reader never sees a half-written version.
    pub fn save(
        &self,
        model: &ResponseRateModel,
        mut card: ModelCard,
    ) -> Result<String, ModelError> {
        self.save_version(|staging, version| {
            card.version = version.to_owned();
            model.weights().save(&staging.join(WEIGHTS_FILE))?;
            let pipeline = PipelineFile {
                pipeline: model.pipeline().clone(),
                architecture: model.architecture(),
                calibration: model.calibration(),
            };
            write_json(&staging.join(PIPELINE_FILE), &pipeline)?;
            write_json(&staging.join(CARD_FILE), &card)
        })
    }

    /// Creates the next version directory through a staging directory:
    /// `write` fills the staging directory, given the new version's name,
    /// and must write a `card.json`. Returns the version's name.
    pub(crate) fn save_version(
        &self,
        write: impl FnOnce(&Path, &str) -> Result<(), ModelError>,
    ) -> Result<String, ModelError> {
        let next = self
            .versions()?
            .last()
            .and_then(|v| v[1..].parse::<u64>().ok())
            .map_or(1, |n| n + 1);
        let version = format!("v{next}");

        std::fs::create_dir_all(&self.root).map_err(|e| ModelError::io("create", &self.root, e))?;
        let staging = self.root.join(format!(".staging-{version}"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| ModelError::io("remove", &staging, e))?;
        }
        std::fs::create_dir(&staging).map_err(|e| ModelError::io("create", &staging, e))?;
        write(&staging, &version)?;

        let target = self.root.join(&version);
        std::fs::rename(&staging, &target).map_err(|e| ModelError::io("rename", &staging, e))?;
        Ok(version)
    }

    /// Returns the directory of a stored version, or
    /// [`ModelError::VersionNotFound`].
    pub(crate) fn version_dir(&self, version: &str) -> Result<PathBuf, ModelError> {
        let directory = self.root.join(version);
        if version.contains(['/', '\\']) || !directory.join(CARD_FILE).is_file() {
            return Err(ModelError::VersionNotFound {
                version: version.to_owned(),
                root: self.root.clone(),
            });
        }
        Ok(directory)
    }

    /// The version in service: the one named in the `ACTIVE` file, or the
    /// newest when no version was promoted.
    pub fn active(&self) -> Result<Option<String>, ModelError> {
        let pointer = self.root.join(ACTIVE_FILE);
        match std::fs::read_to_string(&pointer) {
            Ok(text) => {
                let version = text.trim().to_owned();
                if !self.versions()?.contains(&version) {
                    return Err(ModelError::VersionNotFound {
                        version,
                        root: self.root.clone(),
                    });
                }
                Ok(Some(version))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.latest(),
            Err(e) => Err(ModelError::io("read", &pointer, e)),
        }
    }

    /// Makes `version` the one in service by rewriting the `ACTIVE` file
    /// (write, then rename, so readers never see a partial name).
    pub fn promote(&self, version: &str) -> Result<(), ModelError> {
        if !self.versions()?.iter().any(|v| v == version) {
            return Err(ModelError::VersionNotFound {
                version: version.to_owned(),
                root: self.root.clone(),
            });
        }
        let pointer = self.root.join(ACTIVE_FILE);
        let staging = self.root.join(format!(".{ACTIVE_FILE}.tmp"));
        std::fs::write(&staging, format!("{version}\n"))
            .map_err(|e| ModelError::io("write", &staging, e))?;
        std::fs::rename(&staging, &pointer).map_err(|e| ModelError::io("rename", &staging, e))
    }

    /// Loads a stored version and its card.
    pub fn load(&self, version: &str) -> Result<(ResponseRateModel, ModelCard), ModelError> {
        let directory = self.version_dir(version)?;
        let card: ModelCard = read_json(&directory.join(CARD_FILE))?;
        let stored: PipelineFile = read_json(&directory.join(PIPELINE_FILE))?;
        let weights = Weights::load(
            &directory.join(WEIGHTS_FILE),
            stored.architecture,
            stored.pipeline.width(),
        )?;
        let model = ResponseRateModel::new(
            stored.pipeline,
            stored.architecture,
            weights,
            stored.calibration,
        );
        Ok((model, card))
    }
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ModelError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| ModelError::io("write", path, e))
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io("read", path, e))?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })
}
