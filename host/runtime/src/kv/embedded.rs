//! The embedded key-value backend: one redb database file per store.

// redb's error enum is large, but it only travels the cold error path of a
// blocking call, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::KvError;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// A store in a redb file. Writes commit with redb's default durability,
/// which syncs to disk before `set` or `delete` returns.
#[derive(Clone)]
pub(crate) struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("failed to create {}: {e}", parent.display()))?;
        }
        let db = Database::create(path).map_err(|e| {
            anyhow::anyhow!("failed to open key-value file {}: {e}", path.display())
        })?;
        // Create the table up front so reads of an empty store succeed.
        let tx = db
            .begin_write()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        tx.open_table(TABLE)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        tx.commit()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    /// Runs blocking redb work off the async executor.
    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<R, redb::Error> + Send + 'static,
    ) -> Result<R, KvError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| KvError(format!("key-value task failed: {e}")))?
            .map_err(|e| KvError(format!("key-value storage error: {e}")))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(TABLE)?;
            Ok(table.get(key.as_str())?.map(|v| v.value().to_vec()))
        })
        .await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            tx.open_table(TABLE)?
                .insert(key.as_str(), value.as_slice())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let key = key.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            tx.open_table(TABLE)?.remove(key.as_str())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.get(key).await?.is_some())
    }

    pub async fn keys(&self) -> Result<Vec<String>, KvError> {
        self.blocking(|db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(TABLE)?;
            let mut keys = Vec::new();
            for entry in table.iter()? {
                keys.push(entry?.0.value().to_string());
            }
            Ok(keys)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_store_round_trip_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv/default.redb");
        {
            let store = EmbeddedStore::open(&path).unwrap();
            assert_eq!(store.get("a").await.unwrap(), None);
            store.set("a", b"1").await.unwrap();
            store.set("b", b"2").await.unwrap();
            store.delete("b").await.unwrap();
            store.delete("never-set").await.unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert!(store.exists("a").await.unwrap());
        assert!(!store.exists("b").await.unwrap());
        assert_eq!(store.keys().await.unwrap(), ["a"]);
    }
}
