//! Typed access to the `default` key-value store.

use crate::http::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use spin_sdk::key_value::Store;

pub struct Kv {
    store: Store,
}

impl Kv {
    pub fn open() -> Result<Kv, ApiError> {
        Ok(Kv {
            store: Store::open_default().map_err(ApiError::storage)?,
        })
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        match self.store.get(key).map_err(ApiError::storage)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ApiError::storage(format!("corrupt record {key}: {e}"))),
        }
    }

    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(value).expect("records serialise");
        self.store.set(key, &bytes).map_err(ApiError::storage)
    }

    pub fn delete(&self, key: &str) -> Result<(), ApiError> {
        self.store.delete(key).map_err(ApiError::storage)
    }

    pub fn exists(&self, key: &str) -> Result<bool, ApiError> {
        self.store.exists(key).map_err(ApiError::storage)
    }

    /// Keys starting with `prefix`, sorted.
    // NOTE: the Spin key-value interface only lists all keys, so this scans
    // the whole store; fine for thousands of records, not for millions.
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let mut keys: Vec<String> = self
            .store
            .get_keys()
            .map_err(ApiError::storage)?
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }
}
