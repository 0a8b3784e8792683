//! Errors of the Fluvio backend.

use crate::codec::CodecError;
use crate::offsets::OffsetError;
use std::time::Duration;

/// A boxed error from the fluvio client, which returns `anyhow::Error`.
pub type ClientError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed operation on a [`crate::FluvioLog`]. Per-event validation
/// failures are not errors of this type: they are the `Err` items of an
/// append's results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FluvioLogError {
    #[error("failed to connect to the Fluvio cluster at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: ClientError,
    },
    #[error(
        "connecting to the Fluvio cluster at {endpoint} timed out after {timeout:?}; check \
         that the SC listens there"
    )]
    ConnectTimedOut { endpoint: String, timeout: Duration },
    #[error(
        "topic `{topic}` not found on {endpoint}; create it with one partition or set \
         create_topic"
    )]
    TopicNotFound { topic: String, endpoint: String },
    #[error(
        "topic `{topic}` has {partitions} partitions, but the event log needs exactly one so \
         that offsets are a total order"
    )]
    TopicPartitions { topic: String, partitions: u32 },
    #[error("partition 0 of topic `{topic}` is not online after {timeout:?}")]
    PartitionNotReady { topic: String, timeout: Duration },
    #[error("failed to {action} for topic `{topic}`: {source}")]
    Client {
        action: &'static str,
        topic: String,
        #[source]
        source: ClientError,
    },
    #[error("Fluvio returned error {code} to {action} for topic `{topic}`")]
    Server {
        action: &'static str,
        topic: String,
        code: String,
    },
    #[error(
        "producing to topic `{topic}` timed out after {timeout:?}; some records of the batch \
         may have been written"
    )]
    WriteTimedOut { topic: String, timeout: Duration },
    #[error(
        "reading topic `{topic}` at offset {offset} timed out after {timeout:?} while the \
         partition reported more records"
    )]
    ReadTimedOut {
        topic: String,
        offset: u64,
        timeout: Duration,
    },
    #[error(
        "the partition offsets request for topic `{topic}` timed out after {timeout:?}; check \
         that the SPU leading partition 0 is running"
    )]
    OffsetsTimedOut { topic: String, timeout: Duration },
    #[error("record at offset {offset} of topic `{topic}` is invalid: {source}")]
    Decode {
        topic: String,
        offset: u64,
        /// Boxed because a key mismatch carries four strings.
        #[source]
        source: Box<CodecError>,
    },
    #[error("expected the record at offset {expected} of topic `{topic}`, but got offset {found}")]
    UnexpectedOffset {
        topic: String,
        expected: u64,
        found: i64,
    },
    #[error(
        "the SPU acknowledged a record on partition {partition} of topic `{topic}`, not on partition 0"
    )]
    UnexpectedPartition { topic: String, partition: u32 },
    #[error("invalid offset for topic `{topic}`: {source}")]
    Offset {
        topic: String,
        #[source]
        source: OffsetError,
    },
    #[error("failed to generate a random event id: {0}")]
    EventId(getrandom::Error),
}

impl FluvioLogError {
    pub(crate) fn client(
        action: &'static str,
        topic: &str,
        source: impl Into<ClientError>,
    ) -> Self {
        FluvioLogError::Client {
            action,
            topic: topic.to_string(),
            source: source.into(),
        }
    }
}
