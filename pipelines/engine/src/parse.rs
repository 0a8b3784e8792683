//! Parsing a pipeline file in Arroyo's SQL dialect into a [`PipelineSpec`].
//!
//! DataFusion's parser (sqlparser) does not know the `WATERMARK FOR` clause,
//! so it is cut out of the text first: its characters are replaced by spaces,
//! which keeps every other line and column where it was, and its expression is
//! parsed on its own from the original tokens.

use crate::error::SqlError;
use crate::plan::{self, OutputSpec};
use datafusion::sql::sqlparser::ast::{
    CreateTable, CreateTableOptions, DateTimeField, Expr, ObjectName, ObjectNamePart, Spanned,
    SqlOption, Statement, TableObject, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan, Tokenizer};
use std::collections::HashSet;

/// Default allowed lateness when the source does not set `allowed_lateness`.
pub const DEFAULT_ALLOWED_LATENESS_MS: i64 = 0;
/// Default time a row stays in the live results after its window can no
/// longer change: 30 days.
pub const DEFAULT_RESULT_RETENTION_MS: i64 = 30 * 86_400_000;
/// Default limit of open windows per tenant and output.
pub const DEFAULT_MAX_OPEN_WINDOWS: usize = 50_000;
/// Highest `max_open_windows` a source may set.
pub const MAX_OPEN_WINDOWS_LIMIT: usize = 100_000;
/// Default limit of live result rows per tenant and output.
pub const DEFAULT_MAX_RESULT_ROWS: usize = 100_000;
/// Highest `max_result_rows` a source may set.
pub const MAX_RESULT_ROWS_LIMIT: usize = 1_000_000;
/// Most INSERT or SELECT queries in one pipeline: each output keeps its own
/// window state per tenant.
pub const MAX_OUTPUTS: usize = 8;
/// Default idle time after which the watermark advances with the wall clock.
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 5_000;

/// A parsed pipeline: one event source, its views and one or more outputs.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub name: String,
    pub source: SourceSpec,
    /// `CREATE VIEW` statements in file order, as SQL text for DataFusion.
    pub(crate) views: Vec<String>,
    pub(crate) outputs: Vec<OutputSpec>,
}

impl PipelineSpec {
    /// Returns the sink tables the pipeline writes, in file order.
    pub fn sinks(&self) -> Vec<String> {
        self.outputs.iter().map(|o| o.sink.clone()).collect()
    }

    /// Returns the maximum number of windows and live rows one tenant can
    /// keep in this pipeline, over all its outputs. An open window always
    /// has a row, and closed rows are trimmed to `max_result_rows`, so per
    /// output that is the larger of the two limits.
    pub fn window_capacity(&self) -> usize {
        let per_output = self
            .source
            .max_open_windows
            .max(self.source.max_result_rows);
        self.outputs.len() * per_output
    }
}

/// Where events come from. Both connectors read the embedded event log in
/// this engine; `fluvio` keeps the topic so the same file runs on Arroyo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connector {
    EventLog,
    Fluvio { topic: String },
}

/// The event source table and its event-time settings.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub connector: Connector,
    pub columns: Vec<EventColumn>,
    /// The column the watermark is defined on.
    pub event_time: EventColumn,
    pub watermark_delay_ms: i64,
    pub allowed_lateness_ms: i64,
    pub idle_timeout_ms: i64,
    /// How long a row stays in the live results after its window can no
    /// longer change (end plus allowed lateness).
    pub result_retention_ms: i64,
    /// Most open windows per tenant and output; rows that would open more
    /// are refused and counted.
    pub max_open_windows: usize,
    /// Maximum live result rows per tenant and output. Past it, the rows of
    /// closed windows leave the live results oldest first, before their
    /// retention ends.
    pub max_result_rows: usize,
}

/// A column of the event source, one per [`copycar_events::Event`] field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventColumn {
    Tenant,
    EventId,
    Type,
    Campaign,
    Account,
    Recipient,
    Channel,
    Variant,
    OccurredAt,
    ReceivedAt,
    Properties,
    Offset,
}

