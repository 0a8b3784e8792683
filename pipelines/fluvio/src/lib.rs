//! A Fluvio backend for the copycar event log.
//!
//! [`FluvioLog`] implements the same [`copycar_events::EventSink`] and
//! [`copycar_events::EventSource`] traits as the embedded `EventLog`, over
//! partition 0 of one Fluvio topic:
//!
//! 1. [`codec`] lays out each event as a record: key `tenant`, NUL,
//!    `event_id`, and the event as a plain JSON object, which Arroyo's JSON
//!    format reads.
//! 2. [`batch`] validates a batch, assigns missing ids and removes
//!    duplicates before anything is sent.
//! 3. [`offsets`] maps log offsets to Fluvio offsets and plans each read
//!    within the partition's retained offsets.
//! 4. [`FluvioLog`] produces, consumes and rebuilds the dedupe index on
//!    open, blocking on the fluvio client's async runtime.

pub mod batch;
pub mod codec;
mod config;
mod error;
mod log;
pub mod offsets;

pub use config::FluvioLogConfig;
pub use error::{ClientError, FluvioLogError};
pub use log::FluvioLog;
