//! Account research for the caller's tenant under `/api/v1/accounts`:
//!
//! | method and path | effect |
//! |---|---|
//! | `POST /` | research one account `{"domain", "name"?, "facts"?, "refresh"?}` into a profile |
//! | `POST /batch` | `{"accounts": [...], "concurrency"?, "refresh"?}`: research up to 50, a few at a time |
//! | `GET /?limit=N&after=ID` | the tenant's profiles, by domain |
//! | `GET /{id}` | one profile |
//! | `DELETE /{id}` | forget a profile |
//! | `GET /{id}/similar?k=N` | the tenant's most similar accounts |
//!
//! Research reads the company's site through the host's outbound rules,
//! honouring robots.txt and size caps, and keeps each fact with its source
//! (the page URL, `provided`, or `model`). It requests the structured half
//! from the language-model service. Without a model, rules derive it and the
//! profile notes that. With no network, research proceeds from the known
//! facts and notes that too. Profiles are cached by domain for
//! `profile_ttl_secs`.

mod domain;
mod embed;
mod extract;
mod infer;
mod research;
mod robots;

use copycar_guest::caller::authenticate;
use copycar_guest::http::{
    ApiError, ApiResult, finish, header, json_body_up_to, json_response, no_content,
};
use copycar_guest::profile::{Profile, profile_key};
use copycar_guest::store::Kv;
use research::{AccountInput, Researcher};
use serde_json::{Value, json};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// Largest batch of accounts in one request.
const MAX_BATCH: usize = 50;
const MAX_BATCH_BYTES: usize = 1 << 20;
const MAX_ONE_BYTES: usize = 64 << 10;

#[http_component]
async fn handle(request: Request) -> Response {
    let result = route(&request).await;
    finish("accounts", &request, result)
}

async fn route(request: &Request) -> ApiResult {
    let path = header(request, "spin-path-info")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let kv = Kv::open()?;
    let caller = authenticate(request, &kv)?;
    let tenant = caller.tenant_id.clone();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (segments.as_slice(), request.method()) {
        ([], Method::Post) => {
            let body: Value = json_body_up_to(request, MAX_ONE_BYTES)?;
            let refresh = match body.get("refresh") {
                None => false,
                Some(Value::Bool(refresh)) => *refresh,
                Some(_) => return Err(ApiError::bad_field("refresh", "use true or false")),
            };
            let input = AccountInput::parse(&body, None)?;
            let researcher = Researcher::new(&tenant, refresh)?;
            let (profile, cached) = researcher.research(&kv, input).await?;
            Ok(json_response(
                200,
                json!({"profile": profile, "cached": cached}),
            ))
        }
        (["batch"], Method::Post) => batch(request, &kv, &tenant).await,
        ([], Method::Get) => list(request, &kv, &tenant),
        ([id], Method::Get) => {
            let profile = load(&kv, &tenant, id)?;
            Ok(json_response(200, json!({"profile": profile})))
        }
        ([id], Method::Delete) => {
            let key = profile_key(&tenant, &normalise_id(id)?);
            if !kv.exists(&key)? {
                return Err(ApiError::not_found("account"));
            }
            kv.delete(&key)?;
            research::forget_vector(&tenant, &normalise_id(id)?).await;
            Ok(no_content())
        }
        ([id, "similar"], Method::Get) => {
            let k = query_number(request, "k", 5, 1, 50)?;
            let profile = load(&kv, &tenant, id)?;
            let matches = research::similar(&kv, &tenant, &profile, k).await?;
            Ok(json_response(
                200,
                json!({"account": profile.id, "similar": matches}),
            ))
        }
        ([], method) | (["batch"], method) | ([_], method) | ([_, "similar"], method) => {
            Err(ApiError::new(
                405,
                format!("{method:?} is not allowed here; see the accounts API"),
            ))
        }
        _ => Err(ApiError::not_found("endpoint")),
    }
}