impl EventColumn {
    pub const ALL: [EventColumn; 12] = [
        EventColumn::Tenant,
        EventColumn::EventId,
        EventColumn::Type,
        EventColumn::Campaign,
        EventColumn::Account,
        EventColumn::Recipient,
        EventColumn::Channel,
        EventColumn::Variant,
        EventColumn::OccurredAt,
        EventColumn::ReceivedAt,
        EventColumn::Properties,
        EventColumn::Offset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventColumn::Tenant => "tenant",
            EventColumn::EventId => "event_id",
            EventColumn::Type => "type",
            EventColumn::Campaign => "campaign",
            EventColumn::Account => "account",
            EventColumn::Recipient => "recipient",
            EventColumn::Channel => "channel",
            EventColumn::Variant => "variant",
            EventColumn::OccurredAt => "occurred_at",
            EventColumn::ReceivedAt => "received_at",
            EventColumn::Properties => "properties",
            EventColumn::Offset => "offset",
        }
    }

    fn from_name(name: &str) -> Option<EventColumn> {
        EventColumn::ALL.into_iter().find(|c| c.name() == name)
    }

    pub(crate) fn is_time(self) -> bool {
        matches!(self, EventColumn::OccurredAt | EventColumn::ReceivedAt)
    }
}

/// Parses the pipeline `name` from the SQL text of one file.
pub fn parse_pipeline(name: &str, sql: &str) -> Result<PipelineSpec, SqlError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location.line, e.location.column, e.message))?;
    let (text, watermarks) = cut_watermarks(sql, &tokens)?;
    copycar_history::check_expression_depth(&text)
        .map_err(|(at, message)| SqlError::at(at.line, at.column, message))?;

    let mut statements = Parser::new(&dialect)
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_statements())
        .map_err(parser_error)?;

    let mut source: Option<SourceSpec> = None;
    let mut sinks: HashSet<String> = HashSet::new();
    let mut views: Vec<String> = Vec::new();
    let mut outputs: Vec<OutputSpec> = Vec::new();
    for statement in &mut statements {
        rewrite_json_arrows(statement);
    }
    let owners = watermark_owners(&statements, &watermarks);
    let mut watermarks: Vec<Option<Watermark>> = watermarks.into_iter().map(Some).collect();

    for (index, statement) in statements.iter().enumerate() {
        match statement {
            Statement::CreateTable(create) => {
                let table = object_name(&create.name);
                // Result row keys join the sink name with other parts by
                // U+001F, so a name must not contain control characters.
                if table.chars().any(char::is_control) {
                    return Err(SqlError::at_span(
                        create.name.span(),
                        format!("table name {table:?} contains a control character"),
                    ));
                }
                let watermark = owners
                    .iter()
                    .position(|owner| *owner == Some(index))
                    .and_then(|w| watermarks[w].take());
                let options = table_options(&create.table_options)?;
                let kind = options
                    .iter()
                    .find(|o| o.key == "type")
                    .map(|o| o.value.clone());
                let is_source = match kind.as_deref() {
                    Some("source") => true,
                    Some("sink") => false,
                    Some(other) => {
                        let option = options.iter().find(|o| o.key == "type").unwrap();
                        return Err(SqlError::at_span(
                            option.span,
                            format!(
                                "table option `type` is `{other}`, but it must be `source` or `sink`"
                            ),
                        ));
                    }
                    None => watermark.is_some() || !create.columns.is_empty(),
                };
                if is_source {
                    if source.is_some() {
                        return Err(SqlError::at_span(
                            create.name.span(),
                            format!(
                                "table `{table}` is a second source, but a pipeline reads exactly one event source"
                            ),
                        ));
                    }
                    source = Some(source_spec(create, &table, &options, watermark)?);
                } else {
                    if watermark.is_some() {
                        return Err(SqlError::at_span(
                            create.name.span(),
                            format!(
                                "sink table `{table}` has a WATERMARK clause, but only the source has event time"
                            ),
                        ));
                    }
                    check_sink_options(&options)?;
                    sinks.insert(table);
                }
            }
            Statement::CreateView(view) => {
                check_no_window_calls(&view.query)?;
                views.push(format!("CREATE VIEW {} AS {}", view.name, view.query));
            }
            Statement::Insert(insert) => {
                let Some(source_spec) = &source else {
                    return Err(no_source(statement_span(statement)));
                };
                let TableObject::TableName(table_name) = &insert.table else {
                    return Err(SqlError::at_span(
                        statement_span(statement),
                        "INSERT INTO must name a sink table",
                    ));
                };
                let sink = object_name(table_name);
                if !sinks.contains(&sink) {
                    return Err(SqlError::at_span(
                        table_name.span(),
                        format!(
                            "sink table `{sink}` is not defined; declare it with CREATE TABLE {sink} WITH (connector = 'preview', type = 'sink') first"
                        ),
                    ));
                }
                if outputs.iter().any(|o| o.sink == sink) {
                    return Err(SqlError::at_span(
                        table_name.span(),
                        format!(
                            "sink table `{sink}` already has an INSERT; rows of two queries would overwrite each other, so give each query its own sink"
                        ),
                    ));
                }
                let Some(query) = &insert.source else {
                    return Err(SqlError::at_span(
                        statement_span(statement),
                        "INSERT INTO needs a SELECT query",
                    ));
                };
                outputs.push(plan::plan_output(&sink, query, source_spec)?);
            }
            Statement::Query(query) => {
                let Some(source_spec) = &source else {
                    return Err(no_source(statement_span(statement)));
                };
                // Bare queries are named output_N, skipping names in use.
                let mut n = outputs.len() + 1;
                let sink = loop {
                    let name = format!("output_{n}");
                    if !sinks.contains(&name) && !outputs.iter().any(|o| o.sink == name) {
                        break name;
                    }
                    n += 1;
                };
                outputs.push(plan::plan_output(&sink, query, source_spec)?);
            }
            other => {
                return Err(SqlError::at_span(
                    statement_span(other),
                    "only CREATE TABLE, CREATE VIEW, INSERT INTO and SELECT statements are supported in a pipeline",
                ));
            }
        }
    }

    let Some(source) = source else {
        return Err(no_source(Span::empty()));
    };
    if outputs.len() > MAX_OUTPUTS {
        let (line, column) = end_position(sql);
        return Err(SqlError::at(
            line,
            column,
            format!(
                "the pipeline has {} queries, over the most of {MAX_OUTPUTS}; split it into several pipelines",
                outputs.len()
            ),
        ));
    }
    if outputs.is_empty() {
        let (line, column) = end_position(sql);
        return Err(SqlError::at(
            line,
            column,
            "the pipeline has no INSERT INTO or SELECT statement, so it produces nothing",
        ));
    }
    Ok(PipelineSpec {
        name: name.to_string(),
        source,
        views,
        outputs,
    })
}

