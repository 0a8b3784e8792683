//! Researching one account: known facts, the company's site, the
//! structured half, the cache, and the account's vector for similarity.

use crate::extract::{self, PageFacts};
use crate::infer::{self, Derived, Structure};
use crate::robots::Robots;
use crate::{domain, embed};
use copycar_guest::http::ApiError;
use copycar_guest::profile::{Fact, FactKind, Profile, ResearchMode, Source, profile_key};
use copycar_guest::service::Service;
use copycar_guest::store::Kv;
use serde_json::{Value, json};
use spin_sdk::http::{IncomingResponse, Method, Request};
use std::collections::HashSet;

/// The agent named in every request to a company's site.
pub const USER_AGENT: &str = "CopyCar-Research/0.1 (account research; robots.txt token: copycar)";
/// Bytes read from one page; the rest is not downloaded.
const PAGE_LIMIT: usize = 512 << 10;
const ROBOTS_LIMIT: usize = 64 << 10;
const MAX_REDIRECTS: usize = 3;
/// Extra pages read after the home page (about, products).
const EXTRA_PAGES: usize = 2;
const MAX_FACTS_IN: usize = 50;
const MAX_FACT_CHARS: usize = 2000;
const DEFAULT_TTL_SECS: u64 = 7 * 24 * 3600;
const VECTOR_COLLECTION: &str = "accounts";

pub const LLM: Service = Service {
    url_variable: "llm_url",
    default_url: "http://llm.copycar.internal",
    name: "language model service",
};

pub const VECTORS: Service = Service {
    url_variable: "vectors_url",
    default_url: "http://vectors.copycar.internal",
    name: "vector index",
};

/// A validated request to research one account.
#[derive(Debug)]
pub struct AccountInput {
    pub domain: String,
    pub name: Option<String>,
    pub facts: Vec<(FactKind, String)>,
}

impl AccountInput {
    /// Validates `{"domain", "name"?, "facts"?}` (and `refresh` for a single
    /// request). Facts are strings or `{"kind", "value"}`. `index` names the
    /// batch item in errors.
    pub fn parse(value: &Value, index: Option<usize>) -> Result<AccountInput, ApiError> {
        let at = |field: &'static str, message: String| {
            let message = match index {
                Some(i) => format!("accounts[{i}].{field}: {message}"),
                None => message,
            };
            ApiError::bad_field(field, message)
        };
        let Some(object) = value.as_object() else {
            return Err(at(
                "account",
                "send an object with at least `domain`".into(),
            ));
        };
        for key in object.keys() {
            let allowed = ["domain", "name", "facts"].contains(&key.as_str())
                || (index.is_none() && key == "refresh");
            if !allowed {
                return Err(at(
                    "account",
                    format!("unknown field `{key}`; use domain, name and facts"),
                ));
            }
        }
        let raw_domain = match object.get("domain") {
            Some(Value::String(text)) => text,
            Some(_) => return Err(at("domain", "must be a string".into())),
            None => return Err(at("domain", "is required".into())),
        };
        let domain = domain::normalise(raw_domain).map_err(|m| at("domain", m))?;
        let name = match object.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                let text = extract::clean(text);
                if text.is_empty() || text.chars().count() > 200 {
                    return Err(at("name", "must be 1 to 200 characters".into()));
                }
                Some(text)
            }
            Some(_) => return Err(at("name", "must be a string".into())),
        };
        let mut facts = Vec::new();
        match object.get("facts") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if items.len() > MAX_FACTS_IN {
                    return Err(at("facts", format!("send at most {MAX_FACTS_IN} facts")));
                }
                for (i, item) in items.iter().enumerate() {
                    let (kind, text) = match item {
                        Value::String(text) => (FactKind::Other, text.as_str()),
                        Value::Object(fact) => {
                            if let Some(key) = fact.keys().find(|k| *k != "kind" && *k != "value") {
                                return Err(at(
                                    "facts",
                                    format!(
                                        "facts[{i}] has unknown field `{key}`; use kind and value"
                                    ),
                                ));
                            }
                            let kind = match fact.get("kind") {
                                None => FactKind::Other,
                                Some(kind) => serde_json::from_value(kind.clone()).map_err(|_| {
                                    at(
                                        "facts",
                                        format!(
                                            "facts[{i}].kind {kind} is not a fact kind; use name, description, product, technology, location, social, industry, size_band, remote_policy or other"
                                        ),
                                    )
                                })?,
                            };
                            let Some(text) = fact.get("value").and_then(Value::as_str) else {
                                return Err(at(
                                    "facts",
                                    format!("facts[{i}].value must be a string"),
                                ));
                            };
                            (kind, text)
                        }
                        _ => {
                            return Err(at(
                                "facts",
                                format!("facts[{i}] must be a string or {{\"kind\", \"value\"}}"),
                            ));
                        }
                    };
                    let text = text.trim();
                    if text.is_empty() || text.chars().count() > MAX_FACT_CHARS {
                        return Err(at(
                            "facts",
                            format!("facts[{i}] must be 1 to {MAX_FACT_CHARS} characters"),
                        ));
                    }
                    facts.push((kind, text.to_string()));
                }
            }
            Some(_) => return Err(at("facts", "must be a list".into())),
        }
        Ok(AccountInput {
            domain,
            name,
            facts,
        })
    }
}

