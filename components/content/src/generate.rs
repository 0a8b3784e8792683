//! `POST /api/v1/content`: resolves the account, writes drafts with the
//! model (or the template engine when no model is available), regenerates
//! failing drafts with the failures fed back, and returns the best one.

use crate::context::{Account, Context};
use crate::defaults::DEFAULT_INDUSTRY;
use crate::model::{Reply, build_prompt, infer, max_tokens, parse_reply};
use crate::request::{AccountRef, parse_generate, valid_slug};
use crate::templates::{now_millis, resolve};
use crate::writer::{Draft, MAX_ATTEMPTS, TemplateSource, best, check_copy, write_from_template};
use copycar_guest::caller::Caller;
use copycar_guest::http::{ApiError, ApiResult, json_body_up_to, json_response};
use copycar_guest::profile::{Profile, profile_key};
use copycar_guest::store::Kv;
use serde_json::{Value, json};
use spin_sdk::http::Request;

/// Largest generation request: 50 inline facts of up to 1,000 characters.
const MAX_REQUEST_BYTES: usize = 128 * 1024;

/// The result of one engine's attempts.
struct Written {
    engine: &'static str,
    drafts: Vec<Draft>,
    /// Model attempts whose reply could not be used, with the reason.
    unusable: Vec<(usize, String)>,
    provider: Option<String>,
    /// Reason the template engine wrote the copy instead of the model.
    fallback_reason: Option<String>,
    template: Option<TemplateSource>,
}

pub async fn handle(request: &Request, caller: &Caller, kv: &Kv) -> ApiResult {
    let body: Value = json_body_up_to(request, MAX_REQUEST_BYTES)?;
    let parsed = parse_generate(&body)?;

    let account = match parsed.account {
        AccountRef::Stored(id) => {
            let profile: Profile = kv
                .get(&profile_key(&caller.tenant_id, &id))?
                .ok_or_else(|| ApiError::not_found(&format!("account `{id}`")))?;
            Account::from_profile(profile)
        }
        AccountRef::Inline {
            domain,
            name,
            facts,
        } => Account {
            id: None,
            domain,
            name,
            industry: None,
            facts,
        },
    };
    let industry = parsed
        .industry
        .clone()
        .or_else(|| {
            account
                .industry
                .as_deref()
                .map(slug)
                .filter(|s| valid_slug(s))
        })
        .unwrap_or_else(|| DEFAULT_INDUSTRY.to_string());
    let context = Context {
        content_type: parsed.content_type,
        industry,
        account,
        tone: parsed.tone,
        length: parsed.length,
        call_to_action: parsed.call_to_action,
        sender: parsed.sender,
        language: parsed.language,
        steps: parsed.steps,
        count: parsed.count,
    };

    let written = match write_with_model(&context, &caller.tenant_id).await {
        Ok(written) => written,
        Err(reason) => {
            eprintln!("content: template engine writes the copy: {reason}");
            let resolved = resolve(
                kv,
                &caller.tenant_id,
                context.content_type,
                &context.industry,
            )?;
            let source = TemplateSource {
                origin: resolved.origin,
                industry: resolved.industry,
            };
            let drafts = write_from_template(&resolved.template, &source, &context);
            Written {
                engine: "template",
                drafts,
                unusable: Vec::new(),
                provider: None,
                fallback_reason: Some(reason),
                template: Some(source),
            }
        }
    };
    Ok(json_response(200, response_body(&context, written)))
}

/// Lower-cases an industry name into a template key: `Retail Banking` →
/// `retail-banking`.
fn slug(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.join("-")
}

