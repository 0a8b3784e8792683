//! The template language.
//!
//! A template is plain text split into parts by header lines that start with
//! `@`:
//!
//! - `@variant NAME` starts an alternative wording; a template without one
//!   has a single variant called `main`.
//! - `@subject`, `@body`, `@headline` and `@line` start a part of the copy.
//! - `@step DAYS` starts one e-mail of a sequence, sent DAYS days after the
//!   previous one; its `@subject` and `@body` follow.
//!
//! Inside a part, `{{name}}` is a placeholder such as `{{account.name}}`,
//! `{{fact.talking_point}}`, `{{sender.name}}` or `{{cta}}` (the full list is
//! [`PLACEHOLDERS`]). `[[ … ]]` is an optional section. It is dropped whole
//! when a placeholder inside it has no value. Sections do not nest. A
//! backslash makes the next character literal (`\@`, `\\`), or the next pair
//! of braces or brackets (`\{{`, `\[[`).
//! Lines starting with `#` are comments.

use copycar_guest::profile::FactKind;
use std::fmt;

/// Placeholders outside `fact.*`.
pub const PLACEHOLDERS: &[&str] = &[
    "account.name",
    "account.domain",
    "account.industry",
    "sender.name",
    "sender.company",
    "sender.title",
    "cta",
];

/// Fact kinds a `fact.<kind>` placeholder may name.
pub const FACT_KINDS: &[(&str, FactKind)] = &[
    ("name", FactKind::Name),
    ("title", FactKind::Title),
    ("description", FactKind::Description),
    ("heading", FactKind::Heading),
    ("product", FactKind::Product),
    ("technology", FactKind::Technology),
    ("location", FactKind::Location),
    ("social", FactKind::Social),
    ("industry", FactKind::Industry),
    ("size_band", FactKind::SizeBand),
    ("sells", FactKind::Sells),
    ("pain", FactKind::Pain),
    ("talking_point", FactKind::TalkingPoint),
    ("remote_policy", FactKind::RemotePolicy),
    ("other", FactKind::Other),
];

/// A template error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

fn error(line: usize, column: usize, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        line,
        column,
        message: message.into(),
    }
}

/// A piece of part text.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Placeholder(String),
    Optional(Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Subject,
    Body,
    Headline,
    Line,
    /// Starts a sequence step; has no text of its own.
    Step,
}

