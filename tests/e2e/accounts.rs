//! Account research through the real host: sites served from a local
//! server, sources on every fact, robots.txt, the host's address rules,
//! the cache, batches, similar accounts and tenant isolation.

use crate::auth::register;
use crate::support::{Host, Page, SiteServer, app_with_sites, client};
use serde_json::{Value, json};
use std::collections::HashMap;

const HOME: &str = r#"<!doctype html><html><head>
<title>Ledgerly — Payroll for remote teams</title>
<meta name="description" content="Ledgerly runs payroll and compliance for distributed companies.">
<meta property="og:site_name" content="Ledgerly">
<script src="https://js.stripe.com/v3"></script>
</head><body>
<nav><a href="/ledgerly.example/about">About us</a>
<a href="https://www.linkedin.com/company/ledgerly">LinkedIn</a></nav>
<h1>Pay your team anywhere</h1>
</body></html>"#;

const ABOUT: &str = r#"<html><head><title>About Ledgerly</title></head><body>
<h2>Founded by payroll engineers</h2><address>Lisbon, Portugal</address></body></html>"#;

fn sites() -> SiteServer {
    let mut pages = HashMap::new();
    pages.insert(
        "/robots.txt".to_string(),
        Page {
            status: 200,
            content_type: "text/plain",
            headers: Vec::new(),
            body: "User-agent: *\nDisallow: /closed.example/\n".into(),
        },
    );
    pages.insert("/ledgerly.example/".to_string(), Page::html(HOME));
    pages.insert("/ledgerly.example/about".to_string(), Page::html(ABOUT));
    pages.insert("/closed.example/".to_string(), Page::html(HOME));
    pages.insert(
        "/pdfonly.example/".to_string(),
        Page {
            status: 200,
            content_type: "application/pdf",
            headers: Vec::new(),
            body: "%PDF-1.4".into(),
        },
    );
    SiteServer::start(pages)
}

