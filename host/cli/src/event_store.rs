//! The event log the host writes to and its services read from: the
//! embedded log under the data directory, or a Fluvio topic, as the
//! runtime config's `[events]` table chooses.

use copycar_events::{
    Event, EventLog, EventSink, EventSource, ItemResult, LogError, StoredEvent,
};
use copycar_fluvio::{FluvioLog, FluvioLogConfig, FluvioLogError};
use copycar_runtime::{EventsBackend, EventsSection};
use std::fmt;
use std::path::Path;

/// The topic used when the `[events]` table names none.
pub(crate) const DEFAULT_TOPIC: &str = "copycar-events";

pub(crate) enum EventStore {
    Embedded(EventLog),
    Fluvio(FluvioLog),
}

/// A failure of either backend.
#[derive(Debug)]
pub(crate) enum StoreError {
    Embedded(LogError),
    Fluvio(FluvioLogError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Embedded(e) => e.fmt(f),
            StoreError::Fluvio(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Embedded(e) => Some(e),
            StoreError::Fluvio(e) => Some(e),
        }
    }
}

impl EventStore {
    /// Opens the backend the config names. The embedded log lives in
    /// `events_dir`; opening a Fluvio topic connects to the cluster and
    /// reads the topic once to rebuild the id index.
    pub fn open(config: &EventsSection, events_dir: &Path) -> anyhow::Result<EventStore> {
        match config.backend {
            EventsBackend::Embedded => EventLog::open(events_dir, Default::default())
                .map(EventStore::Embedded)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "failed to open the event log in {}: {e}",
                        events_dir.display()
                    )
                }),
            EventsBackend::Fluvio => {
                let endpoint = config.endpoint.clone().unwrap_or_default();
                let topic = config
                    .topic
                    .clone()
                    .unwrap_or_else(|| DEFAULT_TOPIC.to_string());
                let mut fluvio = FluvioLogConfig::new(endpoint.clone(), topic.clone());
                fluvio.create_topic = config.create_topic.unwrap_or(true);
                let log = FluvioLog::open(fluvio).map_err(|e| {
                    anyhow::anyhow!(
                        "failed to open the event log on Fluvio topic `{topic}` at {endpoint}: {e}"
                    )
                })?;
                tracing::info!(%endpoint, %topic, "event log on Fluvio");
                Ok(EventStore::Fluvio(log))
            }
        }
    }

    /// Returns the next offset to be written: the number of events the log
    /// has ever held.
    pub fn next_offset(&self) -> Result<u64, StoreError> {
        match self {
            EventStore::Embedded(log) => Ok(log.next_offset()),
            EventStore::Fluvio(log) => log.bounds().map(|b| b.end).map_err(StoreError::Fluvio),
        }
    }
}

impl EventSink for EventStore {
    type Error = StoreError;

    fn append_batch(&self, events: Vec<Event>) -> Result<Vec<ItemResult>, StoreError> {
        match self {
            EventStore::Embedded(log) => log.append_batch(events).map_err(StoreError::Embedded),
            EventStore::Fluvio(log) => log.append_batch(events).map_err(StoreError::Fluvio),
        }
    }
}

impl EventSource for EventStore {
    type Error = StoreError;

    fn read_from(&self, offset: u64, max: usize) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            EventStore::Embedded(log) => log.read_from(offset, max).map_err(StoreError::Embedded),
            EventStore::Fluvio(log) => log.read_from(offset, max).map_err(StoreError::Fluvio),
        }
    }
}
