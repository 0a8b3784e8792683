//! The golden set: 32 real companies researched and written for through
//! the real host. Pages for every other company are served from a local
//! web server; the rest are researched from their known facts, as happens
//! with no network. The assertions are about structure, not wording.

use crate::auth::register;
use crate::support::{Host, Page, SiteServer, app_with_sites, client, workspace_root};
use serde_json::{Value, json};
use std::collections::HashMap;

struct Company {
    name: String,
    domain: String,
    blurb: String,
    facts: Vec<Value>,
}

fn companies() -> Vec<Company> {
    let path = workspace_root().join("tests/golden/companies.csv");
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (name, domain, blurb) = (at("name"), at("domain"), at("blurb"));
    let (remote, size, tech, offices) = (
        at("remote_policy"),
        at("company_size"),
        at("technologies"),
        at("office_locations"),
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let mut facts = vec![
                json!({"kind": "description", "value": &r[blurb]}),
                json!({"kind": "remote_policy", "value": &r[remote]}),
                json!({"kind": "size_band", "value": &r[size]}),
            ];
            for t in r[tech].split(';').filter(|t| !t.trim().is_empty()) {
                facts.push(json!({"kind": "technology", "value": t.trim()}));
            }
            if !r[offices].trim().is_empty() {
                facts.push(json!({"kind": "location", "value": r[offices].chars().take(300).collect::<String>()}));
            }
            Company {
                name: r[name].to_string(),
                domain: r[domain].to_string(),
                blurb: r[blurb].to_string(),
                facts,
            }
        })
        .collect()
}

/// Builds a plain home page from the company's own description.
fn page_for(company: &Company) -> String {
    let first = company.blurb.split(". ").next().unwrap_or(&company.blurb);
    format!(
        "<html><head><title>{name}</title><meta name=\"description\" content=\"{first}\">\
         <meta property=\"og:site_name\" content=\"{name}\"></head>\
         <body><h1>{name}</h1><p>{blurb}</p></body></html>",
        name = company.name.replace('"', "&quot;"),
        first = first.replace('"', "&quot;"),
        blurb = company.blurb,
    )
}

async fn post(host: &Host, path: &str, token: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(host.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Collects all the text of a piece of content, whatever its shape.
fn all_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| all_text(v, out)),
        Value::Object(map) => map.values().for_each(|v| all_text(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn golden_companies_get_sourced_profiles_and_passing_emails() {
    let companies = companies();
    assert!(companies.len() >= 30);
    let mut pages = HashMap::new();
    for company in companies.iter().step_by(2) {
        pages.insert(
            format!("/{}/", company.domain),
            Page::html(page_for(company)),
        );
    }
    let sites = SiteServer::start(pages);
    let (manifest, options) = app_with_sites(&sites);
    let host = Host::start_with(&manifest, options);
    let team = register(&host, "golden@team.example", "Golden Team").await;

    let mut fetched = 0;
    for company in &companies {
        let (status, reply) = post(
            &host,
            "/api/v1/accounts",
            &team.access,
            json!({"domain": company.domain, "name": company.name, "facts": company.facts}),
        )
        .await;
        assert_eq!(status, 200, "{}: {reply}", company.domain);
        let profile = &reply["profile"];
        let page = format!(
            "http://{}/{}/",
            sites.addr,
            profile["domain"].as_str().unwrap()
        );
        if profile["research"] == "fetched" {
            fetched += 1;
        } else {
            assert!(
                profile["research_note"]
                    .as_str()
                    .unwrap()
                    .contains("known facts")
            );
        }
        let facts: HashMap<&str, &Value> = profile["facts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["id"].as_str().unwrap(), f))
            .collect();
        for fact in facts.values() {
            let source = fact["source"].as_str().unwrap();
            assert!(
                source == "provided" || source == "model" || source == page,
                "{}: fact {fact} has source {source}",
                company.domain
            );
        }

        let (status, written) = post(
            &host,
            "/api/v1/content",
            &team.access,
            json!({
                "content_type": "email",
                "account_id": profile["id"],
                "parameters": {"sender": {"name": "Alex Morgan", "company": "CopyCar"}},
            }),
        )
        .await;
        assert_eq!(status, 200, "{}: {written}", company.domain);
        let engine = written["engine"].as_str().unwrap_or_default();
        assert!(
            engine == "template" || engine == "llm",
            "{}: engine {engine}",
            company.domain
        );

        // Every cited fact is in the profile, with the same value and source.
        for used in written["facts_used"].as_array().unwrap() {
            let id = used["id"].as_str().unwrap();
            let fact = facts
                .get(id)
                .unwrap_or_else(|| panic!("{}: cites {id}, not in the profile", company.domain));
            assert_eq!(used["value"], fact["value"], "{}", company.domain);
            assert_eq!(used["source"], fact["source"], "{}", company.domain);
        }
        assert!(
            !written["facts_used"].as_array().unwrap().is_empty(),
            "{}: no fact used",
            company.domain
        );

        let mut text = String::new();
        all_text(&written["content"], &mut text);
        for marker in [
            "{{", "}}", "[FIRST", "[COMPANY", "[NAME", "<name>", "TODO", "lorem",
        ] {
            assert!(
                !text.contains(marker),
                "{}: placeholder {marker} left in {text}",
                company.domain
            );
        }
        let subject = written["content"]["subject"].as_str().unwrap();
        assert!(
            (1..=78).contains(&subject.chars().count()),
            "{}: subject {subject:?}",
            company.domain
        );
        let words = written["content"]["body"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count();
        assert!(
            (40..=220).contains(&words),
            "{}: body of {words} words",
            company.domain
        );

        let quality = &written["quality"];
        let score = quality["score"].as_f64().unwrap();
        assert!(
            score >= 0.8,
            "{}: score {score} in {quality}",
            company.domain
        );
        assert!(
            quality["criteria"].as_array().unwrap().len() >= 8,
            "{quality}"
        );
    }
    assert_eq!(
        fetched,
        companies.len().div_ceil(2),
        "every served site was read"
    );
}