fn no_source(span: Span) -> SqlError {
    let (line, column) = if span == Span::empty() {
        (1, 1)
    } else {
        (span.start.line, span.start.column)
    };
    SqlError::at(
        line,
        column,
        "no source table is defined; start the file with CREATE TABLE ... WITH (connector = 'event_log', type = 'source')",
    )
}

fn end_position(sql: &str) -> (u64, u64) {
    let line = sql.lines().count().max(1) as u64;
    let column = sql
        .lines()
        .last()
        .map(|l| l.chars().count() + 1)
        .unwrap_or(1) as u64;
    (line, column)
}

fn statement_span(statement: &Statement) -> Span {
    statement.span()
}

pub(crate) fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => normalize(&ident.value, ident.quote_style),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Lowercases an unquoted identifier, as DataFusion does.
pub(crate) fn normalize(value: &str, quote: Option<char>) -> String {
    if quote.is_some() {
        value.to_string()
    } else {
        value.to_ascii_lowercase()
    }
}

/// Converts a sqlparser error into a positioned [`SqlError`]. sqlparser puts
/// the position at the end of its message as "at Line: L, Column: C".
fn parser_error(error: ParserError) -> SqlError {
    let message = match error {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "the query is nested too deeply".to_string(),
    };
    let Some(at) = message.rfind(" at Line: ") else {
        return SqlError::at(1, 1, message);
    };
    let position = &message[at + " at Line: ".len()..];
    let mut parts = position.split(", Column: ");
    let line = parts
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(1);
    let column = parts
        .next()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(1);
    let text = message[..at]
        .trim_start_matches("sql parser error: ")
        .to_string();
    SqlError::at(line, column, text)
}

struct TableOption {
    key: String,
    value: String,
    span: Span,
}

/// Parses a count option written in digits only (no sign), from 1 to `max`.
fn parse_count(option: &TableOption, max: usize) -> Result<usize, SqlError> {
    option
        .value
        .parse::<usize>()
        .ok()
        .filter(|_| option.value.bytes().all(|b| b.is_ascii_digit()))
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            SqlError::at_span(
                option.span,
                format!(
                    "{} `{}` must be a whole number from 1 to {max}",
                    option.key, option.value
                ),
            )
        })
}

