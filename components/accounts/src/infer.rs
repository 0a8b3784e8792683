//! The structured half of a profile (industry, size band, what the company
//! sells, likely pains, talking points), written by a language model when
//! one is available and by these rules when none is.
//!
//! Rules never invent a fact about the company: what they derive from a
//! fact keeps that fact's source, and what they only infer (an industry,
//! typical pains) carries the source `model`, meaning "inferred, not read".

use copycar_guest::profile::{Fact, FactKind, Source};
use serde::Deserialize;

/// Size bands, by head count.
pub const SIZE_BANDS: &[&str] = &["1-10", "11-50", "51-200", "201-1000", "1000+"];

/// One derived statement and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub value: String,
    pub source: Source,
}

#[derive(Debug, Default, PartialEq)]
pub struct Structure {
    pub industry: Option<Derived>,
    pub size_band: Option<Derived>,
    pub sells: Vec<Derived>,
    pub pains: Vec<Derived>,
    pub talking_points: Vec<Derived>,
}

/// Industries and the words that point to them, most specific first.
const INDUSTRIES: &[(&str, &[&str], [&str; 2])] = &[
    (
        "Developer tools",
        &[
            "developer",
            "developers",
            "api",
            "apis",
            "sdk",
            "devops",
            "ci/cd",
            "open source",
            "code",
            "git",
        ],
        [
            "Keeping developers productive as the codebase and team grow",
            "Turning open-source or free users into paying customers",
        ],
    ),
    (
        "Cybersecurity",
        &[
            "security",
            "secure",
            "compliance",
            "threat",
            "vulnerability",
            "identity",
            "privacy",
            "encryption",
        ],
        [
            "Proving compliance to customers without slowing sales",
            "Covering more threats with a small security team",
        ],
    ),
    (
        "Fintech",
        &[
            "payments",
            "payment",
            "banking",
            "finance",
            "financial",
            "invoice",
            "payroll",
            "accounting",
            "lending",
            "insurance",
            "crypto",
        ],
        [
            "Meeting regulatory demands while shipping new products",
            "Winning trust from customers who move money through the product",
        ],
    ),
    (
        "Healthcare",
        &[
            "health",
            "healthcare",
            "medical",
            "patients",
            "clinical",
            "care",
            "wellness",
            "therapy",
        ],
        [
            "Handling patient data under strict privacy rules",
            "Reaching care providers who have little time for vendors",
        ],
    ),
    (
        "Education",
        &[
            "learning",
            "education",
            "students",
            "courses",
            "teachers",
            "school",
            "training",
            "edtech",
        ],
        [
            "Keeping learners engaged through a whole course",
            "Selling to institutions with long budget cycles",
        ],
    ),
    (
        "E-commerce",
        &[
            "ecommerce",
            "e-commerce",
            "shop",
            "store",
            "retail",
            "merchants",
            "shopify",
            "checkout",
        ],
        [
            "Raising conversion and repeat purchases",
            "Keeping fulfilment and support costs down as orders grow",
        ],
    ),
    (
        "Marketing technology",
        &[
            "marketing",
            "seo",
            "advertising",
            "ads",
            "campaigns",
            "social media",
            "email marketing",
            "analytics",
        ],
        [
            "Showing which campaigns actually drive revenue",
            "Producing enough good content for every channel",
        ],
    ),
    (
        "Data and AI",
        &[
            "data",
            "machine learning",
            "ml",
            "ai",
            "artificial intelligence",
            "analytics",
            "sql",
            "database",
        ],
        [
            "Getting reliable data in front of decision makers quickly",
            "Moving machine-learning work from prototype to production",
        ],
    ),
    (
        "HR and recruiting",
        &[
            "hiring",
            "recruiting",
            "recruitment",
            "hr",
            "talent",
            "employees",
            "jobs",
            "candidates",
        ],
        [
            "Hiring good people quickly in a tight market",
            "Onboarding and keeping staff spread across locations",
        ],
    ),
    (
        "Web and digital agency",
        &[
            "agency",
            "design",
            "web design",
            "consulting",
            "consultancy",
            "studio",
            "wordpress",
            "development services",
            "clients",
        ],
        [
            "Keeping a steady pipeline of new client projects",
            "Delivering projects on time and on budget with a distributed team",
        ],
    ),
    (
        "Media and publishing",
        &[
            "media",
            "publishing",
            "news",
            "content",
            "magazine",
            "video",
            "podcast",
            "journalism",
        ],
        [
            "Growing paying readers or viewers against free alternatives",
            "Producing more content without lowering quality",
        ],
    ),
    (
        "Travel and hospitality",
        &[
            "travel",
            "hotel",
            "hotels",
            "booking",
            "tourism",
            "hospitality",
            "flights",
        ],
        [
            "Filling capacity outside peak seasons",
            "Competing with large booking platforms for direct customers",
        ],
    ),
    (
        "Software",
        &[
            "software", "saas", "platform", "app", "cloud", "tools", "product", "teams",
        ],
        [
            "Reducing churn while growing accounts",
            "Shortening the time from trial to paid plan",
        ],
    ),
];

