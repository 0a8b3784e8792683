//! The runtime configuration file (`--runtime-config-file`), in Spin's
//! format for key-value stores plus a `[sandbox]` table for copycar's
//! per-request limits.
//!
//! ```toml
//! [key_value_store.default]
//! type = "redb"            # embedded file under --data-dir (also accepts "spin")
//!
//! [key_value_store.cache]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//!
//! [sandbox]
//! request_timeout_ms = 30000
//! memory_limit_mb = 128
//! max_instances = 256
//! max_request_body_bytes = 10485760
//! ```
//!
//! An `[llm]` table configures language-model providers and model aliases;
//! `crate::llm::LlmConfig` documents it.
//!
//! An `[events]` table chooses where the event log lives: the embedded log
//! under `--data-dir` (the default), or a Fluvio topic:
//!
//! ```toml
//! [events]
//! backend = "fluvio"
//! endpoint = "127.0.0.1:9003"   # the Fluvio SC, without TLS
//! topic = "copycar-events"      # the default; one partition
//! create_topic = true           # the default
//! ```

use crate::llm::LlmConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The parsed runtime configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub key_value_store: BTreeMap<String, KeyValueStoreConfig>,
    #[serde(default)]
    pub sandbox: SandboxSection,
    /// The raw `[llm]` table; `load` validates it into `llm`.
    #[serde(default, rename = "llm")]
    llm_table: Option<toml::Table>,
    #[serde(skip)]
    pub llm: LlmConfig,
    #[serde(default)]
    pub events: EventsSection,
}

/// The backend that stores the event log.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EventsBackend {
    /// Segment files under `<data-dir>/events`.
    #[default]
    Embedded,
    /// One partition of a Fluvio topic.
    Fluvio,
}

/// The `[events]` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    #[serde(default)]
    pub backend: EventsBackend,
    /// The Fluvio SC's `host:port`.
    pub endpoint: Option<String>,
    /// The Fluvio topic [default: copycar-events].
    pub topic: Option<String>,
    /// Create the topic when it is missing [default: true].
    pub create_topic: Option<bool>,
}

impl EventsSection {
    /// Checks that the Fluvio settings appear only with the Fluvio backend
    /// and that it has an endpoint.
    fn validate(&self) -> Result<(), String> {
        match self.backend {
            EventsBackend::Embedded => {
                for (name, set) in [
                    ("endpoint", self.endpoint.is_some()),
                    ("topic", self.topic.is_some()),
                    ("create_topic", self.create_topic.is_some()),
                ] {
                    if set {
                        return Err(format!(
                            "events.{name} applies only to backend = \"fluvio\""
                        ));
                    }
                }
            }
            EventsBackend::Fluvio => {
                let endpoint = self.endpoint.as_deref().unwrap_or("");
                let valid = endpoint
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !valid {
                    return Err(format!(
                        "events.endpoint `{endpoint}` must be the Fluvio SC's host:port, such as 127.0.0.1:9003"
                    ));
                }
                if self.topic.as_deref().is_some_and(|t| {
                    t.is_empty()
                        || t.len() > 63
                        || !t
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                }) {
                    return Err(
                        "events.topic must be 1 to 63 lowercase letters, digits and `-`".into(),
                    );
                }
            }
        }
        Ok(())
    }
}

/// One `[key_value_store.<label>]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeyValueStoreConfig {
    /// The embedded store: a redb file, by default `<data-dir>/kv/<label>.redb`.
    #[serde(alias = "spin")]
    Redb {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    /// A Redis server; each store is one Redis hash.
    Redis { url: String },
}

/// The `[sandbox]` table; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    pub request_timeout_ms: Option<u64>,
    pub memory_limit_mb: Option<u64>,
    pub max_instances: Option<u32>,
    pub max_request_body_bytes: Option<u64>,
}

impl RuntimeConfig {
    /// Reads the file at `path`, naming it in every error.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = copycar_manifest::read_limited(path, 1 << 20).map_err(|e| {
            anyhow::anyhow!("failed to read runtime config {}: {e}", path.display())
        })?;
        let mut config: RuntimeConfig = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "invalid runtime config {}: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })?;
        for (label, store) in &config.key_value_store {
            // Labels name files under the data directory, so they must not
            // contain path separators.
            if label.is_empty()
                || !label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                anyhow::bail!(
                    "invalid runtime config {}: key_value_store label `{label}` may contain only letters, digits, `_` and `-`",
                    path.display()
                );
            }
            if let KeyValueStoreConfig::Redis { url } = store
                && !(url.starts_with("redis://")
                    || url.starts_with("rediss://")
                    || url.starts_with("redis+unix://"))
            {
                anyhow::bail!(
                    "invalid runtime config {}: key_value_store.{label}.url `{url}` must start with redis://, rediss:// or redis+unix://",
                    path.display()
                );
            }
        }
        config
            .events
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid runtime config {}: {e}", path.display()))?;
        if let Some(table) = config.llm_table.take() {
            config.llm = LlmConfig::from_table(&table)
                .map_err(|e| anyhow::anyhow!("invalid runtime config {}: {e}", path.display()))?;
        }
        Ok(config)
    }
}

