//! The language-model engine: builds a prompt from the account's facts,
//! each tagged with its id, instructs the model to mark the facts it used, and
//! turns the reply into [`Copy`] without the marks.
//!
//! The model is reached through the data plane's `llm` service
//! (`POST /v1/infer` at the `llm_url` variable).

use crate::context::Context;
use crate::kind::{ContentType, Copy, Step};
use crate::quality::word_range;
use copycar_guest::service::Service;
use serde_json::{Value, json};
use spin_sdk::http::Method;

/// The language-model service in the host's data plane.
const LLM: Service = Service {
    url_variable: "llm_url",
    default_url: "http://llm.copycar.internal",
    name: "language model service",
};

/// Facts and characters per fact put into a prompt, which keeps it well
/// under the service's 32,768-character limit.
const MAX_PROMPT_FACTS: usize = 40;
const MAX_FACT_CHARS: usize = 400;

/// Delays in days between sequence steps when the model gives none.
const DEFAULT_DELAYS: [u32; 5] = [0, 3, 4, 5, 7];

const SYSTEM_PROMPT: &str = "You write short, honest B2B outreach copy. You state only what the \
facts you are given support, you never invent numbers, customers, products or technologies, and \
you answer with one JSON object and nothing else.";

/// The service's response to one request.
pub enum Reply {
    Text {
        text: String,
        model: String,
        provider: String,
    },
    /// No model serves the request: 503 `no_model`, an unreachable
    /// service, or another failure. The reason is for the response.
    Unavailable(String),
}

/// Sends one prompt to the service on behalf of `tenant`.
pub async fn infer(tenant: &str, prompt: &str, max_tokens: u32) -> Reply {
    let body = json!({
        "tenant": tenant,
        "prompt": prompt,
        "system": SYSTEM_PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "json": true,
    });
    let (status, value) = match LLM
        .call(Method::Post, "/v1/infer", body.to_string().into_bytes())
        .await
    {
        Ok(reply) => reply,
        Err(_) => return Reply::Unavailable("the language model service is unreachable".into()),
    };
    let text = value["text"].as_str();
    match (status, text) {
        (200, Some(text)) => Reply::Text {
            text: text.to_string(),
            model: value["model"].as_str().unwrap_or("unknown").to_string(),
            provider: value["provider"].as_str().unwrap_or("unknown").to_string(),
        },
        (503, _) if value["code"] == "no_model" => {
            Reply::Unavailable("no language model is configured or available".into())
        }
        _ => {
            eprintln!("content: language model service returned {status}: {value}");
            Reply::Unavailable(format!("the language model service returned {status}"))
        }
    }
}

/// Tokens to allow for a reply: about two per word of the longest copy
/// allowed, plus room for the JSON around it.
pub fn max_tokens(context: &Context) -> u32 {
    let (_, high) = word_range(context.content_type, context.length);
    let bodies = match context.content_type {
        ContentType::EmailSequence => context.steps,
        _ => 1,
    };
    let tokens = match context.content_type {
        ContentType::SubjectLines => 40 * context.count + 64,
        _ => (2 * high + 64) * bodies + 64,
    };
    tokens.min(4096) as u32
}

fn describe(kind: ContentType) -> &'static str {
    match kind {
        ContentType::Email => "a cold e-mail",
        ContentType::EmailSequence => "a sequence of follow-up e-mails",
        ContentType::LinkedinPost => "a LinkedIn post",
        ContentType::LinkedinMessage => "a LinkedIn direct message",
        ContentType::WebsiteCopy => "a landing-page section (headline and body)",
        ContentType::SubjectLines => "e-mail subject lines",
    }
}

fn answer_shape(context: &Context) -> String {
    match context.content_type {
        ContentType::Email => r#"{"subject": "...", "body": "..."}"#.into(),
        ContentType::EmailSequence => format!(
            r#"{{"steps": [{{"delay_days": 0, "subject": "...", "body": "..."}}, ...]}} with exactly {} steps; delay_days counts days after the previous step"#,
            context.steps
        ),
        ContentType::LinkedinPost | ContentType::LinkedinMessage => r#"{"body": "..."}"#.into(),
        ContentType::WebsiteCopy => r#"{"headline": "...", "body": "..."}"#.into(),
        ContentType::SubjectLines => format!(
            r#"{{"lines": ["...", ...]}} with exactly {} different lines of at most 60 characters"#,
            context.count
        ),
    }
}