/// Settings for the research of one request.
pub struct Researcher {
    tenant: String,
    refresh: bool,
    ttl_ms: u64,
    site_template: String,
}

impl Researcher {
    pub fn new(tenant: &str, refresh: bool) -> Result<Researcher, ApiError> {
        let ttl_secs = match spin_sdk::variables::get("profile_ttl_secs") {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                eprintln!("variable profile_ttl_secs is not a number of seconds: {text}");
                ApiError::new(500, "the service is misconfigured")
            })?,
            Err(_) => DEFAULT_TTL_SECS,
        };
        let site_template = spin_sdk::variables::get("site_url_template")
            .unwrap_or_else(|_| "https://{domain}/".to_string());
        if !site_template.contains("{domain}")
            || !(site_template.starts_with("https://") || site_template.starts_with("http://"))
        {
            eprintln!("variable site_url_template must be an http(s) URL with {{domain}}");
            return Err(ApiError::new(500, "the service is misconfigured"));
        }
        Ok(Researcher {
            tenant: tenant.to_string(),
            refresh,
            ttl_ms: ttl_secs * 1000,
            site_template,
        })
    }

    /// Researches `input`, or returns the cached profile when it is fresh
    /// and already contains every provided fact. The flag is true when the
    /// profile came from the cache.
    pub async fn research(
        &self,
        kv: &Kv,
        input: AccountInput,
    ) -> Result<(Profile, bool), ApiError> {
        let key = profile_key(&self.tenant, &input.domain);
        let now = now_ms();
        if !self.refresh
            && let Some(cached) = kv.get::<Profile>(&key)?
            && cached.expires_at > now
            && covers(&cached, &input)
        {
            return Ok((cached, true));
        }

        let mut facts = Facts::default();
        if let Some(name) = &input.name {
            facts.push(FactKind::Name, name, Source::Provided);
        }
        for (kind, value) in &input.facts {
            facts.push(*kind, value, Source::Provided);
        }
        let mut name = input.name.clone();
        let mut notes = Vec::new();

        let site_url = self.site_template.replace("{domain}", &input.domain);
        let mode = match read_site(&site_url).await {
            Ok(pages) => {
                for (url, page) in pages {
                    if name.is_none()
                        && let Some(site_name) = &page.site_name
                    {
                        name = Some(site_name.clone());
                        facts.push(FactKind::Name, site_name, Source::Url(url.clone()));
                    }
                    for (kind, value) in page.facts {
                        facts.push(kind, &value, Source::Url(url.clone()));
                    }
                }
                ResearchMode::Fetched
            }
            Err(reason) => {
                eprintln!("research of {} proceeds offline: {reason}", input.domain);
                notes.push(format!(
                    "the site could not be read ({reason}); research used the known facts only"
                ));
                ResearchMode::Offline
            }
        };

        let (structure, engine, model) = self
            .structure(&input.domain, name.as_deref(), &facts.list, &mut notes)
            .await;
        let mut profile = Profile {
            id: input.domain.clone(),
            domain: input.domain.clone(),
            name,
            facts: Vec::new(),
            industry: structure.industry.as_ref().map(|d| d.value.clone()),
            size_band: structure.size_band.as_ref().map(|d| d.value.clone()),
            sells: Vec::new(),
            pains: Vec::new(),
            talking_points: Vec::new(),
            research: mode,
            research_note: (!notes.is_empty()).then(|| notes.join("; ")),
            engine,
            model,
            researched_at: now,
            expires_at: now + self.ttl_ms,
        };
        let mut facts = facts;
        if let Some(industry) = structure.industry {
            facts.push(FactKind::Industry, &industry.value, industry.source);
        }
        if let Some(band) = structure.size_band
            && band.source == Source::Model
        {
            facts.push(FactKind::SizeBand, &band.value, band.source);
        }
        profile.sells = facts.push_all(FactKind::Sells, structure.sells);
        profile.pains = facts.push_all(FactKind::Pain, structure.pains);
        profile.talking_points = facts.push_all(FactKind::TalkingPoint, structure.talking_points);
        profile.facts = facts.list;

        kv.put(&key, &profile)?;
        if let Err(reason) = store_vector(&self.tenant, &profile).await {
            eprintln!("vector for {} not stored: {reason}", profile.id);
        }
        Ok((profile, false))
    }

    /// The structured half from the model, else from the rules; returns the
    /// engine and model that wrote it.
    async fn structure(
        &self,
        domain: &str,
        name: Option<&str>,
        facts: &[Fact],
        notes: &mut Vec<String>,
    ) -> (Structure, String, Option<String>) {
        if facts.is_empty() {
            notes.push("no facts were found, so the profile has no summary".into());
            return (Structure::default(), "rules".into(), None);
        }
        let (system, prompt) = infer::prompt(name.unwrap_or(domain), domain, facts);
        let body = json!({
            "tenant": self.tenant,
            "prompt": prompt,
            "system": system,
            "max_tokens": 300,
            "temperature": 0.0,
            "json": true,
        });
        match LLM
            .call(Method::Post, "/v1/infer", body.to_string().into_bytes())
            .await
        {
            Ok((200, reply)) => {
                let model = format!(
                    "{}/{}",
                    reply["provider"].as_str().unwrap_or("unknown"),
                    reply["model"].as_str().unwrap_or("unknown")
                );
                match infer::parse_answer(reply["text"].as_str().unwrap_or("")) {
                    Ok(structure) => return (structure, "llm".into(), Some(model)),
                    Err(reason) => {
                        eprintln!("model {model} gave an unusable profile for {domain}: {reason}");
                        notes.push(format!(
                            "the model {model} gave an unusable answer ({reason}); rules wrote the summary"
                        ));
                    }
                }
            }
            Ok((503, _)) | Err(_) => {
                notes.push("no language model is available; rules wrote the summary".into());
            }
            Ok((status, reply)) => {
                eprintln!("language model service returned {status}: {reply}");
                notes.push(format!(
                    "the language model service returned {status}; rules wrote the summary"
                ));
            }
        }
        (infer::by_rules(facts), "rules".into(), None)
    }
}

