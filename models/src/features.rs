//! The fitted feature pipeline: records in, a dense `f32` matrix out.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::schema::{Field, FieldKind, NumericSpec, Record, Schema, Value};

/// Encodes records as feature rows, with statistics fitted on training rows.
///
/// A categorical field becomes one-hot columns, one per level seen in
/// training, followed by one column for missing values (an absent value or
/// one of the field's missing tokens). A cross field is encoded the same way,
/// with one more column, before the missing one, for rare and unseen
/// combinations.
///
/// A numeric field is transformed, then standardised with the training mean
/// and standard deviation. A missing value encodes as the mean (0). When
/// training had missing values, the field also gets a 0/1 missing-indicator
/// column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeaturePipeline {
    schema: Schema,
    encoders: Vec<FieldEncoder>,
    width: usize,
    /// The training mean of every column: the reference input that factor
    /// attribution substitutes for one field at a time.
    baseline: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FieldEncoder {
    Categorical {
        levels: Vec<String>,
        /// Whether rare and unseen levels share a column (crosses only);
        /// otherwise an unseen level is invalid.
        other_column: bool,
        offset: usize,
    },
    Numeric {
        mean: f64,
        std: f64,
        missing_column: bool,
        offset: usize,
    },
}

impl FieldEncoder {
    fn offset(&self) -> usize {
        match self {
            FieldEncoder::Categorical { offset, .. } | FieldEncoder::Numeric { offset, .. } => {
                *offset
            }
        }
    }

    fn width(&self) -> usize {
        match self {
            FieldEncoder::Categorical {
                levels,
                other_column,
                ..
            } => levels.len() + usize::from(*other_column) + 1,
            FieldEncoder::Numeric { missing_column, .. } => 1 + usize::from(*missing_column),
        }
    }
}

impl FeaturePipeline {
    /// Fits level lists and scaling statistics on `records`, which should be
    /// the training rows only.
    pub fn fit(schema: &Schema, records: &[Record]) -> Result<Self, ModelError> {
        if records.is_empty() {
            return Err(ModelError::Training(
                "cannot fit the feature pipeline on zero rows".into(),
            ));
        }
        for record in records {
            check_field_names(schema, record)?;
        }
        check_cross_sources(schema)?;

        let mut encoders = Vec::with_capacity(schema.fields().len());
        let mut offset = 0;
        for field in schema.fields() {
            let name = field.name();
            let encoder = match field.kind() {
                FieldKind::Categorical { missing_tokens } => {
                    let mut levels = std::collections::BTreeSet::new();
                    for record in records {
                        if let Some(level) = read_category(name, missing_tokens, record.get(name))?
                        {
                            levels.insert(level);
                        }
                    }
                    FieldEncoder::Categorical {
                        levels: levels.into_iter().collect(),
                        other_column: false,
                        offset,
                    }
                }
                FieldKind::Cross { min_count, .. } => {
                    let mut counts = std::collections::BTreeMap::new();
                    for record in records {
                        if let Some(level) = read_cross(schema, field, record)? {
                            *counts.entry(level).or_insert(0usize) += 1;
                        }
                    }
                    FieldEncoder::Categorical {
                        levels: counts
                            .into_iter()
                            .filter(|(_, count)| count >= min_count)
                            .map(|(level, _)| level)
                            .collect(),
                        other_column: true,
                        offset,
                    }
                }
                FieldKind::Numeric(spec) => {
                    let mut values = Vec::with_capacity(records.len());
                    for record in records {
                        if let Some(x) = read_number(name, spec, record.get(name))? {
                            values.push(x);
                        }
                    }
                    let (mean, std) = mean_and_std(&values);
                    FieldEncoder::Numeric {
                        mean,
                        std,
                        missing_column: values.len() < records.len(),
                        offset,
                    }
                }
            };
            offset += encoder.width();
            encoders.push(encoder);
        }

        let mut pipeline = FeaturePipeline {
            schema: schema.clone(),
            encoders,
            width: offset,
            baseline: vec![0.0; offset],
        };
        let encoded = pipeline.transform(records)?;
        let mut baseline = vec![0f64; offset];
        for row in encoded.chunks(offset) {
            for (sum, x) in baseline.iter_mut().zip(row) {
                *sum += f64::from(*x);
            }
        }
        pipeline.baseline = baseline
            .iter()
            .map(|sum| (sum / records.len() as f64) as f32)
            .collect();
        Ok(pipeline)
    }

    /// Encodes `records` as a row-major matrix of `records.len()` rows and
    /// [`width`](Self::width) columns.
    ///
    /// Fails with [`ModelError::InvalidFeature`] naming the field when a value
    /// is of the wrong type, out of range, not finite, or a category level
    /// that training never saw. Fails with [`ModelError::UnknownFeature`] when a
    /// record names a field outside the schema.
    pub fn transform(&self, records: &[Record]) -> Result<Vec<f32>, ModelError> {
        let mut matrix = vec![0f32; records.len() * self.width];
        for (record, row) in records.iter().zip(matrix.chunks_mut(self.width)) {
            self.encode_into(record, row)?;
        }
        Ok(matrix)
    }

    /// Number of encoded columns.
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub(crate) fn baseline(&self) -> &[f32] {
        &self.baseline
    }

    /// Returns the encoded column range of each field, in schema order.
    pub(crate) fn field_columns(&self) -> Vec<std::ops::Range<usize>> {
        self.encoders
            .iter()
            .map(|e| e.offset()..e.offset() + e.width())
            .collect()
    }

