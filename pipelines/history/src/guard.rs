//! The read-only guard: parses the SQL and accepts exactly one `SELECT` or
//! `WITH` query, and maps parser and planner errors to positions in the SQL.

use crate::error::{QueryError, SqlPosition};
use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;

/// Maximum length of the SQL text, in bytes.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// Deepest expression nesting one SQL text may hold. DataFusion plans and
/// optimises expressions by recursion, one level per nested expression, so
/// deep nesting (`1+1+...`, `x IS TRUE IS TRUE ...`, `x::INT::INT ...`)
/// could exhaust a thread's stack and abort the process. At this depth
/// planning takes about 2 MiB of stack in a debug build (measured as about
/// 8 KiB per level).
pub const MAX_EXPRESSION_DEPTH: usize = 256;

/// Stack of the thread that parses and measures the SQL: parsing and
/// walking a deep expression recurse too, and 64 KiB of SQL nests at most
/// about 32,000 levels. The memory is reserved, and used only as deep as
/// the walk goes.
const CHECK_STACK_BYTES: usize = 256 << 20;

/// Checks that no expression in `sql` nests deeper than
/// [`MAX_EXPRESSION_DEPTH`], and returns the position of the first one
/// that does with a message. SQL that sqlparser cannot parse passes: the
/// caller's own parser reports it.
pub fn check_expression_depth(sql: &str) -> Result<(), (SqlPosition, String)> {
    let text = sql.to_string();
    let checked = std::thread::Builder::new()
        .name("sql-depth-check".into())
        .stack_size(CHECK_STACK_BYTES)
        .spawn(move || deepest_expression(&text));
    match checked.map(|thread| thread.join()) {
        Ok(Ok(result)) => result,
        Ok(Err(_)) | Err(_) => Err((
            SqlPosition { line: 1, column: 1 },
            "the SQL could not be checked; simplify it".to_string(),
        )),
    }
}

fn deepest_expression(sql: &str) -> Result<(), (SqlPosition, String)> {
    use datafusion::sql::sqlparser::ast::{Expr, Spanned, Visit, Visitor};
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Span;
    use std::ops::ControlFlow;

    struct Depth {
        current: usize,
    }
    impl Visitor for Depth {
        type Break = Span;

        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Span> {
            self.current += 1;
            if self.current > MAX_EXPRESSION_DEPTH {
                return ControlFlow::Break(expr.span());
            }
            ControlFlow::Continue(())
        }

        fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Span> {
            self.current -= 1;
            ControlFlow::Continue(())
        }
    }

    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, sql) else {
        return Ok(());
    };
    let mut depth = Depth { current: 0 };
    for statement in &statements {
        if let ControlFlow::Break(span) = statement.visit(&mut depth) {
            let at = span.start;
            return Err((
                SqlPosition {
                    line: at.line.max(1),
                    column: at.column.max(1),
                },
                format!(
                    "an expression nests more than {MAX_EXPRESSION_DEPTH} levels deep; split it or the query"
                ),
            ));
        }
    }
    Ok(())
}

/// Parses `sql` and returns its single statement if it is a query.
///
/// Everything else is rejected here, before planning: several statements,
/// DDL (`CREATE`, `DROP`, `CREATE EXTERNAL TABLE`), DML (`INSERT`, `COPY`),
/// `EXPLAIN`, `SET` and the like. The planner checks again with DDL, DML
/// and statements disabled, because `SELECT ... INTO` parses as a query.
pub fn parse_read_only(sql: &str) -> Result<Statement, QueryError> {
    if sql.trim().is_empty() {
        return Err(QueryError::Invalid("sql is empty".into()));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::Invalid(format!(
            "sql is {} bytes long, over the maximum of {MAX_SQL_BYTES}",
            sql.len()
        )));
    }

    check_expression_depth(sql).map_err(|(position, message)| QueryError::Syntax {
        message,
        position: Some(position),
    })?;
    let mut statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(syntax_error)?;
    if statements.len() != 1 {
        return Err(QueryError::NotReadOnly {
            message: format!(
                "send exactly one SELECT or WITH query; found {} statements",
                statements.len()
            ),
        });
    }
    let statement = statements.pop_front().expect("one statement");
    match &statement {
        Statement::Statement(inner) if matches!(**inner, ast::Statement::Query(_)) => Ok(statement),
        other => Err(QueryError::NotReadOnly {
            message: format!(
                "only a SELECT or WITH query is allowed; this is a {} statement",
                statement_kind(other)
            ),
        }),
    }
}

