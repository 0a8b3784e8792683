use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The input fields of a model, in encoding order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    fields: Vec<Field>,
}

impl Schema {
    pub fn new(fields: Vec<Field>) -> Self {
        Schema { fields }
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Lists the fields a record may carry (all but crosses), comma-separated.
    pub(crate) fn input_field_names(&self) -> String {
        let names: Vec<&str> = self
            .fields
            .iter()
            .filter(|f| f.is_input())
            .map(|f| f.name.as_str())
            .collect();
        names.join(", ")
    }

    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One input field: its name and how to read its values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    name: String,
    kind: FieldKind,
}

impl Field {
    /// Creates a categorical field. Texts in `missing_tokens` (such as "unknown") are
    /// read as a missing value.
    pub fn categorical(name: &str, missing_tokens: &[&str]) -> Self {
        Field {
            name: name.to_owned(),
            kind: FieldKind::Categorical {
                missing_tokens: missing_tokens.iter().map(|t| t.to_string()).collect(),
            },
        }
    }

    /// Creates a categorical field derived from other categorical fields. Its
    /// level
    /// is the combination of their levels, such as month and day of month.
    ///
    /// Combinations seen fewer than `min_count` times in training, or not at
    /// all, share one "other" column; the field is missing when any source
    /// is missing. Records do not carry this field themselves.
    pub fn cross(name: &str, sources: &[&str], min_count: usize) -> Self {
        Field {
            name: name.to_owned(),
            kind: FieldKind::Cross {
                sources: sources.iter().map(|s| s.to_string()).collect(),
                min_count,
            },
        }
    }

    /// Creates a numeric field with no transform, no sentinel and no range limits.
    pub fn numeric(name: &str) -> Self {
        Field {
            name: name.to_owned(),
            kind: FieldKind::Numeric(NumericSpec::default()),
        }
    }

    /// Creates a numeric field read according to `spec`.
    pub fn numeric_with(name: &str, spec: NumericSpec) -> Self {
        Field {
            name: name.to_owned(),
            kind: FieldKind::Numeric(spec),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> &FieldKind {
        &self.kind
    }

    /// Reports whether records carry this field, which is false for crosses
    /// because they are derived.
    pub(crate) fn is_input(&self) -> bool {
        !matches!(self.kind, FieldKind::Cross { .. })
    }
}

/// The kind of a field, which decides how its values are read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Categorical {
        missing_tokens: Vec<String>,
    },
    Cross {
        sources: Vec<String>,
        min_count: usize,
    },
    Numeric(NumericSpec),
}

/// Reading rules for a numeric field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NumericSpec {
    /// Transform applied before standardisation.
    pub transform: Transform,
    /// A value that means "missing", such as -1 for "never contacted".
    pub missing_sentinel: Option<f64>,
    /// Smallest valid value (inclusive); smaller values are rejected.
    pub min: Option<f64>,
    /// Largest valid value (inclusive); larger values are rejected.
    pub max: Option<f64>,
}

/// A monotone transform applied to a numeric value before standardisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    #[default]
    Identity,
    /// sign(x) * ln(1 + |x|), for heavy-tailed counts and amounts.
    SignedLog1p,
}

impl Transform {
    pub(crate) fn apply(self, x: f64) -> f64 {
        match self {
            Transform::Identity => x,
            Transform::SignedLog1p => x.signum() * x.abs().ln_1p(),
        }
    }
}

/// One input value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Text(String),
    Missing,
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Number(x)
    }
}

impl From<i64> for Value {
    fn from(x: i64) -> Self {
        Value::Number(x as f64)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Missing, Into::into)
    }
}

/// One row of input: field name to value. An absent field is missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Record {
    values: BTreeMap<String, Value>,
}

impl Record {
    pub fn new() -> Self {
        Record::default()
    }

    /// Sets `field` to `value` and returns the record, for building rows inline.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.set(field, value);
        self
    }

    pub fn set(&mut self, field: &str, value: impl Into<Value>) {
        self.values.insert(field.to_owned(), value.into());
    }

    /// Returns the value of `field`, or [`Value::Missing`] when it is absent.
    pub fn get(&self, field: &str) -> &Value {
        self.values.get(field).unwrap_or(&Value::Missing)
    }

    pub(crate) fn field_names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}
