//! Scalar values held in window state and written to checkpoints.

use crate::plan::Merge;
use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A group key or partial aggregate value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
}

impl Value {
    /// Reads row `row` of `array`. Timestamps become their integer value in
    /// the array's unit; types without a variant become their display text.
    pub(crate) fn from_array(array: &ArrayRef, row: usize) -> Result<Value> {
        if array.is_null(row) {
            return Ok(Value::Null);
        }
        let scalar = ScalarValue::try_from_array(array, row)?;
        let value = match scalar {
            ScalarValue::Boolean(Some(b)) => Value::Bool(b),
            ScalarValue::Int8(Some(v)) => Value::Int(v.into()),
            ScalarValue::Int16(Some(v)) => Value::Int(v.into()),
            ScalarValue::Int32(Some(v)) => Value::Int(v.into()),
            ScalarValue::Int64(Some(v)) => Value::Int(v),
            ScalarValue::UInt8(Some(v)) => Value::UInt(v.into()),
            ScalarValue::UInt16(Some(v)) => Value::UInt(v.into()),
            ScalarValue::UInt32(Some(v)) => Value::UInt(v.into()),
            ScalarValue::UInt64(Some(v)) => Value::UInt(v),
            ScalarValue::Float32(Some(v)) => Value::Float(v.into()),
            ScalarValue::Float64(Some(v)) => Value::Float(v),
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Value::Str(s),
            ScalarValue::TimestampSecond(Some(v), _)
            | ScalarValue::TimestampMillisecond(Some(v), _)
            | ScalarValue::TimestampMicrosecond(Some(v), _)
            | ScalarValue::TimestampNanosecond(Some(v), _) => Value::Int(v),
            other if other.is_null() => Value::Null,
            other => Value::Str(other.to_string()),
        };
        Ok(value)
    }

    /// Builds an array of `data_type` from values read by [`Value::from_array`].
    pub(crate) fn to_array(values: &[Value], data_type: &DataType) -> Result<ArrayRef> {
        let scalars: Vec<ScalarValue> = values
            .iter()
            .map(|v| match v {
                Value::Null => ScalarValue::try_from(data_type),
                Value::Bool(b) => Ok(ScalarValue::Boolean(Some(*b))),
                Value::Int(i) => Ok(ScalarValue::Int64(Some(*i))),
                Value::UInt(u) => Ok(ScalarValue::UInt64(Some(*u))),
                Value::Float(f) => Ok(ScalarValue::Float64(Some(*f))),
                Value::Str(s) => Ok(ScalarValue::Utf8(Some(s.clone()))),
            })
            .map(|s| s.and_then(|s| s.cast_to(data_type)))
            .collect::<Result<_>>()?;
        if scalars.is_empty() {
            return Ok(datafusion::arrow::array::new_empty_array(data_type));
        }
        ScalarValue::iter_to_array(scalars)
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::UInt(a), Value::UInt(b)) => Some(a.cmp(b)),
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (a, b) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        }
    }

    /// Merges two partial values of one aggregate; NULL is the identity, as
    /// SQL aggregates skip NULLs.
    pub(crate) fn merge(self, other: Value, merge: Merge) -> Value {
        match (self, other) {
            (Value::Null, v) | (v, Value::Null) => v,
            (a, b) => match merge {
                Merge::Sum => match (&a, &b) {
                    (Value::Int(x), Value::Int(y)) => Value::Int(x.saturating_add(*y)),
                    (Value::UInt(x), Value::UInt(y)) => Value::UInt(x.saturating_add(*y)),
                    _ => match (a.as_f64(), b.as_f64()) {
                        (Some(x), Some(y)) => Value::Float(x + y),
                        _ => a,
                    },
                },
                Merge::Min => match a.compare(&b) {
                    Some(Ordering::Greater) => b,
                    _ => a,
                },
                Merge::Max => match a.compare(&b) {
                    Some(Ordering::Less) => b,
                    _ => a,
                },
            },
        }
    }
}

/// Converts one output cell to JSON. Timestamps are Unix milliseconds, as in
/// events; structs (the window) become objects.
pub(crate) fn json_of(array: &ArrayRef, row: usize) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    if array.is_null(row) {
        return Ok(J::Null);
    }
    if let DataType::Struct(fields) = array.data_type() {
        let structs = array
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StructArray>()
            .expect("struct type has a struct array");
        let mut object = serde_json::Map::new();
        for (i, field) in fields.iter().enumerate() {
            object.insert(field.name().clone(), json_of(structs.column(i), row)?);
        }
        return Ok(J::Object(object));
    }
    let scalar = ScalarValue::try_from_array(array, row)?;
    let json = match scalar {
        ScalarValue::TimestampSecond(Some(v), _) => J::from(v * 1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => J::from(v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => J::from(v / 1_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => J::from(v / 1_000_000),
        ScalarValue::Decimal128(Some(v), _, scale) => J::from(v as f64 / 10f64.powi(scale.into())),
        other => match Value::from_array(&other.to_array()?, 0)? {
            Value::Null => J::Null,
            Value::Bool(b) => J::from(b),
            Value::Int(i) => J::from(i),
            Value::UInt(u) => J::from(u),
            Value::Float(f) => serde_json::Number::from_f64(f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::from(s),
        },
    };
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_treats_null_as_identity() {
        assert_eq!(Value::Null.merge(Value::Int(3), Merge::Sum), Value::Int(3));
        assert_eq!(Value::Int(3).merge(Value::Null, Merge::Min), Value::Int(3));
    }

    #[test]
    fn merge_sums_and_compares() {
        assert_eq!(
            Value::Int(3).merge(Value::Int(4), Merge::Sum),
            Value::Int(7)
        );
        assert_eq!(
            Value::Int(3).merge(Value::Int(4), Merge::Min),
            Value::Int(3)
        );
        assert_eq!(
            Value::Int(3).merge(Value::Int(4), Merge::Max),
            Value::Int(4)
        );
        assert_eq!(
            Value::Str("b".into()).merge(Value::Str("a".into()), Merge::Min),
            Value::Str("a".into())
        );
        assert_eq!(
            Value::Float(0.5).merge(Value::Int(1), Merge::Sum),
            Value::Float(1.5)
        );
    }
}