/// Writes with the language model, up to [`MAX_ATTEMPTS`] requests. Returns
/// the reason to fall back to templates when no model is available or no
/// reply could be used.
async fn write_with_model(context: &Context, tenant: &str) -> Result<Written, String> {
    let mut drafts: Vec<Draft> = Vec::new();
    let mut unusable: Vec<(usize, String)> = Vec::new();
    let mut feedback: Vec<String> = Vec::new();
    let mut provider = None;
    let tokens = max_tokens(context);

    for attempt in 1..=MAX_ATTEMPTS {
        let prompt = build_prompt(context, &feedback);
        let (text, model) = match infer(tenant, &prompt, tokens).await {
            Reply::Text {
                text,
                model,
                provider: name,
            } => {
                provider = Some(name);
                (text, model)
            }
            Reply::Unavailable(reason) if attempt == 1 => return Err(reason),
            Reply::Unavailable(reason) => {
                eprintln!("content: model attempt {attempt} failed: {reason}");
                unusable.push((attempt, reason));
                break;
            }
        };
        let change = if feedback.is_empty() {
            "first draft".to_string()
        } else {
            format!("regenerated with feedback: {}", feedback.join("; "))
        };
        match parse_reply(&text, context) {
            Ok((copy, facts_used)) => {
                let report = check_copy(&copy, &facts_used, context);
                let passed = report.passed;
                feedback = report
                    .failures()
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect();
                drafts.push(Draft {
                    copy,
                    facts_used,
                    report,
                    model,
                    change,
                });
                if passed {
                    break;
                }
            }
            Err(problem) => {
                eprintln!("content: model reply {attempt} is unusable: {problem}");
                feedback = vec![format!(
                    "the reply could not be used ({problem}); answer with the JSON object only"
                )];
                unusable.push((attempt, problem));
            }
        }
    }
    if drafts.is_empty() {
        return Err("no reply from the language model could be used".into());
    }
    Ok(Written {
        engine: "llm",
        drafts,
        unusable,
        provider,
        fallback_reason: None,
        template: None,
    })
}

fn response_body(context: &Context, written: Written) -> Value {
    let chosen = best(&written.drafts);
    let attempts = written.drafts.len() + written.unusable.len();

    // The history lists drafts and unusable replies in the order they came.
    let mut history: Vec<(usize, Value)> = Vec::new();
    let mut draft_numbers =
        (1..=attempts).filter(|n| !written.unusable.iter().any(|(a, _)| a == n));
    for (index, draft) in written.drafts.iter().enumerate() {
        let number = draft_numbers.next().unwrap_or(index + 1);
        let failed: Vec<&str> = draft.report.failures().map(|c| c.name).collect();
        history.push((
            number,
            json!({
                "attempt": number,
                "model": draft.model,
                "score": draft.report.score,
                "passed": draft.report.passed,
                "failed": failed,
                "change": draft.change,
                "chosen": index == chosen,
            }),
        ));
    }
    for (number, problem) in &written.unusable {
        history.push((*number, json!({"attempt": number, "error": problem})));
    }
    history.sort_by_key(|(n, _)| *n);
    let history: Vec<Value> = history.into_iter().map(|(_, v)| v).collect();

    let draft = &written.drafts[chosen];
    let facts_used: Vec<Value> = draft
        .facts_used
        .iter()
        .filter_map(|id| context.fact(id))
        .map(|fact| json!({"id": fact.id, "kind": fact.kind, "value": fact.value, "source": fact.source}))
        .collect();
    let quality = json!({
        "score": draft.report.score,
        "passed": draft.report.passed,
        "threshold": draft.report.threshold,
        "criteria": draft.report.criteria,
        "attempts": attempts,
        "regenerations": attempts - 1,
        "history": history,
    });
    let mut body = json!({
        "content_type": context.content_type.name(),
        "industry": context.industry,
        "account": {
            "id": context.account.id,
            "domain": context.account.domain,
            "name": context.account.name,
        },
        "content": draft.copy.to_json(),
        "quality": quality,
        "facts_used": facts_used,
        "engine": written.engine,
        "model": draft.model,
        "language": context.language,
        "generated_at": now_millis(),
    });
    if let Some(provider) = written.provider {
        body["provider"] = json!(provider);
    }
    if let Some(reason) = written.fallback_reason {
        body["fallback_reason"] = json!(reason);
    }
    if let Some(source) = written.template {
        body["template"] = json!({"source": source.origin, "industry": source.industry});
    }
    body
}