fn table_options(options: &CreateTableOptions) -> Result<Vec<TableOption>, SqlError> {
    let list = match options {
        CreateTableOptions::None => return Ok(Vec::new()),
        CreateTableOptions::With(list)
        | CreateTableOptions::Options(list)
        | CreateTableOptions::Plain(list)
        | CreateTableOptions::TableProperties(list) => list,
    };
    let mut out = Vec::new();
    for option in list {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(SqlError::at_span(
                option.span(),
                "table options must be `key = 'value'` pairs",
            ));
        };
        let text = match value {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                Value::Number(n, _) => n.clone(),
                Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(SqlError::at_span(
                        value.span(),
                        format!("table option `{}` must be a string or a number", key.value),
                    ));
                }
            },
            Expr::Identifier(ident) => ident.value.clone(),
            _ => {
                return Err(SqlError::at_span(
                    value.span(),
                    format!("table option `{}` must be a string or a number", key.value),
                ));
            }
        };
        out.push(TableOption {
            key: key.value.to_ascii_lowercase(),
            value: text,
            span: key.span,
        });
    }
    Ok(out)
}

const SINK_CONNECTORS: [&str; 6] = [
    "preview",
    "blackhole",
    "webhook",
    "kafka",
    "fluvio",
    "stdout",
];

fn check_sink_options(options: &[TableOption]) -> Result<(), SqlError> {
    let connector = options.iter().find(|o| o.key == "connector");
    if let Some(option) = connector
        && !SINK_CONNECTORS.contains(&option.value.as_str())
    {
        return Err(SqlError::at_span(
            option.span,
            format!(
                "sink connector `{}` is not supported; use one of {}",
                option.value,
                SINK_CONNECTORS.join(", ")
            ),
        ));
    }
    Ok(())
}

