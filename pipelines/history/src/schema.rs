//! The Arrow schema of the `events` table and the conversion of log events
//! into record batches.

use copycar_events::StoredEvent;
use datafusion::arrow::array::{ArrayRef, StringBuilder, TimestampMillisecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, OnceLock};

/// Returns the schema of the `events` table, the same in every file.
///
/// `occurred_at` and `received_at` are UTC timestamps in milliseconds, and
/// `properties` is the event's JSON object as a string, for use with the
/// string functions (an empty object is `{}`).
pub fn event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
            Arc::new(Schema::new(vec![
                Field::new("tenant", DataType::Utf8, false),
                Field::new("event_id", DataType::Utf8, false),
                Field::new("type", DataType::Utf8, false),
                Field::new("campaign", DataType::Utf8, true),
                Field::new("account", DataType::Utf8, true),
                Field::new("recipient", DataType::Utf8, true),
                Field::new("channel", DataType::Utf8, true),
                Field::new("variant", DataType::Utf8, true),
                Field::new("occurred_at", time.clone(), false),
                Field::new("received_at", time, false),
                Field::new("properties", DataType::Utf8, false),
            ]))
        })
        .clone()
}

/// Builds one record batch from events, in the order given.
pub(crate) fn events_to_batch(events: &[&StoredEvent]) -> Result<RecordBatch, ArrowError> {
    let strings = || StringBuilder::with_capacity(events.len(), events.len() * 16);
    let times = || TimestampMillisecondBuilder::with_capacity(events.len()).with_timezone("UTC");
    let mut tenant = strings();
    let mut event_id = strings();
    let mut event_type = strings();
    let mut campaign = strings();
    let mut account = strings();
    let mut recipient = strings();
    let mut channel = strings();
    let mut variant = strings();
    let mut occurred_at = times();
    let mut received_at = times();
    let mut properties = strings();

    for stored in events {
        let event = &stored.event;
        tenant.append_value(&event.tenant);
        // The log assigns an id on append, so a stored event always has one.
        event_id.append_value(event.event_id.as_deref().unwrap_or_default());
        event_type.append_value(event.event_type.as_str());
        campaign.append_option(event.campaign.as_deref());
        account.append_option(event.account.as_deref());
        recipient.append_option(event.recipient.as_deref());
        channel.append_option(event.channel.as_deref());
        variant.append_option(event.variant.as_deref());
        occurred_at.append_value(event.occurred_at);
        received_at.append_value(event.received_at);
        let json = serde_json::to_string(&event.properties)
            .map_err(|e| ArrowError::JsonError(e.to_string()))?;
        properties.append_value(json);
    }

    let columns: Vec<ArrayRef> = vec![
        Arc::new(tenant.finish()),
        Arc::new(event_id.finish()),
        Arc::new(event_type.finish()),
        Arc::new(campaign.finish()),
        Arc::new(account.finish()),
        Arc::new(recipient.finish()),
        Arc::new(channel.finish()),
        Arc::new(variant.finish()),
        Arc::new(occurred_at.finish()),
        Arc::new(received_at.finish()),
        Arc::new(properties.finish()),
    ];
    RecordBatch::try_new(event_schema(), columns)
}
