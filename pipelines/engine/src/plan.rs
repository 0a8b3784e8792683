//! Planning Arroyo's window functions onto DataFusion.
//!
//! DataFusion has no `tumble`, `hop` or `session`, so each aggregation is
//! split in two SQL queries that DataFusion runs:
//!
//! 1. The partial query runs on every micro-batch of events. It groups by
//!    tenant, window start and the other GROUP BY keys, and computes mergeable
//!    partial aggregates: `count`, `sum`, `min` and `max` as written, `avg` as
//!    a sum and a count. A tumble window start is `date_bin(width, time)`; a
//!    hop window joins each row with the `width / slide` windows that contain
//!    it; a session groups by the exact event time, and the engine merges
//!    those rows into sessions.
//! 2. The final query runs over the merged window state of the windows that
//!    changed, and evaluates the SELECT list with each aggregate replaced by
//!    its merged value, so expressions such as rates are computed by
//!    DataFusion as written.

use crate::error::SqlError;
use crate::parse::{SourceSpec, interval_ms, normalize, object_name};
use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Spanned, Value,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Span;
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;

pub(crate) const WINDOW_FUNCTIONS: [&str; 3] = ["tumble", "hop", "session"];

/// Aggregates whose partial results cannot be merged across micro-batches.
const UNMERGEABLE_AGGREGATES: [&str; 22] = [
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var",
    "variance",
    "var_pop",
    "var_samp",
    "median",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "array_agg",
    "string_agg",
    "first_value",
    "last_value",
    "bit_and",
    "bit_or",
    "bool_and",
    "bool_or",
    "corr",
    "covar",
    "nth_value",
];

/// An event-time window in GROUP BY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    Tumble { width_ms: i64 },
    Hop { slide_ms: i64, width_ms: i64 },
    Session { gap_ms: i64 },
}

impl WindowKind {
    /// Returns the end of the latest window that contains an event at `ts`.
    pub(crate) fn latest_end(self, ts: i64) -> i64 {
        match self {
            WindowKind::Tumble { width_ms } => ts.div_euclid(width_ms) * width_ms + width_ms,
            WindowKind::Hop { slide_ms, width_ms } => ts.div_euclid(slide_ms) * slide_ms + width_ms,
            WindowKind::Session { gap_ms } => ts + gap_ms,
        }
    }
}

/// How partial values of one aggregate column are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    Sum,
    Min,
    Max,
}

/// One planned output: an INSERT INTO a sink, or a bare SELECT.
#[derive(Debug, Clone)]
pub(crate) struct OutputSpec {
    pub sink: String,
    pub window: WindowKind,
    pub key_count: usize,
    pub merges: Vec<Merge>,
    /// Runs over the source table; columns `__tenant`, `__wstart`, `__k{i}`
    /// and `__a{i}`.
    pub partial_sql: String,
    /// Runs over `__state`; columns `__tenant`, `__wstart`, `__wend`,
    /// `__k{i}`, `__a{i}`.
    pub final_sql: String,
    pub columns: Vec<String>,
    /// Start of the statement, for DataFusion errors that have no position.
    pub position: (u64, u64),
}

