//! Exporting a pipeline for an Arroyo cluster that reads the event topic
//! on Fluvio.
//!
//! The file is kept as written, comments and layout included. Only the
//! source table's `WITH (...)` options are replaced by a Fluvio source:
//! the topic, optionally the cluster endpoint, reading from the earliest
//! offset, JSON records with Unix-millisecond timestamps. Options of the
//! embedded engine that Arroyo does not know (`allowed_lateness`,
//! `idle_timeout`, `result_retention`) are listed in a comment above the
//! statement.

use crate::error::SqlError;
use crate::parse::{normalize, parse_pipeline};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// Where the exported pipeline reads events.
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

    let mut out = String::with_capacity(sql.len() + 512);
    out.push_str(&format!(
        "-- Pipeline `{name}` exported for Arroyo: the source reads copycar events as\n-- JSON records from the Fluvio topic `{}`.\n",
        target.topic
    ));
    out.push_str(&sql[..statement_at]);
    out.push_str(&format!(
        "-- Options of the embedded engine left out (Arroyo has no table option for\n-- them): {}.\n",
        dropped.join(", ")
    ));
    out.push_str(&sql[statement_at..with_at]);
    out.push_str("WITH (\n");
    out.push_str(&options.join(",\n"));
    out.push_str("\n)");
    out.push_str(&sql[end_at..]);
    Ok(out)
}

fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

/// A SQL string literal.
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
        assert!(out.ends_with("FROM events GROUP BY window, campaign;\n"));
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
