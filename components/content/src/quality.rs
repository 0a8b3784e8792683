//! The quality check: scores written copy from 0 to 1 against weighted
//! criteria and explains each one. Pure code, no host calls.
//!
//! The score is the weighted mean of the criteria that apply to the content
//! type. Copy passes when the score is at least [`THRESHOLD`] and no
//! placeholder is left unfilled.

use crate::kind::{ContentType, Copy, Length};
use crate::text::{flesch_reading_ease, sentences, words};
use serde::Serialize;

/// Lowest passing score.
pub const THRESHOLD: f64 = 0.8;

/// Facts and names the copy may rely on besides its own words.
pub struct Evidence<'a> {
    pub content_type: ContentType,
    pub length: Length,
    /// Values of every fact available to the writer.
    pub fact_values: Vec<&'a str>,
    /// How many of those facts the copy used.
    pub facts_used: usize,
    /// Names the copy may state without a fact: the account's name and
    /// domain, the sender's name, company and title, the industry.
    pub names: Vec<&'a str>,
    pub call_to_action: &'a str,
    /// Subject lines requested (subject lines only).
    pub requested_lines: usize,
    /// Steps requested (sequences only).
    pub requested_steps: usize,
    /// BCP 47 language tag; the readability formula applies to English only.
    pub language: &'a str,
}

/// One criterion's result.
#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    pub name: &'static str,
    pub score: f64,
    pub weight: f64,
    pub pass: bool,
    pub detail: String,
}

/// The check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub score: f64,
    pub passed: bool,
    pub threshold: f64,
    pub criteria: Vec<Criterion>,
}

impl Report {
    /// Returns the criteria that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Criterion> {
        self.criteria.iter().filter(|c| !c.pass)
    }

    pub fn criterion(&self, name: &str) -> Option<&Criterion> {
        self.criteria.iter().find(|c| c.name == name)
    }
}