/// Returns whether a cached profile already contains every fact the request provides.
fn covers(cached: &Profile, input: &AccountInput) -> bool {
    let provided: HashSet<String> = cached
        .facts
        .iter()
        .filter(|f| f.source == Source::Provided)
        .map(|f| f.value.to_lowercase())
        .collect();
    input
        .name
        .iter()
        .all(|n| provided.contains(&n.to_lowercase()))
        && input
            .facts
            .iter()
            .all(|(_, v)| provided.contains(&extract::clean(v).to_lowercase()))
}

/// Facts with ids in insertion order, without repeats.
#[derive(Default)]
struct Facts {
    list: Vec<Fact>,
    seen: HashSet<(FactKind, String)>,
}

impl Facts {
    /// Adds a fact and returns its id (the existing id for a repeat).
    fn push(&mut self, kind: FactKind, value: &str, source: Source) -> Option<String> {
        let value = extract::clean(value);
        if value.is_empty() {
            return None;
        }
        let key = (kind, value.to_lowercase());
        if !self.seen.insert(key.clone()) {
            return self
                .list
                .iter()
                .find(|f| f.kind == kind && f.value.to_lowercase() == key.1)
                .map(|f| f.id.clone());
        }
        let id = format!("f{}", self.list.len() + 1);
        self.list.push(Fact {
            id: id.clone(),
            kind,
            value,
            source,
        });
        Some(id)
    }

    fn push_all(&mut self, kind: FactKind, items: Vec<Derived>) -> Vec<String> {
        items
            .into_iter()
            .filter_map(|d| self.push(kind, &d.value, d.source))
            .collect()
    }
}