fn source_spec(
    create: &CreateTable,
    table: &str,
    options: &[TableOption],
    watermark: Option<Watermark>,
) -> Result<SourceSpec, SqlError> {
    let mut connector: Option<Connector> = None;
    let mut topic: Option<String> = None;
    let mut connector_span = create.name.span();
    let mut allowed_lateness_ms = DEFAULT_ALLOWED_LATENESS_MS;
    let mut idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    let mut result_retention_ms = DEFAULT_RESULT_RETENTION_MS;
    let mut max_open_windows = DEFAULT_MAX_OPEN_WINDOWS;
    let mut max_result_rows = DEFAULT_MAX_RESULT_ROWS;

    let mut seen = std::collections::BTreeSet::new();
    for option in options {
        if !seen.insert(option.key.as_str()) {
            return Err(SqlError::at_span(
                option.span,
                format!("option `{}` is given twice; keep one", option.key),
            ));
        }
        match option.key.as_str() {
            "connector" => {
                connector_span = option.span;
                connector = match option.value.as_str() {
                    "event_log" => Some(Connector::EventLog),
                    "fluvio" => Some(Connector::Fluvio {
                        topic: String::new(),
                    }),
                    other => {
                        return Err(SqlError::at_span(
                            option.span,
                            format!(
                                "source connector `{other}` is not supported; use `event_log` or `fluvio`"
                            ),
                        ));
                    }
                }
            }
            "topic" => topic = Some(option.value.clone()),
            "format" => {
                if option.value != "json" {
                    return Err(SqlError::at_span(
                        option.span,
                        format!(
                            "format `{}` is not supported; events are `json`",
                            option.value
                        ),
                    ));
                }
            }
            "type" | "endpoint" | "source.offset" => {}
            "json.timestamp_format" => {
                if option.value != "unix_millis" {
                    return Err(SqlError::at_span(
                        option.span,
                        format!(
                            "json.timestamp_format `{}` is not supported; event times are `unix_millis`",
                            option.value
                        ),
                    ));
                }
            }
            "allowed_lateness" => {
                allowed_lateness_ms = parse_duration(&option.value).ok_or_else(|| {
                    SqlError::at_span(
                        option.span,
                        format!(
                            "allowed_lateness `{}` is not a duration such as '5 minutes'",
                            option.value
                        ),
                    )
                })?;
            }
            "max_open_windows" => max_open_windows = parse_count(option, MAX_OPEN_WINDOWS_LIMIT)?,
            "max_result_rows" => max_result_rows = parse_count(option, MAX_RESULT_ROWS_LIMIT)?,
            "result_retention" => {
                result_retention_ms = parse_duration(&option.value).ok_or_else(|| {
                    SqlError::at_span(
                        option.span,
                        format!(
                            "result_retention `{}` is not a duration such as '30 days'",
                            option.value
                        ),
                    )
                })?;
            }
            "idle_timeout" => {
                idle_timeout_ms = parse_duration(&option.value)
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        SqlError::at_span(
                            option.span,
                            format!(
                                "idle_timeout `{}` is not a positive duration such as '30 seconds'",
                                option.value
                            ),
                        )
                    })?;
            }
            other => {
                return Err(SqlError::at_span(
                    option.span,
                    format!(
                        "unknown source option `{other}`; known options are connector, topic, format, json.timestamp_format, type, endpoint, source.offset, allowed_lateness, idle_timeout, result_retention, max_open_windows and max_result_rows"
                    ),
                ));
            }
        }
    }

    let connector = match connector {
        None => {
            return Err(SqlError::at_span(
                create.name.span(),
                format!(
                    "source table `{table}` has no `connector` option; set connector = 'event_log' or 'fluvio'"
                ),
            ));
        }
        Some(Connector::Fluvio { .. }) => match topic {
            Some(topic) => Connector::Fluvio { topic },
            None => {
                return Err(SqlError::at_span(
                    connector_span,
                    "the fluvio connector needs a `topic` option",
                ));
            }
        },
        Some(other) => other,
    };

    let mut columns = Vec::new();
    for column in &create.columns {
        let name = normalize(&column.name.value, column.name.quote_style);
        let Some(event_column) = EventColumn::from_name(&name) else {
            let known: Vec<&str> = EventColumn::ALL.iter().map(|c| c.name()).collect();
            return Err(SqlError::at_span(
                column.name.span,
                format!(
                    "column `{name}` is not an event field; use one of {}",
                    known.join(", ")
                ),
            ));
        };
        let type_name = column.data_type.to_string().to_ascii_uppercase();
        if event_column.is_time() && !type_name.starts_with("TIMESTAMP") {
            return Err(SqlError::at_span(
                column.name.span,
                format!(
                    "column `{name}` is event time in Unix milliseconds and must be declared TIMESTAMP, not {type_name}"
                ),
            ));
        }
        columns.push(event_column);
    }
    if columns.is_empty() {
        columns = EventColumn::ALL.to_vec();
    }
    if !columns.contains(&EventColumn::Tenant) {
        columns.insert(0, EventColumn::Tenant);
    }

    let (event_time, watermark_delay_ms) = match watermark {
        None => (EventColumn::OccurredAt, 0),
        Some(w) => {
            let Some(column) = EventColumn::from_name(&w.column).filter(|c| c.is_time()) else {
                return Err(SqlError::at_span(
                    w.column_span,
                    format!(
                        "WATERMARK FOR `{}`: the event-time column must be occurred_at or received_at",
                        w.column
                    ),
                ));
            };
            (column, w.delay_ms)
        }
    };
    if !columns.contains(&event_time) {
        columns.push(event_time);
    }

    Ok(SourceSpec {
        name: table.to_string(),
        connector,
        columns,
        event_time,
        watermark_delay_ms,
        allowed_lateness_ms,
        idle_timeout_ms,
        result_retention_ms,
        max_open_windows,
        max_result_rows,
    })
}

/// Parses a duration such as `5 minutes`, `1 hour 30 minutes` or `250 ms`
/// into milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return None;
    }
    let mut total: i64 = 0;
    for pair in words.chunks(2) {
        let amount: f64 = pair[0].parse().ok()?;
        let unit = unit_ms(pair[1])?;
        if amount.is_nan() || amount < 0.0 {
            return None;
        }
        total = total.checked_add((amount * unit as f64).round() as i64)?;
    }
    Some(total)
}

fn unit_ms(unit: &str) -> Option<i64> {
    let unit = unit.to_ascii_lowercase();
    let ms = match unit.trim_end_matches('s') {
        "m" if unit == "ms" => 1,
        "millisecond" | "milli" => 1,
        "second" | "sec" | "" if unit == "s" || unit.starts_with("sec") => 1_000,
        "minute" | "min" => 60_000,
        "hour" | "h" | "hr" => 3_600_000,
        "day" | "d" => 86_400_000,
        "week" | "w" => 604_800_000,
        _ => return None,
    };
    Some(ms)
}