/// Derives the structured half from facts alone.
pub fn by_rules(facts: &[Fact]) -> Structure {
    let text = facts
        .iter()
        .map(|f| f.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(" \n ");
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '/'))
        .filter(|w| !w.is_empty())
        .collect();

    let mut best: Option<(usize, usize)> = None;
    for (index, (_, keywords, _)) in INDUSTRIES.iter().enumerate() {
        let score: usize = keywords
            .iter()
            .map(|k| {
                if k.contains(' ') || k.contains('/') {
                    text.matches(k).count() * 2
                } else {
                    words.iter().filter(|w| *w == k).count()
                }
            })
            .sum();
        if score > 0 && best.is_none_or(|(_, s)| score > s) {
            best = Some((index, score));
        }
    }
    let industry = best.map(|(index, _)| INDUSTRIES[index]);

    let mut structure = Structure {
        industry: industry.map(|(name, _, _)| Derived {
            value: name.to_string(),
            source: Source::Model,
        }),
        ..Structure::default()
    };

    structure.size_band = facts
        .iter()
        .filter(|f| f.kind == FactKind::SizeBand)
        .find_map(|f| {
            size_band(&f.value).map(|band| Derived {
                value: band.to_string(),
                source: f.source.clone(),
            })
        });

    // What they sell: the first sentence of the best description, keeping
    // its source. Page descriptions come before provided blurbs.
    // Untyped provided facts stand in when nothing is marked a description.
    let mut descriptions: Vec<&Fact> = facts
        .iter()
        .filter(|f| f.kind == FactKind::Description)
        .collect();
    if descriptions.is_empty() {
        descriptions = facts.iter().filter(|f| f.kind == FactKind::Other).collect();
    }
    descriptions.sort_by_key(|f| !matches!(f.source, Source::Url(_)));
    if let Some(fact) = descriptions.first()
        && let Some(sentence) = first_sentence(&fact.value)
    {
        structure.sells.push(Derived {
            value: sentence,
            source: fact.source.clone(),
        });
    }
    for product in facts.iter().filter(|f| f.kind == FactKind::Product).take(3) {
        structure.sells.push(Derived {
            value: product.value.clone(),
            source: product.source.clone(),
        });
    }

    if let Some((_, _, pains)) = industry {
        structure.pains = pains
            .iter()
            .map(|p| Derived {
                value: lower_first(p),
                source: Source::Model,
            })
            .collect();
    }

    structure.talking_points = talking_points(facts);
    structure
}

/// Openers built from concrete facts, each keeping the fact's source.
/// They are second-person clauses ("your team is fully remote"), so copy
/// can use them after "I saw that".
fn talking_points(facts: &[Fact]) -> Vec<Derived> {
    let mut points = Vec::new();
    let of = |kind| facts.iter().filter(move |f: &&Fact| f.kind == kind);
    if let Some(fact) = of(FactKind::RemotePolicy).next() {
        points.push(Derived {
            value: format!("your team is {}", fact.value.to_lowercase()),
            source: fact.source.clone(),
        });
    }
    let technologies: Vec<&Fact> = of(FactKind::Technology).take(3).collect();
    if !technologies.is_empty() {
        let names: Vec<&str> = technologies.iter().map(|f| f.value.as_str()).collect();
        points.push(Derived {
            value: format!("your team builds with {}", join_words(&names)),
            source: technologies[0].source.clone(),
        });
    }
    if let Some(fact) = of(FactKind::Heading).next() {
        points.push(Derived {
            value: format!("your site leads with \"{}\"", fact.value),
            source: fact.source.clone(),
        });
    }
    if let Some(fact) = of(FactKind::Location).next() {
        points.push(Derived {
            value: format!("you are based in {}", fact.value.trim_end_matches('.')),
            source: fact.source.clone(),
        });
    }
    points
}

