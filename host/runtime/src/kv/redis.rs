//! The Redis key-value backend. Each store is the hash `copycar:kv:<label>`.

use super::KvError;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::time::Duration;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(crate) struct RedisStore {
    connection: ConnectionManager,
    hash: String,
}

impl RedisStore {
    /// Connects at start-up so a wrong URL or a stopped server is reported
    /// before any request arrives.
    pub async fn connect(url: &str, label: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("key-value store `{label}`: invalid Redis URL: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(Duration::from_secs(5))
            .set_number_of_retries(2)
            // Reconnect quickly after a Redis restart: back-off steps of
            // 100 ms, at most 2 s apart.
            .set_factor(100)
            .set_max_delay(2_000);
        let connection = tokio::time::timeout(
            Duration::from_secs(10),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("key-value store `{label}`: timed out connecting to Redis"))?
        .map_err(|e| {
            anyhow::anyhow!("key-value store `{label}`: failed to connect to Redis: {e}")
        })?;
        Ok(RedisStore {
            connection,
            hash: format!("copycar:kv:{label}"),
        })
    }

    fn error(e: redis::RedisError) -> KvError {
        KvError(format!("redis error: {e}"))
    }

    /// Bounds one command, so a hung connection fails the call with a
    /// message instead of running into the request deadline.
    async fn bounded<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, KvError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(result) => result.map_err(Self::error),
            Err(_) => Err(KvError(format!(
                "redis did not respond within {} s (store hash {})",
                COMMAND_TIMEOUT.as_secs(),
                self.hash
            ))),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let mut c = self.connection.clone();
        self.bounded(c.hget(&self.hash, key)).await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let mut c = self.connection.clone();
        self.bounded(c.hset::<_, _, _, ()>(&self.hash, key, value))
            .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let mut c = self.connection.clone();
        self.bounded(c.hdel::<_, _, ()>(&self.hash, key)).await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        let mut c = self.connection.clone();
        self.bounded(c.hexists(&self.hash, key)).await
    }

    pub async fn keys(&self) -> Result<Vec<String>, KvError> {
        let mut c = self.connection.clone();
        self.bounded(c.hkeys(&self.hash)).await
    }
}
