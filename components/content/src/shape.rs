//! The parts each content type's template needs, and the rendering of a
//! template variant into [`Copy`].

use crate::kind::{ContentType, Copy, Step};
use crate::template::{Part, PartKind, Rendered, SyntaxError, Template, Values, Variant, render};

/// Checks that every variant has the parts its content type needs.
pub fn check_shape(template: &Template, kind: ContentType) -> Result<(), SyntaxError> {
    for variant in &template.variants {
        check_variant(variant, kind)?;
    }
    Ok(())
}

fn shape_error(line: usize, message: String) -> SyntaxError {
    SyntaxError {
        line,
        column: 1,
        message,
    }
}

fn check_variant(variant: &Variant, kind: ContentType) -> Result<(), SyntaxError> {
    let name = &variant.name;
    let count = |part: PartKind| variant.parts.iter().filter(|p| p.kind == part).count();
    let allowed: &[PartKind] = match kind {
        ContentType::Email => &[PartKind::Subject, PartKind::Body],
        ContentType::EmailSequence => &[PartKind::Step, PartKind::Subject, PartKind::Body],
        ContentType::LinkedinPost | ContentType::LinkedinMessage => &[PartKind::Body],
        ContentType::WebsiteCopy => &[PartKind::Headline, PartKind::Body],
        ContentType::SubjectLines => &[PartKind::Line],
    };
    if let Some(part) = variant.parts.iter().find(|p| !allowed.contains(&p.kind)) {
        let names: Vec<String> = allowed
            .iter()
            .map(|k| format!("@{}", part_name(*k)))
            .collect();
        return Err(shape_error(
            part.line,
            format!(
                "`@{}` is not a part of {}; use {}",
                part_name(part.kind),
                kind.name(),
                names.join(", ")
            ),
        ));
    }
    match kind {
        ContentType::EmailSequence => {
            if variant
                .parts
                .first()
                .is_none_or(|p| p.kind != PartKind::Step)
            {
                return Err(shape_error(
                    variant.line,
                    format!("variant `{name}` must start with `@step 0`"),
                ));
            }
            for step in variant.parts.split(|p| p.kind == PartKind::Step).skip(1) {
                let kinds: Vec<PartKind> = step.iter().map(|p| p.kind).collect();
                if kinds != [PartKind::Subject, PartKind::Body] {
                    let line = step.first().map_or(variant.line, |p| p.line);
                    return Err(shape_error(
                        line,
                        format!(
                            "each step of variant `{name}` needs one @subject and then one @body"
                        ),
                    ));
                }
            }
        }
        ContentType::SubjectLines => {
            if count(PartKind::Line) == 0 {
                return Err(shape_error(
                    variant.line,
                    format!("variant `{name}` needs at least one @line"),
                ));
            }
        }
        _ => {
            for &part in allowed {
                if count(part) != 1 {
                    return Err(shape_error(
                        variant.line,
                        format!(
                            "variant `{name}` needs exactly one @{} for {}",
                            part_name(part),
                            kind.name()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn part_name(kind: PartKind) -> &'static str {
    match kind {
        PartKind::Subject => "subject",
        PartKind::Body => "body",
        PartKind::Headline => "headline",
        PartKind::Line => "line",
        PartKind::Step => "step",
    }
}

/// A rendered variant with what went into it.
#[derive(Debug, Clone)]
pub struct RenderedCopy {
    pub copy: Copy,
    pub facts: Vec<String>,
    /// Optional sections kept in the bodies.
    pub sections_kept: usize,
}

/// Limits for rendering a variant.
#[derive(Debug, Clone, Copy)]
pub struct RenderLimits {
    /// Optional sections kept per body; `None` keeps every one that fills.
    pub max_sections: Option<usize>,
    /// Steps of a sequence.
    pub steps: usize,
    /// Subject lines.
    pub lines: usize,
}

/// Renders a variant whose shape [`check_shape`] accepted.
pub fn render_variant(
    variant: &Variant,
    kind: ContentType,
    values: &dyn Values,
    limits: RenderLimits,
) -> RenderedCopy {
    let mut facts: Vec<String> = Vec::new();
    let mut sections_kept = 0;
    let take = |rendered: Rendered, facts: &mut Vec<String>| {
        for fact in rendered.facts {
            if !facts.contains(&fact) {
                facts.push(fact);
            }
        }
        rendered.text
    };
    let part = |kind: PartKind| variant.parts.iter().find(|p| p.kind == kind);
    let mut text_of = |part: Option<&Part>, body: bool, facts: &mut Vec<String>| {
        let Some(part) = part else {
            return String::new();
        };
        let max = if body { limits.max_sections } else { None };
        let rendered = render(&part.nodes, values, max);
        if body {
            sections_kept += rendered.sections_kept;
        }
        take(rendered, facts)
    };
    let copy = match kind {
        ContentType::Email => Copy::Email {
            subject: text_of(part(PartKind::Subject), false, &mut facts),
            body: text_of(part(PartKind::Body), true, &mut facts),
        },
        ContentType::LinkedinPost => Copy::Post {
            body: text_of(part(PartKind::Body), true, &mut facts),
        },
        ContentType::LinkedinMessage => Copy::Message {
            body: text_of(part(PartKind::Body), true, &mut facts),
        },
        ContentType::WebsiteCopy => Copy::Website {
            headline: text_of(part(PartKind::Headline), false, &mut facts),
            body: text_of(part(PartKind::Body), true, &mut facts),
        },
        ContentType::EmailSequence => {
            let mut steps = Vec::new();
            let mut delay = 0;
            let mut subject = String::new();
            for part in &variant.parts {
                match part.kind {
                    PartKind::Step => delay = part.delay_days,
                    PartKind::Subject => subject = text_of(Some(part), false, &mut facts),
                    PartKind::Body => {
                        if steps.len() == limits.steps {
                            break;
                        }
                        steps.push(Step {
                            delay_days: if steps.is_empty() { 0 } else { delay },
                            subject: std::mem::take(&mut subject),
                            body: text_of(Some(part), true, &mut facts),
                        });
                    }
                    PartKind::Headline | PartKind::Line => {}
                }
            }
            Copy::Sequence { steps }
        }
        ContentType::SubjectLines => {
            // Lines whose placeholders all filled come first; a line with a
            // gap is used only when too few complete ones exist.
            let mut complete = Vec::new();
            let mut partial = Vec::new();
            for part in variant.parts.iter().filter(|p| p.kind == PartKind::Line) {
                let rendered = render(&part.nodes, values, None);
                if rendered.text.is_empty() {
                    continue;
                }
                if rendered.missing.is_empty() && rendered.text.chars().count() <= 60 {
                    complete.push(rendered);
                } else {
                    partial.push(rendered);
                }
            }
            let mut lines = Vec::new();
            for rendered in complete.into_iter().chain(partial).take(limits.lines) {
                lines.push(take(rendered, &mut facts));
            }
            Copy::SubjectLines { lines }
        }
    };
    RenderedCopy {
        copy,
        facts,
        sections_kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::parse;

    #[test]
    fn shape_requires_parts_per_type() {
        let email = parse("@subject\nHi\n@body\nText").unwrap();
        assert!(check_shape(&email, ContentType::Email).is_ok());
        let error = check_shape(&email, ContentType::LinkedinPost).unwrap_err();
        assert_eq!(error.line, 1);
        assert!(
            error
                .message
                .contains("`@subject` is not a part of linkedin_post"),
            "{error}"
        );
        let no_body = parse("@subject\nHi").unwrap();
        let error = check_shape(&no_body, ContentType::Email).unwrap_err();
        assert!(error.message.contains("exactly one @body"), "{error}");
        let steps = parse("@step 0\n@subject\nA\n@body\nB\n@step 2\n@body\nC").unwrap();
        let error = check_shape(&steps, ContentType::EmailSequence).unwrap_err();
        assert_eq!(error.line, 7);
        let lines = parse("@line\nA\n@line\nB").unwrap();
        assert!(check_shape(&lines, ContentType::SubjectLines).is_ok());
    }

    struct NoValues;
    impl Values for NoValues {
        fn value(&self, name: &str) -> Option<(String, Option<String>)> {
            (name == "account.name").then(|| ("Acme".to_string(), None))
        }
    }

    #[test]
    fn sequence_renders_requested_steps() {
        let template =
            parse("@step 0\n@subject\nA\n@body\nB\n@step 3\n@subject\nC\n@body\nD\n@step 4\n@subject\nE\n@body\nF").unwrap();
        let limits = RenderLimits {
            max_sections: None,
            steps: 2,
            lines: 0,
        };
        let rendered = render_variant(
            &template.variants[0],
            ContentType::EmailSequence,
            &NoValues,
            limits,
        );
        let Copy::Sequence { steps } = rendered.copy else {
            panic!()
        };
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].delay_days, 3);
        assert_eq!(steps[1].subject, "C");
    }

    #[test]
    fn subject_lines_prefer_complete_lines() {
        let template = parse(
            "@line\nAbout {{fact.pain}}\n@line\nHello {{account.name}} team\n@line\nA second idea",
        )
        .unwrap();
        let limits = RenderLimits {
            max_sections: None,
            steps: 0,
            lines: 2,
        };
        let rendered = render_variant(
            &template.variants[0],
            ContentType::SubjectLines,
            &NoValues,
            limits,
        );
        let Copy::SubjectLines { lines } = rendered.copy else {
            panic!()
        };
        assert_eq!(lines, ["Hello Acme team", "A second idea"]);
    }
}
