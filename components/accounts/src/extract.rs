//! Facts read from one HTML page: title, description, headings, products,
//! technologies, locations and social links.
//!
//! Extraction is deliberately literal: it keeps text the page states and
//! names the page as the source, and it guesses nothing.

use copycar_guest::profile::FactKind;
use std::collections::HashSet;

/// Facts of one kind are capped so a long page cannot crowd out the rest.
const MAX_PER_KIND: usize = 8;
/// Maximum length of one fact value, in characters.
const MAX_VALUE_CHARS: usize = 300;

/// Facts read from one page, before ids and sources are attached.
#[derive(Debug, Default, PartialEq)]
pub struct PageFacts {
    /// `og:site_name`, when the page gives one.
    pub site_name: Option<String>,
    pub facts: Vec<(FactKind, String)>,
    /// Same-site links whose text or path suggests an about or product
    /// page, absolute, in page order.
    pub follow: Vec<String>,
}

/// Technology signatures: the name, and markers looked for in script and
/// stylesheet addresses, `meta name="generator"` and element attributes.
const TECHNOLOGIES: &[(&str, &[&str])] = &[
    ("WordPress", &["/wp-content/", "/wp-includes/", "wordpress"]),
    ("Shopify", &["cdn.shopify.com", "shopify"]),
    ("Webflow", &["webflow"]),
    ("Squarespace", &["squarespace"]),
    ("Wix", &["wixstatic.com", "wix.com"]),
    ("Drupal", &["drupal"]),
    ("Ghost", &["ghost"]),
    ("Hugo", &["hugo"]),
    ("Gatsby", &["gatsby"]),
    ("Next.js", &["/_next/"]),
    ("Nuxt", &["/_nuxt/"]),
    ("React", &["react", "data-reactroot"]),
    ("Vue.js", &["vue.js", "vue.min.js", "data-v-"]),
    ("Angular", &["ng-version", "angular"]),
    ("jQuery", &["jquery"]),
    ("Bootstrap", &["bootstrap"]),
    ("Google Tag Manager", &["googletagmanager.com"]),
    ("Google Analytics", &["google-analytics.com", "gtag/js"]),
    ("Segment", &["cdn.segment.com"]),
    ("HubSpot", &["hs-scripts.com", "hsforms", "hubspot"]),
    ("Intercom", &["intercom.io", "intercomcdn"]),
    ("Drift", &["js.driftt.com"]),
    ("Zendesk", &["zdassets.com", "zendesk"]),
    ("Stripe", &["js.stripe.com"]),
    ("Hotjar", &["hotjar"]),
    ("Mixpanel", &["mixpanel"]),
    (
        "Cloudflare",
        &["cdnjs.cloudflare.com", "cloudflareinsights"],
    ),
];

/// Social networks recognised in links, by host.
const SOCIAL_HOSTS: &[&str] = &[
    "twitter.com",
    "x.com",
    "linkedin.com",
    "github.com",
    "facebook.com",
    "youtube.com",
    "instagram.com",
    "mastodon.social",
];

/// Words in a link's path or text that suggest a page worth reading next.
const FOLLOW_HINTS: &[&str] = &[
    "about",
    "company",
    "product",
    "products",
    "platform",
    "solutions",
    "features",
    "services",
];

/// Path segments that mark a link as a product or service.
const PRODUCT_PATHS: &[&str] = &[
    "/product",
    "/products/",
    "/solutions/",
    "/platform/",
    "/features/",
    "/services/",
];

