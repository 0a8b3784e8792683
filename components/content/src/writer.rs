//! The template engine: renders a template variant, checks it, and on a
//! failing check trims optional sections or moves to another variant.

use crate::context::Context;
use crate::kind::{Copy, Length};
use crate::quality::{Evidence, Report, check};
use crate::shape::{RenderLimits, render_variant};
use crate::template::{Template, Variant};

/// Most drafts one request writes, first draft included.
pub const MAX_ATTEMPTS: usize = 3;

/// One checked draft.
#[derive(Debug, Clone)]
pub struct Draft {
    pub copy: Copy,
    pub facts_used: Vec<String>,
    pub report: Report,
    /// Writer label: the model id, or the template and variant.
    pub model: String,
    /// Change from the previous draft, for the attempt history.
    pub change: String,
}

/// Checks copy against the request's context.
pub fn check_copy(copy: &Copy, facts_used: &[String], context: &Context) -> Report {
    let fact_values: Vec<&str> = context
        .account
        .facts
        .iter()
        .map(|f| f.value.as_str())
        .collect();
    let evidence = Evidence {
        content_type: context.content_type,
        length: context.length,
        fact_values,
        facts_used: facts_used.len(),
        names: context.names(),
        call_to_action: &context.call_to_action,
        requested_lines: context.count,
        requested_steps: context.steps,
        language: &context.language,
    };
    check(copy, &evidence)
}

/// Origin of a template, for the response and the model label.
#[derive(Debug, Clone)]
pub struct TemplateSource {
    /// `builtin` or `tenant`.
    pub origin: &'static str,
    pub industry: String,
}

/// Orders variants: one named after the tone, then one named after the
/// length, then the built-in names that fit the length, then the rest.
fn variant_order<'a>(template: &'a Template, context: &Context) -> Vec<&'a Variant> {
    let preferred: &[&str] = match context.length {
        Length::Short => &["short", "direct"],
        Length::Medium | Length::Long => &["detailed"],
    };
    let rank = |variant: &Variant| {
        if variant.name == context.tone {
            0
        } else if variant.name == context.length.name()
            || preferred.contains(&variant.name.as_str())
        {
            1
        } else {
            2
        }
    };
    let mut variants: Vec<&Variant> = template.variants.iter().collect();
    variants.sort_by_key(|v| rank(v));
    variants
}

/// Writes copy from a template, at most [`MAX_ATTEMPTS`] drafts. Returns
/// every draft in order; the caller keeps the best.
pub fn write_from_template(
    template: &Template,
    source: &TemplateSource,
    context: &Context,
) -> Vec<Draft> {
    let variants = variant_order(template, context);
    let mut drafts: Vec<Draft> = Vec::new();
    let mut variant_index = 0;
    let mut max_sections: Option<usize> = None;
    let mut change = format!("first draft from variant `{}`", variants[0].name);

    while drafts.len() < MAX_ATTEMPTS {
        let variant = variants[variant_index];
        let limits = RenderLimits {
            max_sections,
            steps: context.steps,
            lines: context.count,
        };
        let rendered = render_variant(variant, context.content_type, context, limits);
        let report = check_copy(&rendered.copy, &rendered.facts, context);
        let passed = report.passed;
        let too_long = report
            .criterion("length")
            .is_some_and(|c| !c.pass && c.detail.contains("too long"));
        drafts.push(Draft {
            copy: rendered.copy,
            facts_used: rendered.facts,
            report,
            model: format!(
                "{}:{}/{}#{}",
                source.origin,
                context.content_type.name(),
                source.industry,
                variant.name
            ),
            change: std::mem::take(&mut change),
        });
        if passed {
            break;
        }

        // Copy that is too long loses one optional section at a time;
        // anything else moves on to the next variant.
        if too_long && rendered.sections_kept > 0 {
            max_sections = Some(rendered.sections_kept - 1);
            change = format!(
                "trimmed variant `{}` to {} optional sections because the copy was too long",
                variant.name,
                rendered.sections_kept - 1
            );
        } else if variant_index + 1 < variants.len() {
            variant_index += 1;
            max_sections = None;
            let failed: Vec<&str> = drafts
                .last()
                .map(|d| d.report.failures().map(|c| c.name).collect())
                .unwrap_or_default();
            change = format!(
                "switched to variant `{}` because these criteria failed: {}",
                variants[variant_index].name,
                failed.join(", ")
            );
        } else {
            break;
        }
    }
    drafts
}