/// Plans one windowed aggregation query for the sink `sink`.
pub(crate) fn plan_output(
    sink: &str,
    query: &Query,
    source: &SourceSpec,
) -> Result<OutputSpec, SqlError> {
    let query_span = query.span();
    if query.with.is_some() {
        return Err(SqlError::at_span(
            query_span,
            "WITH is not supported in a pipeline query; use CREATE VIEW",
        ));
    }
    if let Some(order_by) = &query.order_by {
        return Err(SqlError::at_span(
            order_by.span(),
            "ORDER BY is not supported in a streaming query; results are upserted per window",
        ));
    }
    if query.limit_clause.is_some() {
        return Err(SqlError::at_span(
            query_span,
            "LIMIT is not supported in a streaming query",
        ));
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(SqlError::at_span(
            query_span,
            "the query must be a single SELECT",
        ));
    };
    let select_span = select.select_token.0.span;
    if select.distinct.is_some() {
        return Err(SqlError::at_span(
            select_span,
            "SELECT DISTINCT is not supported; group by the columns instead",
        ));
    }
    if let Some(having) = &select.having {
        return Err(SqlError::at_span(
            having.span(),
            "HAVING is not supported in a streaming aggregation",
        ));
    }
    if select.from.is_empty() {
        return Err(SqlError::at_span(
            select_span,
            "the query needs a FROM clause that reads the source or a view",
        ));
    }

    // Resolve GROUP BY items: ordinals and select aliases point at select
    // items, as Arroyo allows `GROUP BY 1, 2` and `GROUP BY window`.
    let GroupByExpr::Expressions(group_exprs, _) = &select.group_by else {
        return Err(SqlError::at_span(
            select_span,
            "GROUP BY ALL is not supported; list the keys and the window",
        ));
    };
    if group_exprs.is_empty() {
        return Err(SqlError::at_span(
            select_span,
            "a streaming query must aggregate over a window: add GROUP BY tumble(interval), hop(slide, width) or session(gap)",
        ));
    }
    let mut window: Option<(WindowKind, String)> = None;
    let mut keys: Vec<String> = Vec::new();
    for group_expr in group_exprs {
        let resolved = resolve_group_item(group_expr, &select.projection)?;
        if let Some(kind) = window_call(&resolved)? {
            if window.is_some() {
                return Err(SqlError::at_span(
                    group_expr.span(),
                    "GROUP BY has a second window; a query has exactly one",
                ));
            }
            window = Some((kind, resolved.to_string()));
        } else {
            check_no_aggregate(&resolved)?;
            keys.push(resolved.to_string());
        }
    }
    let Some((window, window_text)) = window else {
        return Err(SqlError::at_span(
            group_exprs[0].span(),
            "GROUP BY has no window: add tumble(interval), hop(slide, width) or session(gap)",
        ));
    };

    // Rewrite the select list for the final query, collecting partials.
    let mut rewriter = FinalRewriter {
        keys: keys.clone(),
        window_text,
        partials: Vec::new(),
        merges: Vec::new(),
        error: None,
    };
    let mut final_items = Vec::new();
    let mut columns = Vec::new();
    for item in &select.projection {
        let (expr, name) = match item {
            SelectItem::UnnamedExpr(expr) => {
                let name = match expr {
                    Expr::Identifier(ident) => normalize(&ident.value, ident.quote_style),
                    Expr::CompoundIdentifier(parts) => parts
                        .last()
                        .map(|i| normalize(&i.value, i.quote_style))
                        .unwrap_or_default(),
                    other => other.to_string(),
                };
                (expr, name)
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                (expr, normalize(&alias.value, alias.quote_style))
            }
            other => {
                return Err(SqlError::at_span(
                    other.span(),
                    "wildcards are not supported in an aggregation; list the columns",
                ));
            }
        };
        let mut expr = expr.clone();
        let _ = expr.visit(&mut rewriter);
        if let Some(error) = rewriter.error.take() {
            return Err(error);
        }
        if columns.contains(&name) {
            return Err(SqlError::at_span(
                item.span(),
                format!("output column `{name}` appears twice; give one an alias"),
            ));
        }
        final_items.push(format!("{expr} AS {}", quote(&name)));
        columns.push(name);
    }
    if !columns.iter().any(|c| c == "tenant") {
        final_items.insert(0, "__tenant AS tenant".to_string());
        columns.insert(0, "tenant".to_string());
    }
    let final_sql = format!("SELECT {} FROM __state", final_items.join(", "));

    // The partial query.
    let time = source.event_time.name();
    let (window_start, hop_join) = match window {
        WindowKind::Tumble { width_ms } => (date_bin(width_ms, time), String::new()),
        WindowKind::Hop { slide_ms, width_ms } => {
            let count = width_ms / slide_ms;
            let values: Vec<String> = (0..count).map(|i| format!("({i})")).collect();
            (
                format!("{} - __hop.__i * {slide_ms}", date_bin(slide_ms, time)),
                format!(" CROSS JOIN (VALUES {}) AS __hop(__i)", values.join(", ")),
            )
        }
        WindowKind::Session { .. } => (format!("CAST({time} AS BIGINT)"), String::new()),
    };
    let mut partial_items = vec![
        "tenant AS __tenant".to_string(),
        format!("{window_start} AS __wstart"),
    ];
    for (i, key) in keys.iter().enumerate() {
        partial_items.push(format!("{key} AS __k{i}"));
    }
    for (i, partial) in rewriter.partials.iter().enumerate() {
        partial_items.push(format!("{partial} AS __a{i}"));
    }
    let from: Vec<String> = select.from.iter().map(|t| t.to_string()).collect();
    let filter = select
        .selection
        .as_ref()
        .map(|e| format!(" WHERE {e}"))
        .unwrap_or_default();
    let group_ordinals: Vec<String> = (1..=keys.len() + 2).map(|i| i.to_string()).collect();
    let partial_sql = format!(
        "SELECT {} FROM {}{hop_join}{filter} GROUP BY {}",
        partial_items.join(", "),
        from.join(", "),
        group_ordinals.join(", ")
    );

    Ok(OutputSpec {
        sink: sink.to_string(),
        window,
        key_count: keys.len(),
        merges: rewriter.merges,
        partial_sql,
        final_sql,
        columns,
        position: (query_span.start.line, query_span.start.column),
    })
}