/// `Keeping costs down` → `keeping costs down`, for use inside a sentence.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `a`, `a and b`, `a, b and c`.
pub fn join_words(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Returns the first sentence, without Markdown links, at most 240 characters.
pub fn first_sentence(text: &str) -> Option<String> {
    let plain = strip_markdown_links(text);
    let plain = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    let end = plain
        .match_indices(['.', '!', '?'])
        .map(|(i, _)| i)
        .find(|&i| {
            // A sentence ends at punctuation followed by a space or the end,
            // not inside `e.g.` or a version number.
            let next = plain[i + 1..].chars().next();
            let word = plain[..i].rsplit(' ').next().unwrap_or("").to_lowercase();
            let abbreviation = word.contains('.')
                || [
                    "etc", "inc", "vs", "ltd", "co", "corp", "dr", "mr", "ms", "st",
                ]
                .contains(&word.as_str());
            next.is_none_or(|c| c == ' ') && i > 20 && !abbreviation
        })
        .map_or(plain.len(), |i| i + 1);
    let sentence = plain[..end].trim();
    if sentence.chars().count() < 8 {
        return None;
    }
    if sentence.chars().count() > 240 {
        let cut: String = sentence.chars().take(240).collect();
        let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
        return Some(format!("{cut}…"));
    }
    Some(sentence.to_string())
}

/// `[text](url)` becomes `text`.
pub fn strip_markdown_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](") else {
            break;
        };
        let close = open + close;
        let Some(end) = rest[close..].find(')') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[close + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Maps text such as `medium`, `5-10 employees` or `200+` to a size band.
pub fn size_band(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    let word_band = [
        ("tiny", "1-10"),
        ("startup", "1-10"),
        ("small", "11-50"),
        ("medium", "51-200"),
        ("large", "201-1000"),
        ("enterprise", "1000+"),
    ];
    if let Some((_, band)) = word_band.iter().find(|(w, _)| lower.trim() == *w) {
        return Some(band);
    }
    let number: String = lower
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    let count: u64 = number.parse().ok()?;
    Some(match count {
        0..=10 => "1-10",
        11..=50 => "11-50",
        51..=200 => "51-200",
        201..=1000 => "201-1000",
        _ => "1000+",
    })
}

/// Builds the system and user prompts that request the structured half.
pub fn prompt(name: &str, domain: &str, facts: &[Fact]) -> (String, String) {
    let system = "You are a B2B sales researcher. Use only the facts given. \
Answer with one JSON object and nothing else."
        .to_string();
    let mut user = format!("Company: {name} ({domain})\nFacts:\n");
    for fact in facts.iter().take(40) {
        user.push_str(&format!("- {}\n", fact.value));
    }
    user.push_str(&format!(
        "\nReturn JSON with these keys: \"industry\" (a short industry name), \
\"size_band\" (one of {} or null), \"sells\" (up to 3 short phrases: what they sell), \
\"pains\" (up to 3 likely business pains), \"talking_points\" (up to 3 openers for a \
sales e-mail, each based on a fact above).",
        SIZE_BANDS.join(", ")
    ));
    (system, user)
}

#[derive(Deserialize)]
struct ModelAnswer {
    industry: Option<String>,
    size_band: Option<String>,
    #[serde(default)]
    sells: Vec<String>,
    #[serde(default)]
    pains: Vec<String>,
    #[serde(default)]
    talking_points: Vec<String>,
}

/// Parses a model's reply into the structured half; every statement gets
/// the source `model`. Text around the JSON object is ignored.
pub fn parse_answer(text: &str) -> Result<Structure, String> {
    let start = text.find('{').ok_or("the answer holds no JSON object")?;
    let end = text.rfind('}').ok_or("the answer holds no JSON object")?;
    if end < start {
        return Err("the answer holds no JSON object".into());
    }
    let answer: ModelAnswer = serde_json::from_str(&text[start..=end])
        .map_err(|e| format!("the answer is not the JSON asked for: {e}"))?;
    let model = |value: String| Derived {
        value: crate::extract::clean(&value),
        source: Source::Model,
    };
    let list = |items: Vec<String>| -> Vec<Derived> {
        items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| s.chars().count() >= 3)
            .take(3)
            .map(model)
            .collect()
    };
    let structure = Structure {
        industry: answer.industry.filter(|s| !s.trim().is_empty()).map(model),
        size_band: answer
            .size_band
            .and_then(|band| SIZE_BANDS.iter().find(|b| **b == band.trim()).copied())
            .map(|band| model(band.to_string())),
        sells: list(answer.sells),
        pains: list(answer.pains),
        talking_points: list(answer.talking_points),
    };
    if structure.industry.is_none() && structure.sells.is_empty() {
        return Err("the answer names neither an industry nor what the company sells".into());
    }
    Ok(structure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(kind: FactKind, value: &str, source: Source) -> Fact {
        Fact {
            id: String::new(),
            kind,
            value: value.into(),
            source,
        }
    }

    #[test]
    fn rules_derive_from_facts_and_keep_their_sources() {
        let url = Source::Url("https://10up.com/".into());
        let facts = vec![
            fact(
                FactKind::Description,
                "We make websites and content management simple with web design & development consulting services, by contributing to [WordPress](https://wordpress.org). More text.",
                Source::Provided,
            ),
            fact(
                FactKind::Description,
                "A web design agency for WordPress publishers.",
                url.clone(),
            ),
            fact(FactKind::SizeBand, "medium", Source::Provided),
            fact(FactKind::RemotePolicy, "remote-friendly", Source::Provided),
            fact(FactKind::Technology, "php", Source::Provided),
            fact(FactKind::Technology, "WordPress", url.clone()),
        ];
        let s = by_rules(&facts);
        assert_eq!(s.industry.as_ref().unwrap().value, "Web and digital agency");
        assert_eq!(s.industry.unwrap().source, Source::Model);
        assert_eq!(
            s.size_band.unwrap(),
            Derived {
                value: "51-200".into(),
                source: Source::Provided
            }
        );
        assert_eq!(
            s.sells[0].value,
            "A web design agency for WordPress publishers."
        );
        assert_eq!(s.sells[0].source, url);
        assert_eq!(s.pains.len(), 2);
        assert!(s.pains.iter().all(|p| p.source == Source::Model));
        assert_eq!(s.talking_points[0].value, "your team is remote-friendly");
        assert_eq!(
            s.talking_points[1].value,
            "your team builds with php and WordPress"
        );
        assert_eq!(
            s.pains[0].value,
            "keeping a steady pipeline of new client projects"
        );
        assert_eq!(s.talking_points[1].source, Source::Provided);
    }

    #[test]
    fn no_facts_no_guesses() {
        assert_eq!(by_rules(&[]), Structure::default());
    }

    #[test]
    fn untyped_facts_describe_when_nothing_else_does() {
        let facts = [fact(
            FactKind::Other,
            "Payments infrastructure for the internet. More.",
            Source::Provided,
        )];
        let s = by_rules(&facts);
        assert_eq!(
            s.sells[0].value,
            "Payments infrastructure for the internet."
        );
        assert_eq!(s.industry.unwrap().value, "Fintech");
    }

    #[test]
    fn sentences_links_and_sizes() {
        assert_eq!(
            first_sentence("Tools like [PushUp](https://x.y) for e.g. publishers. Second.")
                .unwrap(),
            "Tools like PushUp for e.g. publishers."
        );
        assert_eq!(first_sentence("Hi."), None);
        assert_eq!(size_band("5-10 employees."), Some("1-10"));
        assert_eq!(size_band("~150 currently (10/11/2023)"), Some("51-200"));
        assert_eq!(size_band("more than 2,000"), Some("1000+"));
        assert_eq!(size_band("enterprise"), Some("1000+"));
        assert_eq!(size_band("unknown"), None);
    }

    #[test]
    fn model_answers_parse_or_fail_clearly() {
        let s = parse_answer(
            "Sure! {\"industry\": \"Payroll software\", \"size_band\": \"51-200\", \"sells\": [\"Global payroll\"], \"pains\": [\"Compliance in many countries\", \"x\"], \"talking_points\": []} Hope that helps",
        )
        .unwrap();
        assert_eq!(s.industry.unwrap().value, "Payroll software");
        assert_eq!(s.size_band.unwrap().value, "51-200");
        assert_eq!(s.pains.len(), 1, "one-letter items are dropped");
        let band = parse_answer("{\"industry\": \"Retail\", \"size_band\": \"huge\"}").unwrap();
        assert_eq!(band.size_band, None, "bands outside the list are dropped");
        assert!(parse_answer("no json here").is_err());
        assert!(
            parse_answer("{\"industry\": 3}")
                .unwrap_err()
                .contains("not the JSON")
        );
        assert!(parse_answer("{}").is_err());
    }
}