impl PartKind {
    fn header(self) -> &'static str {
        match self {
            PartKind::Subject => "@subject",
            PartKind::Body => "@body",
            PartKind::Headline => "@headline",
            PartKind::Line => "@line",
            PartKind::Step => "@step",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub kind: PartKind,
    /// Line of the part's header.
    pub line: usize,
    /// Days after the previous step (steps only).
    pub delay_days: u32,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    pub line: usize,
    pub parts: Vec<Part>,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub variants: Vec<Variant>,
}

/// Largest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 32 * 1024;
const MAX_DELAY_DAYS: u32 = 60;

/// Parses template text, checking the syntax and every placeholder name.
pub fn parse(text: &str) -> Result<Template, SyntaxError> {
    let mut variants: Vec<Variant> = Vec::new();
    let mut current: Option<Part> = None;
    // Text of the current part, with the line and column of each character.
    let mut body: Vec<(char, usize, usize)> = Vec::new();

    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        if raw_line.starts_with('#') {
            continue;
        }
        if raw_line.starts_with('@') {
            finish_part(&mut variants, current.take(), &mut body)?;
            let mut fields = raw_line.split_whitespace();
            let header = fields.next().unwrap_or("@");
            let argument = fields.next();
            let argument_column = argument.map_or(0, |a| column_after(raw_line, header.len(), a));
            if let Some(extra) = fields.next() {
                let column = column_after(raw_line, argument_column, extra);
                return Err(error(
                    line,
                    column,
                    format!("unexpected `{extra}` after the header"),
                ));
            }
            let kind = match header {
                "@variant" => {
                    let name = argument.ok_or_else(|| {
                        error(line, raw_line.len() + 1, "`@variant` needs a name")
                    })?;
                    let valid = name.len() <= 32
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if !valid {
                        return Err(error(
                            line,
                            argument_column,
                            "a variant name has at most 32 letters, digits, `_` or `-`",
                        ));
                    }
                    if variants.iter().any(|v| v.name == name) {
                        return Err(error(
                            line,
                            argument_column,
                            format!("variant `{name}` is defined twice"),
                        ));
                    }
                    variants.push(Variant {
                        name: name.to_string(),
                        line,
                        parts: Vec::new(),
                    });
                    continue;
                }
                "@subject" => PartKind::Subject,
                "@body" => PartKind::Body,
                "@headline" => PartKind::Headline,
                "@line" => PartKind::Line,
                "@step" => PartKind::Step,
                other => {
                    return Err(error(
                        line,
                        1,
                        format!(
                            "unknown header `{other}`; use @variant, @subject, @body, @headline, @line or @step"
                        ),
                    ));
                }
            };
            let delay_days = if kind == PartKind::Step {
                let days = argument.ok_or_else(|| {
                    error(
                        line,
                        raw_line.len() + 1,
                        "`@step` needs the days to wait, for example `@step 3`",
                    )
                })?;
                let days: u32 = days.parse().ok().filter(|d| *d <= MAX_DELAY_DAYS).ok_or_else(|| {
                    error(
                        line,
                        argument_column,
                        format!("the step delay must be a whole number of days from 0 to {MAX_DELAY_DAYS}"),
                    )
                })?;
                days
            } else {
                if let Some(argument) = argument {
                    return Err(error(
                        line,
                        argument_column,
                        format!("unexpected `{argument}` after `{header}`"),
                    ));
                }
                0
            };
            if variants.is_empty() {
                variants.push(Variant {
                    name: "main".into(),
                    line,
                    parts: Vec::new(),
                });
            }
            current = Some(Part {
                kind,
                line,
                delay_days,
                nodes: Vec::new(),
            });
            continue;
        }
        match &current {
            Some(_) => {
                for (offset, c) in raw_line.chars().enumerate() {
                    body.push((c, line, offset + 1));
                }
                body.push(('\n', line, raw_line.chars().count() + 1));
            }
            None if raw_line.trim().is_empty() => {}
            None => {
                let column = raw_line.len() - raw_line.trim_start().len() + 1;
                return Err(error(
                    line,
                    column,
                    "text before the first part; start a part with @subject, @body, @headline, @line or @step",
                ));
            }
        }
    }
    finish_part(&mut variants, current.take(), &mut body)?;
    if variants.iter().all(|v| v.parts.is_empty()) {
        return Err(error(1, 1, "the template has no parts"));
    }
    Ok(Template { variants })
}

/// 1-based column of `word` in `line`, searching from byte `from`.
fn column_after(line: &str, from: usize, word: &str) -> usize {
    line[from..].find(word).map_or(from, |offset| from + offset) + 1
}

fn finish_part(
    variants: &mut [Variant],
    part: Option<Part>,
    body: &mut Vec<(char, usize, usize)>,
) -> Result<(), SyntaxError> {
    let Some(mut part) = part else {
        body.clear();
        return Ok(());
    };
    // Blank lines around a part's text are layout, not content.
    while body.last().is_some_and(|(c, _, _)| c.is_whitespace()) {
        body.pop();
    }
    let start = body
        .iter()
        .position(|(c, _, _)| *c != '\n')
        .unwrap_or(body.len());
    let chars = &body[start..];
    if part.kind == PartKind::Step {
        if let Some(&(_, line, column)) = chars.iter().find(|(c, _, _)| !c.is_whitespace()) {
            return Err(error(
                line,
                column,
                "text directly under `@step`; put it under its @subject or @body",
            ));
        }
    } else {
        part.nodes = parse_text(chars, part.line, part.kind)?;
    }
    body.clear();
    variants
        .last_mut()
        .expect("a variant exists once a part starts")
        .parts
        .push(part);
    Ok(())
}