/// Reads the home page and up to two about or product pages, honouring
/// robots.txt. Fails with a reason when the home page cannot be read.
async fn read_site(home: &str) -> Result<Vec<(String, PageFacts)>, String> {
    let robots_url = extract::resolve(home, "/robots.txt").ok_or("the site address is invalid")?;
    let robots = match fetch(&robots_url, ROBOTS_LIMIT, false).await {
        Ok((_, 200..=299, text)) => Robots::parse(&text),
        Ok((_, 500..=599, _)) => {
            return Err(
                "robots.txt returned a server error, so the site is treated as closed".into(),
            );
        }
        // Other responses (404, 403, redirects elsewhere) mean no rules.
        Ok(_) => Robots::default(),
        Err(reason) => return Err(reason),
    };
    if !robots.allows(extract::url_path(home)) {
        return Err("robots.txt does not allow reading the home page".into());
    }
    let (home_url, status, html) = fetch(home, PAGE_LIMIT, true).await?;
    if !(200..300).contains(&status) {
        return Err(format!("the home page returned {status}"));
    }
    let first = extract::extract(&html, &home_url);
    let follow: Vec<String> = first
        .follow
        .iter()
        .filter(|url| robots.allows(extract::url_path(url)))
        .take(EXTRA_PAGES)
        .cloned()
        .collect();
    let mut pages = vec![(home_url, first)];
    for url in follow {
        match fetch(&url, PAGE_LIMIT, true).await {
            Ok((final_url, 200..=299, html)) => {
                let page = extract::extract(&html, &final_url);
                pages.push((final_url, page));
            }
            Ok((_, status, _)) => eprintln!("skipping {url}: it returned {status}"),
            Err(reason) => eprintln!("skipping {url}: {reason}"),
        }
    }
    Ok(pages)
}

/// GETs `url`, following up to three redirects, and reads at most `limit`
/// bytes of the body. With `html_only`, a 2xx response that is not HTML is an
/// error. Returns the final URL, the status and the text.
async fn fetch(url: &str, limit: usize, html_only: bool) -> Result<(String, u16, String), String> {
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let request = Request::builder()
            .method(Method::Get)
            .uri(&current)
            .header("user-agent", USER_AGENT)
            .header(
                "accept",
                "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.5",
            )
            .build();
        let response: IncomingResponse = spin_sdk::http::send(request)
            .await
            .map_err(|e| format!("{current} could not be fetched: {}", describe(&e)))?;
        let status = response.status();
        let header = |name: &str| -> Option<String> {
            response
                .headers()
                .get(&name.to_string())
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        if (300..400).contains(&status) {
            let location = header("location")
                .ok_or_else(|| format!("{current} redirected without a location"))?;
            current = extract::resolve(&current, &location)
                .ok_or_else(|| format!("{current} redirected to an unusable address"))?;
            continue;
        }
        if html_only && (200..300).contains(&status) {
            let content_type = header("content-type")
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !content_type.is_empty()
                && !content_type.contains("html")
                && !content_type.starts_with("text/plain")
            {
                return Err(format!("{current} is {content_type}, not a web page"));
            }
        }
        let body = read_limited(&response, limit)
            .await
            .map_err(|e| format!("{current}: {e}"))?;
        return Ok((current, status, String::from_utf8_lossy(&body).into_owned()));
    }
    Err(format!("{url} redirected more than {MAX_REDIRECTS} times"))
}