/// Evaluates an `INTERVAL '...'` expression to milliseconds, or explains
/// what is wrong at its position.
pub(crate) fn interval_ms(expr: &Expr) -> Result<i64, SqlError> {
    let invalid = || {
        SqlError::at_span(
            expr.span(),
            format!("`{expr}` is not a fixed interval such as INTERVAL '1 hour'"),
        )
    };
    let Expr::Interval(interval) = expr else {
        return Err(invalid());
    };
    let Expr::Value(value) = interval.value.as_ref() else {
        return Err(invalid());
    };
    let text = match &value.value {
        Value::SingleQuotedString(s) => s.clone(),
        Value::Number(n, _) => n.clone(),
        _ => return Err(invalid()),
    };
    let ms = match &interval.leading_field {
        None => parse_duration(&text),
        Some(field) => {
            let unit = match field {
                DateTimeField::Millisecond | DateTimeField::Milliseconds => 1,
                DateTimeField::Second | DateTimeField::Seconds => 1_000,
                DateTimeField::Minute | DateTimeField::Minutes => 60_000,
                DateTimeField::Hour | DateTimeField::Hours => 3_600_000,
                DateTimeField::Day | DateTimeField::Days => 86_400_000,
                DateTimeField::Week(_) | DateTimeField::Weeks => 604_800_000,
                _ => return Err(invalid()),
            };
            text.trim()
                .parse::<f64>()
                .ok()
                .map(|n| (n * unit as f64).round() as i64)
        }
    };
    match ms {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(invalid()),
    }
}

/// A `WATERMARK FOR column AS column - INTERVAL '...'` clause.
struct Watermark {
    column: String,
    column_span: Span,
    delay_ms: i64,
    /// Position of the WATERMARK keyword, to match the clause to its table.
    keyword: Span,
}

/// Replaces every `WATERMARK FOR ...` clause (and the comma before it) with
/// spaces and returns the cleaned text with the clauses in file order.
fn cut_watermarks(
    sql: &str,
    tokens: &[TokenWithSpan],
) -> Result<(String, Vec<Watermark>), SqlError> {
    let mut cuts: Vec<(Span, Span)> = Vec::new();
    let mut found = Vec::new();
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();

    let mut s = 0;
    while s < significant.len() {
        let i = significant[s];
        if !is_word(&tokens[i].token, "WATERMARK")
            || !significant
                .get(s + 1)
                .is_some_and(|&j| is_word(&tokens[j].token, "FOR"))
        {
            s += 1;
            continue;
        }
        let keyword = tokens[i].span;
        let Some(&column_index) = significant.get(s + 2) else {
            return Err(SqlError::at_span(
                keyword,
                "WATERMARK FOR needs a column name",
            ));
        };
        let Token::Word(column_word) = &tokens[column_index].token else {
            return Err(SqlError::at_span(
                tokens[column_index].span,
                "WATERMARK FOR needs a column name",
            ));
        };
        let column = normalize(&column_word.value, column_word.quote_style);
        let column_span = tokens[column_index].span;

        // The expression runs from after AS to the comma or closing
        // parenthesis at the same nesting depth.
        let mut k = s + 3;
        let mut delay_ms = 0;
        if significant
            .get(k)
            .is_some_and(|&j| is_word(&tokens[j].token, "AS"))
        {
            k += 1;
            let start = k;
            let mut depth = 0i32;
            while let Some(&j) = significant.get(k) {
                match tokens[j].token {
                    Token::LParen => depth += 1,
                    Token::RParen if depth == 0 => break,
                    Token::RParen => depth -= 1,
                    Token::Comma if depth == 0 => break,
                    _ => {}
                }
                k += 1;
            }
            if start == k {
                return Err(SqlError::at_span(
                    tokens[significant[start - 1]].span,
                    "WATERMARK FOR ... AS needs an expression such as occurred_at - INTERVAL '5 seconds'",
                ));
            }
            let expr_tokens: Vec<TokenWithSpan> = (significant[start]..significant[k - 1] + 1)
                .map(|j| tokens[j].clone())
                .collect();
            delay_ms = watermark_delay(&column, expr_tokens)?;
        }
        let last = significant[k - 1];

        // Cut from the comma before the clause, when there is one.
        let from = if s > 0 && tokens[significant[s - 1]].token == Token::Comma {
            tokens[significant[s - 1]].span
        } else {
            keyword
        };
        cuts.push((from, tokens[last].span));
        found.push(Watermark {
            column,
            column_span,
            delay_ms,
            keyword,
        });
        s = k;
    }

    let mut text = String::with_capacity(sql.len());
    let mut line = 1u64;
    let mut column = 1u64;
    for ch in sql.chars() {
        let inside = cuts.iter().any(|(from, to)| {
            (line, column) >= (from.start.line, from.start.column)
                && (line, column) < (to.end.line, to.end.column)
        });
        if inside && ch != '\n' {
            text.push(' ');
        } else {
            text.push(ch);
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok((text, found))
}

fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

/// Reads the delay out of `column` or `column - INTERVAL '...'`.
fn watermark_delay(column: &str, tokens: Vec<TokenWithSpan>) -> Result<i64, SqlError> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    let dialect = GenericDialect {};
    let first = tokens.first().map(|t| t.span).unwrap_or(Span::empty());
    let expr = Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_expr()
        .map_err(parser_error)?;
    let expected = || {
        SqlError::at_span(
            first,
            format!(
                "the watermark must be `{column}` or `{column} - INTERVAL '...'`, not `{expr}`"
            ),
        )
    };
    match &expr {
        Expr::Identifier(ident) if normalize(&ident.value, ident.quote_style) == column => Ok(0),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } => {
            let Expr::Identifier(ident) = left.as_ref() else {
                return Err(expected());
            };
            if normalize(&ident.value, ident.quote_style) != column {
                return Err(SqlError::at_span(
                    left.span(),
                    format!(
                        "the watermark expression must subtract from `{column}`, the column named after FOR"
                    ),
                ));
            }
            interval_ms(right)
        }
        _ => Err(expected()),
    }
}