/// Scores `copy` against every criterion that applies to its content type.
pub fn check(copy: &Copy, evidence: &Evidence) -> Report {
    let kind = evidence.content_type;
    let mut criteria = Vec::new();
    if kind == ContentType::SubjectLines {
        criteria.push(line_count(copy, evidence));
    } else {
        criteria.push(length(copy, evidence));
        criteria.push(readability(copy, evidence));
        criteria.push(call_to_action(copy, evidence));
    }
    criteria.push(personalisation(copy, evidence));
    criteria.push(spam_triggers(copy, evidence));
    criteria.push(links_and_images(copy, evidence));
    if !copy.subjects().is_empty() {
        criteria.push(subject_length(copy));
    }
    criteria.push(placeholders(copy));
    criteria.push(unbacked_claims(copy, evidence));

    let total_weight: f64 = criteria.iter().map(|c| c.weight).sum();
    let weighted: f64 = criteria.iter().map(|c| c.score * c.weight).sum();
    let score = round(weighted / total_weight);
    let placeholders_pass = criteria.iter().all(|c| c.name != "placeholders" || c.pass);
    Report {
        score,
        passed: score >= THRESHOLD && placeholders_pass,
        threshold: THRESHOLD,
        criteria,
    }
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn criterion(name: &'static str, weight: f64, score: f64, pass: bool, detail: String) -> Criterion {
    Criterion {
        name,
        score: round(score.clamp(0.0, 1.0)),
        weight,
        pass,
        detail,
    }
}

/// Word range of one body for a channel and requested length.
pub fn word_range(kind: ContentType, length: Length) -> (usize, usize) {
    use ContentType::*;
    use Length::*;
    match (kind, length) {
        (Email, Short) => (40, 90),
        (Email, Medium) => (70, 140),
        (Email, Long) => (120, 220),
        (EmailSequence, Short) => (30, 80),
        (EmailSequence, Medium) => (50, 120),
        (EmailSequence, Long) => (90, 180),
        (LinkedinPost, Short) => (40, 100),
        (LinkedinPost, Medium) => (80, 180),
        (LinkedinPost, Long) => (150, 300),
        (LinkedinMessage, Short) => (20, 60),
        (LinkedinMessage, Medium) => (40, 90),
        (LinkedinMessage, Long) => (70, 140),
        (WebsiteCopy, Short) => (40, 100),
        (WebsiteCopy, Medium) => (80, 180),
        (WebsiteCopy, Long) => (150, 320),
        (SubjectLines, _) => (0, 0),
    }
}

fn length(copy: &Copy, evidence: &Evidence) -> Criterion {
    let (low, high) = word_range(evidence.content_type, evidence.length);
    let counts: Vec<usize> = copy.bodies().iter().map(|b| words(b).len()).collect();
    let mut score = 1.0_f64;
    let mut problems = Vec::new();
    for (index, &count) in counts.iter().enumerate() {
        let part_score = if count < low {
            count as f64 / low as f64
        } else if count > high {
            1.0 - (count - high) as f64 / high as f64
        } else {
            1.0
        };
        if part_score < 1.0 {
            let direction = if count < low { "too short" } else { "too long" };
            let part = if counts.len() > 1 {
                format!("step {} body", index + 1)
            } else {
                "body".to_string()
            };
            problems.push(format!("{part} has {count} words, {direction}"));
        }
        score = score.min(part_score);
    }
    if evidence.content_type == ContentType::EmailSequence
        && counts.len() != evidence.requested_steps
    {
        problems.push(format!(
            "{} steps written, {} requested",
            counts.len(),
            evidence.requested_steps
        ));
        score = score.min(
            counts.len().min(evidence.requested_steps) as f64
                / evidence.requested_steps.max(1) as f64,
        );
    }
    let target = format!(
        "{} {} copy needs {low} to {high} words per body",
        evidence.length.name(),
        evidence.content_type.name()
    );
    let detail = if problems.is_empty() {
        format!("{target}; every body fits")
    } else {
        format!("{target}; {}", problems.join("; "))
    };
    criterion("length", 1.0, score, problems.is_empty(), detail)
}

fn line_count(copy: &Copy, evidence: &Evidence) -> Criterion {
    let lines = copy.subjects();
    let mut distinct: Vec<String> = lines.iter().map(|l| l.to_lowercase()).collect();
    distinct.sort();
    distinct.dedup();
    let wanted = evidence.requested_lines.max(1);
    let score = distinct.len().min(wanted) as f64 / wanted as f64;
    let pass = distinct.len() >= wanted && distinct.len() == lines.len();
    let detail = format!(
        "{} subject lines requested; {} written, {} distinct",
        wanted,
        lines.len(),
        distinct.len()
    );
    criterion("length", 1.0, score, pass, detail)
}

/// Lowest Flesch reading ease that passes: plain business English.
const MIN_READING_EASE: f64 = 45.0;

fn readability(copy: &Copy, evidence: &Evidence) -> Criterion {
    let english = evidence.language.to_ascii_lowercase().starts_with("en");
    if !english {
        return criterion(
            "readability",
            0.0,
            1.0,
            true,
            format!(
                "not scored: the Flesch formula is for English and the language is `{}`",
                evidence.language
            ),
        );
    }
    let text = copy.bodies().join("\n\n");
    let Some(ease) = flesch_reading_ease(&text) else {
        return criterion(
            "readability",
            1.0,
            0.0,
            false,
            "the copy has no words".into(),
        );
    };
    // Full marks from MIN_READING_EASE up, falling to zero at 20 below it.
    let score = ((ease - (MIN_READING_EASE - 20.0)) / 20.0).clamp(0.0, 1.0);
    let pass = ease >= MIN_READING_EASE;
    let advice = if pass {
        ""
    } else {
        "; use shorter sentences and plainer words"
    };
    let detail =
        format!("Flesch reading ease {ease:.0} (at least {MIN_READING_EASE:.0} passes){advice}");
    criterion("readability", 1.0, score, pass, detail)
}

fn personalisation(copy: &Copy, evidence: &Evidence) -> Criterion {
    let available = evidence.fact_values.len();
    if available == 0 {
        let text = copy.texts().join("\n").to_lowercase();
        let named = evidence
            .names
            .first()
            .is_some_and(|name| !name.is_empty() && text.contains(&name.to_lowercase()));
        let detail = if named {
            "no facts are known about the account; the copy names it".to_string()
        } else {
            "no facts are known about the account and the copy does not name it".to_string()
        };
        return criterion(
            "personalisation",
            1.5,
            if named { 1.0 } else { 0.0 },
            named,
            detail,
        );
    }
    let target = available.min(2);
    let used = evidence.facts_used;
    let score = used.min(target) as f64 / target as f64;
    let detail = format!("uses {used} of {available} known facts; at least {target} expected");
    criterion("personalisation", 1.5, score, used >= target, detail)
}

/// Phrases that spam filters and readers associate with bulk mail.
const SPAM_PHRASES: &[&str] = &[
    "act now",
    "100% free",
    "risk-free",
    "risk free",
    "no obligation",
    "limited time",
    "click here",
    "buy now",
    "order now",
    "call now",
    "earn money",
    "make money",
    "extra income",
    "double your",
    "guaranteed",
    "guarantee",
    "winner",
    "you have been selected",
    "congratulations",
    "urgent",
    "once in a lifetime",
    "special promotion",
    "cheap",
    "lowest price",
    "best price",
    "free trial",
    "free gift",
    "no cost",
    "amazing",
    "miracle",
    "dear friend",
    "this is not spam",
];

fn spam_triggers(copy: &Copy, evidence: &Evidence) -> Criterion {
    let text = copy.texts().join("\n");
    let lower = text.to_lowercase();
    let mut hits: Vec<String> = SPAM_PHRASES
        .iter()
        .filter(|phrase| contains_phrase(&lower, phrase))
        .map(|phrase| format!("\"{phrase}\""))
        .collect();
    let exclamations = text.matches('!').count();
    if exclamations > 1 {
        hits.push(format!("{exclamations} exclamation marks"));
    }
    let facts = evidence.fact_values.join(" ");
    let shouting: Vec<&str> = words(&text)
        .into_iter()
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 4)
        .filter(|w| w.chars().all(|c| !c.is_lowercase()))
        .filter(|w| !facts.contains(w))
        .collect();
    if !shouting.is_empty() {
        hits.push(format!("words in capitals: {}", shouting.join(", ")));
    }
    let score = 1.0 - 0.34 * hits.len() as f64;
    let detail = if hits.is_empty() {
        "no spam-trigger phrases".to_string()
    } else {
        format!("remove {}", hits.join("; "))
    };
    criterion("spam_triggers", 1.0, score, hits.is_empty(), detail)
}