/// Bins `column` (a millisecond timestamp) to multiples of `width_ms` since
/// the Unix epoch and returns the bin start in Unix milliseconds.
fn date_bin(width_ms: i64, column: &str) -> String {
    format!(
        "CAST(date_bin(INTERVAL '{width_ms} milliseconds', {column}, TIMESTAMP '1970-01-01T00:00:00') AS BIGINT)"
    )
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn resolve_group_item(expr: &Expr, projection: &[SelectItem]) -> Result<Expr, SqlError> {
    match expr {
        Expr::Value(value) => {
            let Value::Number(text, _) = &value.value else {
                return Ok(expr.clone());
            };
            let position: usize = text.parse().unwrap_or(0);
            let item = position.checked_sub(1).and_then(|i| projection.get(i));
            match item {
                Some(SelectItem::UnnamedExpr(e))
                | Some(SelectItem::ExprWithAlias { expr: e, .. }) => Ok(e.clone()),
                _ => Err(SqlError::at_span(
                    expr.span(),
                    format!(
                        "GROUP BY {text} does not name a select item; there are {}",
                        projection.len()
                    ),
                )),
            }
        }
        Expr::Identifier(ident) => {
            let name = normalize(&ident.value, ident.quote_style);
            for item in projection {
                if let SelectItem::ExprWithAlias { expr: e, alias } = item
                    && normalize(&alias.value, alias.quote_style) == name
                {
                    return Ok(e.clone());
                }
            }
            Ok(expr.clone())
        }
        _ => Ok(expr.clone()),
    }
}

fn function_name(f: &Function) -> String {
    object_name(&f.name)
}

fn function_args(f: &Function) -> Vec<&FunctionArg> {
    match &f.args {
        FunctionArguments::List(list) => list.args.iter().collect(),
        _ => Vec::new(),
    }
}

fn arg_expr(arg: &FunctionArg) -> Option<&Expr> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
        FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => Some(e),
        _ => None,
    }
}

/// Returns the window a `tumble`, `hop` or `session` call describes, or None
/// for any other expression.
fn window_call(expr: &Expr) -> Result<Option<WindowKind>, SqlError> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    let name = function_name(f);
    if !WINDOW_FUNCTIONS.contains(&name.as_str()) {
        return Ok(None);
    }
    let args: Vec<&Expr> = function_args(f).into_iter().filter_map(arg_expr).collect();
    let expected = match name.as_str() {
        "hop" => 2,
        _ => 1,
    };
    if args.len() != expected {
        let usage = match name.as_str() {
            "tumble" => "tumble(INTERVAL '1 hour')",
            "hop" => "hop(INTERVAL '5 minutes', INTERVAL '1 hour') with the slide first",
            _ => "session(INTERVAL '30 minutes')",
        };
        return Err(SqlError::at_span(
            expr.span(),
            format!("`{name}` takes {expected} interval argument(s), as in {usage}"),
        ));
    }
    let kind = match name.as_str() {
        "tumble" => WindowKind::Tumble {
            width_ms: interval_ms(args[0])?,
        },
        "hop" => {
            let slide_ms = interval_ms(args[0])?;
            let width_ms = interval_ms(args[1])?;
            if slide_ms > width_ms || width_ms % slide_ms != 0 {
                return Err(SqlError::at_span(
                    args[1].span(),
                    format!(
                        "hop width ({width_ms} ms) must be a whole multiple of its slide ({slide_ms} ms)"
                    ),
                ));
            }
            if width_ms / slide_ms > 1_000 {
                return Err(SqlError::at_span(
                    args[0].span(),
                    "a hop window may overlap at most 1000 slides; use a longer slide",
                ));
            }
            WindowKind::Hop { slide_ms, width_ms }
        }
        _ => WindowKind::Session {
            gap_ms: interval_ms(args[0])?,
        },
    };
    Ok(Some(kind))
}

