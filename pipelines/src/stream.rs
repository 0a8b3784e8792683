//! The producer and consumer interface that every log backend implements.

use crate::event::{Event, EventError};

/// The position of an accepted event in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub offset: u64,
    pub event_id: String,
    /// True when the log already held this (tenant, event_id) and returned the
    /// original offset without writing again.
    pub duplicate: bool,
}

/// An event read back with its offset.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub offset: u64,
    pub event: Event,
}

/// The outcome of one event in a batch: accepted, or rejected by validation.
pub type ItemResult = Result<Appended, EventError>;

/// The producer side of an event log.
///
/// NOTE: the methods block. A backend with an async client has to block on
/// its own runtime until async versions of these traits exist.
pub trait EventSink {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends the valid events of `events` and returns one result per input,
    /// in order, only once the accepted events are durable.
    fn append_batch(&self, events: Vec<Event>) -> Result<Vec<ItemResult>, Self::Error>;
}

/// The consumer side of an event log.
pub trait EventSource {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Returns up to `max` events in offset order, starting at `offset` or at
    /// the oldest retained offset when `offset` has been deleted.
    fn read_from(&self, offset: u64, max: usize) -> Result<Vec<StoredEvent>, Self::Error>;
}