/// Finds `phrase` in `text` at word boundaries.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(phrase).any(|(start, _)| {
        boundary(text[..start].chars().next_back())
            && boundary(text[start + phrase.len()..].chars().next())
    })
}

fn links_and_images(copy: &Copy, evidence: &Evidence) -> Criterion {
    let text = copy.texts().join("\n");
    let lower = text.to_lowercase();
    let links = lower.matches("http://").count()
        + lower.matches("https://").count()
        + lower.matches("www.").count();
    let images = lower.matches("<img").count() + text.matches("![").count();
    let max_links = match evidence.content_type {
        ContentType::SubjectLines => 0,
        ContentType::WebsiteCopy => 2,
        _ => 1,
    };
    let excess = links.saturating_sub(max_links) + images;
    let score = match excess {
        0 => 1.0,
        1 => 0.5,
        _ => 0.0,
    };
    let detail = format!(
        "{links} links (at most {max_links}) and {images} images (none allowed, they trip filters and often do not load)"
    );
    criterion("links_and_images", 0.5, score, excess == 0, detail)
}

/// Phrases that ask the reader to act.
const CALL_TO_ACTION_PHRASES: &[&str] = &[
    "would you be open",
    "are you open to",
    "open to a",
    "worth a",
    "would it make sense",
    "would it help",
    "could we",
    "can we",
    "shall we",
    "let me know",
    "reply to",
    "just reply",
    "book a",
    "schedule",
    "grab time",
    "are you free",
    "interested in",
    "learn more",
    "get started",
    "request a demo",
    "sign up",
    "start your",
    "talk to",
];

