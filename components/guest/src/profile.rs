//! The account profile that the accounts component writes and the content
//! component reads.
//!
//! Profiles live in the `default` key-value store under
//! `account:<tenant>:<account id>`; the account id is the normalised domain
//! (`acme.com`). Every fact names where it came from, so copy written from a
//! profile can cite it and a reader can check it.

use serde::{Deserialize, Serialize};

/// Key-value key of a tenant's account profile.
pub fn profile_key(tenant: &str, account_id: &str) -> String {
    format!("account:{tenant}:{account_id}")
}

/// Origin of a fact.
///
/// On the wire a source is one string: the page URL it was read from,
/// `provided` for facts the user sent, or `model` for facts a language
/// model inferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Url(String),
    Provided,
    Model,
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            Source::Url(url) => url,
            Source::Provided => "provided",
            Source::Model => "model",
        })
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "provided" => Ok(Source::Provided),
            "model" => Ok(Source::Model),
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Source::Url(text))
            }
            other => Err(serde::de::Error::custom(format!(
                "source must be a URL, `provided` or `model`, not `{other}`"
            ))),
        }
    }
}

/// Subject of a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    Name,
    Title,
    Description,
    Heading,
    Product,
    Technology,
    Location,
    Social,
    Industry,
    SizeBand,
    Sells,
    Pain,
    TalkingPoint,
    RemotePolicy,
    Other,
}

/// One statement about an account, with its origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// Stable within a profile (`f1`, `f2`, ...), so copy can list the facts
    /// it used.
    pub id: String,
    pub kind: FactKind,
    pub value: String,
    pub source: Source,
}

/// A researched account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The normalised domain.
    pub id: String,
    pub domain: String,
    pub name: Option<String>,
    /// Every fact, each with its source. The summary fields below refer to
    /// these by id.
    pub facts: Vec<Fact>,
    pub industry: Option<String>,
    pub size_band: Option<String>,
    /// Ids of the facts that describe what the company sells.
    pub sells: Vec<String>,
    /// Ids of the facts that name likely pains.
    pub pains: Vec<String>,
    /// Ids of the facts to open a conversation with.
    pub talking_points: Vec<String>,
    /// `fetched` when the site was read, `offline` when research used the
    /// known facts alone, with the reason in `research_note`.
    pub research: ResearchMode,
    pub research_note: Option<String>,
    /// Engine and model that wrote the structured part: `llm` with a model
    /// name, or `rules` when no model was available.
    pub engine: String,
    pub model: Option<String>,
    /// Unix milliseconds.
    pub researched_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResearchMode {
    Fetched,
    Offline,
}

impl Profile {
    /// Returns the fact with this id.
    pub fn fact(&self, id: &str) -> Option<&Fact> {
        self.facts.iter().find(|fact| fact.id == id)
    }

    /// Facts of one kind, in profile order.
    pub fn facts_of(&self, kind: FactKind) -> impl Iterator<Item = &Fact> {
        self.facts.iter().filter(move |fact| fact.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_as_strings() {
        for (source, text) in [
            (Source::Url("https://acme.com/".into()), "\"https://acme.com/\""),
            (Source::Provided, "\"provided\""),
            (Source::Model, "\"model\""),
        ] {
            assert_eq!(serde_json::to_string(&source).unwrap(), text);
            assert_eq!(serde_json::from_str::<Source>(text).unwrap(), source);
        }
        let error = serde_json::from_str::<Source>("\"somewhere\"").unwrap_err();
        assert!(error.to_string().contains("`somewhere`"), "{error}");
    }
}