/// Builds the prompt. `feedback` lists the criteria the previous draft
/// failed, with their details.
pub fn build_prompt(context: &Context, feedback: &[String]) -> String {
    let account = &context.account;
    let mut prompt = format!(
        "Write {} to {} ({}).\n",
        describe(context.content_type),
        account.name,
        account.domain
    );
    if let Some(industry) = &account.industry {
        prompt.push_str(&format!("Industry: {industry}.\n"));
    }
    prompt.push_str(&format!(
        "Tone: {}. Language: {}.\n",
        context.tone, context.language
    ));
    if context.content_type != ContentType::SubjectLines {
        let (low, high) = word_range(context.content_type, context.length);
        prompt.push_str(&format!(
            "Length: {}, {low} to {high} words per body.\n",
            context.length.name()
        ));
        prompt.push_str(&format!(
            "Call to action, used exactly once per body and as the only request: {}\n",
            context.call_to_action
        ));
    }
    if let Some(sender) = &context.sender {
        let title = sender
            .title
            .as_ref()
            .map(|t| format!(", {t}"))
            .unwrap_or_default();
        prompt.push_str(&format!(
            "Sender: {}{title} at {}. Sign with the sender's name.\n",
            sender.name, sender.company
        ));
    }

    if account.facts.is_empty() {
        prompt.push_str("No facts are known about the account; do not make any up.\n");
    } else {
        prompt.push_str("Facts about the account, each with its id:\n");
        for fact in account.facts.iter().take(MAX_PROMPT_FACTS) {
            let value: String = fact.value.chars().take(MAX_FACT_CHARS).collect();
            let kind = serde_json::to_value(fact.kind).unwrap_or(Value::Null);
            let kind = kind.as_str().unwrap_or("other");
            prompt.push_str(&format!("[{}] ({kind}) {value}\n", fact.id));
        }
        prompt.push_str(
            "Use at least two facts when you can. Right after each sentence that uses a fact, \
             write the fact's id in square brackets, for example [f1].\n",
        );
    }
    prompt.push_str(
        "Do not use links, images, placeholders, exclamation marks or sales phrases such as \
         \"act now\" or \"free\". Name no number, product, technology or company that the facts \
         do not contain.\n",
    );
    prompt.push_str(&format!(
        "Answer with one JSON object: {}\n",
        answer_shape(context)
    ));
    if !feedback.is_empty() {
        prompt.push_str("Your previous draft failed these checks. Fix every one:\n");
        for line in feedback {
            prompt.push_str(&format!("- {line}\n"));
        }
    }
    prompt
}

