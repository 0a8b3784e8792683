//! The copycar event log: outreach events (sends, opens, clicks, replies and
//! so on) stored durably for the data plane.
//!
//! How the pieces fit:
//!
//! 1. An [`Event`] is validated field by field; a rejected event gets an
//!    [`EventError`] naming the field, and the rest of its batch goes on.
//! 2. [`EventLog`] is the embedded backend. It appends each batch to
//!    checksummed, length-prefixed binary records in segment files under one
//!    directory and calls fsync before it returns the offsets. A repeated
//!    (tenant, event_id) returns the original offset.
//! 3. On open, [`EventLog`] rebuilds its id index from the segments and cuts
//!    a torn tail off the last one. Old segments are deleted whole by age or
//!    total size ([`LogOptions`]).
//! 4. [`EventInput`] parses a producer's JSON event into an [`Event`] or an
//!    [`EventError`] naming the field, without failing the rest of a batch.
//! 5. [`EventSink`] and [`EventSource`] are the producer and consumer
//!    interface, so another backend can replace the embedded one.

mod error;
mod event;
mod index;
mod input;
mod log;
mod record;
mod segment;
mod stream;

pub use error::LogError;
pub use event::{
    Event, EventError, EventType, MAX_FIELD_BYTES, MAX_FUTURE_MS, MAX_ID_BYTES,
    MAX_PROPERTIES_BYTES, random_event_id,
};
pub use input::EventInput;
pub use log::{EventLog, LogOptions};
pub use stream::{Appended, EventSink, EventSource, ItemResult, StoredEvent};