/// Returns the leading keywords of a statement, such as `CREATE EXTERNAL
/// TABLE` or `INSERT`, for error messages.
fn statement_kind(statement: &Statement) -> String {
    match statement {
        Statement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE".into(),
        Statement::CopyTo(_) => "COPY".into(),
        Statement::Explain(_) => "EXPLAIN".into(),
        Statement::Reset(_) => "RESET".into(),
        Statement::Statement(inner) => inner
            .to_string()
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_ascii_uppercase(),
    }
}

fn syntax_error(error: DataFusionError) -> QueryError {
    let message = error.strip_backtrace();
    let message = message
        .strip_prefix("SQL error: ")
        .unwrap_or(&message)
        .to_string();
    let position = position_in_message(&message);
    QueryError::Syntax { message, position }
}

/// Maps a planning error to a `Plan` error with its position in `sql`.
///
/// The planner attaches a span to many errors (unknown columns and tables,
/// type mismatches) when span collection is enabled. For the others, the
/// first name quoted in the message is looked up in the SQL.
pub(crate) fn plan_error(sql: &str, error: &DataFusionError) -> QueryError {
    let position = error
        .diagnostic()
        .and_then(|d| d.span)
        .filter(|span| span.start.line > 0)
        .map(|span| SqlPosition {
            line: span.start.line,
            column: span.start.column,
        });
    let message = error.find_root().strip_backtrace();
    let message = clean_message(&message);
    let position = position
        .or_else(|| position_in_message(&message))
        .or_else(|| quoted_name_position(sql, &message));
    QueryError::Plan { message, position }
}

/// Drops the error category prefixes DataFusion adds, which name its
/// internals rather than the problem in the SQL.
pub(crate) fn clean_message(message: &str) -> String {
    let mut text = message.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "SQL error: ",
        "Execution error: ",
        "Arrow error: ",
        "This feature is not implemented: ",
    ] {
        text = text.strip_prefix(prefix).unwrap_or(text);
    }
    text.to_string()
}