fn parse_text(
    chars: &[(char, usize, usize)],
    header_line: usize,
    kind: PartKind,
) -> Result<Vec<Node>, SyntaxError> {
    if chars.iter().all(|(c, _, _)| c.is_whitespace()) {
        return Err(error(
            header_line,
            1,
            format!("`{}` has no text", kind.header()),
        ));
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut section: Option<(Vec<Node>, usize, usize)> = None;
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let (c, line, column) = chars[i];
        let next = chars.get(i + 1).map(|(c, _, _)| *c);
        let target =
            |section: &mut Option<(Vec<Node>, usize, usize)>, nodes: &mut Vec<Node>, node: Node| {
                match section {
                    Some((inner, _, _)) => inner.push(node),
                    None => nodes.push(node),
                }
            };
        match (c, next) {
            ('\\', Some(escaped)) => {
                // `\{{`, `\}}`, `\[[` and `\]]` make the whole pair literal.
                text.push(escaped);
                i += 2;
                let paired = matches!(escaped, '{' | '}' | '[' | ']')
                    && chars.get(i).is_some_and(|(c, _, _)| *c == escaped);
                if paired {
                    text.push(escaped);
                    i += 1;
                }
            }
            ('\\', None) => {
                return Err(error(
                    line,
                    column,
                    "a backslash at the end escapes nothing",
                ));
            }
            ('{', Some('{')) => {
                let close = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j].0 == '}' && chars[j + 1].0 == '}')
                    .ok_or_else(|| error(line, column, "`{{` is not closed by `}}`"))?;
                let name: String = chars[i + 2..close].iter().map(|(c, _, _)| *c).collect();
                let name = name.trim().to_string();
                check_placeholder(&name).map_err(|message| error(line, column, message))?;
                if !text.is_empty() {
                    target(
                        &mut section,
                        &mut nodes,
                        Node::Text(std::mem::take(&mut text)),
                    );
                }
                target(&mut section, &mut nodes, Node::Placeholder(name));
                i = close + 2;
            }
            ('}', Some('}')) => return Err(error(line, column, "`}}` without an opening `{{`")),
            ('[', Some('[')) => {
                if section.is_some() {
                    return Err(error(line, column, "optional sections do not nest"));
                }
                if !text.is_empty() {
                    nodes.push(Node::Text(std::mem::take(&mut text)));
                }
                section = Some((Vec::new(), line, column));
                i += 2;
            }
            (']', Some(']')) => {
                let Some((mut inner, _, _)) = section.take() else {
                    return Err(error(line, column, "`]]` without an opening `[[`"));
                };
                if !text.is_empty() {
                    inner.push(Node::Text(std::mem::take(&mut text)));
                }
                nodes.push(Node::Optional(inner));
                i += 2;
            }
            _ => {
                text.push(c);
                i += 1;
            }
        }
    }
    if let Some((_, line, column)) = section {
        return Err(error(line, column, "`[[` is not closed by `]]`"));
    }
    if !text.is_empty() {
        nodes.push(Node::Text(text));
    }
    if kind != PartKind::Body {
        let multi_line = nodes.iter().any(|n| match n {
            Node::Text(t) => t.contains('\n'),
            Node::Optional(inner) => inner
                .iter()
                .any(|n| matches!(n, Node::Text(t) if t.contains('\n'))),
            Node::Placeholder(_) => false,
        });
        if multi_line {
            return Err(error(
                header_line,
                1,
                format!("`{}` must be a single line", kind.header()),
            ));
        }
    }
    Ok(nodes)
}

fn check_placeholder(name: &str) -> Result<(), String> {
    if PLACEHOLDERS.contains(&name) {
        return Ok(());
    }
    if let Some(kind) = name.strip_prefix("fact.") {
        if FACT_KINDS.iter().any(|(k, _)| *k == kind) {
            return Ok(());
        }
        let kinds: Vec<&str> = FACT_KINDS.iter().map(|(k, _)| *k).collect();
        return Err(format!(
            "unknown fact kind `{kind}`; use one of {}",
            kinds.join(", ")
        ));
    }
    Err(format!(
        "unknown placeholder `{name}`; use {} or fact.<kind>",
        PLACEHOLDERS.join(", ")
    ))
}

/// Returns the fact kind that a `fact.<kind>` placeholder names.
pub fn fact_kind(placeholder: &str) -> Option<FactKind> {
    let kind = placeholder.strip_prefix("fact.")?;
    FACT_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f)
}

/// Values for placeholders; a value may name the fact it came from.
pub trait Values {
    fn value(&self, placeholder: &str) -> Option<(String, Option<String>)>;
}

/// Rendered text and what went into it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    /// Ids of the facts in the text, in order of first use.
    pub facts: Vec<String>,
    /// Placeholders outside optional sections that had no value; they stay
    /// in the text as `{{name}}`.
    pub missing: Vec<String>,
    /// Optional sections kept, and dropped for a missing value or trimming.
    pub sections_kept: usize,
    pub sections_dropped: usize,
}

