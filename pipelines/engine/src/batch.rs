//! Arrow record batches from events, the table DataFusion scans for each
//! micro-batch, and the JSON property function.

use crate::parse::EventColumn;
use copycar_events::StoredEvent;
use datafusion::arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result, exec_err};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, TableType, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::{Arc, Mutex};

/// Returns the Arrow schema of the source columns.
pub(crate) fn source_schema(columns: &[EventColumn]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| match c {
            EventColumn::Tenant | EventColumn::Type => Field::new(c.name(), DataType::Utf8, false),
            EventColumn::OccurredAt | EventColumn::ReceivedAt => Field::new(
                c.name(),
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            EventColumn::Offset => Field::new(c.name(), DataType::Int64, false),
            _ => Field::new(c.name(), DataType::Utf8, true),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Builds one record batch with the source columns of `events`.
pub(crate) fn events_to_batch(
    schema: &SchemaRef,
    columns: &[EventColumn],
    events: &[&StoredEvent],
) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|column| -> ArrayRef {
            let text = |f: fn(&StoredEvent) -> Option<&str>| -> ArrayRef {
                Arc::new(events.iter().map(|e| f(e)).collect::<StringArray>())
            };
            match column {
                EventColumn::Tenant => text(|e| Some(e.event.tenant.as_str())),
                EventColumn::EventId => text(|e| e.event.event_id.as_deref()),
                EventColumn::Type => text(|e| Some(e.event.event_type.as_str())),
                EventColumn::Campaign => text(|e| e.event.campaign.as_deref()),
                EventColumn::Account => text(|e| e.event.account.as_deref()),
                EventColumn::Recipient => text(|e| e.event.recipient.as_deref()),
                EventColumn::Channel => text(|e| e.event.channel.as_deref()),
                EventColumn::Variant => text(|e| e.event.variant.as_deref()),
                EventColumn::OccurredAt => Arc::new(TimestampMillisecondArray::from_iter_values(
                    events.iter().map(|e| e.event.occurred_at),
                )),
                EventColumn::ReceivedAt => Arc::new(TimestampMillisecondArray::from_iter_values(
                    events.iter().map(|e| e.event.received_at),
                )),
                EventColumn::Offset => Arc::new(Int64Array::from_iter_values(
                    events.iter().map(|e| e.offset as i64),
                )),
                EventColumn::Properties => {
                    let mut builder = StringBuilder::new();
                    for e in events {
                        let json = serde_json::to_string(&e.event.properties)
                            .unwrap_or_else(|_| "{}".to_string());
                        builder.append_value(json);
                    }
                    Arc::new(builder.finish())
                }
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// A table whose content is replaced before each query: DataFusion scans
/// the batches in the slot at the time of the scan.
#[derive(Debug)]
pub(crate) struct SlotTable {
    schema: SchemaRef,
    slot: Arc<Mutex<Vec<RecordBatch>>>,
}

impl SlotTable {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        SlotTable {
            schema,
            slot: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(crate) fn slot(&self) -> Arc<Mutex<Vec<RecordBatch>>> {
        self.slot.clone()
    }
}

#[async_trait::async_trait]
impl TableProvider for SlotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = self.slot.lock().expect("slot lock").clone();
        MemTable::try_new(self.schema.clone(), vec![batches])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// `extract_json_string(json, '$.a.b')`: the string (or number as text) at a
/// path of `$`-rooted object keys, or NULL. Arroyo has the same function,
/// and `properties->>'key'` is rewritten to it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ExtractJsonString {
    signature: Signature,
}

impl ExtractJsonString {
    pub(crate) fn new() -> Self {
        ExtractJsonString {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Utf8],
                Volatility::Immutable,
            ),
        }
    }
}

fn lookup(json: &str, path: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut current = &value;
    let rest = path.strip_prefix('$')?;
    for key in rest.split('.').filter(|k| !k.is_empty()) {
        current = current.get(key)?;
    }
    match current {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

impl ScalarUDFImpl for ExtractJsonString {
    fn name(&self) -> &str {
        "extract_json_string"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [json, path] = arrays.as_slice() else {
            return exec_err!("extract_json_string takes a JSON string and a path");
        };
        let json = json.as_any().downcast_ref::<StringArray>();
        let path = path.as_any().downcast_ref::<StringArray>();
        let (Some(json), Some(path)) = (json, path) else {
            return exec_err!("extract_json_string takes two strings");
        };
        let out: StringArray = (0..json.len())
            .map(|i| {
                if json.is_null(i) || path.is_null(i) {
                    None
                } else {
                    lookup(json.value(i), path.value(i))
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lookup_follows_dotted_path() {
        let json = r#"{"sender": {"domain": "example.com"}, "n": 3}"#;
        assert_eq!(
            lookup(json, "$.sender.domain").as_deref(),
            Some("example.com")
        );
        assert_eq!(lookup(json, "$.n").as_deref(), Some("3"));
        assert_eq!(lookup(json, "$.missing"), None);
        assert_eq!(lookup("not json", "$.n"), None);
    }
}