/// Per-request limits every component instance runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Wall-clock deadline for one request, from instantiation until the
    /// response body is complete.
    pub request_timeout: Duration,
    /// Maximum linear memory of one instance, in bytes.
    pub memory_limit: u64,
    /// Instances that may run at once; further requests wait for a slot.
    pub max_instances: u32,
    /// Largest request body accepted; larger ones get 413.
    pub max_request_body: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            request_timeout: Duration::from_secs(30),
            memory_limit: 128 << 20,
            max_instances: 256,
            max_request_body: 10 << 20,
        }
    }
}

impl SandboxLimits {
    /// Applies the values set in a `[sandbox]` table over `self`.
    pub fn with_section(mut self, section: &SandboxSection) -> anyhow::Result<Self> {
        if let Some(ms) = section.request_timeout_ms {
            anyhow::ensure!(ms > 0, "sandbox.request_timeout_ms must be greater than 0");
            self.request_timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = section.memory_limit_mb {
            anyhow::ensure!(
                (1..=4096).contains(&mb),
                "sandbox.memory_limit_mb must be between 1 and 4096, got {mb}"
            );
            self.memory_limit = mb << 20;
        }
        if let Some(n) = section.max_instances {
            // Each slot reserves address space for its memories; 2000 slots
            // (and as many for nested calls) fit in a 47-bit address space.
            anyhow::ensure!(
                (1..=2_000).contains(&n),
                "sandbox.max_instances must be between 1 and 2000, got {n}"
            );
            self.max_instances = n;
        }
        if let Some(bytes) = section.max_request_body_bytes {
            self.max_request_body = bytes;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_parses_stores_and_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.toml");
        std::fs::write(
            &path,
            "[key_value_store.default]\ntype = \"spin\"\n[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n[sandbox]\nmemory_limit_mb = 16\n",
        )
        .unwrap();
        let config = RuntimeConfig::load(&path).unwrap();
        assert_eq!(
            config.key_value_store["default"],
            KeyValueStoreConfig::Redb { path: None }
        );
        assert_eq!(
            config.key_value_store["cache"],
            KeyValueStoreConfig::Redis {
                url: "redis://127.0.0.1:1".into()
            }
        );
        let limits = SandboxLimits::default()
            .with_section(&config.sandbox)
            .unwrap();
        assert_eq!(limits.memory_limit, 16 << 20);
        assert_eq!(limits.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn runtime_config_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, "[key_value_store.x]\ntype = \"memcached\"\n").unwrap();
        let err = RuntimeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("runtime.toml"), "{err}");
        assert!(err.contains("memcached"), "{err}");
        std::fs::write(
            &path,
            "[key_value_store.x]\ntype = \"redis\"\nurl = \"http://x\"\n",
        )
        .unwrap();
        let err = RuntimeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("must start with redis://"), "{err}");
        std::fs::write(&path, "[key_value_store.\"../../x\"]\ntype = \"redb\"\n").unwrap();
        let err = RuntimeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("may contain only letters"), "{err}");
    }

    #[test]
    fn events_table_chooses_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            RuntimeConfig::load(&path)
        };
        assert_eq!(load("").unwrap().events.backend, EventsBackend::Embedded);
        let config =
            load("[events]\nbackend = \"fluvio\"\nendpoint = \"127.0.0.1:9003\"\n").unwrap();
        assert_eq!(config.events.backend, EventsBackend::Fluvio);
        assert_eq!(config.events.endpoint.as_deref(), Some("127.0.0.1:9003"));

        for (text, message) in [
            ("[events]\nbackend = \"fluvio\"\n", "must be the Fluvio SC's host:port"),
            ("[events]\nbackend = \"fluvio\"\nendpoint = \"nohost\"\n", "host:port"),
            ("[events]\nendpoint = \"127.0.0.1:9003\"\n", "applies only to backend"),
            ("[events]\nbackend = \"kafka\"\n", "kafka"),
            ("[events]\nbackend = \"fluvio\"\nendpoint = \"h:1\"\ntopic = \"Bad_Topic\"\n", "events.topic"),
            ("[events]\nretention = 1\n", "retention"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
            assert!(err.contains("runtime.toml"), "{err}");
        }
    }

    #[test]
    fn runtime_config_reads_the_llm_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.toml");
        std::fs::write(
            &path,
            "[llm.providers.a]\nkind = \"gemini\"\nmodel = \"gemini-2.0-flash\"\n[llm.models]\ndefault = [\"a\"]\n",
        )
        .unwrap();
        let config = RuntimeConfig::load(&path).unwrap();
        assert_eq!(config.llm.models["default"], ["a"]);
        assert_eq!(
            config.llm.providers["a"].base_url,
            "https://generativelanguage.googleapis.com/v1beta"
        );

        std::fs::write(&path, "[llm.providers.a]\nkind = \"gemini\"\n").unwrap();
        let err = RuntimeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("runtime.toml"), "{err}");
        assert!(err.contains("llm.providers.a.model"), "{err}");
    }

    #[test]
    fn sandbox_rejects_out_of_range_values() {
        let zero = SandboxSection {
            request_timeout_ms: Some(0),
            ..Default::default()
        };
        assert!(SandboxLimits::default().with_section(&zero).is_err());
        let huge = SandboxSection {
            memory_limit_mb: Some(100_000),
            ..Default::default()
        };
        assert!(SandboxLimits::default().with_section(&huge).is_err());
    }
}