/// Renders part nodes. `max_sections` keeps at most that many optional
/// sections (the first ones that can be filled), for trimming copy.
pub fn render(nodes: &[Node], values: &dyn Values, max_sections: Option<usize>) -> Rendered {
    let mut out = Rendered::default();
    for node in nodes {
        match node {
            Node::Text(text) => out.text.push_str(text),
            Node::Placeholder(name) => match values.value(name) {
                Some((value, fact)) => {
                    out.text.push_str(&value);
                    if let Some(fact) = fact
                        && !out.facts.contains(&fact)
                    {
                        out.facts.push(fact);
                    }
                }
                None => {
                    out.text.push_str(&format!("{{{{{name}}}}}"));
                    out.missing.push(name.clone());
                }
            },
            Node::Optional(inner) => {
                let mut text = String::new();
                let mut facts = Vec::new();
                let mut complete = true;
                for node in inner {
                    match node {
                        Node::Text(t) => text.push_str(t),
                        Node::Placeholder(name) => match values.value(name) {
                            Some((value, fact)) => {
                                text.push_str(&value);
                                facts.extend(fact);
                            }
                            None => complete = false,
                        },
                        Node::Optional(_) => unreachable!("the parser rejects nested sections"),
                    }
                }
                let room = max_sections.is_none_or(|max| out.sections_kept < max);
                if complete && room {
                    out.text.push_str(&text);
                    out.sections_kept += 1;
                    for fact in facts {
                        if !out.facts.contains(&fact) {
                            out.facts.push(fact);
                        }
                    }
                } else {
                    out.sections_dropped += 1;
                }
            }
        }
    }
    out.text = tidy(&out.text);
    out
}