/// Rewrites `json ->> 'key'` to `extract_json_string(json, '$.key')`,
/// because DataFusion plans `->>` only with a JSON extension.
fn rewrite_json_arrows(statement: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct Arrows;
    impl VisitorMut for Arrows {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::LongArrow,
                right,
            } = expr
            else {
                return ControlFlow::Continue(());
            };
            let path = match right.as_ref() {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(key) => format!("'$.{}'", key.replace('\'', "''")),
                    _ => format!("'$.' || ({right})"),
                },
                _ => format!("'$.' || ({right})"),
            };
            let text = format!("extract_json_string({left}, {path})");
            if let Ok(parsed) = Parser::new(&GenericDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_expr())
            {
                *expr = parsed;
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Arrows);
}

/// Returns, for each WATERMARK clause, the index of the CREATE TABLE
/// statement it sits in: the last one that starts before the keyword.
fn watermark_owners(statements: &[Statement], watermarks: &[Watermark]) -> Vec<Option<usize>> {
    let starts: Vec<(u64, u64)> = statements
        .iter()
        .map(|s| {
            let span = s.span();
            (span.start.line, span.start.column)
        })
        .collect();
    watermarks
        .iter()
        .map(|w| {
            let at = (w.keyword.start.line, w.keyword.start.column);
            let index = starts.iter().rposition(|start| *start <= at)?;
            matches!(statements[index], Statement::CreateTable(_)).then_some(index)
        })
        .collect()
}

/// Rejects window functions anywhere but in an aggregation's GROUP BY.
fn check_no_window_calls(query: &datafusion::sql::sqlparser::ast::Query) -> Result<(), SqlError> {
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    use std::ops::ControlFlow;
    struct Finder;
    impl Visitor for Finder {
        type Break = SqlError;
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<SqlError> {
            if let Expr::Function(f) = expr {
                let name = object_name(&f.name);
                if plan::WINDOW_FUNCTIONS.contains(&name.as_str()) {
                    return ControlFlow::Break(SqlError::at_span(
                        expr.span(),
                        format!(
                            "`{name}` is only supported in the GROUP BY of an INSERT INTO or SELECT, not in a view"
                        ),
                    ));
                }
            }
            ControlFlow::Continue(())
        }
    }
    match query.visit(&mut Finder) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_milliseconds() {
        assert_eq!(parse_duration("5 minutes"), Some(300_000));
        assert_eq!(parse_duration("1 hour"), Some(3_600_000));
        assert_eq!(parse_duration("30 seconds"), Some(30_000));
        assert_eq!(parse_duration("250 ms"), Some(250));
        assert_eq!(parse_duration("1 hour 30 minutes"), Some(5_400_000));
        assert_eq!(parse_duration("soon"), None);
    }
}
