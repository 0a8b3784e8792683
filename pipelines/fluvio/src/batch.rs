//! Validation, id assignment and deduplication of one batch before it is
//! produced, kept free of I/O so it can be tested without a cluster.

use crate::codec;
use copycar_events::{Appended, Event, ItemResult};
use std::collections::HashMap;

/// The dedupe index: (tenant, event_id) to the offset of its first record.
pub type DedupeIndex = HashMap<(String, String), u64>;

/// One record to produce.
#[derive(Debug)]
pub struct NewRecord {
    pub tenant: String,
    pub event_id: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// The outcome of one input event before the produce.
#[derive(Debug)]
enum Slot {
    /// Rejected by validation, or a duplicate of an indexed event.
    Done(ItemResult),
    /// The record at this position of [`BatchPlan::records`].
    New(usize),
    /// A duplicate of the record at this position of [`BatchPlan::records`].
    DuplicateOfNew { record: usize, event_id: String },
}

/// A batch split into per-item results and the records to produce.
#[derive(Debug)]
pub struct BatchPlan {
    slots: Vec<Slot>,
    pub records: Vec<NewRecord>,
}

/// Validates `events`, assigns an id from `new_id` to each event without
/// one, sets `received_at`, and drops each (tenant, event_id) that `index`
/// contains or that appears earlier in the batch.
pub fn plan_batch<E>(
    events: Vec<Event>,
    index: &DedupeIndex,
    received_at: i64,
    mut new_id: impl FnMut() -> Result<String, E>,
) -> Result<BatchPlan, E> {
    let mut slots = Vec::with_capacity(events.len());
    let mut records: Vec<NewRecord> = Vec::new();
    let mut batch_ids: HashMap<(String, String), usize> = HashMap::new();

    for mut event in events {
        if let Err(error) = event.validate() {
            slots.push(Slot::Done(Err(error)));
            continue;
        }
        let event_id = match event.event_id.take() {
            Some(id) => id,
            None => new_id()?,
        };
        let id_key = (event.tenant.clone(), event_id.clone());
        if let Some(&offset) = index.get(&id_key) {
            slots.push(Slot::Done(Ok(Appended {
                offset,
                event_id,
                duplicate: true,
            })));
            continue;
        }
        if let Some(&record) = batch_ids.get(&id_key) {
            slots.push(Slot::DuplicateOfNew { record, event_id });
            continue;
        }

        event.event_id = Some(event_id.clone());
        event.received_at = received_at;
        batch_ids.insert(id_key, records.len());
        slots.push(Slot::New(records.len()));
        records.push(NewRecord {
            key: codec::encode_key(&event.tenant, &event_id),
            value: codec::encode_value(&event),
            tenant: event.tenant,
            event_id,
        });
    }
    Ok(BatchPlan { slots, records })
}

impl BatchPlan {
    /// Returns one result per input event, in input order, given the offset
    /// the SPU acknowledged for each record, in [`BatchPlan::records`] order.
    ///
    /// # Panics
    ///
    /// Panics when `offsets` does not have one offset per record.
    pub fn into_results(self, offsets: &[u64]) -> Vec<ItemResult> {
        assert_eq!(
            offsets.len(),
            self.records.len(),
            "one acknowledged offset per produced record"
        );
        self.slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Done(result) => result,
                Slot::New(record) => Ok(Appended {
                    offset: offsets[record],
                    event_id: self.records[record].event_id.clone(),
                    duplicate: false,
                }),
                Slot::DuplicateOfNew { record, event_id } => Ok(Appended {
                    offset: offsets[record],
                    event_id,
                    duplicate: true,
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use copycar_events::{EventError, EventType};
    use std::convert::Infallible;

    fn click(id: Option<&str>) -> Event {
        let mut event = Event::new("acme", EventType::Click, 1_700_000_000_000);
        event.event_id = id.map(str::to_string);
        event
    }

    fn counter_ids() -> impl FnMut() -> Result<String, Infallible> {
        let mut next = 0;
        move || {
            next += 1;
            Ok(format!("generated-{next}"))
        }
    }

    #[test]
    fn valid_events_become_records_in_order() {
        let events = vec![click(Some("a")), click(Some("b"))];
        let plan = plan_batch(events, &DedupeIndex::new(), 42, counter_ids()).unwrap();
        assert_eq!(plan.records.len(), 2);
        assert_eq!(plan.records[0].key, codec::encode_key("acme", "a"));
        assert_eq!(plan.records[1].event_id, "b");

        let stored = codec::decode_value(&plan.records[0].value).unwrap();
        assert_eq!(stored.received_at, 42);
        assert_eq!(stored.event_id.as_deref(), Some("a"));

        let results = plan.into_results(&[10, 11]);
        assert_eq!(results[0].as_ref().unwrap().offset, 10);
        assert_eq!(results[1].as_ref().unwrap().offset, 11);
        assert!(!results[1].as_ref().unwrap().duplicate);
    }

    #[test]
    fn producer_received_at_is_replaced() {
        let mut event = click(Some("a"));
        event.received_at = 7;
        let plan = plan_batch(vec![event], &DedupeIndex::new(), 99, counter_ids()).unwrap();
        let stored = codec::decode_value(&plan.records[0].value).unwrap();
        assert_eq!(stored.received_at, 99);
    }

    #[test]
    fn missing_id_is_assigned() {
        let plan = plan_batch(vec![click(None)], &DedupeIndex::new(), 1, counter_ids()).unwrap();
        assert_eq!(plan.records[0].event_id, "generated-1");
        let results = plan.into_results(&[0]);
        assert_eq!(results[0].as_ref().unwrap().event_id, "generated-1");
    }

    #[test]
    fn invalid_event_fails_alone() {
        let mut bad = click(Some("bad"));
        bad.tenant.clear();
        let events = vec![click(Some("a")), bad, click(Some("b"))];
        let plan = plan_batch(events, &DedupeIndex::new(), 1, counter_ids()).unwrap();
        assert_eq!(plan.records.len(), 2);
        let results = plan.into_results(&[5, 6]);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap().offset, 5);
        assert_eq!(results[1], Err(EventError::Empty { field: "tenant" }));
        assert_eq!(results[2].as_ref().unwrap().offset, 6);
    }

    #[test]
    fn duplicate_in_batch_returns_first_offset() {
        let events = vec![click(Some("a")), click(Some("b")), click(Some("a"))];
        let plan = plan_batch(events, &DedupeIndex::new(), 1, counter_ids()).unwrap();
        assert_eq!(plan.records.len(), 2);
        let results = plan.into_results(&[20, 21]);
        let third = results[2].as_ref().unwrap();
        assert_eq!(third.offset, 20);
        assert_eq!(third.event_id, "a");
        assert!(third.duplicate);
    }

    #[test]
    fn duplicate_of_index_is_not_produced() {
        let mut index = DedupeIndex::new();
        index.insert(("acme".into(), "a".into()), 3);
        let events = vec![click(Some("a")), click(Some("c"))];
        let plan = plan_batch(events, &index, 1, counter_ids()).unwrap();
        assert_eq!(plan.records.len(), 1);
        assert_eq!(plan.records[0].event_id, "c");
        let results = plan.into_results(&[8]);
        assert_eq!(
            results[0],
            Ok(Appended {
                offset: 3,
                event_id: "a".into(),
                duplicate: true
            })
        );
        assert_eq!(results[1].as_ref().unwrap().offset, 8);
    }

    #[test]
    fn same_id_other_tenant_is_new() {
        let mut other = click(Some("a"));
        other.tenant = "globex".into();
        let plan = plan_batch(
            vec![click(Some("a")), other],
            &DedupeIndex::new(),
            1,
            counter_ids(),
        )
        .unwrap();
        assert_eq!(plan.records.len(), 2);
    }

    #[test]
    fn id_generator_error_fails_the_batch() {
        let result = plan_batch(vec![click(None)], &DedupeIndex::new(), 1, || {
            Err::<String, _>("no entropy")
        });
        assert_eq!(result.unwrap_err(), "no entropy");
    }
}