/// Reads the facts from `html`, fetched from `page_url` (used to resolve
/// relative links).
pub fn extract(html: &str, page_url: &str) -> PageFacts {
    let Ok(dom) = tl::parse(html, tl::ParserOptions::default()) else {
        return PageFacts::default();
    };
    let parser = dom.parser();
    let mut out = Collector::default();
    let mut site_name = None;
    let mut follow = Vec::new();
    let mut seen_follow = HashSet::new();
    let mut markers = String::new();
    let page_host = host_of(page_url).unwrap_or_default();

    for node in dom.nodes() {
        let Some(tag) = node.as_tag() else { continue };
        let name = tag.name().as_utf8_str().to_ascii_lowercase();
        let attributes = tag.attributes();
        let attr = |key: &str| -> Option<String> {
            attributes
                .get(key)
                .flatten()
                .map(|v| decode_entities(&v.as_utf8_str()))
        };
        match name.as_str() {
            "title" => out.push(FactKind::Title, &tag.inner_text(parser)),
            "meta" => {
                let key = attr("name")
                    .or_else(|| attr("property"))
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let content = attr("content").unwrap_or_default();
                match key.as_str() {
                    "description" | "og:description" | "twitter:description" => {
                        out.push(FactKind::Description, &content)
                    }
                    "og:site_name" if site_name.is_none() => {
                        let text = clean(&content);
                        if !text.is_empty() {
                            site_name = Some(text);
                        }
                    }
                    "generator" => {
                        markers.push_str(&content.to_ascii_lowercase());
                        markers.push('\n');
                    }
                    _ => {}
                }
            }
            "h1" | "h2" => out.push(FactKind::Heading, &tag.inner_text(parser)),
            "address" => out.push(FactKind::Location, &tag.inner_text(parser)),
            "script" => {
                if let Some(src) = attr("src") {
                    markers.push_str(&src.to_ascii_lowercase());
                    markers.push('\n');
                }
                if attr("type").is_some_and(|t| t.eq_ignore_ascii_case("application/ld+json")) {
                    json_ld(&tag.inner_text(parser), &mut out);
                }
            }
            "link" => {
                if let Some(href) = attr("href") {
                    markers.push_str(&href.to_ascii_lowercase());
                    markers.push('\n');
                }
            }
            "a" => {
                let Some(href) = attr("href") else { continue };
                let Some(url) = resolve(page_url, &href) else {
                    continue;
                };
                let text = clean(&tag.inner_text(parser));
                let host = host_of(&url).unwrap_or_default();
                let bare_host = host.strip_prefix("www.").unwrap_or(&host);
                if SOCIAL_HOSTS.contains(&bare_host) {
                    // A profile link has a path; the network's home page does not.
                    if url_path(&url).trim_matches('/').len() > 1 {
                        out.push(FactKind::Social, &url);
                    }
                    continue;
                }
                if host != page_host {
                    continue;
                }
                let path = url_path(&url).to_ascii_lowercase();
                if PRODUCT_PATHS.iter().any(|p| path.starts_with(p))
                    && path.trim_matches('/').contains('/')
                {
                    out.push(FactKind::Product, &text);
                }
                let lower_text = text.to_ascii_lowercase();
                let hinted = FOLLOW_HINTS.iter().any(|hint| {
                    path.split(['/', '-', '_', '.']).any(|part| part == *hint)
                        || lower_text.split_whitespace().any(|word| word == *hint)
                });
                let own_page = url.trim_end_matches('/') == page_url.trim_end_matches('/');
                if hinted && !own_page && seen_follow.insert(url.clone()) {
                    follow.push(url);
                }
            }
            _ => {}
        }
        // Attributes such as `ng-version` or `data-reactroot` mark frameworks.
        for (key, _) in attributes.iter() {
            let key = key.to_ascii_lowercase();
            if key == "ng-version" || key == "data-reactroot" || key.starts_with("data-v-") {
                markers.push_str(&key);
                markers.push('\n');
            }
        }
    }

    for (technology, signatures) in TECHNOLOGIES {
        if signatures.iter().any(|s| markers.contains(s)) {
            out.push(FactKind::Technology, technology);
        }
    }

    PageFacts {
        site_name,
        facts: out.facts,
        follow,
    }
}

/// Facts in page order, without repeats and within the caps.
#[derive(Default)]
struct Collector {
    facts: Vec<(FactKind, String)>,
    seen: HashSet<(FactKind, String)>,
}

impl Collector {
    fn push(&mut self, kind: FactKind, raw: &str) {
        let value = clean(&decode_entities(raw));
        if value.chars().count() < 2 {
            return;
        }
        if self.facts.iter().filter(|(k, _)| *k == kind).count() >= MAX_PER_KIND {
            return;
        }
        let key = (kind, value.to_lowercase());
        if self.seen.insert(key) {
            self.facts.push((kind, value));
        }
    }
}

