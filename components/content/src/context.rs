//! The writing context: the account and its facts, the sender and the call
//! to action. Templates read it through placeholders and prompts list it.

use crate::kind::{ContentType, Length};
use crate::template::{Values, fact_kind};
use copycar_guest::profile::{Fact, Profile};

/// The sender named in the copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sender {
    pub name: String,
    pub company: String,
    pub title: Option<String>,
}

/// The account written to.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// Profile id when the account came from the store.
    pub id: Option<String>,
    pub domain: String,
    pub name: String,
    pub industry: Option<String>,
    pub facts: Vec<Fact>,
}

impl Account {
    pub fn from_profile(profile: Profile) -> Account {
        let name = profile
            .name
            .clone()
            .unwrap_or_else(|| name_from_domain(&profile.domain));
        Account {
            id: Some(profile.id),
            domain: profile.domain,
            name,
            industry: profile.industry,
            facts: profile.facts,
        }
    }
}

/// Derives a readable company name from a domain: `acme-tools.com` →
/// `Acme Tools`.
pub fn name_from_domain(domain: &str) -> String {
    let label = domain.split('.').next().unwrap_or(domain);
    label
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything one generation request works from.
#[derive(Debug, Clone)]
pub struct Context {
    pub content_type: ContentType,
    pub industry: String,
    pub account: Account,
    pub tone: String,
    pub length: Length,
    pub call_to_action: String,
    pub sender: Option<Sender>,
    pub language: String,
    /// Steps of a sequence.
    pub steps: usize,
    /// Subject lines to write.
    pub count: usize,
}

impl Context {
    pub fn fact(&self, id: &str) -> Option<&Fact> {
        self.account.facts.iter().find(|f| f.id == id)
    }

    /// Names the copy may state without a fact backing them.
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![self.account.name.as_str(), self.account.domain.as_str()];
        if let Some(industry) = &self.account.industry {
            names.push(industry);
        }
        if let Some(sender) = &self.sender {
            names.push(&sender.name);
            names.push(&sender.company);
            if let Some(title) = &sender.title {
                names.push(title);
            }
        }
        names
    }
}

impl Values for Context {
    fn value(&self, placeholder: &str) -> Option<(String, Option<String>)> {
        let plain = |value: &str| Some((value.to_string(), None));
        let sender = self.sender.as_ref();
        match placeholder {
            "account.name" => plain(&self.account.name),
            "account.domain" => plain(&self.account.domain),
            "account.industry" => self.account.industry.as_deref().and_then(plain),
            "sender.name" => sender.and_then(|s| plain(&s.name)),
            "sender.company" => sender.and_then(|s| plain(&s.company)),
            "sender.title" => sender.and_then(|s| s.title.as_deref()).and_then(plain),
            "cta" => plain(&self.call_to_action),
            other => {
                let kind = fact_kind(other)?;
                let fact = self.account.facts.iter().find(|f| f.kind == kind)?;
                Some((
                    fact_phrase(&fact.value, &self.account.name),
                    Some(fact.id.clone()),
                ))
            }
        }
    }
}

/// Formats a fact's value to read inside a sentence: trimmed, without its
/// closing stop, and lower-cased at the start unless the first word is the
/// account's name, a name with inner capitals or an acronym.
fn fact_phrase(value: &str, account_name: &str) -> String {
    let value = value.trim().trim_end_matches(['.', '!']);
    let first_word = value.split_whitespace().next().unwrap_or("");
    let keep_case = first_word.chars().skip(1).any(char::is_uppercase)
        || first_word.chars().all(|c| !c.is_lowercase());
    let is_account = account_name
        .split_whitespace()
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case(first_word));
    if keep_case || is_account || first_word == "I" {
        return value.to_string();
    }
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_read_as_names() {
        assert_eq!(name_from_domain("acme-tools.com"), "Acme Tools");
        assert_eq!(name_from_domain("globex.io"), "Globex");
    }

    #[test]
    fn fact_phrases_fit_in_sentences() {
        assert_eq!(
            fact_phrase("Hiring three engineers.", "Acme"),
            "hiring three engineers"
        );
        assert_eq!(
            fact_phrase("AWS and Kubernetes", "Acme"),
            "AWS and Kubernetes"
        );
        assert_eq!(
            fact_phrase("HubSpot for sales", "Acme"),
            "HubSpot for sales"
        );
        assert_eq!(
            fact_phrase("Acme sells tools", "Acme Tools"),
            "Acme sells tools"
        );
    }
}
