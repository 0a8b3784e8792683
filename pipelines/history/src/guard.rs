//! The read-only guard: parses the SQL and accepts exactly one `SELECT` or
//! `WITH` query, and maps parser and planner errors to positions in the SQL.

use crate::error::{QueryError, SqlPosition};
use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Maximum length of the SQL text, in bytes.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// Most operators one SQL text may hold. DataFusion plans a chain of
/// binary operators such as `1+1+...` by recursion, one level per
/// operator, so a long flat chain can exhaust a thread's stack and abort
/// the process. 400 levels take a few MiB (measured as about 8 KiB each in
/// a debug build).
pub const MAX_OPERATORS: usize = 400;

/// Checks that `sql` holds at most [`MAX_OPERATORS`] binary operators and
/// returns the position of the first one past the limit with a message.
/// Text that does not tokenize passes: the parser reports it.
pub fn check_operator_count(sql: &str) -> Result<(), (SqlPosition, String)> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        return Ok(());
    };
    let mut count = 0;
    for token in &tokens {
        let operator = match &token.token {
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Spaceship
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret
            | Token::ShiftLeft
            | Token::ShiftRight
            | Token::Arrow
            | Token::LongArrow => true,
            Token::Word(word) => {
                word.quote_style.is_none()
                    && ["AND", "OR"]
                        .iter()
                        .any(|k| word.value.eq_ignore_ascii_case(k))
            }
            _ => false,
        };
        if operator {
            count += 1;
            if count > MAX_OPERATORS {
                let at = token.span.start;
                return Err((
                    SqlPosition {
                        line: at.line,
                        column: at.column,
                    },
                    format!(
                        "the SQL has more than {MAX_OPERATORS} operators; split the expression or the query"
                    ),
                ));
            }
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

    check_operator_count(sql).map_err(|(position, message)| QueryError::Syntax {
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
    fn long_operator_chains_are_rejected() {
        let chain = |n: usize| format!("SELECT count(1){} AS n FROM events", "+1".repeat(n));
        assert!(parse_read_only(&chain(MAX_OPERATORS)).is_ok());
        let error = rejected(&chain(MAX_OPERATORS + 1));
        let QueryError::Syntax { message, position } = &error else {
            panic!("{error:?}");
        };
        assert!(message.contains("more than 400 operators"), "{message}");
        // The 401st `+` is at column 16 + 2 * 400.
        assert_eq!(position.map(|p| (p.line, p.column)), Some((1, 816)));
        let conditions = format!(
            "SELECT 1 FROM events WHERE {}",
            "a = 1 OR ".repeat(250) + "true"
        );
        assert!(matches!(rejected(&conditions), QueryError::Syntax { .. }));
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