/// Reads organisation facts from a JSON-LD block: description, address,
/// `sameAs` profiles and offered products.
fn json_ld(text: &str, out: &mut Collector) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
        return;
    };
    let mut stack = vec![&value];
    let mut visited = 0;
    while let Some(item) = stack.pop() {
        visited += 1;
        if visited > 500 {
            break;
        }
        match item {
            serde_json::Value::Array(items) => stack.extend(items.iter()),
            serde_json::Value::Object(map) => {
                let kind = map.get("@type").and_then(|t| t.as_str()).unwrap_or("");
                if kind == "Organization" || kind == "Corporation" || kind == "LocalBusiness" {
                    if let Some(text) = map.get("description").and_then(|d| d.as_str()) {
                        out.push(FactKind::Description, text);
                    }
                    if let Some(links) = map.get("sameAs") {
                        for link in links
                            .as_array()
                            .into_iter()
                            .flatten()
                            .chain(links.as_str().map(|_| links).into_iter())
                        {
                            if let Some(url) = link.as_str()
                                && url.starts_with("https://")
                            {
                                out.push(FactKind::Social, url);
                            }
                        }
                    }
                }
                if kind == "Product" || kind == "Service" || kind == "SoftwareApplication" {
                    if let Some(name) = map.get("name").and_then(|n| n.as_str()) {
                        out.push(FactKind::Product, name);
                    }
                }
                if kind == "PostalAddress" {
                    let parts: Vec<&str> = ["addressLocality", "addressRegion", "addressCountry"]
                        .iter()
                        .filter_map(|k| map.get(*k).and_then(|v| v.as_str()))
                        .filter(|s| !s.trim().is_empty())
                        .collect();
                    if !parts.is_empty() {
                        out.push(FactKind::Location, &parts.join(", "));
                    }
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
}

/// Collapses whitespace and cuts the value to the length cap on a character
/// boundary.
pub fn clean(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= MAX_VALUE_CHARS {
        collapsed
    } else {
        let cut: String = collapsed.chars().take(MAX_VALUE_CHARS).collect();
        format!("{}…", cut.trim_end())
    }
}

/// Decodes the character references that pages use in text and attributes.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest[..rest.len().min(12)].find(';');
        let decoded = end.and_then(|end| {
            let name = &rest[1..end];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                "rsquo" | "lsquo" => Some('\''),
                "rdquo" | "ldquo" => Some('"'),
                "ndash" => Some('–'),
                "mdash" => Some('—'),
                "hellip" => Some('…'),
                "copy" => Some('©'),
                "reg" => Some('®'),
                "trade" => Some('™'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            ch.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Resolves `href` against `base`, keeping only http and https targets and
/// dropping fragments.
pub fn resolve(base: &str, href: &str) -> Option<String> {
    let href = href.trim();
    if href.is_empty() || href.starts_with('#') {
        return None;
    }
    let lower = href.to_ascii_lowercase();
    let absolute = if lower.starts_with("http://") || lower.starts_with("https://") {
        href.to_string()
    } else if lower.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    }) {
        // mailto:, tel:, javascript: and other schemes.
        return None;
    } else if let Some(rest) = href.strip_prefix("//") {
        format!("{}://{rest}", base.split("://").next()?)
    } else {
        let (scheme, after) = base.split_once("://")?;
        let authority = after.split('/').next()?;
        if href.starts_with('/') {
            format!("{scheme}://{authority}{href}")
        } else {
            let base_path = url_path(base);
            let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
            let dir = if dir.is_empty() { "/" } else { dir };
            format!("{scheme}://{authority}{dir}{href}")
        }
    };
    Some(absolute.split('#').next()?.to_string())
}

/// Returns the host of an http(s) URL, lower-cased, without port or user info.
pub fn host_of(url: &str) -> Option<String> {
    let after = url.split_once("://")?.1;
    let authority = after.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.split(':').next()?;
    Some(host.to_ascii_lowercase())
}

/// Returns the path of an http(s) URL, `/` when it has none.
pub fn url_path(url: &str) -> &str {
    let Some((_, after)) = url.split_once("://") else {
        return "/";
    };
    match after.find('/') {
        Some(i) => after[i..].split(['?', '#']).next().unwrap_or("/"),
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!doctype html><html><head>
<title>Acme &amp; Co — Payroll for remote teams</title>
<meta name="description" content="Acme runs payroll in 40 countries.">
<meta property="og:site_name" content="Acme">
<meta name="generator" content="WordPress 6.4">
<script src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>
<script src="https://js.stripe.com/v3"></script>
<script type="application/ld+json">{"@type":"Organization","description":"Global payroll.",
 "sameAs":["https://www.linkedin.com/company/acme"],
 "address":{"@type":"PostalAddress","addressLocality":"Lisbon","addressCountry":"PT"}}</script>
</head><body>
<nav><a href="/products/payroll">Payroll</a><a href="/products/payroll">Payroll</a>
<a href="about">About us</a><a href="https://other.example/about">Elsewhere</a>
<a href="mailto:hi@acme.com">Mail</a><a href="https://twitter.com/acme">Twitter</a>
<a href="https://twitter.com/">Twitter home</a></nav>
<h1>Pay   your team
 anywhere</h1><h2>Compliance built in</h2>
<address>1 Rua Augusta, Lisbon</address>
</body></html>"#;

    fn values(facts: &PageFacts, kind: FactKind) -> Vec<&str> {
        facts
            .facts
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn reads_every_kind_of_fact_from_a_page() {
        let facts = extract(PAGE, "https://acme.com/");
        assert_eq!(facts.site_name.as_deref(), Some("Acme"));
        assert_eq!(
            values(&facts, FactKind::Title),
            ["Acme & Co — Payroll for remote teams"]
        );
        assert_eq!(
            values(&facts, FactKind::Description),
            ["Acme runs payroll in 40 countries.", "Global payroll."]
        );
        assert_eq!(
            values(&facts, FactKind::Heading),
            ["Pay your team anywhere", "Compliance built in"]
        );
        assert_eq!(values(&facts, FactKind::Product), ["Payroll"]);
        assert_eq!(
            values(&facts, FactKind::Technology),
            [
                "WordPress",
                "Google Tag Manager",
                "Google Analytics",
                "Stripe"
            ]
        );
        assert_eq!(
            values(&facts, FactKind::Location),
            ["Lisbon, PT", "1 Rua Augusta, Lisbon"]
        );
        assert_eq!(
            values(&facts, FactKind::Social),
            [
                "https://www.linkedin.com/company/acme",
                "https://twitter.com/acme"
            ]
        );
        assert_eq!(
            facts.follow,
            [
                "https://acme.com/products/payroll",
                "https://acme.com/about"
            ]
        );
    }

    #[test]
    fn garbage_and_empty_pages_give_no_facts() {
        assert_eq!(extract("", "https://acme.com/").facts, vec![]);
        let facts = extract(
            "<<<>>> &#xZZ; <title></title><h1> </h1>",
            "https://acme.com/",
        );
        assert!(facts.facts.is_empty(), "{:?}", facts.facts);
    }

    #[test]
    fn values_are_capped_and_cut_on_a_character_boundary() {
        let long = "é".repeat(1000);
        let facts = extract(&format!("<h1>{long}</h1>"), "https://acme.com/");
        let heading = &facts.facts[0].1;
        assert_eq!(heading.chars().count(), MAX_VALUE_CHARS + 1);
        let many: String = (0..20).map(|i| format!("<h2>Heading {i}</h2>")).collect();
        assert_eq!(
            extract(&many, "https://acme.com/").facts.len(),
            MAX_PER_KIND
        );
    }

    #[test]
    fn entities_decode_and_broken_ones_stay() {
        assert_eq!(
            decode_entities("a &amp; b &#39;c&#x27; &bogus; &"),
            "a & b 'c' &bogus; &"
        );
    }

    #[test]
    fn links_resolve_against_the_page() {
        let base = "https://acme.com/team/index.html";
        assert_eq!(resolve(base, "jobs").unwrap(), "https://acme.com/team/jobs");
        assert_eq!(resolve(base, "/about#x").unwrap(), "https://acme.com/about");
        assert_eq!(
            resolve(base, "//cdn.acme.com/a").unwrap(),
            "https://cdn.acme.com/a"
        );
        assert_eq!(resolve(base, "javascript:void(0)"), None);
        assert_eq!(resolve(base, "tel:+1"), None);
        assert_eq!(host_of("https://User@Acme.com:8443/x").unwrap(), "acme.com");
        assert_eq!(url_path("https://acme.com"), "/");
    }
}
