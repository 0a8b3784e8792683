//! The `[llm]` table of the runtime configuration file.
//!
//! ```toml
//! [llm]
//! deadline_ms = 60000              # whole request, across retries and fallbacks
//! max_retry_after_ms = 20000       # cap on a server's Retry-After
//! backoff_base_ms = 250            # first backoff; doubles per retry
//! circuit_failure_threshold = 5    # consecutive failures that open a circuit
//! circuit_cooldown_ms = 30000      # open time before one probe is let through
//!
//! [llm.providers.openai]
//! kind = "openai"                  # openai | anthropic | gemini | local
//! base_url = "https://api.openai.com/v1"
//! model = "gpt-4o-mini"
//! api_key_env = "OPENAI_API_KEY"   # the key itself never goes in this file
//! timeout_ms = 30000
//! retries = 2
//! price_per_1k_prompt_tokens = 0.00015
//! price_per_1k_generated_tokens = 0.0006
//!
//! [llm.models]
//! default = ["openai", "local-text"]
//! embeddings = ["openai-embeddings"]
//! ```
//!
//! The table is read by hand rather than through serde so that every error
//! names the full path of the key at fault, such as
//! `llm.providers.openai.timeout_ms`.

use super::ProviderKind;
use std::collections::BTreeMap;
use std::time::Duration;

/// The validated `[llm]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model aliases, each an ordered fallback list of provider names.
    pub models: BTreeMap<String, Vec<String>>,
    /// Time budget of one request across all attempts and providers.
    pub deadline: Duration,
    /// Maximum wait honoured from a `Retry-After` header.
    pub max_retry_after: Duration,
    /// Backoff before the first retry; it doubles with each retry.
    pub backoff_base: Duration,
    pub circuit_failure_threshold: u32,
    pub circuit_cooldown: Duration,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            providers: BTreeMap::new(),
            models: BTreeMap::new(),
            deadline: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(20),
            backoff_base: Duration::from_millis(250),
            circuit_failure_threshold: 5,
            circuit_cooldown: Duration::from_secs(30),
        }
    }
}

/// One `[llm.providers.<name>]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Root of the API, without a trailing slash; unused by `local`.
    pub base_url: String,
    /// The provider's model id, or the name of a registered local model.
    pub model: String,
    /// Environment variable that contains the API key.
    pub api_key_env: Option<String>,
    /// Limit of one attempt.
    pub timeout: Duration,
    /// Retries after the first attempt on 429, 5xx, timeouts and
    /// connection failures.
    pub retries: u32,
    pub price_per_1k_prompt_tokens: f64,
    pub price_per_1k_generated_tokens: f64,
}

/// An invalid key in the `[llm]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LlmConfigError {
    /// Dotted path of the key, starting with `llm`.
    pub path: String,
    pub message: String,
}

fn error(path: impl Into<String>, message: impl Into<String>) -> LlmConfigError {
    LlmConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Reads keys of one table and reports the ones left unread.
struct Keys<'a> {
    path: String,
    table: &'a toml::Table,
    read: Vec<&'static str>,
}