/// Removes fact marks such as `[f1]` or `[f1, f3]` from `text`, returning
/// the clean text and the ids of `known` facts it marked, in order.
pub fn strip_marks(text: &str, known: &[&str]) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut used: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('[') {
        let after = &rest[start + 1..];
        let end = after.find(']');
        let ids: Option<Vec<&str>> = end.and_then(|end| {
            let ids: Vec<&str> = after[..end].split(',').map(str::trim).collect();
            let all_marks = ids
                .iter()
                .all(|id| known.contains(id) || looks_like_fact_id(id));
            all_marks.then_some(ids)
        });
        match (ids, end) {
            (Some(ids), Some(end)) => {
                out.push_str(rest[..start].trim_end_matches(' '));
                for id in ids {
                    if known.contains(&id) && !used.iter().any(|u| u == id) {
                        used.push(id.to_string());
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (crate::template::tidy(&out), used)
}

fn looks_like_fact_id(id: &str) -> bool {
    id.strip_prefix('f')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Turns a model reply into copy and the ids of the facts it marked.
pub fn parse_reply(text: &str, context: &Context) -> Result<(Copy, Vec<String>), String> {
    let known: Vec<&str> = context
        .account
        .facts
        .iter()
        .map(|f| f.id.as_str())
        .collect();
    let mut used: Vec<String> = Vec::new();
    let mut clean = |text: &str| {
        let (text, ids) = strip_marks(text, &known);
        for id in ids {
            if !used.contains(&id) {
                used.push(id);
            }
        }
        text
    };
    let object = json_object(text);
    let field = |name: &str| -> Result<String, String> {
        match object.as_ref().and_then(|o| o[name].as_str()) {
            Some(value) if !value.trim().is_empty() => Ok(value.to_string()),
            _ => Err(format!("the reply has no `{name}` text")),
        }
    };
    let copy = match context.content_type {
        ContentType::Email => {
            let (subject, body) = match (field("subject"), field("body")) {
                (Ok(subject), Ok(body)) => (subject, body),
                // Without JSON, a reply that opens with `Subject: …` still
                // has both parts.
                (Err(problem), _) | (_, Err(problem)) => subject_and_body(text).ok_or(problem)?,
            };
            Copy::Email {
                subject: clean(&subject),
                body: clean(&body),
            }
        }
        ContentType::LinkedinPost | ContentType::LinkedinMessage => {
            // A small model may ignore the JSON request; plain text is
            // still a usable body.
            let body = field("body").unwrap_or_else(|_| text.trim().to_string());
            let body = clean(&body);
            if body.is_empty() {
                return Err("the reply is empty".into());
            }
            if context.content_type == ContentType::LinkedinPost {
                Copy::Post { body }
            } else {
                Copy::Message { body }
            }
        }
        ContentType::WebsiteCopy => Copy::Website {
            headline: clean(&field("headline")?),
            body: clean(&field("body")?),
        },
        ContentType::EmailSequence => {
            let steps = object
                .as_ref()
                .and_then(|o| o["steps"].as_array())
                .ok_or("the reply has no `steps` list")?;
            let mut out = Vec::new();
            for (index, step) in steps.iter().take(context.steps).enumerate() {
                let subject = step["subject"].as_str().unwrap_or("");
                let body = step["body"].as_str().unwrap_or("");
                if subject.trim().is_empty() || body.trim().is_empty() {
                    return Err(format!("step {} has no subject or body", index + 1));
                }
                let default_delay = DEFAULT_DELAYS[index.min(DEFAULT_DELAYS.len() - 1)];
                let delay = if index == 0 {
                    0
                } else {
                    step["delay_days"]
                        .as_u64()
                        .filter(|d| (1..=60).contains(d))
                        .map_or(default_delay, |d| d as u32)
                };
                out.push(Step {
                    delay_days: delay,
                    subject: clean(subject),
                    body: clean(body),
                });
            }
            if out.is_empty() {
                return Err("the reply has no steps".into());
            }
            Copy::Sequence { steps: out }
        }
        ContentType::SubjectLines => {
            let lines = object
                .as_ref()
                .and_then(|o| o["lines"].as_array())
                .ok_or("the reply has no `lines` list")?;
            let lines: Vec<String> = lines
                .iter()
                .filter_map(Value::as_str)
                .map(&mut clean)
                .filter(|l| !l.is_empty())
                .take(context.count)
                .collect();
            if lines.is_empty() {
                return Err("the reply has no subject lines".into());
            }
            Copy::SubjectLines { lines }
        }
    };
    Ok((copy, used))
}

/// Splits a plain-text e-mail whose first non-empty line is `Subject: …`.
fn subject_and_body(text: &str) -> Option<(String, String)> {
    let text = text.trim_start();
    let (first, rest) = text.split_once('\n')?;
    let first = first.trim();
    let subject = first
        .strip_prefix("Subject:")
        .or_else(|| first.strip_prefix("subject:"))?
        .trim();
    let body = rest.trim();
    if subject.is_empty() || body.is_empty() {
        return None;
    }
    Some((subject.to_string(), body.to_string()))
}

/// Extracts the JSON object from a reply, also when the model wrapped it in prose or
/// a code fence.
fn json_object(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end < start {
        return None;
    }
    serde_json::from_str::<Value>(&text[start..=end])
        .ok()
        .filter(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Account, Sender};
    use crate::kind::Length;
    use copycar_guest::profile::{Fact, FactKind, Source};

    fn context(kind: ContentType) -> Context {
        Context {
            content_type: kind,
            industry: "default".into(),
            account: Account {
                id: None,
                domain: "acme.com".into(),
                name: "Acme".into(),
                industry: Some("logistics".into()),
                facts: vec![
                    Fact {
                        id: "f1".into(),
                        kind: FactKind::Pain,
                        value: "slow invoicing".into(),
                        source: Source::Provided,
                    },
                    Fact {
                        id: "f2".into(),
                        kind: FactKind::Technology,
                        value: "runs on Postgres".into(),
                        source: Source::Provided,
                    },
                ],
            },
            tone: "friendly".into(),
            length: Length::Medium,
            call_to_action: "Would you be open to a call?".into(),
            sender: Some(Sender {
                name: "Grace".into(),
                company: "Navy Tools".into(),
                title: None,
            }),
            language: "en".into(),
            steps: 2,
            count: 3,
        }
    }

    #[test]
    fn prompt_lists_facts_by_id_and_feedback() {
        let prompt = build_prompt(&context(ContentType::Email), &["length: too long".into()]);
        assert!(prompt.contains("[f1] (pain) slow invoicing"), "{prompt}");
        assert!(
            prompt.contains("[f2] (technology) runs on Postgres"),
            "{prompt}"
        );
        assert!(prompt.contains("Would you be open to a call?"));
        assert!(prompt.contains("Sender: Grace at Navy Tools"));
        assert!(prompt.contains("- length: too long"));
        assert!(prompt.contains(r#"{"subject": "...", "body": "..."}"#));
    }

    #[test]
    fn marks_are_stripped_and_reported() {
        let (text, used) = strip_marks(
            "You invoice slowly [f1]. You use Postgres [f2, f1]. See [note] and [f9].",
            &["f1", "f2"],
        );
        assert_eq!(
            text,
            "You invoice slowly. You use Postgres. See [note] and."
        );
        assert_eq!(used, ["f1", "f2"]);
    }

    #[test]
    fn replies_parse_per_content_type() {
        let (copy, used) = parse_reply(
            "Here you go:\n```json\n{\"subject\": \"Invoices at Acme\", \"body\": \"Hi [f1].\"}\n```",
            &context(ContentType::Email),
        )
        .unwrap();
        assert_eq!(
            copy,
            Copy::Email {
                subject: "Invoices at Acme".into(),
                body: "Hi.".into()
            }
        );
        assert_eq!(used, ["f1"]);

        let sequence = r#"{"steps": [{"subject": "A", "body": "B [f2]", "delay_days": 9},
            {"subject": "C", "body": "D", "delay_days": 2}, {"subject": "E", "body": "F"}]}"#;
        let (copy, used) = parse_reply(sequence, &context(ContentType::EmailSequence)).unwrap();
        let Copy::Sequence { steps } = copy else {
            panic!()
        };
        assert_eq!(steps.len(), 2, "only the requested steps are kept");
        assert_eq!(steps[0].delay_days, 0);
        assert_eq!(steps[1].delay_days, 2);
        assert_eq!(used, ["f2"]);

        let (copy, _) =
            parse_reply("Plain text post [f1].", &context(ContentType::LinkedinPost)).unwrap();
        assert_eq!(
            copy,
            Copy::Post {
                body: "Plain text post.".into()
            }
        );

        let lines = r#"{"lines": ["One", "Two [f1]", "Three", "Four"]}"#;
        let (copy, used) = parse_reply(lines, &context(ContentType::SubjectLines)).unwrap();
        assert_eq!(
            copy,
            Copy::SubjectLines {
                lines: vec!["One".into(), "Two".into(), "Three".into()]
            }
        );
        assert_eq!(used, ["f1"]);

        let (copy, used) = parse_reply(
            "Subject: Invoices at Acme\n\nHi there [f1].\nBest, Grace",
            &context(ContentType::Email),
        )
        .unwrap();
        assert_eq!(
            copy,
            Copy::Email {
                subject: "Invoices at Acme".into(),
                body: "Hi there.\nBest, Grace".into()
            }
        );
        assert_eq!(used, ["f1"]);

        let error =
            parse_reply("{\"body\": \"x\"}", &context(ContentType::WebsiteCopy)).unwrap_err();
        assert!(error.contains("`headline`"), "{error}");
        assert!(parse_reply("not json", &context(ContentType::Email)).is_err());
    }
}