fn call_to_action(copy: &Copy, evidence: &Evidence) -> Criterion {
    let own = evidence
        .call_to_action
        .trim()
        .trim_end_matches(['.', '?', '!'])
        .to_lowercase();
    let mut counts = Vec::new();
    for body in copy.bodies() {
        let count = sentences(body)
            .iter()
            .map(|s| s.to_lowercase())
            .filter(|s| {
                (!own.is_empty() && s.contains(&own))
                    || CALL_TO_ACTION_PHRASES.iter().any(|p| contains_phrase(s, p))
            })
            .count();
        counts.push(count);
    }
    let score = counts
        .iter()
        .map(|&n| match n {
            1 => 1.0,
            2 => 0.5,
            _ => 0.0,
        })
        .fold(1.0_f64, f64::min);
    let pass = counts.iter().all(|&n| n == 1);
    let listed: Vec<String> = counts.iter().map(usize::to_string).collect();
    let detail = format!(
        "calls to action per body: {} (exactly one each passes)",
        listed.join(", ")
    );
    criterion("call_to_action", 1.0, score, pass, detail)
}

/// Subject lines pass between these lengths in characters; mail clients
/// cut longer ones on phones.
const SUBJECT_CHARS: (usize, usize) = (10, 60);
const SUBJECT_MAX_WORDS: usize = 9;

fn subject_length(copy: &Copy) -> Criterion {
    let subjects = copy.subjects();
    let mut problems = Vec::new();
    for subject in &subjects {
        let chars = subject.chars().count();
        let word_count = words(subject).len();
        if chars < SUBJECT_CHARS.0 || chars > SUBJECT_CHARS.1 || word_count > SUBJECT_MAX_WORDS {
            problems.push(format!(
                "\"{subject}\" has {chars} characters and {word_count} words"
            ));
        }
    }
    let score = 1.0 - problems.len() as f64 / subjects.len() as f64;
    let limits = format!(
        "subject lines need {} to {} characters and at most {SUBJECT_MAX_WORDS} words",
        SUBJECT_CHARS.0, SUBJECT_CHARS.1
    );
    let detail = if problems.is_empty() {
        format!("{limits}; all {} fit", subjects.len())
    } else {
        format!("{limits}; {}", problems.join("; "))
    };
    criterion("subject_length", 0.75, score, problems.is_empty(), detail)
}

/// Finds text that looks like an unfilled placeholder: `{{…}}`, `[[…]]`,
/// `{name}`, `[First Name]` or `<company>`.
pub fn unfilled_placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (open, close) in [
        ("{{", "}}"),
        ("[[", "]]"),
        ("{", "}"),
        ("[", "]"),
        ("<", ">"),
    ] {
        let mut rest = text;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len()..];
            let Some(end) = after.find(close) else { break };
            let inner = &after[..end];
            let looks_like_name = !inner.is_empty()
                && inner.len() <= 40
                && inner
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | '-' | '{' | '['));
            if looks_like_name || open.len() == 2 {
                found.push(format!("{open}{inner}{close}"));
            }
            rest = &after[end + close.len()..];
        }
    }
    found.sort();
    found.dedup();
    found
}

fn placeholders(copy: &Copy) -> Criterion {
    let found = unfilled_placeholders(&copy.texts().join("\n"));
    let detail = if found.is_empty() {
        "no unfilled placeholders".to_string()
    } else {
        format!("unfilled: {}", found.join(", "))
    };
    let pass = found.is_empty();
    criterion(
        "placeholders",
        2.0,
        if pass { 1.0 } else { 0.0 },
        pass,
        detail,
    )
}