impl<'a> Keys<'a> {
    fn new(path: impl Into<String>, table: &'a toml::Table) -> Self {
        Keys {
            path: path.into(),
            table,
            read: Vec::new(),
        }
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a toml::Value> {
        self.read.push(key);
        self.table.get(key)
    }

    fn string(&mut self, key: &'static str) -> Result<Option<String>, LlmConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(toml::Value::String(_)) => Err(error(self.at(key), "must not be empty")),
            Some(other) => Err(error(
                self.at(key),
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    fn integer(
        &mut self,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<u64>, LlmConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if range.contains(n) => Ok(Some(*n as u64)),
            Some(toml::Value::Integer(n)) => Err(error(
                self.at(key),
                format!(
                    "must be between {} and {}, got {n}",
                    range.start(),
                    range.end()
                ),
            )),
            Some(other) => Err(error(
                self.at(key),
                format!("expected an integer, found {}", other.type_str()),
            )),
        }
    }

    fn millis(
        &mut self,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<Duration>, LlmConfigError> {
        Ok(self.integer(key, range)?.map(Duration::from_millis))
    }

    fn price(&mut self, key: &'static str) -> Result<f64, LlmConfigError> {
        let value = match self.get(key) {
            None => return Ok(0.0),
            Some(toml::Value::Float(f)) => *f,
            Some(toml::Value::Integer(n)) => *n as f64,
            Some(other) => {
                return Err(error(
                    self.at(key),
                    format!("expected a number, found {}", other.type_str()),
                ));
            }
        };
        if !value.is_finite() || value < 0.0 {
            return Err(error(
                self.at(key),
                format!("must be a price of 0 or more in USD, got {value}"),
            ));
        }
        Ok(value)
    }

    fn table(&mut self, key: &'static str) -> Result<Option<&'a toml::Table>, LlmConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(t)),
            Some(other) => Err(error(
                self.at(key),
                format!("expected a table, found {}", other.type_str()),
            )),
        }
    }

    /// Fails on the first key that was never read.
    fn finish(self) -> Result<(), LlmConfigError> {
        for key in self.table.keys() {
            if !self.read.contains(&key.as_str()) {
                let mut expected = self.read.clone();
                expected.sort();
                return Err(error(
                    self.at(key),
                    format!("unknown key; expected one of {}", expected.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

impl LlmConfig {
    /// Validates the `[llm]` table.
    pub fn from_table(table: &toml::Table) -> Result<Self, LlmConfigError> {
        let defaults = LlmConfig::default();
        let mut keys = Keys::new("llm", table);
        let deadline = keys
            .millis("deadline_ms", 1..=600_000)?
            .unwrap_or(defaults.deadline);
        let max_retry_after = keys
            .millis("max_retry_after_ms", 0..=600_000)?
            .unwrap_or(defaults.max_retry_after);
        let backoff_base = keys
            .millis("backoff_base_ms", 0..=60_000)?
            .unwrap_or(defaults.backoff_base);
        let circuit_failure_threshold = keys
            .integer("circuit_failure_threshold", 1..=1000)?
            .map(|n| n as u32)
            .unwrap_or(defaults.circuit_failure_threshold);
        let circuit_cooldown = keys
            .millis("circuit_cooldown_ms", 0..=3_600_000)?
            .unwrap_or(defaults.circuit_cooldown);

        let mut providers = BTreeMap::new();
        if let Some(table) = keys.table("providers")? {
            for (name, value) in table {
                let path = format!("llm.providers.{name}");
                if !is_valid_name(name) {
                    return Err(error(
                        path,
                        "invalid provider name: use up to 64 letters, digits, `_`, `-` and `.`",
                    ));
                }
                let toml::Value::Table(provider) = value else {
                    return Err(error(
                        path,
                        format!("expected a table, found {}", value.type_str()),
                    ));
                };
                providers.insert(name.clone(), provider_from_table(name, provider)?);
            }
        }

        let mut models = BTreeMap::new();
        if let Some(table) = keys.table("models")? {
            for (alias, value) in table {
                let path = format!("llm.models.{alias}");
                if !is_valid_name(alias) {
                    return Err(error(
                        path,
                        "invalid model alias: use up to 64 letters, digits, `_`, `-` and `.`",
                    ));
                }
                let names = match value {
                    toml::Value::String(s) => vec![s.clone()],
                    toml::Value::Array(items) => {
                        let mut names = Vec::new();
                        for (index, item) in items.iter().enumerate() {
                            let toml::Value::String(name) = item else {
                                return Err(error(
                                    format!("{path}[{index}]"),
                                    format!("expected a provider name, found {}", item.type_str()),
                                ));
                            };
                            names.push(name.clone());
                        }
                        names
                    }
                    other => {
                        return Err(error(
                            path,
                            format!(
                                "expected a list of provider names, found {}",
                                other.type_str()
                            ),
                        ));
                    }
                };
                if names.is_empty() {
                    return Err(error(path, "must name at least one provider"));
                }
                for (index, name) in names.iter().enumerate() {
                    if !providers.contains_key(name) {
                        return Err(error(
                            format!("{path}[{index}]"),
                            format!("no provider `{name}`; define [llm.providers.{name}]"),
                        ));
                    }
                    if names[..index].contains(name) {
                        return Err(error(
                            format!("{path}[{index}]"),
                            format!("provider `{name}` is listed twice"),
                        ));
                    }
                }
                models.insert(alias.clone(), names);
            }
        }
        keys.finish()?;

        Ok(LlmConfig {
            providers,
            models,
            deadline,
            max_retry_after,
            backoff_base,
            circuit_failure_threshold,
            circuit_cooldown,
        })
    }
}

fn provider_from_table(name: &str, table: &toml::Table) -> Result<ProviderConfig, LlmConfigError> {
    let path = format!("llm.providers.{name}");
    if table.contains_key("api_key") {
        return Err(error(
            format!("{path}.api_key"),
            "API keys are not read from this file; put the key in an environment variable and name the variable in `api_key_env`",
        ));
    }
    let mut keys = Keys::new(path.clone(), table);
    let kind = match keys.string("kind")?.as_deref() {
        Some("openai") => ProviderKind::OpenAi,
        Some("anthropic") => ProviderKind::Anthropic,
        Some("gemini") => ProviderKind::Gemini,
        Some("local") => ProviderKind::Local,
        Some(other) => {
            return Err(error(
                format!("{path}.kind"),
                format!("unknown kind `{other}`; expected openai, anthropic, gemini or local"),
            ));
        }
        None => {
            return Err(error(
                format!("{path}.kind"),
                "missing; set it to openai, anthropic, gemini or local",
            ));
        }
    };
    let model = keys
        .string("model")?
        .ok_or_else(|| error(format!("{path}.model"), "missing; name the model to call"))?;
    let base_url = match keys.string("base_url")? {
        Some(url) => {
            if kind == ProviderKind::Local {
                return Err(error(
                    format!("{path}.base_url"),
                    "a local provider runs in process and has no base URL; remove it",
                ));
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(error(
                    format!("{path}.base_url"),
                    format!("`{url}` must start with http:// or https://"),
                ));
            }
            url.trim_end_matches('/').to_string()
        }
        None => default_base_url(kind).to_string(),
    };
    let api_key_env = keys.string("api_key_env")?;
    if let Some(variable) = &api_key_env
        && !variable
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(error(
            format!("{path}.api_key_env"),
            format!(
                "`{variable}` is not an environment variable name; use letters, digits and `_`"
            ),
        ));
    }
    let timeout = keys
        .millis("timeout_ms", 1..=600_000)?
        .unwrap_or(Duration::from_secs(30));
    let retries = keys.integer("retries", 0..=10)?.unwrap_or(2) as u32;
    let price_per_1k_prompt_tokens = keys.price("price_per_1k_prompt_tokens")?;
    let price_per_1k_generated_tokens = keys.price("price_per_1k_generated_tokens")?;
    keys.finish()?;

    Ok(ProviderConfig {
        name: name.to_string(),
        kind,
        base_url,
        model,
        api_key_env,
        timeout,
        retries,
        price_per_1k_prompt_tokens,
        price_per_1k_generated_tokens,
    })
}

/// Returns the vendor's public endpoint for each kind.
fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "https://api.openai.com/v1",
        ProviderKind::Anthropic => "https://api.anthropic.com",
        ProviderKind::Gemini => "https://generativelanguage.googleapis.com/v1beta",
        ProviderKind::Local => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LlmConfig, LlmConfigError> {
        let table: toml::Table = toml::from_str(text).unwrap();
        LlmConfig::from_table(&table)
    }

    #[test]
    fn parses_providers_and_aliases() {
        let config = parse(
            r#"
            deadline_ms = 5000
            [providers.a]
            kind = "openai"
            base_url = "http://127.0.0.1:9/v1/"
            model = "m"
            api_key_env = "A_KEY"
            retries = 1
            price_per_1k_prompt_tokens = 0.5
            price_per_1k_generated_tokens = 1
            [providers.b]
            kind = "local"
            model = "tiny"
            [models]
            default = ["a", "b"]
            embeddings = "a"
            "#,
        )
        .unwrap();
        assert_eq!(config.deadline, Duration::from_secs(5));
        let a = &config.providers["a"];
        assert_eq!(a.kind, ProviderKind::OpenAi);
        assert_eq!(a.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(a.api_key_env.as_deref(), Some("A_KEY"));
        assert_eq!(a.retries, 1);
        assert_eq!(a.price_per_1k_generated_tokens, 1.0);
        assert_eq!(config.providers["b"].kind, ProviderKind::Local);
        assert_eq!(config.models["default"], ["a", "b"]);
        assert_eq!(config.models["embeddings"], ["a"]);
    }

    #[test]
    fn errors_name_the_key_path() {
        let cases = [
            (
                "[providers.a]\nkind = \"openai\"\nmodel = \"m\"\ntimeout = 5\n",
                "llm.providers.a.timeout",
            ),
            (
                "[providers.a]\nkind = \"cohere\"\nmodel = \"m\"\n",
                "llm.providers.a.kind",
            ),
            (
                "[providers.a]\nkind = \"openai\"\n",
                "llm.providers.a.model",
            ),
            (
                "[providers.a]\nkind = \"openai\"\nmodel = \"m\"\napi_key = \"sk-1\"\n",
                "llm.providers.a.api_key",
            ),
            (
                "[providers.a]\nkind = \"openai\"\nmodel = \"m\"\nbase_url = \"ftp://x\"\n",
                "llm.providers.a.base_url",
            ),
            (
                "[providers.a]\nkind = \"openai\"\nmodel = \"m\"\nretries = 99\n",
                "llm.providers.a.retries",
            ),
            (
                "[providers.a]\nkind = \"openai\"\nmodel = \"m\"\nprice_per_1k_prompt_tokens = -1\n",
                "llm.providers.a.price_per_1k_prompt_tokens",
            ),
            (
                "[providers.a]\nkind = \"local\"\nmodel = \"m\"\nbase_url = \"http://x\"\n",
                "llm.providers.a.base_url",
            ),
            (
                "[models]\ndefault = [\"missing\"]\n",
                "llm.models.default[0]",
            ),
            ("[models]\ndefault = []\n", "llm.models.default"),
            ("deadline_ms = 0\n", "llm.deadline_ms"),
            ("surprise = 1\n", "llm.surprise"),
        ];
        for (text, path) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.path, path, "{text}: {err}");
        }
    }

    #[test]
    fn api_key_in_file_is_rejected_with_advice() {
        let err = parse("[providers.a]\nkind = \"openai\"\nmodel = \"m\"\napi_key = \"sk-1\"\n")
            .unwrap_err();
        assert!(err.message.contains("api_key_env"), "{err}");
        assert!(!err.to_string().contains("sk-1"), "{err}");
    }
}