/// Index of the best draft: a passing one first, then the highest score;
/// on a tie the earlier draft wins.
pub fn best(drafts: &[Draft]) -> usize {
    let mut best = 0;
    for (index, draft) in drafts.iter().enumerate() {
        let current = &drafts[best].report;
        let better = (draft.report.passed && !current.passed)
            || (draft.report.passed == current.passed && draft.report.score > current.score);
        if better {
            best = index;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Account, Sender};
    use crate::defaults::builtin;
    use crate::kind::ContentType;
    use crate::template::parse;
    use copycar_guest::profile::{Fact, FactKind, Source};

    fn fact(id: &str, kind: FactKind, value: &str) -> Fact {
        Fact {
            id: id.into(),
            kind,
            value: value.into(),
            source: Source::Provided,
        }
    }

    fn context(kind: ContentType, length: Length) -> Context {
        Context {
            content_type: kind,
            industry: "default".into(),
            account: Account {
                id: None,
                domain: "acme.com".into(),
                name: "Acme".into(),
                industry: None,
                facts: vec![
                    fact(
                        "f1",
                        FactKind::TalkingPoint,
                        "You are hiring three data engineers",
                    ),
                    fact("f2", FactKind::Pain, "Slow month-end reporting"),
                    fact("f3", FactKind::Product, "a payroll app for small shops"),
                ],
            },
            tone: "friendly".into(),
            length,
            call_to_action: kind.default_call_to_action().into(),
            sender: Some(Sender {
                name: "Grace Hopper".into(),
                company: "Navy Tools".into(),
                title: Some("Head of Sales".into()),
            }),
            language: "en".into(),
            steps: 3,
            count: 5,
        }
    }

    fn source() -> TemplateSource {
        TemplateSource {
            origin: "builtin",
            industry: "default".into(),
        }
    }

    #[test]
    fn builtins_pass_at_medium_length() {
        for kind in ContentType::ALL {
            let context = context(kind, Length::Medium);
            let template = parse(builtin(kind)).unwrap();
            let drafts = write_from_template(&template, &source(), &context);
            let draft = &drafts[best(&drafts)];
            assert!(
                draft.report.passed,
                "{}: {:#?}\n{:#?}",
                kind.name(),
                draft.report,
                draft.copy
            );
            assert!(!draft.facts_used.is_empty(), "{}", kind.name());
        }
    }

    #[test]
    fn builtins_pass_when_short() {
        for kind in [ContentType::Email, ContentType::LinkedinMessage] {
            let context = context(kind, Length::Short);
            let template = parse(builtin(kind)).unwrap();
            let drafts = write_from_template(&template, &source(), &context);
            let draft = &drafts[best(&drafts)];
            assert!(draft.report.passed, "{}: {:#?}", kind.name(), draft.report);
        }
    }

    #[test]
    fn too_long_copy_is_trimmed() {
        // No call to action either, so the score falls under the threshold.
        let long_section =
            "[[ This optional part repeats words to make the copy long, about {{fact.pain}}.]]"
                .repeat(12);
        let text = format!(
            "@subject\nA quick question for {{{{account.name}}}}\n@body\nHi {{{{account.name}}}} team, we help with busy work.{long_section}"
        );
        let template = parse(&text).unwrap();
        let drafts = write_from_template(
            &template,
            &source(),
            &context(ContentType::Email, Length::Short),
        );
        assert!(drafts.len() >= 2, "{drafts:#?}");
        assert!(drafts[1].change.contains("trimmed"), "{}", drafts[1].change);
        let first = crate::text::words(drafts[0].copy.bodies()[0]).len();
        let second = crate::text::words(drafts[1].copy.bodies()[0]).len();
        assert!(second < first, "{second} < {first}");
    }

    #[test]
    fn failing_variant_moves_to_next() {
        let text = "@variant friendly\n@subject\nHi\n@body\nWe use {{fact.technology}}.\n@variant other\n@subject\nA quick question for {{account.name}}\n@body\nHi.";
        let template = parse(text).unwrap();
        let drafts = write_from_template(
            &template,
            &source(),
            &context(ContentType::Email, Length::Medium),
        );
        assert_eq!(drafts.len(), 2);
        assert!(
            drafts[0].model.ends_with("#friendly"),
            "the tone picks the first variant"
        );
        assert!(
            drafts[1].change.contains("placeholders"),
            "{}",
            drafts[1].change
        );
        assert!(drafts[1].model.ends_with("#other"));
    }
}
