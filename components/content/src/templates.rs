//! Per-tenant templates in the key-value store, with the built-in ones as
//! the fallback, and the `/templates` endpoints.

use crate::defaults::{DEFAULT_INDUSTRY, builtin};
use crate::kind::ContentType;
use crate::request::valid_slug;
use crate::shape::check_shape;
use crate::template::{MAX_TEMPLATE_BYTES, SyntaxError, Template, parse};
use copycar_guest::caller::Caller;
use copycar_guest::http::{ApiError, ApiResult, header, json_body, json_response, no_content};
use copycar_guest::store::Kv;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spin_sdk::http::{Method, Request};

/// A tenant's template as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredTemplate {
    pub content_type: String,
    pub industry: String,
    pub text: String,
    pub variants: Vec<String>,
    /// Unix milliseconds.
    pub updated_at: u64,
    pub updated_by: String,
}

fn key_prefix(tenant: &str) -> String {
    format!("content-template:{tenant}:")
}

fn template_key(tenant: &str, kind: ContentType, industry: &str) -> String {
    format!("{}{}:{industry}", key_prefix(tenant), kind.name())
}

/// A template ready to render, and where it came from.
pub struct Resolved {
    pub template: Template,
    /// `tenant` or `builtin`.
    pub origin: &'static str,
    pub industry: String,
}

/// Finds the template for a content type and industry: the tenant's own for
/// that industry, else the tenant's default, else the built-in one.
pub fn resolve(
    kv: &Kv,
    tenant: &str,
    kind: ContentType,
    industry: &str,
) -> Result<Resolved, ApiError> {
    let mut industries = vec![industry];
    if industry != DEFAULT_INDUSTRY {
        industries.push(DEFAULT_INDUSTRY);
    }
    for candidate in industries {
        let key = template_key(tenant, kind, candidate);
        if let Some(stored) = kv.get::<StoredTemplate>(&key)? {
            let template = parse(&stored.text).map_err(|e| {
                ApiError::storage(format!("stored template {key} no longer parses: {e}"))
            })?;
            return Ok(Resolved {
                template,
                origin: "tenant",
                industry: candidate.to_string(),
            });
        }
    }
    let template = parse(builtin(kind)).expect("built-in templates parse");
    Ok(Resolved {
        template,
        origin: "builtin",
        industry: DEFAULT_INDUSTRY.to_string(),
    })
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Serves `/templates` and `/templates/{content_type}/{industry}`.
pub fn route(request: &Request, caller: &Caller, kv: &Kv, rest: &str) -> ApiResult {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (segments.as_slice(), request.method()) {
        ([], Method::Get) => list(kv, caller),
        ([], method) => Err(ApiError::new(
            405,
            format!("method {method} is not allowed; use GET"),
        )),
        ([kind, industry], method) => {
            let kind = ContentType::parse(kind).ok_or_else(|| {
                ApiError::bad_field(
                    "content_type",
                    format!(
                        "unknown content type `{kind}`; use one of {}",
                        ContentType::names()
                    ),
                )
            })?;
            if !valid_slug(industry) {
                return Err(ApiError::bad_field(
                    "industry",
                    "the industry must be 1 to 40 lower-case letters, digits, `_` or `-`",
                ));
            }
            match method {
                Method::Get => get(kv, caller, kind, industry),
                Method::Put => put(request, kv, caller, kind, industry),
                Method::Delete => delete(kv, caller, kind, industry),
                other => Err(ApiError::new(
                    405,
                    format!("method {other} is not allowed; use GET, PUT or DELETE"),
                )),
            }
        }
        _ => Err(ApiError::not_found(&format!(
            "endpoint /api/v1/content/templates{rest}; use /templates/{{content_type}}/{{industry}}"
        ))),
    }
}

fn variant_names(template: &Template) -> Vec<String> {
    template.variants.iter().map(|v| v.name.clone()).collect()
}

fn list(kv: &Kv, caller: &Caller) -> ApiResult {
    let mut items = Vec::new();
    for kind in ContentType::ALL {
        let template = parse(builtin(kind)).expect("built-in templates parse");
        items.push(json!({
            "content_type": kind.name(),
            "industry": DEFAULT_INDUSTRY,
            "source": "builtin",
            "variants": variant_names(&template),
        }));
    }
    for key in kv.keys_with_prefix(&key_prefix(&caller.tenant_id))? {
        if let Some(stored) = kv.get::<StoredTemplate>(&key)? {
            items.push(json!({
                "content_type": stored.content_type,
                "industry": stored.industry,
                "source": "tenant",
                "variants": stored.variants,
                "updated_at": stored.updated_at,
            }));
        }
    }
    Ok(json_response(200, json!({ "templates": items })))
}

fn get(kv: &Kv, caller: &Caller, kind: ContentType, industry: &str) -> ApiResult {
    if let Some(stored) =
        kv.get::<StoredTemplate>(&template_key(&caller.tenant_id, kind, industry))?
    {
        return Ok(json_response(
            200,
            json!({
                "content_type": kind.name(),
                "industry": industry,
                "source": "tenant",
                "template": stored.text,
                "variants": stored.variants,
                "updated_at": stored.updated_at,
                "updated_by": stored.updated_by,
            }),
        ));
    }
    if industry == DEFAULT_INDUSTRY {
        let text = builtin(kind);
        let template = parse(text).expect("built-in templates parse");
        return Ok(json_response(
            200,
            json!({
                "content_type": kind.name(),
                "industry": industry,
                "source": "builtin",
                "template": text,
                "variants": variant_names(&template),
            }),
        ));
    }
    Err(ApiError::not_found(&format!(
        "template {}/{industry}",
        kind.name()
    )))
}

/// Builds the 400 for an invalid template, with the line and column of the problem.
fn syntax_response(request: &Request, error: &SyntaxError) -> ApiResult {
    let request_id = header(request, "x-request-id").unwrap_or("");
    Ok(json_response(
        400,
        json!({
            "error": format!("invalid template at {error}"),
            "field": "template",
            "line": error.line,
            "column": error.column,
            "request_id": request_id,
        }),
    ))
}

fn put(
    request: &Request,
    kv: &Kv,
    caller: &Caller,
    kind: ContentType,
    industry: &str,
) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        template: String,
    }
    let body: Body = json_body(request)?;
    if body.template.len() > MAX_TEMPLATE_BYTES {
        return Err(ApiError::bad_field(
            "template",
            format!("the template is larger than {MAX_TEMPLATE_BYTES} bytes"),
        ));
    }
    let template = match parse(&body.template) {
        Ok(template) => template,
        Err(error) => return syntax_response(request, &error),
    };
    if let Err(error) = check_shape(&template, kind) {
        return syntax_response(request, &error);
    }
    let stored = StoredTemplate {
        content_type: kind.name().to_string(),
        industry: industry.to_string(),
        text: body.template,
        variants: variant_names(&template),
        updated_at: now_millis(),
        updated_by: caller.principal.clone(),
    };
    kv.put(&template_key(&caller.tenant_id, kind, industry), &stored)?;
    Ok(json_response(
        200,
        json!({
            "content_type": kind.name(),
            "industry": industry,
            "source": "tenant",
            "variants": stored.variants,
            "updated_at": stored.updated_at,
        }),
    ))
}

fn delete(kv: &Kv, caller: &Caller, kind: ContentType, industry: &str) -> ApiResult {
    let key = template_key(&caller.tenant_id, kind, industry);
    if !kv.exists(&key)? {
        return Err(ApiError::not_found(&format!(
            "stored template {}/{industry}",
            kind.name()
        )));
    }
    kv.delete(&key)?;
    Ok(no_content())
}