    fn encode_into(&self, record: &Record, row: &mut [f32]) -> Result<(), ModelError> {
        check_field_names(&self.schema, record)?;
        for (field, encoder) in self.schema.fields().iter().zip(&self.encoders) {
            let name = field.name();
            let value = record.get(name);
            match (field.kind(), encoder) {
                (
                    FieldKind::Categorical { .. } | FieldKind::Cross { .. },
                    FieldEncoder::Categorical {
                        levels,
                        other_column,
                        offset,
                    },
                ) => {
                    let level = match field.kind() {
                        FieldKind::Categorical { missing_tokens } => {
                            read_category(name, missing_tokens, value)?
                        }
                        _ => read_cross(&self.schema, field, record)?,
                    };
                    let other = levels.len();
                    let column = match level {
                        None => other + usize::from(*other_column),
                        Some(level) => match levels.binary_search(&level) {
                            Ok(column) => column,
                            Err(_) if *other_column => other,
                            Err(_) => {
                                return Err(ModelError::invalid(
                                    name,
                                    level,
                                    format!("expected one of: {}", levels.join(", ")),
                                ));
                            }
                        },
                    };
                    row[offset + column] = 1.0;
                }
                (
                    FieldKind::Numeric(spec),
                    FieldEncoder::Numeric {
                        mean,
                        std,
                        missing_column,
                        offset,
                    },
                ) => match read_number(name, spec, value)? {
                    Some(x) => row[*offset] = ((x - mean) / std) as f32,
                    None if *missing_column => row[offset + 1] = 1.0,
                    // NOTE: training had no missing values here, so the value
                    // encodes as the mean with no indicator the network can use.
                    None => {}
                },
                _ => unreachable!("encoders are built from the same schema"),
            }
        }
        Ok(())
    }
}

fn check_field_names(schema: &Schema, record: &Record) -> Result<(), ModelError> {
    for name in record.field_names() {
        if !schema.field(name).is_some_and(|f| f.is_input()) {
            return Err(ModelError::UnknownFeature {
                field: name.to_owned(),
                expected: schema.input_field_names(),
            });
        }
    }
    Ok(())
}

fn check_cross_sources(schema: &Schema) -> Result<(), ModelError> {
    for field in schema.fields() {
        let FieldKind::Cross { sources, .. } = field.kind() else {
            continue;
        };
        for source in sources {
            let is_categorical = schema
                .field(source)
                .is_some_and(|f| matches!(f.kind(), FieldKind::Categorical { .. }));
            if !is_categorical {
                return Err(ModelError::Training(format!(
                    "cross field `{}` needs categorical field `{source}` in the schema",
                    field.name()
                )));
            }
        }
    }
    Ok(())
}

/// Reads the combined level of a cross field, such as "may|5"; `None` when
/// any source is missing.
fn read_cross(
    schema: &Schema,
    field: &Field,
    record: &Record,
) -> Result<Option<String>, ModelError> {
    let FieldKind::Cross { sources, .. } = field.kind() else {
        unreachable!("read_cross is called for cross fields only");
    };
    let mut parts = Vec::with_capacity(sources.len());
    for source in sources {
        let source_field = schema
            .field(source)
            .expect("checked by check_cross_sources");
        let FieldKind::Categorical { missing_tokens } = source_field.kind() else {
            unreachable!("checked by check_cross_sources");
        };
        match read_category(source, missing_tokens, record.get(source))? {
            Some(level) => parts.push(level),
            None => return Ok(None),
        }
    }
    Ok(Some(parts.join("|")))
}

/// Reads a category level; `None` means missing.
fn read_category(
    name: &str,
    missing_tokens: &[String],
    value: &Value,
) -> Result<Option<String>, ModelError> {
    let level = match value {
        Value::Missing => return Ok(None),
        Value::Text(text) => text.trim().to_owned(),
        // Integer codes such as a day of the month are accepted as numbers.
        Value::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Value::Number(x) => {
            return Err(ModelError::invalid(
                name,
                x.to_string(),
                "expected a category, not a fraction",
            ));
        }
    };
    if level.is_empty() || missing_tokens.contains(&level) {
        return Ok(None);
    }
    Ok(Some(level))
}

/// Reads, range-checks and transforms a number; `None` means missing.
fn read_number(name: &str, spec: &NumericSpec, value: &Value) -> Result<Option<f64>, ModelError> {
    let x = match value {
        Value::Missing => return Ok(None),
        Value::Number(x) => *x,
        Value::Text(text) if text.trim().is_empty() => return Ok(None),
        Value::Text(text) => text
            .trim()
            .parse::<f64>()
            .map_err(|_| ModelError::invalid(name, text.as_str(), "expected a number"))?,
    };
    if !x.is_finite() {
        return Err(ModelError::invalid(
            name,
            x.to_string(),
            "expected a finite number",
        ));
    }
    if spec.missing_sentinel == Some(x) {
        return Ok(None);
    }
    if let Some(min) = spec.min.filter(|min| x < *min) {
        return Err(ModelError::invalid(
            name,
            x.to_string(),
            format!("must be at least {min}"),
        ));
    }
    if let Some(max) = spec.max.filter(|max| x > *max) {
        return Err(ModelError::invalid(
            name,
            x.to_string(),
            format!("must be at most {max}"),
        ));
    }
    Ok(Some(spec.transform.apply(x)))
}

/// Returns the mean and population standard deviation; a constant or empty
/// column gets a standard deviation of 1 so that scaling is a no-op.
fn mean_and_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let std = variance.sqrt();
    (mean, if std > 1e-12 { std } else { 1.0 })
}

#[cfg(test)]
mod tests;