fn is_aggregate_name(name: &str) -> bool {
    matches!(name, "count" | "sum" | "min" | "max" | "avg" | "mean")
        || UNMERGEABLE_AGGREGATES.contains(&name)
}

fn check_no_aggregate(expr: &Expr) -> Result<(), SqlError> {
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    struct Finder;
    impl Visitor for Finder {
        type Break = SqlError;
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<SqlError> {
            if let Expr::Function(f) = expr
                && is_aggregate_name(&function_name(f))
            {
                return ControlFlow::Break(SqlError::at_span(
                    expr.span(),
                    "an aggregate cannot be a GROUP BY key",
                ));
            }
            ControlFlow::Continue(())
        }
    }
    match expr.visit(&mut Finder) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct FinalRewriter {
    keys: Vec<String>,
    window_text: String,
    partials: Vec<String>,
    merges: Vec<Merge>,
    error: Option<SqlError>,
}

impl FinalRewriter {
    fn fail(&mut self, span: Span, message: String) -> ControlFlow<()> {
        self.error = Some(SqlError::at_span(span, message));
        ControlFlow::Break(())
    }

    fn push_partial(&mut self, text: String, merge: Merge) -> usize {
        self.partials.push(text);
        self.merges.push(merge);
        self.partials.len() - 1
    }
}

fn parse_expr(text: &str) -> Expr {
    // The text is built here from column names and numbers, so it parses.
    Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .expect("generated expression parses")
}

fn identifier(name: &str) -> Expr {
    Expr::Identifier(Ident::new(name))
}

impl VisitorMut for FinalRewriter {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let text = expr.to_string();
        if let Some(i) = self.keys.iter().position(|k| *k == text) {
            *expr = identifier(&format!("__k{i}"));
            return ControlFlow::Continue(());
        }
        if text == self.window_text {
            *expr = parse_expr("named_struct('start', __wstart, 'end', __wend)");
            return ControlFlow::Continue(());
        }
        match expr {
            Expr::Function(f) => {
                let name = function_name(f);
                let span = expr.span();
                if WINDOW_FUNCTIONS.contains(&name.as_str()) {
                    return self.fail(
                        span,
                        format!("`{text}` differs from the window in GROUP BY"),
                    );
                }
                if !is_aggregate_name(&name) {
                    return ControlFlow::Continue(());
                }
                if UNMERGEABLE_AGGREGATES.contains(&name.as_str()) {
                    return self.fail(
                        span,
                        format!("aggregate `{name}` cannot be merged across micro-batches; use count, sum, min, max or avg"),
                    );
                }
                let Expr::Function(f) = expr else {
                    unreachable!()
                };
                if f.over.is_some() {
                    return self.fail(
                        span,
                        "OVER windows are not supported; use tumble, hop or session in GROUP BY"
                            .to_string(),
                    );
                }
                if let FunctionArguments::List(list) = &f.args
                    && list.duplicate_treatment == Some(DuplicateTreatment::Distinct)
                {
                    return self.fail(
                        span,
                        format!("`{name}(DISTINCT ...)` cannot be merged across micro-batches"),
                    );
                }
                let replacement = match name.as_str() {
                    "count" | "sum" => {
                        let i = self.push_partial(text, Merge::Sum);
                        format!("__a{i}")
                    }
                    "min" => format!("__a{}", self.push_partial(text, Merge::Min)),
                    "max" => format!("__a{}", self.push_partial(text, Merge::Max)),
                    _ => {
                        let mut sum = f.clone();
                        sum.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("sum"))]);
                        let mut count = f.clone();
                        count.name =
                            ObjectName(vec![ObjectNamePart::Identifier(Ident::new("count"))]);
                        let s = self.push_partial(sum.to_string(), Merge::Sum);
                        let c = self.push_partial(count.to_string(), Merge::Sum);
                        format!("(CAST(__a{s} AS DOUBLE) / NULLIF(__a{c}, 0))")
                    }
                };
                *expr = parse_expr(&replacement);
                ControlFlow::Continue(())
            }
            Expr::Identifier(ident) if !ident.value.starts_with("__") => {
                let span = ident.span;
                self.fail(
                    span,
                    format!(
                        "column `{text}` must be a GROUP BY key or be used inside an aggregate"
                    ),
                )
            }
            Expr::CompoundIdentifier(_) => {
                let span = expr.span();
                self.fail(
                    span,
                    format!(
                        "column `{text}` must be a GROUP BY key or be used inside an aggregate"
                    ),
                )
            }
            _ => ControlFlow::Continue(()),
        }
    }
}
