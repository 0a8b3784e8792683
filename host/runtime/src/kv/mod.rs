//! Key-value stores behind `fermyon:spin/key-value@2.0.0`.
//!
//! The embedded backend keeps each store in a redb file under the data
//! directory and commits every write durably before returning. The Redis
//! backend keeps each store in one Redis hash, so several stores can share a
//! server without their keys colliding.

mod embedded;
mod redis;

use crate::config::KeyValueStoreConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

pub(crate) use embedded::EmbeddedStore;
pub(crate) use redis::RedisStore;

/// A store backend failure; the message is shown to the component as
/// `error::other` and logged with the store label.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KvError(pub String);

/// One configured store.
#[derive(Clone)]
pub(crate) enum Backend {
    Embedded(EmbeddedStore),
    Redis(RedisStore),
}

impl Backend {
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            Backend::Embedded(s) => s.get(key).await,
            Backend::Redis(s) => s.get(key).await,
        }
    }
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        match self {
            Backend::Embedded(s) => s.set(key, value).await,
            Backend::Redis(s) => s.set(key, value).await,
        }
    }
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        match self {
            Backend::Embedded(s) => s.delete(key).await,
            Backend::Redis(s) => s.delete(key).await,
        }
    }
    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        match self {
            Backend::Embedded(s) => s.exists(key).await,
            Backend::Redis(s) => s.exists(key).await,
        }
    }
    pub async fn keys(&self) -> Result<Vec<String>, KvError> {
        match self {
            Backend::Embedded(s) => s.keys().await,
            Backend::Redis(s) => s.keys().await,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "redb",
            Backend::Redis(_) => "redis",
        }
    }
}

/// Every store the application may open, by label.
#[derive(Clone, Default)]
pub struct KeyValueStores {
    stores: Arc<HashMap<String, Backend>>,
}

impl KeyValueStores {
    /// Opens the configured stores. The `default` store always exists and
    /// is embedded unless the runtime config defines it.
    pub async fn open(
        configured: &BTreeMap<String, KeyValueStoreConfig>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut configs = configured.clone();
        configs
            .entry("default".to_string())
            .or_insert(KeyValueStoreConfig::Redb { path: None });

        let mut stores = HashMap::new();
        for (label, config) in configs {
            let backend = match config {
                KeyValueStoreConfig::Redb { path } => {
                    let path = match path {
                        Some(p) if p.is_absolute() => p,
                        Some(p) => data_dir.join(p),
                        None => data_dir.join("kv").join(format!("{label}.redb")),
                    };
                    let store =
                        tokio::task::spawn_blocking(move || EmbeddedStore::open(&path)).await??;
                    Backend::Embedded(store)
                }
                KeyValueStoreConfig::Redis { url } => {
                    Backend::Redis(RedisStore::connect(&url, &label).await?)
                }
            };
            tracing::info!(store = %label, backend = backend.kind(), "opened key-value store");
            stores.insert(label, backend);
        }
        Ok(KeyValueStores {
            stores: Arc::new(stores),
        })
    }

    pub(crate) fn get(&self, label: &str) -> Option<&Backend> {
        self.stores.get(label)
    }

    pub fn contains(&self, label: &str) -> bool {
        self.stores.contains_key(label)
    }
}
