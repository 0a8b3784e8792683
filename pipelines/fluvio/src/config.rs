//! Connection and topic settings of a [`crate::FluvioLog`].

use std::time::Duration;

/// The cluster address, topic and timeouts of a log.
#[derive(Debug, Clone)]
pub struct FluvioLogConfig {
    /// The `host:port` of the Fluvio streaming controller (SC), such as
    /// `127.0.0.1:9003`. The client connects without TLS.
    pub endpoint: String,
    /// The topic that contains the log. It must have exactly one partition.
    pub topic: String,
    /// Create the topic, with one partition and replication factor 1, when
    /// it does not exist. When false, opening a missing topic fails.
    pub create_topic: bool,
    /// The maximum wait for the next record of a read, and for the offsets
    /// request that starts each read.
    pub read_timeout: Duration,
    /// The maximum time a batch may take from the first send to the last
    /// acknowledgement, retries included.
    pub write_timeout: Duration,
    /// The maximum time to connect to the SC, and to wait for a new topic's
    /// partition to come online.
    pub connect_timeout: Duration,
}

impl FluvioLogConfig {
    /// Creates a config with the default timeouts that creates the topic
    /// when it is missing.
    pub fn new(endpoint: impl Into<String>, topic: impl Into<String>) -> Self {
        FluvioLogConfig {
            endpoint: endpoint.into(),
            topic: topic.into(),
            create_topic: true,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}