/// Reads "Line: L, Column: C" from a sqlparser message.
fn position_in_message(message: &str) -> Option<SqlPosition> {
    let after_line = &message[message.rfind("Line: ")? + "Line: ".len()..];
    let (line, rest) = after_line.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some(SqlPosition {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

/// Finds the first name quoted with `'`, `"` or backticks in `message`
/// (its last dotted part) in `sql`, ignoring case.
fn quoted_name_position(sql: &str, message: &str) -> Option<SqlPosition> {
    let quote_start = message.find(['\'', '"', '`'])?;
    let quote = message[quote_start..].chars().next()?;
    let rest = &message[quote_start + 1..];
    let quoted = &rest[..rest.find(quote)?];
    let name = quoted.rsplit('.').next()?.trim_matches('"');
    if name.is_empty() {
        return None;
    }
    let offset = sql.to_lowercase().find(&name.to_lowercase())?;
    let before = &sql[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = sql[line_start..offset].chars().count() as u64 + 1;
    Some(SqlPosition { line, column })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(sql: &str) -> QueryError {
        parse_read_only(sql).expect_err(sql)
    }

    #[test]
    fn select_and_with_are_accepted() {
        for sql in [
            "SELECT count(*) FROM events",
            "with t as (select type from events) select * from t",
            "  SELECT 1 ; ",
            "(SELECT 1) UNION ALL (SELECT 2)",
        ] {
            assert!(parse_read_only(sql).is_ok(), "{sql}");
        }
    }

    #[test]
    fn deep_expressions_are_rejected() {
        let chain = |n: usize| format!("SELECT count(*){} AS n FROM events", "+1".repeat(n));
        // n additions nest n + 2 levels: the sums, then count and its
        // argument at the bottom of the chain.
        assert!(parse_read_only(&chain(200)).is_ok());
        let error = rejected(&chain(5000));
        let QueryError::Syntax { message, position } = &error else {
            panic!("{error:?}");
        };
        assert!(message.contains("more than 256 levels"), "{message}");
        assert_eq!(position.map(|p| p.line), Some(1));
        for deep in [
            format!("SELECT (true{}) AS x FROM events", " IS TRUE".repeat(5000)),
            format!("SELECT 1{} AS x FROM events", "::BIGINT".repeat(5000)),
            format!(
                "SELECT 1 FROM events WHERE {}true",
                "a = 1 OR ".repeat(5000)
            ),
        ] {
            assert!(
                matches!(rejected(&deep), QueryError::Syntax { .. }),
                "{}",
                &deep[..40]
            );
        }
    }

    #[test]
    fn writes_and_ddl_are_rejected() {
        for sql in [
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/tmp/'",
            "create external table x stored as parquet location '../other/'",
            "COPY events TO '/tmp/out.parquet'",
            "COPY (SELECT 1) TO '/tmp/out.csv'",
            "INSERT INTO events VALUES (1)",
            "DROP TABLE events",
            "CREATE TABLE t AS SELECT * FROM events",
            "CREATE VIEW v AS SELECT * FROM events",
            "SET datafusion.catalog.information_schema = true",
            "EXPLAIN SELECT 1",
            "DELETE FROM events",
            "UPDATE events SET type = 'x'",
            "SHOW TABLES",
            "RESET datafusion.execution.batch_size",
        ] {
            let error = rejected(sql);
            assert!(
                matches!(
                    error,
                    QueryError::NotReadOnly { .. } | QueryError::Syntax { .. }
                ),
                "{sql}: {error:?}"
            );
            assert_eq!(error.status(), 400, "{sql}");
        }
    }

    #[test]
    fn several_statements_are_rejected() {
        for sql in [
            "SELECT 1; SELECT 2",
            "SELECT * FROM events; DROP TABLE events",
            "SELECT 1; -- comment\nCREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        ] {
            let error = rejected(sql);
            assert_eq!(error.code(), "not_read_only", "{sql}: {error:?}");
            assert!(error.to_string().contains("exactly one"), "{error}");
        }
    }

    #[test]
    fn comments_do_not_hide_statements() {
        let error = rejected("/* SELECT */ DROP TABLE events -- SELECT");
        assert_eq!(error.code(), "not_read_only", "{error:?}");
        assert!(error.to_string().contains("DROP"), "{error}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let error = rejected("SELECT type,\n  count(*)\nFROM events\nGRUOP BY type");
        assert_eq!(error.code(), "syntax", "{error:?}");
        let position = error.position().expect("a position");
        assert_eq!(position.line, 4, "{error}");
        assert_eq!(position.column, 7, "{error}");
    }

    #[test]
    fn empty_and_oversized_sql_are_invalid() {
        assert_eq!(rejected("   ").code(), "invalid");
        let long = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
        assert_eq!(rejected(&long).code(), "invalid");
    }

    #[test]
    fn quoted_name_is_located() {
        let position = quoted_name_position(
            "SELECT *\nFROM  Other_Table",
            "table 'datafusion.public.other_table' not found",
        );
        assert_eq!(position, Some(SqlPosition { line: 2, column: 7 }));
    }
}