async fn send(
    host: &Host,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(
            method.parse().unwrap(),
            host.url(&format!("/api/v1/accounts{path}")),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn facts_of<'a>(profile: &'a Value, kind: &str) -> Vec<&'a Value> {
    profile["facts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// Asserts that every id the summary lists names a fact of the profile.
fn assert_ids_resolve(profile: &Value) {
    let ids: Vec<&str> = profile["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for list in ["sells", "pains", "talking_points"] {
        for id in profile[list].as_array().unwrap() {
            assert!(
                ids.contains(&id.as_str().unwrap()),
                "{list} names {id}, missing in {profile}"
            );
        }
    }
}

#[tokio::test]
async fn research_cites_each_fact_source() {
    let sites = sites();
    let (manifest, options) = app_with_sites(&sites);
    let host = Host::start_with(&manifest, options);
    let account = register(&host, "ana@ledger.example", "Sales Team").await;

    let (status, reply) = send(
        &host,
        "POST",
        "",
        &account.access,
        Some(
            json!({"domain": "https://www.Ledgerly.example/pricing", "facts": [
                {"kind": "remote_policy", "value": "fully-remote"},
                "Serves 400 customers",
            ]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let profile = &reply["profile"];
    assert_eq!(reply["cached"], false);
    assert_eq!(profile["id"], "ledgerly.example");
    assert_eq!(profile["research"], "fetched", "{profile}");
    assert_eq!(profile["name"], "Ledgerly");
    assert_eq!(profile["engine"], "rules", "no model is configured");
    let home = format!("http://{}/ledgerly.example/", sites.addr);
    let about = format!("http://{}/ledgerly.example/about", sites.addr);

    assert_eq!(facts_of(profile, "title")[0]["source"], home);
    assert_eq!(
        facts_of(profile, "description")[0]["value"],
        "Ledgerly runs payroll and compliance for distributed companies."
    );
    assert_eq!(facts_of(profile, "technology")[0]["value"], "Stripe");
    assert_eq!(
        facts_of(profile, "social")[0]["value"],
        "https://www.linkedin.com/company/ledgerly"
    );
    let location = facts_of(profile, "location");
    assert_eq!(
        (&location[0]["value"], &location[0]["source"]),
        (&json!("Lisbon, Portugal"), &json!(about))
    );
    let provided = facts_of(profile, "remote_policy");
    assert_eq!(provided[0]["source"], "provided");
    assert_eq!(profile["industry"], "Fintech");
    assert!(
        !profile["sells"].as_array().unwrap().is_empty(),
        "{profile}"
    );
    assert_ids_resolve(profile);
    for fact in profile["facts"].as_array().unwrap() {
        let source = fact["source"].as_str().unwrap();
        assert!(
            source == "provided" || source == "model" || source == home || source == about,
            "unexpected source {source}"
        );
    }

    // robots.txt was read first, and every request named our agent.
    let requests = sites.requests.lock().unwrap().clone();
    assert_eq!(requests[0].0, "/robots.txt");
    assert!(
        requests
            .iter()
            .all(|(_, agent)| agent.starts_with("CopyCar-Research/")),
        "{requests:?}"
    );

    // A fresh profile is served from the cache; new facts or refresh redo it.
    let before = sites.paths().len();
    let (_, again) = send(
        &host,
        "POST",
        "",
        &account.access,
        Some(json!({"domain": "ledgerly.example"})),
    )
    .await;
    assert_eq!(again["cached"], true);
    assert_eq!(
        sites.paths().len(),
        before,
        "a cached profile reads no page"
    );
    let (_, more) = send(
        &host,
        "POST",
        "",
        &account.access,
        Some(json!({"domain": "ledgerly.example", "facts": ["Hiring in Lisbon"]})),
    )
    .await;
    assert_eq!(more["cached"], false);
    let (_, refreshed) = send(
        &host,
        "POST",
        "",
        &account.access,
        Some(json!({"domain": "ledgerly.example", "refresh": true})),
    )
    .await;
    assert_eq!(refreshed["cached"], false);
    assert!(sites.paths().len() > before);
}

#[tokio::test]
async fn unreadable_sites_use_known_facts() {
    let mut sites_pages = HashMap::new();
    // A redirect to a loopback name that only the `http://*` entry allows;
    // the host refuses it after DNS, before connecting.
    sites_pages.insert(
        "/hop.example/".to_string(),
        Page::redirect("http://localhost/"),
    );
    let hop = SiteServer::start(sites_pages);
    let sites = sites();
    let (manifest, options) = app_with_sites(&sites);
    // Both servers are named, so only the redirect target is refused.
    let manifest = manifest.replace(
        &format!("\"http://{}\"", sites.addr),
        &format!("\"http://{}\", \"http://{}\"", sites.addr, hop.addr),
    );
    let host = Host::start_with(&manifest, options);
    let account = register(&host, "ben@ledger.example", "Sales Team").await;

    for (domain, reason) in [
        ("closed.example", "robots.txt"),
        ("missing.example", "returned 404"),
        ("pdfonly.example", "not a web page"),
    ] {
        let (status, reply) = send(&host, "POST", "", &account.access, Some(json!({"domain": domain, "name": "Known Co", "facts": [{"kind": "description", "value": "Known Co runs payroll and payments for accountants."}]}))).await;
        assert_eq!(status, 200, "{reply}");
        let profile = &reply["profile"];
        assert_eq!(profile["research"], "offline", "{domain}: {profile}");
        let note = profile["research_note"].as_str().unwrap();
        assert!(note.contains(reason), "{domain}: {note}");
        assert!(note.contains("known facts"), "{note}");
        assert!(
            profile["facts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["source"] == "provided" || f["source"] == "model")
        );
        assert_eq!(profile["industry"], "Fintech");
    }
    assert!(
        !sites.paths().contains(&"/closed.example/".to_string()),
        "robots.txt was not honoured"
    );

    // The redirect is followed to the host's address check, which refuses it.
    let template = format!("http://{}/{{domain}}/", hop.addr);
    drop(host);
    let mut options = crate::support::app_options();
    options
        .env
        .push(("SPIN_VARIABLE_SITE_URL_TEMPLATE".into(), template));
    let host = Host::start_with(&manifest, options);
    let account = register(&host, "cy@ledger.example", "Sales Team").await;
    let (_, reply) = send(
        &host,
        "POST",
        "",
        &account.access,
        Some(json!({"domain": "hop.example"})),
    )
    .await;
    let note = reply["profile"]["research_note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(note.contains("private or local"), "{reply}");
    assert!(
        host.logs().contains("restricted address refused"),
        "the refusal is logged"
    );
}

#[tokio::test]
async fn batch_list_similar_isolated() {
    let sites = sites();
    let (manifest, options) = app_with_sites(&sites);
    let host = Host::start_with(&manifest, options);
    let team = register(&host, "dee@ledger.example", "Sales Team").await;
    let rival = register(&host, "eve@rival.example", "Rival").await;

    let batch = json!({"concurrency": 3, "accounts": [
        {"domain": "ledgerly.example"},
        {"domain": "paystack.example", "facts": ["Payments and payroll for African businesses."]},
        {"domain": "not a domain"},
        {"domain": "gitforge.example", "facts": ["Git hosting, code review and CI/CD for developers."]},
        {"domain": "brewery.example", "facts": ["Craft beer brewed in small batches."], "colour": "red"},
    ]});
    let (status, reply) = send(&host, "POST", "/batch", &team.access, Some(batch)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["total"], 5);
    assert_eq!(reply["succeeded"].as_array().unwrap().len(), 3);
    let failed: Vec<u64> = reply["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, [2, 4]);
    assert!(
        reply["failed"][1]["error"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    assert_eq!(reply["success_rate"], 0.6);

    let (_, similar) = send(
        &host,
        "GET",
        "/ledgerly.example/similar?k=2",
        &team.access,
        None,
    )
    .await;
    let matches = similar["similar"]["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 2, "{similar}");
    assert_eq!(
        matches[0]["id"], "paystack.example",
        "the payroll company is nearest: {similar}"
    );
    assert_eq!(similar["similar"]["model"], "hashing-v1");

    let (_, list) = send(&host, "GET", "?limit=2", &team.access, None).await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 2);
    let (_, rest) = send(
        &host,
        "GET",
        &format!("?limit=2&after={}", list["next"].as_str().unwrap()),
        &team.access,
        None,
    )
    .await;
    assert_eq!(rest["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);

    // The rival tenant reads none of it.
    let (status, _) = send(&host, "GET", "/ledgerly.example", &rival.access, None).await;
    assert_eq!(status, 404);
    let (_, list) = send(&host, "GET", "", &rival.access, None).await;
    assert_eq!(list["accounts"], json!([]));
    send(
        &host,
        "POST",
        "",
        &rival.access,
        Some(json!({"domain": "solo.example", "facts": ["Payroll for freelancers."]})),
    )
    .await;
    let (_, similar) = send(&host, "GET", "/solo.example/similar", &rival.access, None).await;
    assert_eq!(similar["similar"]["matches"], json!([]), "{similar}");

    let (status, _) = send(&host, "DELETE", "/paystack.example", &team.access, None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&host, "DELETE", "/paystack.example", &team.access, None).await;
    assert_eq!(status, 404);
    let (_, similar) = send(
        &host,
        "GET",
        "/ledgerly.example/similar?k=5",
        &team.access,
        None,
    )
    .await;
    assert!(
        similar["similar"]["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != "paystack.example")
    );
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let sites = sites();
    let (manifest, options) = app_with_sites(&sites);
    let host = Host::start_with(&manifest, options);
    let account = register(&host, "fay@ledger.example", "Sales Team").await;
    let cases = [
        (
            "POST",
            "",
            json!({"name": "No domain"}),
            400,
            Some("domain"),
        ),
        (
            "POST",
            "",
            json!({"domain": "10.0.0.1"}),
            400,
            Some("domain"),
        ),
        (
            "POST",
            "",
            json!({"domain": "localhost"}),
            400,
            Some("domain"),
        ),
        ("POST", "", json!({"domain": 42}), 400, Some("domain")),
        (
            "POST",
            "",
            json!({"domain": "a.example", "facts": "x"}),
            400,
            Some("facts"),
        ),
        (
            "POST",
            "",
            json!({"domain": "a.example", "facts": [{"kind": "rumour", "value": "x"}]}),
            400,
            Some("facts"),
        ),
        (
            "POST",
            "",
            json!({"domain": "a.example", "facts": [""]}),
            400,
            Some("facts"),
        ),
        (
            "POST",
            "",
            json!({"domain": "a.example", "refresh": "yes"}),
            400,
            Some("refresh"),
        ),
        (
            "POST",
            "",
            json!({"domain": "a.example", "extra": 1}),
            400,
            Some("account"),
        ),
        (
            "POST",
            "/batch",
            json!({"accounts": []}),
            400,
            Some("accounts"),
        ),
        (
            "POST",
            "/batch",
            json!({"accounts": [{"domain": "a.example"}], "concurrency": 99}),
            400,
            Some("concurrency"),
        ),
        ("GET", "?limit=0", Value::Null, 400, Some("limit")),
        (
            "GET",
            "/a.example/similar?k=500",
            Value::Null,
            400,
            Some("k"),
        ),
        ("PUT", "/a.example", json!({}), 405, None),
    ];
    for (method, path, body, want, field) in cases {
        let body = (!body.is_null()).then_some(body);
        let (status, reply) = send(&host, method, path, &account.access, body.clone()).await;
        assert_eq!(status, want, "{method} {path} {body:?} → {reply}");
        assert_eq!(reply["field"].as_str(), field, "{method} {path} → {reply}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let response = client()
        .get(host.url("/api/v1/accounts"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let oversized = json!({"domain": "a.example", "facts": ["x".repeat(70_000)]});
    let (status, _) = send(&host, "POST", "", &account.access, Some(oversized)).await;
    assert_eq!(status, 413);
}