/// Capitalised words that name no product or company.
const COMMON_CAPITALISED: &[&str] = &[
    "I",
    "I'm",
    "I've",
    "I'd",
    "I'll",
    "Hi",
    "Hello",
    "Dear",
    "Best",
    "Thanks",
    "Regards",
    "Cheers",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "LinkedIn",
    "CEO",
    "CTO",
    "CFO",
    "COO",
    "VP",
    "Q1",
    "Q2",
    "Q3",
    "Q4",
    "PS",
    "P.S",
];

/// Finds numbers and names in the copy that neither a fact nor a known name
/// contains: figures, products or technologies the writer may have made up.
pub fn unbacked_terms(copy: &Copy, evidence: &Evidence) -> Vec<String> {
    let mut backing: String = evidence.fact_values.join("\n");
    for name in &evidence.names {
        backing.push('\n');
        backing.push_str(name);
    }
    backing.push('\n');
    backing.push_str(evidence.call_to_action);
    let backing = backing.to_lowercase();

    let mut terms = Vec::new();
    for text in copy.texts() {
        for sentence in sentences(text) {
            for (index, word) in words(&sentence).into_iter().enumerate() {
                let word = word.trim_end_matches("'s").trim_end_matches("’s");
                let word = if word.is_empty() { continue } else { word };
                let has_digit = word.chars().any(|c| c.is_ascii_digit());
                let mut chars = word.chars();
                let first_upper = chars.next().is_some_and(char::is_uppercase);
                let inner_upper = chars.any(char::is_uppercase);
                // A capital at the start of a sentence is ordinary, but one
                // inside a word (HubSpot) or mid-sentence marks a name.
                let named = (first_upper && index > 0) || inner_upper;
                if !(has_digit || named) {
                    continue;
                }
                if COMMON_CAPITALISED
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(word))
                {
                    continue;
                }
                if !backing.contains(&word.to_lowercase()) {
                    terms.push(word.to_string());
                }
            }
        }
    }
    terms.sort();
    terms.dedup();
    terms
}

