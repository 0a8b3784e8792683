//! Exporting a pipeline for an Arroyo cluster that reads the event topic
//! on Fluvio.
//!
//! The file is kept as written, comments and layout included. Only the
//! source table's `WITH (...)` options are replaced by a Fluvio source:
//! the topic, optionally the cluster endpoint, reading from the earliest
//! offset, JSON records with Unix-millisecond timestamps. Options of the
//! embedded engine that Arroyo does not know (`allowed_lateness`,
//! `idle_timeout`, `result_retention`, `max_open_windows`,
//! `max_result_rows`) are listed in a comment above the statement.

use crate::error::SqlError;
use crate::parse::{normalize, parse_pipeline};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// The Fluvio topic and cluster an exported pipeline reads events from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArroyoTarget {
    /// The Fluvio topic the events are produced to.
    pub topic: String,
    /// The Fluvio cluster's SC address; Arroyo's default profile when
    /// `None`.
    pub endpoint: Option<String>,
}

/// Rewrites pipeline `name` (its SQL text) for Arroyo with a Fluvio source.
/// The pipeline is parsed first, so an invalid file fails with the same
/// positioned error as in the embedded engine.
pub fn export_arroyo(name: &str, sql: &str, target: &ArroyoTarget) -> Result<String, SqlError> {
    let spec = parse_pipeline(name, sql)?;
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location.line, e.location.column, e.message))?;
    let significant: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();

    // Find `CREATE TABLE <source> ... WITH (` and its closing parenthesis.
    let mut statement_start = 0;
    let mut found = None;
    let mut i = 0;
    while i < significant.len() {
        if matches!(significant[i].token, Token::SemiColon) {
            statement_start = i + 1;
        }
        let is_source = i == statement_start
            && is_word(&significant[i].token, "CREATE")
            && significant
                .get(i + 1)
                .is_some_and(|t| is_word(&t.token, "TABLE"))
            && significant.get(i + 2).is_some_and(|t| match &t.token {
                Token::Word(w) => normalize(&w.value, w.quote_style) == spec.source.name,
                _ => false,
            });
        if is_source {
            found = Some(i);
            break;
        }
        i += 1;
    }
    let start = found.ok_or_else(|| {
        SqlError::at(
            1,
            1,
            format!("source table `{}` not found", spec.source.name),
        )
    })?;

    let mut depth = 0usize;
    let mut with_open = None;
    let mut k = start + 3;
    while k < significant.len() {
        match &significant[k].token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::SemiColon => break,
            token if depth == 0 && is_word(token, "WITH") => {
                if significant
                    .get(k + 1)
                    .is_some_and(|t| matches!(t.token, Token::LParen))
                {
                    with_open = Some(k);
                }
                break;
            }
            _ => {}
        }
        k += 1;
    }
    let with_open = with_open.ok_or_else(|| {
        let span = significant[start].span;
        SqlError::at_span(
            span,
            "the source table has no WITH (...) options to replace",
        )
    })?;
    let mut depth = 0usize;
    let mut close = None;
    for (j, token) in significant.iter().enumerate().skip(with_open + 1) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    close = Some(j);
                    break;
                }
            }
            _ => {}
        }
    }
    let close =
        close.ok_or_else(|| SqlError::at_span(significant[with_open].span, "unclosed WITH ("))?;

    let lines = LineIndex::new(sql);
    let statement_at = lines.offset(significant[start].span.start);
    let with_at = lines.offset(significant[with_open].span.start);
    let end_at = lines.offset(significant[close].span.end);

    let mut dropped = Vec::new();
    if spec.source.allowed_lateness_ms > 0 {
        dropped.push(format!(
            "allowed_lateness {} ms",
            spec.source.allowed_lateness_ms
        ));
    }
    dropped.push(format!("idle_timeout {} ms", spec.source.idle_timeout_ms));
    dropped.push(format!(
        "result_retention {} ms",
        spec.source.result_retention_ms
    ));
    dropped.push(format!("max_open_windows {}", spec.source.max_open_windows));
    dropped.push(format!("max_result_rows {}", spec.source.max_result_rows));

    let mut options = vec![
        "    connector = 'fluvio'".to_string(),
        "    type = 'source'".to_string(),
        format!("    topic = {}", quote(&target.topic)),
    ];
    if let Some(endpoint) = &target.endpoint {
        options.push(format!("    endpoint = {}", quote(endpoint)));
    }
    options.extend([
        "    'source.offset' = 'earliest'".to_string(),
        "    format = 'json'".to_string(),
        "    'json.timestamp_format' = 'unix_millis'".to_string(),
    ]);

    // Edits as (start, end, replacement) byte ranges of `sql`.
    let mut edits: Vec<(usize, usize, String)> = vec![
        (
            0,
            0,
            format!(
                "-- Pipeline `{name}` exported for Arroyo: the source reads copycar events as\n-- JSON records from the Fluvio topic `{}`, and every query groups by tenant.\n",
                target.topic
            ),
        ),
        (
            statement_at,
            statement_at,
            format!(
                "-- Options of the embedded engine left out (Arroyo has no table option for\n-- them): {}.\n",
                dropped.join(", ")
            ),
        ),
        (
            with_at,
            end_at,
            format!("WITH (\n{}\n)", options.join(",\n")),
        ),
    ];
    for offset in tenant_insertions(&significant) {
        let at = lines.offset(offset);
        edits.push((at, at, " tenant,".to_string()));
    }
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::with_capacity(sql.len() + 1024);
    let mut copied = 0;
    for (start, end, text) in edits {
        out.push_str(&sql[copied..start]);
        out.push_str(&text);
        copied = end;
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// Finds where to add `tenant` so each aggregation keeps tenants apart, as
/// the embedded engine does by itself. That is after the first top-level
/// SELECT and after GROUP BY of every INSERT and bare SELECT statement,
/// unless its GROUP BY already names `tenant`.
fn tenant_insertions(significant: &[&TokenWithSpan]) -> Vec<Location> {
    let mut found = Vec::new();
    let mut statements: Vec<&[&TokenWithSpan]> = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, token) in significant.iter().enumerate() {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::SemiColon if depth == 0 => {
                statements.push(&significant[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    statements.push(&significant[start..]);

    for statement in statements {
        let Some(first) = statement.first() else {
            continue;
        };
        if !is_word(&first.token, "INSERT") && !is_word(&first.token, "SELECT") {
            continue;
        }
        let mut depth = 0usize;
        let mut select = None;
        let mut group_by = None;
        let mut grouped_by_tenant = false;
        let mut in_group_by = false;
        for (i, token) in statement.iter().enumerate() {
            match &token.token {
                Token::LParen => depth += 1,
                Token::RParen => depth = depth.saturating_sub(1),
                t if depth == 0 && select.is_none() && is_word(t, "SELECT") => {
                    select = Some(token.span.end);
                }
                t if depth == 0
                    && is_word(t, "BY")
                    && i > 0
                    && is_word(&statement[i - 1].token, "GROUP") =>
                {
                    group_by = Some(token.span.end);
                    in_group_by = true;
                }
                t if depth == 0
                    && in_group_by
                    && ["HAVING", "ORDER", "LIMIT", "WINDOW"]
                        .iter()
                        .any(|k| is_word(t, k)) =>
                {
                    in_group_by = false;
                }
                Token::Word(w)
                    if depth == 0 && in_group_by && w.value.eq_ignore_ascii_case("tenant") =>
                {
                    grouped_by_tenant = true;
                }
                _ => {}
            }
        }
        if let (Some(select), Some(group_by)) = (select, group_by)
            && !grouped_by_tenant
        {
            found.push(select);
            found.push(group_by);
        }
    }
    found
}

fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

/// Quotes `text` as a SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Byte offsets of 1-based line and column positions.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn offset(&self, at: Location) -> usize {
        let line = (at.line.max(1) - 1) as usize;
        let Some(&start) = self.starts.get(line) else {
            return self.text.len();
        };
        let columns = (at.column.max(1) - 1) as usize;
        self.text[start..]
            .char_indices()
            .nth(columns)
            .map(|(i, _)| start + i)
            .unwrap_or(self.text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = "-- Counts per minute.
CREATE TABLE events (
    tenant TEXT, type TEXT, campaign TEXT, occurred_at TIMESTAMP,
    WATERMARK FOR occurred_at AS occurred_at - INTERVAL '30 seconds'
) WITH (
    connector = 'event_log',
    type = 'source',
    allowed_lateness = '10 minutes'
);
CREATE TABLE out WITH (connector = 'preview', type = 'sink');
INSERT INTO out SELECT tumble(INTERVAL '1 minute') AS window, campaign, count(*) AS n
FROM events GROUP BY window, campaign;
";

    fn target() -> ArroyoTarget {
        ArroyoTarget {
            topic: "copycar-events".into(),
            endpoint: Some("fluvio-sc:9003".into()),
        }
    }

    #[test]
    fn replaces_only_the_source_options() {
        let out = export_arroyo("per_minute", PIPELINE, &target()).unwrap();
        assert!(out.contains("connector = 'fluvio'"), "{out}");
        assert!(out.contains("topic = 'copycar-events'"));
        assert!(out.contains("endpoint = 'fluvio-sc:9003'"));
        assert!(out.contains("'json.timestamp_format' = 'unix_millis'"));
        assert!(!out.contains("connector = 'event_log'"));
        assert!(!out.contains("allowed_lateness = "));
        assert!(out.contains("allowed_lateness 600000 ms"));
        // The rest is untouched: the watermark, the sink, the query.
        assert!(out.contains("WATERMARK FOR occurred_at AS occurred_at - INTERVAL '30 seconds'"));
        assert!(out.contains("CREATE TABLE out WITH (connector = 'preview', type = 'sink');"));
        assert!(
            out.ends_with("FROM events GROUP BY tenant, window, campaign;\n"),
            "{out}"
        );
        assert!(
            out.contains("INSERT INTO out SELECT tenant, tumble(INTERVAL '1 minute')"),
            "{out}"
        );
        // The result still parses as a pipeline.
        let spec = parse_pipeline("per_minute", &out).unwrap();
        assert_eq!(
            spec.source.connector,
            crate::Connector::Fluvio {
                topic: "copycar-events".into()
            }
        );
    }

    #[test]
    fn queries_grouped_by_tenant_are_left_alone() {
        let sql = PIPELINE.replace(
            "GROUP BY window, campaign",
            "GROUP BY tenant, window, campaign",
        );
        let out = export_arroyo("per_minute", &sql, &target()).unwrap();
        assert_eq!(out.matches("tenant,").count(), 1, "{out}");
    }

    #[test]
    fn endpoint_is_optional_and_quotes_are_escaped() {
        let out = export_arroyo(
            "per_minute",
            PIPELINE,
            &ArroyoTarget {
                topic: "it's".into(),
                endpoint: None,
            },
        )
        .unwrap();
        assert!(out.contains("topic = 'it''s'"));
        assert!(!out.contains("endpoint ="));
    }

    #[test]
    fn invalid_pipeline_fails_with_position() {
        let error = export_arroyo("bad", "CREATE TABLE events (", &target()).unwrap_err();
        assert_eq!(error.line, 1);
    }

    #[test]
    fn shipped_pipelines_export() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in [
            "campaign_hourly",
            "variant_comparison",
            "sender_domain_health",
        ] {
            let sql = std::fs::read_to_string(dir.join(format!("{file}.sql"))).unwrap();
            let out = export_arroyo(file, &sql, &target()).unwrap();
            parse_pipeline(file, &out).unwrap_or_else(|e| panic!("{file}: {e}\n{out}"));
            assert_eq!(out.matches("connector = 'fluvio'").count(), 1, "{out}");
        }
    }
}