/// Cleans the spacing that dropped sections and values leave behind:
/// doubled spaces, a space before punctuation, doubled stops, blank runs.
pub fn tidy(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut out = String::new();
        let chars: Vec<char> = line.chars().collect();
        for (index, &c) in chars.iter().enumerate() {
            let last = out.chars().last();
            if c == ' ' && (last == Some(' ') || out.is_empty()) {
                continue;
            }
            if matches!(c, '.' | ',' | '!' | '?' | ';' | ':') && last == Some(' ') {
                out.pop();
            }
            // A doubled stop (a value ending in one, then the template's)
            // becomes one; an ellipsis of three or more stays.
            if c == '.' && out.ends_with(['.', '!', '?']) {
                let run = chars[index..].iter().take_while(|&&d| d == '.').count();
                let before = out.chars().rev().take_while(|&d| d == '.').count();
                if run + before < 3 {
                    continue;
                }
            }
            out.push(c);
        }
        lines.push(out.trim_end().to_string());
    }
    let mut joined = String::new();
    let mut blank = 0;
    for line in lines {
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        joined.push_str(&line);
        joined.push('\n');
    }
    joined.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, (&'static str, Option<&'static str>)>);

    impl Values for Map {
        fn value(&self, name: &str) -> Option<(String, Option<String>)> {
            self.0
                .get(name)
                .map(|(v, f)| (v.to_string(), f.map(str::to_string)))
        }
    }

    fn values() -> Map {
        Map(HashMap::from([
            ("account.name", ("Acme", None)),
            ("fact.pain", ("slow invoicing", Some("f2"))),
            ("sender.name", ("Grace", None)),
        ]))
    }

    fn body(template: &Template) -> &[Node] {
        &template.variants[0].parts[1].nodes
    }

    #[test]
    fn parses_parts_and_variants() {
        let template = parse(
            "# a comment\n@variant short\n@subject\nHi {{account.name}}\n@body\nHello.\n\n@variant long\n@subject\nHello\n@body\nLonger.\n",
        )
        .unwrap();
        assert_eq!(template.variants.len(), 2);
        assert_eq!(template.variants[0].name, "short");
        assert_eq!(template.variants[1].parts[1].kind, PartKind::Body);
        assert_eq!(
            template.variants[0].parts[0].nodes,
            [
                Node::Text("Hi ".into()),
                Node::Placeholder("account.name".into())
            ]
        );
        let single = parse("@body\nJust text.").unwrap();
        assert_eq!(single.variants[0].name, "main");
    }

    #[test]
    fn renders_placeholders_and_records_facts() {
        let template =
            parse("@subject\nx\n@body\nHi {{account.name}}, about {{fact.pain}}.").unwrap();
        let out = render(body(&template), &values(), None);
        assert_eq!(out.text, "Hi Acme, about slow invoicing.");
        assert_eq!(out.facts, ["f2"]);
        assert!(out.missing.is_empty());
    }

    #[test]
    fn optional_section_drops_without_value() {
        let template =
            parse("@subject\nx\n@body\nHi {{account.name}}.[[ You use {{fact.technology}}.]][[ About {{fact.pain}}.]]")
                .unwrap();
        let out = render(body(&template), &values(), None);
        assert_eq!(out.text, "Hi Acme. About slow invoicing.");
        assert_eq!(out.sections_kept, 1);
        assert_eq!(out.sections_dropped, 1);
        let trimmed = render(body(&template), &values(), Some(0));
        assert_eq!(trimmed.text, "Hi Acme.");
        assert!(
            trimmed.facts.is_empty(),
            "facts in dropped sections are not used"
        );
    }

    #[test]
    fn missing_value_outside_section_stays_visible() {
        let template = parse("@subject\nx\n@body\nWe use {{fact.technology}}.").unwrap();
        let out = render(body(&template), &values(), None);
        assert_eq!(out.text, "We use {{fact.technology}}.");
        assert_eq!(out.missing, ["fact.technology"]);
    }

    #[test]
    fn escapes_make_literals() {
        let template = parse("@body\n\\@home \\{{not\\}} \\[[x\\]] \\\\").unwrap();
        let out = render(&template.variants[0].parts[0].nodes, &values(), None);
        assert_eq!(out.text, "@home {{not}} [[x]] \\");
    }

    #[test]
    fn steps_carry_delays() {
        let template =
            parse("@step 0\n@subject\nA\n@body\nB\n@step 3\n@subject\nC\n@body\nD").unwrap();
        let parts = &template.variants[0].parts;
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[3].kind, PartKind::Step);
        assert_eq!(parts[3].delay_days, 3);
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let cases: &[(&str, usize, usize, &str)] = &[
            (
                "@body\nHi {{account.nme}}",
                2,
                4,
                "unknown placeholder `account.nme`",
            ),
            (
                "@body\nok\n  {{fact.colour}}",
                3,
                3,
                "unknown fact kind `colour`",
            ),
            ("@body\nHi {{account.name", 2, 4, "not closed"),
            ("@body\nA [[b [[c]] ]]", 2, 7, "do not nest"),
            ("@body\nA [[b", 2, 3, "not closed by `]]`"),
            ("@body\nA ]] b", 2, 3, "without an opening"),
            ("@body\nA }} b", 2, 3, "without an opening"),
            ("hello\n@body\nx", 1, 1, "text before the first part"),
            ("@bdy\nx", 1, 1, "unknown header `@bdy`"),
            ("@step soon\n@body\nx", 1, 7, "whole number of days"),
            ("@step 3\nhello\n@body\nx", 2, 1, "directly under `@step`"),
            ("@subject\none\ntwo\n@body\nx", 1, 1, "single line"),
            ("@subject\n\n@body\nx", 1, 1, "has no text"),
            (
                "@variant a\n@body\nx\n@variant a\n@body\ny",
                4,
                10,
                "defined twice",
            ),
            ("@body extra\nx", 1, 7, "unexpected `extra`"),
            ("@body\nend \\", 2, 5, "escapes nothing"),
            ("", 1, 1, "no parts"),
        ];
        for &(text, line, column, message) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(
                (error.line, error.column),
                (line, column),
                "{text:?}: {error}"
            );
            assert!(error.message.contains(message), "{text:?}: {error}");
        }
    }

    #[test]
    fn tidy_cleans_spacing() {
        assert_eq!(
            tidy("Hi  Acme , we  met..\n\n\n\nBye. "),
            "Hi Acme, we met.\n\nBye."
        );
        assert_eq!(tidy("It grew fast.. Really"), "It grew fast. Really");
        assert_eq!(tidy("Wait..."), "Wait...");
    }

    #[test]
    fn fact_kinds_resolve() {
        assert_eq!(
            fact_kind("fact.talking_point"),
            Some(FactKind::TalkingPoint)
        );
        assert_eq!(fact_kind("account.name"), None);
    }
}