/// Describes a failed request in a few words, for profiles and logs.
fn describe(error: &spin_sdk::http::SendError) -> String {
    use spin_sdk::http::{ErrorCode, SendError};
    match error {
        SendError::Http(code) => match code {
            ErrorCode::DnsError(_) => "the name does not resolve".into(),
            ErrorCode::DnsTimeout => "the name lookup timed out".into(),
            ErrorCode::DestinationNotFound | ErrorCode::DestinationUnavailable => {
                "the site is unavailable".into()
            }
            ErrorCode::DestinationIpProhibited => {
                "its address is private or local, which research may not reach".into()
            }
            ErrorCode::ConnectionRefused => "the connection was refused".into(),
            ErrorCode::ConnectionTimeout => "the connection timed out".into(),
            ErrorCode::HttpRequestDenied => "the outbound rules do not allow it".into(),
            ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_)
            | ErrorCode::TlsProtocolError => "its TLS certificate or handshake failed".into(),
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}

async fn read_limited(response: &IncomingResponse, limit: usize) -> Result<Vec<u8>, String> {
    use futures::StreamExt;
    let mut stream = std::pin::pin!(response.take_body_stream());
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("the body could not be read: {e:?}"))?;
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// Builds the text that an account is compared by.
fn vector_text(profile: &Profile) -> String {
    let mut parts: Vec<&str> = Vec::new();
    parts.extend(profile.industry.as_deref());
    for fact in &profile.facts {
        if matches!(
            fact.kind,
            FactKind::Description
                | FactKind::Other
                | FactKind::Sells
                | FactKind::Product
                | FactKind::Technology
                | FactKind::Heading
                | FactKind::Title
        ) {
            parts.push(&fact.value);
        }
    }
    parts.join(". ")
}

/// Embeds the text with the model service, or the hashing embedding when
/// no embedding model responds. Returns the model name and the vector.
async fn embed(tenant: &str, text: &str) -> (String, Vec<f32>) {
    let body = json!({"tenant": tenant, "model": "embeddings", "texts": [text]});
    if let Ok((200, reply)) = LLM
        .call(Method::Post, "/v1/embed", body.to_string().into_bytes())
        .await
        && let Some(vector) = reply["embeddings"][0].as_array()
    {
        let vector: Vec<f32> = vector
            .iter()
            .filter_map(|v| v.as_f64())
            .map(|v| v as f32)
            .collect();
        if !vector.is_empty() {
            let model = format!(
                "{}/{}",
                reply["provider"].as_str().unwrap_or("unknown"),
                reply["model"].as_str().unwrap_or("unknown")
            );
            return (model, vector);
        }
    }
    (embed::HASHING_MODEL.into(), embed::hashing_embedding(text))
}

async fn store_vector(tenant: &str, profile: &Profile) -> Result<(), String> {
    let (model, vector) = embed(tenant, &vector_text(profile)).await;
    let body = json!({
        "tenant": tenant,
        "collection": VECTOR_COLLECTION,
        "items": [{
            "id": profile.id,
            "model": model,
            "vector": vector,
            "metadata": {"name": profile.name, "domain": profile.domain, "industry": profile.industry},
        }],
    });
    match VECTORS
        .call(Method::Post, "/v1/upsert", body.to_string().into_bytes())
        .await
    {
        Ok((200, _)) => Ok(()),
        Ok((status, reply)) => Err(format!("the vector index returned {status}: {reply}")),
        Err(e) => Err(e.message),
    }
}

/// Returns the `k` accounts most similar to `profile`, storing its vector
/// first if the index does not have it.
pub async fn similar(
    kv: &Kv,
    tenant: &str,
    profile: &Profile,
    k: usize,
) -> Result<Value, ApiError> {
    let query =
        json!({"tenant": tenant, "collection": VECTOR_COLLECTION, "id": profile.id, "k": k});
    let mut answer = VECTORS
        .call(Method::Post, "/v1/query", query.to_string().into_bytes())
        .await?;
    if answer.0 == 404 {
        store_vector(tenant, profile).await.map_err(|reason| {
            eprintln!("vector for {} not stored: {reason}", profile.id);
            ApiError::new(503, "the vector index is unavailable")
        })?;
        answer = VECTORS
            .call(Method::Post, "/v1/query", query.to_string().into_bytes())
            .await?;
    }
    let (status, reply) = answer;
    if status != 200 {
        eprintln!("vector index returned {status}: {reply}");
        return Err(ApiError::new(503, "the vector index is unavailable"));
    }
    // Drop matches whose profile has since been deleted.
    let mut matches = Vec::new();
    for item in reply["matches"].as_array().into_iter().flatten() {
        let Some(id) = item["id"].as_str() else {
            continue;
        };
        if kv.exists(&profile_key(tenant, id))? {
            matches.push(json!({"id": id, "score": item["score"], "name": item["metadata"]["name"], "industry": item["metadata"]["industry"]}));
        }
    }
    Ok(json!({"model": reply["model"], "matches": matches}))
}

pub async fn forget_vector(tenant: &str, id: &str) {
    let body = json!({"tenant": tenant, "collection": VECTOR_COLLECTION, "ids": [id]});
    match VECTORS
        .call(Method::Post, "/v1/delete", body.to_string().into_bytes())
        .await
    {
        Ok((200, _)) => {}
        Ok((status, reply)) => eprintln!("vector for {id} not deleted: {status} {reply}"),
        Err(e) => eprintln!("vector for {id} not deleted: {}", e.message),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
