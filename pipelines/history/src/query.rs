//! Ad-hoc SQL over one tenant's history, read-only and within limits.

use crate::compactor::History;
use crate::error::QueryError;
use crate::guard::{clean_message, parse_read_only, plan_error};
use crate::schema::event_schema;
use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::json::ArrayWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The only table a query can name.
pub const TABLE_NAME: &str = "events";

/// Limits of one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Wall-clock limit from parsing to the last row.
    pub timeout: Duration,
    /// Memory that operators (sorts, joins, aggregates) may reserve. Spilling
    /// to disk is disabled, so a query that needs more fails.
    pub memory_bytes: usize,
    /// Maximum rows returned. Further rows are dropped and the output is
    /// marked as truncated.
    pub max_rows: usize,
    /// Maximum size of the returned values as JSON, in bytes. Rows past it
    /// are dropped like rows past `max_rows`.
    pub max_output_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(30),
            memory_bytes: 256 << 20,
            max_rows: 1000,
            max_output_bytes: 8 << 20,
        }
    }
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    pub name: String,
    /// The Arrow data type, such as `Int64` or `Utf8`.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// The result of a query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryOutput {
    pub columns: Vec<Column>,
    /// Row-major values; timestamps are RFC 3339 strings.
    pub rows: Vec<Vec<Value>>,
    /// True when rows were dropped by `max_rows` or `max_output_bytes`.
    pub truncated: bool,
    pub elapsed_ms: u64,
}

impl History {
    /// Runs one read-only query over `tenant`'s history.
    ///
    /// The query runs in a session of its own whose only table is `events`,
    /// made from the tenant's committed files. The session has no
    /// information schema, no URL tables, no table factories and no
    /// file-reading table functions, so nothing in the SQL can name another
    /// file.
    pub async fn query(
        &self,
        tenant: &str,
        sql: &str,
        limits: &QueryLimits,
    ) -> Result<QueryOutput, QueryError> {
        let started = Instant::now();
        if tenant.is_empty() {
            return Err(QueryError::Invalid("tenant is empty".into()));
        }
        let statement = parse_read_only(sql)?;
        let context = self.session(tenant, limits)?;

        let run = async {
            let state = context.state();
            let plan = state
                .statement_to_plan(statement)
                .await
                .map_err(|e| plan_error(sql, &e))?;
            SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false)
                .verify_plan(&plan)
                .map_err(|e| QueryError::NotReadOnly {
                    message: format!(
                        "only a SELECT or WITH query is allowed: {}",
                        clean_message(&e.strip_backtrace())
                    ),
                })?;
            let frame = context
                .execute_logical_plan(plan)
                .await
                .map_err(|e| plan_error(sql, &e))?;
            let schema = frame.schema().as_arrow().clone();
            let stream = frame
                .execute_stream()
                .await
                .map_err(|e| execution_error(e, limits))?;
            collect_rows(&schema, stream, limits).await
        };
        let (columns, rows, truncated) = match tokio::time::timeout(limits.timeout, run).await {
            Ok(result) => result?,
            Err(_) => return Err(QueryError::Timeout(limits.timeout)),
        };
        Ok(QueryOutput {
            columns,
            rows,
            truncated,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Builds a session for one query, with the memory cap and spilling off.
    fn session(&self, tenant: &str, limits: &QueryLimits) -> Result<SessionContext, QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(limits.memory_bytes)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| internal("build the query runtime", e))?;
        let mut config = SessionConfig::new().with_information_schema(false);
        config.options_mut().sql_parser.collect_spans = true;
        let state = SessionStateBuilder::new_with_default_features()
            .with_config(config)
            .with_runtime_env(runtime)
            // Without table factories, `CREATE EXTERNAL TABLE` has nothing
            // to create even if DDL were let through.
            .with_table_factories(HashMap::new())
            .build();
        let context = SessionContext::new_with_state(state);
        context
            .register_table(TABLE_NAME, self.events_table(tenant)?)
            .map_err(|e| internal("register the events table", e))?;
        Ok(context)
    }