async fn batch(request: &Request, kv: &Kv, tenant: &str) -> ApiResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        accounts: Vec<Value>,
        concurrency: Option<usize>,
        #[serde(default)]
        refresh: bool,
    }
    let body: Batch = json_body_up_to(request, MAX_BATCH_BYTES)?;
    if body.accounts.is_empty() || body.accounts.len() > MAX_BATCH {
        return Err(ApiError::bad_field(
            "accounts",
            format!("send 1 to {MAX_BATCH} accounts"),
        ));
    }
    let concurrency = body.concurrency.unwrap_or(4);
    if !(1..=8).contains(&concurrency) {
        return Err(ApiError::bad_field("concurrency", "use 1 to 8"));
    }
    let researcher = Researcher::new(tenant, body.refresh)?;
    let total = body.accounts.len();

    // Items that do not parse fail alone; the rest are researched a few at
    // a time.
    let mut failed = Vec::new();
    let mut work = Vec::new();
    for (index, item) in body.accounts.iter().enumerate() {
        match AccountInput::parse(item, Some(index)) {
            Ok(input) => work.push((index, input)),
            Err(error) => failed.push(json!({
                "index": index,
                "domain": item.get("domain"),
                "status": error.status,
                "error": error.message,
            })),
        }
    }
    use futures::StreamExt;
    let results: Vec<(usize, String, Result<(Profile, bool), ApiError>)> =
        futures::stream::iter(work)
            .map(|(index, input)| {
                let researcher = &researcher;
                async move {
                    let domain = input.domain.clone();
                    (index, domain, researcher.research(kv, input).await)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;

    let mut succeeded = Vec::new();
    for (index, domain, result) in results {
        match result {
            Ok((profile, cached)) => succeeded.push((
                index,
                json!({"index": index, "cached": cached, "profile": profile}),
            )),
            Err(error) => {
                eprintln!("research of {domain} failed: {}", error.message);
                failed.push(json!({
                    "index": index,
                    "domain": domain,
                    "status": error.status,
                    "error": error.message,
                }));
            }
        }
    }
    succeeded.sort_by_key(|(index, _)| *index);
    failed.sort_by_key(|f| f["index"].as_u64());
    let ok = succeeded.len();
    Ok(json_response(
        200,
        json!({
            "total": total,
            "succeeded": succeeded.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "failed": failed,
            "success_rate": ok as f64 / total as f64,
        }),
    ))
}

fn list(request: &Request, kv: &Kv, tenant: &str) -> ApiResult {
    let limit = query_number(request, "limit", 50, 1, 200)?;
    let after = query_value(request, "after")?.unwrap_or_default();
    let prefix = profile_key(tenant, "");
    let mut accounts = Vec::new();
    let mut next = None;
    for key in kv.keys_with_prefix(&prefix)? {
        let id = &key[prefix.len()..];
        if id <= after.as_str() {
            continue;
        }
        if accounts.len() == limit {
            next = accounts
                .last()
                .and_then(|a: &Value| a["id"].as_str().map(String::from));
            break;
        }
        let Some(profile) = kv.get::<Profile>(&key)? else {
            continue;
        };
        accounts.push(json!({
            "id": profile.id,
            "domain": profile.domain,
            "name": profile.name,
            "industry": profile.industry,
            "size_band": profile.size_band,
            "research": profile.research,
            "engine": profile.engine,
            "researched_at": profile.researched_at,
            "expires_at": profile.expires_at,
        }));
    }
    Ok(json_response(
        200,
        json!({"accounts": accounts, "next": next}),
    ))
}

fn load(kv: &Kv, tenant: &str, id: &str) -> Result<Profile, ApiError> {
    let id = normalise_id(id)?;
    kv.get::<Profile>(&profile_key(tenant, &id))?
        .ok_or_else(|| ApiError::not_found("account"))
}

/// Account ids are normalised domains; `ACME.com` finds `acme.com`.
fn normalise_id(id: &str) -> Result<String, ApiError> {
    let decoded = id.replace("%2E", ".").replace("%2e", ".");
    domain::normalise(&decoded).map_err(|message| ApiError::bad_field("id", message))
}

fn query_value(request: &Request, name: &'static str) -> Result<Option<String>, ApiError> {
    let mut found = None;
    for pair in request.query().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            if found.is_some() {
                return Err(ApiError::bad_field(name, format!("give `{name}` once")));
            }
            found = Some(value.to_string());
        }
    }
    Ok(found)
}

fn query_number(
    request: &Request,
    name: &'static str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match query_value(request, name)? {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ApiError::bad_field(name, format!("`{name}` must be {min} to {max}"))),
    }
}