fn unbacked_claims(copy: &Copy, evidence: &Evidence) -> Criterion {
    let terms = unbacked_terms(copy, evidence);
    let score = 1.0 - 0.4 * terms.len() as f64;
    let detail = if terms.is_empty() {
        "every number and name is backed by a fact or the request".to_string()
    } else {
        format!("no fact backs: {}", terms.join(", "))
    };
    criterion("unbacked_claims", 1.5, score, terms.is_empty(), detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence<'a>(kind: ContentType, facts: Vec<&'a str>, used: usize) -> Evidence<'a> {
        Evidence {
            content_type: kind,
            length: Length::Short,
            fact_values: facts,
            facts_used: used,
            names: vec!["Acme", "acme.com", "Grace Hopper", "Navy Tools"],
            call_to_action: "Would you be open to a short call next week?",
            requested_lines: 3,
            requested_steps: 2,
            language: "en",
        }
    }

    const GOOD_BODY: &str = "Hi Acme team,\n\nI saw that you are hiring data engineers. \
        Teams that grow this fast often lose track of their pipelines. \
        We help them keep every job in one place, so nothing breaks at night. \
        It takes a day to set up and your engineers keep their tools. \
        Many teams like yours start with one pipeline and add more as they go. \
        Would you be open to a short call next week?\n\nBest,\nGrace Hopper";

    fn email(subject: &str, body: &str) -> Copy {
        Copy::Email {
            subject: subject.into(),
            body: body.into(),
        }
    }

    fn good_evidence() -> Evidence<'static> {
        evidence(
            ContentType::Email,
            vec!["hiring data engineers", "runs nightly pipelines"],
            2,
        )
    }

    #[test]
    fn good_email_passes_every_criterion() {
        let report = check(
            &email("A question about your pipelines", GOOD_BODY),
            &good_evidence(),
        );
        for criterion in &report.criteria {
            assert!(criterion.pass, "{criterion:?}");
        }
        assert!(report.passed);
        assert_eq!(report.score, 1.0);
    }

    #[test]
    fn length_flags_short_and_long_bodies() {
        let short = check(
            &email("A question about pipelines", "Hi. Call?"),
            &good_evidence(),
        );
        let length = short.criterion("length").unwrap();
        assert!(!length.pass);
        assert!(length.detail.contains("too short"), "{}", length.detail);
        let long_body = GOOD_BODY.repeat(3);
        let long = check(
            &email("A question about pipelines", &long_body),
            &good_evidence(),
        );
        let length = long.criterion("length").unwrap();
        assert!(!length.pass);
        assert!(length.detail.contains("too long"), "{}", length.detail);
        assert!(length.score < 1.0);
    }

    #[test]
    fn readability_fails_dense_prose() {
        let dense = "Organisational interoperability necessitates comprehensive \
            architectural considerations regarding infrastructural modernisation. "
            .repeat(6);
        let report = check(
            &email("A question about pipelines", &dense),
            &good_evidence(),
        );
        let readability = report.criterion("readability").unwrap();
        assert!(!readability.pass, "{readability:?}");
        assert_eq!(readability.score, 0.0);
        let mut german = good_evidence();
        german.language = "de";
        let report = check(&email("A question about pipelines", &dense), &german);
        let readability = report.criterion("readability").unwrap();
        assert_eq!(readability.weight, 0.0);
        assert!(readability.detail.contains("`de`"));
    }

    #[test]
    fn personalisation_counts_facts_used() {
        let copy = email("A question about your pipelines", GOOD_BODY);
        let none = check(&copy, &evidence(ContentType::Email, vec!["a", "b", "c"], 0));
        let personalisation = none.criterion("personalisation").unwrap();
        assert!(!personalisation.pass);
        assert_eq!(personalisation.score, 0.0);
        let one = check(&copy, &evidence(ContentType::Email, vec!["a", "b", "c"], 1));
        assert_eq!(one.criterion("personalisation").unwrap().score, 0.5);
        let no_facts = check(&copy, &evidence(ContentType::Email, vec![], 0));
        let personalisation = no_facts.criterion("personalisation").unwrap();
        assert!(personalisation.pass, "the copy names Acme");
    }

    #[test]
    fn spam_phrases_and_shouting_fail() {
        let body = GOOD_BODY.replace(
            "It takes a day",
            "HURRY and act now, it is 100% free and takes a day!!",
        );
        let report = check(
            &email("A question about pipelines", &body),
            &good_evidence(),
        );
        let spam = report.criterion("spam_triggers").unwrap();
        assert!(!spam.pass);
        assert!(spam.detail.contains("\"act now\""), "{}", spam.detail);
        assert!(spam.detail.contains("\"100% free\""), "{}", spam.detail);
        assert!(spam.detail.contains("exclamation"), "{}", spam.detail);
        assert!(spam.detail.contains("HURRY"), "{}", spam.detail);
        assert_eq!(spam.score, 0.0);
        assert!(!contains_phrase("the winnerless round", "winner"));
    }

    #[test]
    fn links_and_images_are_limited() {
        let body = format!("{GOOD_BODY}\nhttps://a.example https://b.example <img src=x>");
        let report = check(
            &email("A question about pipelines", &body),
            &good_evidence(),
        );
        let links = report.criterion("links_and_images").unwrap();
        assert!(!links.pass);
        assert!(links.detail.starts_with("2 links"), "{}", links.detail);
        assert_eq!(links.score, 0.0);
    }

    #[test]
    fn call_to_action_must_be_exactly_one() {
        let none = GOOD_BODY.replace("Would you be open to a short call next week?", "Thanks.");
        let report = check(
            &email("A question about pipelines", &none),
            &good_evidence(),
        );
        let cta = report.criterion("call_to_action").unwrap();
        assert!(!cta.pass);
        assert!(cta.detail.contains(": 0"), "{}", cta.detail);
        let two = format!("{GOOD_BODY}\nOr book a demo on our site.");
        let report = check(&email("A question about pipelines", &two), &good_evidence());
        let cta = report.criterion("call_to_action").unwrap();
        assert!(!cta.pass);
        assert_eq!(cta.score, 0.5);
    }

    #[test]
    fn subject_length_bounds() {
        let long = "A very long subject line that keeps going and going past the point of reason";
        let report = check(&email(long, GOOD_BODY), &good_evidence());
        let subject = report.criterion("subject_length").unwrap();
        assert!(!subject.pass);
        assert_eq!(subject.score, 0.0);
        let report = check(&email("Hi", GOOD_BODY), &good_evidence());
        assert!(!report.criterion("subject_length").unwrap().pass);
        let post = Copy::Post {
            body: GOOD_BODY.into(),
        };
        let report = check(&post, &evidence(ContentType::LinkedinPost, vec!["x"], 1));
        assert!(report.criterion("subject_length").is_none());
    }

    #[test]
    fn unfilled_placeholders_block_passing() {
        let body = GOOD_BODY.replace("Acme team", "{{account.name}} team");
        let report = check(&email("About [First Name]", &body), &good_evidence());
        let placeholders = report.criterion("placeholders").unwrap();
        assert!(!placeholders.pass);
        assert!(placeholders.detail.contains("{{account.name}}"));
        assert!(placeholders.detail.contains("[First Name]"));
        assert!(
            !report.passed,
            "a placeholder fails the copy whatever the score"
        );
        assert_eq!(
            unfilled_placeholders("a <first name> (aside)"),
            ["<first name>"]
        );
        assert!(unfilled_placeholders("no brackets at all").is_empty());
    }

    #[test]
    fn unbacked_numbers_and_names_are_flagged() {
        let body = GOOD_BODY.replace(
            "It takes a day to set up",
            "It cut costs by 37% at Globex and runs on Kubernetes",
        );
        let report = check(
            &email("A question about pipelines", &body),
            &good_evidence(),
        );
        let claims = report.criterion("unbacked_claims").unwrap();
        assert!(!claims.pass);
        for term in ["37", "Globex", "Kubernetes"] {
            assert!(claims.detail.contains(term), "{term}: {}", claims.detail);
        }
        let backed = evidence(
            ContentType::Email,
            vec!["cut costs by 37% at Globex", "runs on Kubernetes"],
            2,
        );
        let report = check(&email("A question about pipelines", &body), &backed);
        assert!(report.criterion("unbacked_claims").unwrap().pass);
    }

    #[test]
    fn sequence_needs_requested_steps() {
        let step = crate::kind::Step {
            delay_days: 0,
            subject: "A question about pipelines".into(),
            body: GOOD_BODY.into(),
        };
        let one = Copy::Sequence {
            steps: vec![step.clone()],
        };
        let facts = vec!["hiring data engineers", "runs nightly pipelines"];
        let report = check(
            &one,
            &evidence(ContentType::EmailSequence, facts.clone(), 2),
        );
        let length = report.criterion("length").unwrap();
        assert!(!length.pass);
        assert!(
            length.detail.contains("1 steps written, 2 requested"),
            "{}",
            length.detail
        );
        let two = Copy::Sequence {
            steps: vec![step.clone(), step],
        };
        let report = check(&two, &evidence(ContentType::EmailSequence, facts, 2));
        assert!(report.criterion("length").unwrap().pass, "{report:#?}");
    }

    #[test]
    fn subject_lines_count_distinct_lines() {
        let lines = Copy::SubjectLines {
            lines: vec![
                "A question about pipelines".into(),
                "A question about pipelines".into(),
                "Your nightly jobs at Acme".into(),
            ],
        };
        let report = check(
            &lines,
            &evidence(ContentType::SubjectLines, vec!["nightly jobs"], 1),
        );
        let length = report.criterion("length").unwrap();
        assert!(!length.pass);
        assert!(length.detail.contains("2 distinct"), "{}", length.detail);
        assert!(report.criterion("call_to_action").is_none());
        assert!(report.criterion("readability").is_none());
    }
}