    /// Returns a table over exactly the tenant's committed files: a listing
    /// of file paths, never of a directory, so a file being written or
    /// merged is not read twice or half-written.
    fn events_table(&self, tenant: &str) -> Result<Arc<dyn TableProvider>, QueryError> {
        let files = self.tenant_files(tenant);
        if files.is_empty() {
            let empty = MemTable::try_new(event_schema(), vec![vec![]])
                .map_err(|e| internal("build an empty events table", e))?;
            return Ok(Arc::new(empty));
        }
        // DataFusion reads a listed file that does not exist as no rows, so
        // a missing file is reported instead of silently dropping history.
        if let Some(missing) = files.iter().find(|path| !path.exists()) {
            return Err(internal(
                "open history files",
                format!("{} is missing", missing.display()),
            ));
        }
        let urls = files
            .iter()
            .map(|path| ListingTableUrl::parse(path.to_string_lossy()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| internal("list history files", e))?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(event_schema());
        let table = ListingTable::try_new(config).map_err(|e| internal("open history files", e))?;
        Ok(Arc::new(table))
    }
}

async fn collect_rows(
    schema: &Schema,
    mut stream: datafusion::execution::SendableRecordBatchStream,
    limits: &QueryLimits,
) -> Result<(Vec<Column>, Vec<Vec<Value>>, bool), QueryError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| Column {
            name: field.name().clone(),
            data_type: field.data_type().to_string(),
        })
        .collect();
    let mut rows: Vec<Vec<Value>> = Vec::new();
    let mut output_bytes = 0usize;

    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| execution_error(e, limits))?;
        let values = batch_columns_to_json(&batch)?;
        for row_index in 0..batch.num_rows() {
            if rows.len() == limits.max_rows {
                return Ok((columns, rows, true));
            }
            let row: Vec<Value> = values.iter().map(|c| c[row_index].clone()).collect();
            output_bytes += row.iter().map(json_size).sum::<usize>();
            if output_bytes > limits.max_output_bytes {
                return Ok((columns, rows, true));
            }
            rows.push(row);
        }
    }
    Ok((columns, rows, false))
}

/// Converts each column of a batch to JSON values, one per row.
fn batch_columns_to_json(batch: &RecordBatch) -> Result<Vec<Vec<Value>>, QueryError> {
    batch
        .columns()
        .iter()
        .map(|array| column_to_json(array))
        .collect()
}

/// Converts one column with Arrow's JSON writer. A type the writer does not
/// support is formatted as text instead.
fn column_to_json(array: &ArrayRef) -> Result<Vec<Value>, QueryError> {
    let field = Field::new("v", array.data_type().clone(), true);
    let single = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array.clone()])
        .map_err(|e| internal("convert a result column", e))?;
    let mut writer = ArrayWriter::new(Vec::new());
    let written = writer.write(&single).and_then(|_| writer.finish());
    if written.is_ok()
        && let Ok(Value::Array(objects)) = serde_json::from_slice(&writer.into_inner())
    {
        return Ok(objects
            .into_iter()
            .map(|mut object| object.get_mut("v").map(Value::take).unwrap_or(Value::Null))
            .collect());
    }

    let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
        .map_err(|e| internal("format a result column", e))?;
    Ok((0..array.len())
        .map(|i| {
            if array.is_null(i) {
                Value::Null
            } else {
                Value::String(formatter.value(i).to_string())
            }
        })
        .collect())
}

fn json_size(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::String(s) => s.len() + 2,
        Value::Bool(_) | Value::Number(_) => 8,
        other => other.to_string().len(),
    }
}

/// Maps an execution error: memory exhaustion, a fault in the query (such
/// as a failed cast), or an internal failure that is logged and hidden.
fn execution_error(error: DataFusionError, limits: &QueryLimits) -> QueryError {
    let root = error.find_root();
    let message = error.strip_backtrace();
    if matches!(root, DataFusionError::ResourcesExhausted(_))
        || message.contains("Resources exhausted")
    {
        return QueryError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        };
    }
    match root {
        DataFusionError::ArrowError(..)
        | DataFusionError::Execution(_)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => QueryError::Execution(clean_message(&message)),
        _ => internal("run a query", error),
    }
}

fn internal(action: &str, error: impl std::fmt::Display) -> QueryError {
    tracing::error!(error = %error, "failed to {action}");
    QueryError::Internal
}
