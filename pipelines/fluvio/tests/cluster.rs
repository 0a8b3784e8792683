//! Tests against a real Fluvio cluster. They run when
//! `COPYCAR_FLUVIO_ENDPOINT` is set to the SC address, such as
//! `127.0.0.1:9003`, and pass with a message saying they were skipped
//! otherwise.

use copycar_events::{Event, EventError, EventType};
use copycar_fluvio::{FluvioLog, FluvioLogConfig, FluvioLogError};
use fluvio::metadata::topic::TopicSpec;
use fluvio::{Fluvio, FluvioClusterConfig};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ENDPOINT_VARIABLE: &str = "COPYCAR_FLUVIO_ENDPOINT";

/// Returns the cluster endpoint, or prints why the test is skipped.
fn endpoint(test: &str) -> Option<String> {
    match std::env::var(ENDPOINT_VARIABLE) {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            eprintln!(
                "skipped {test}: {ENDPOINT_VARIABLE} is not set, so there is no Fluvio cluster \
                 to test against (pipelines/fluvio/cluster.sh starts one)"
            );
            None
        }
    }
}

/// Returns a topic name no earlier run used.
fn unique_topic(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn config(endpoint: &str, topic: &str) -> FluvioLogConfig {
    let mut config = FluvioLogConfig::new(endpoint, topic);
    config.read_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(20);
    config
}

/// Deletes `topic`, so repeated runs do not fill the cluster.
fn delete_topic(endpoint: &str, topic: &str) {
    let deleted = fluvio_future::task::run_block_on(async {
        let client = Fluvio::connect_with_config(&FluvioClusterConfig::new(endpoint)).await?;
        client
            .admin()
            .await
            .delete::<TopicSpec>(topic.to_string())
            .await
    });
    if let Err(error) = deleted {
        eprintln!("failed to delete test topic {topic}: {error}");
    }
}

fn click(id: Option<&str>) -> Event {
    let mut event = Event::new("acme", EventType::Click, 1_700_000_000_000);
    event.event_id = id.map(str::to_string);
    event.campaign = Some("spring".into());
    event
        .properties
        .insert("url".into(), serde_json::json!("https://example.com/a"));
    event
}

#[test]
fn append_read_and_reopen() {
    let Some(endpoint) = endpoint("append_read_and_reopen") else {
        return;
    };
    let topic = unique_topic("copycar-test-log");
    let log = FluvioLog::open(config(&endpoint, &topic)).expect("open creates the topic");

    let mut invalid = click(Some("bad"));
    invalid.tenant.clear();
    let before_append = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let results = log
        .append_batch(vec![
            click(Some("e-1")),
            click(None),
            invalid,
            click(Some("e-1")),
        ])
        .expect("append succeeds");
    assert_eq!(results.len(), 4);

    let first = results[0].as_ref().unwrap();
    assert_eq!(first.offset, 0);
    assert_eq!(first.event_id, "e-1");
    assert!(!first.duplicate);

    let second = results[1].as_ref().unwrap();
    assert_eq!(second.offset, 1);
    assert_eq!(second.event_id.len(), 32, "a random id is 32 hex digits");
    assert!(!second.duplicate);

    assert_eq!(results[2], Err(EventError::Empty { field: "tenant" }));

    let repeated = results[3].as_ref().unwrap();
    assert_eq!(repeated.offset, 0);
    assert!(repeated.duplicate);

    let events = log.read_from(0, 10).expect("read from 0");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].offset, 0);
    assert_eq!(events[1].offset, 1);
    assert_eq!(events[0].event.event_id.as_deref(), Some("e-1"));
    assert_eq!(
        events[1].event.event_id.as_deref(),
        Some(second.event_id.as_str())
    );
    assert_eq!(events[0].event.campaign.as_deref(), Some("spring"));
    assert_eq!(
        events[0].event.properties["url"],
        serde_json::json!("https://example.com/a")
    );
    assert!(events[0].event.received_at >= before_append);
    assert_eq!(events[0].event.received_at, events[1].event.received_at);

    let tail = log.read_from(1, 10).expect("read from 1");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].offset, 1);

    let limited = log.read_from(0, 1).expect("read one");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].offset, 0);

    let started = Instant::now();
    let at_end = log.read_from(2, 10).expect("read at the end");
    assert!(at_end.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a read at the end took {:?}",
        started.elapsed()
    );
    assert!(log.read_from(100, 10).unwrap().is_empty());
    assert!(log.read_from(0, 0).unwrap().is_empty());
    drop(log);

    let reopened = FluvioLog::open(config(&endpoint, &topic)).expect("reopen");
    let results = reopened
        .append_batch(vec![click(Some("e-1")), click(Some("e-3"))])
        .expect("append after reopen");
    let repeated = results[0].as_ref().unwrap();
    assert_eq!(repeated.offset, 0, "dedupe survives a reopen");
    assert!(repeated.duplicate);
    let third = results[1].as_ref().unwrap();
    assert_eq!(third.offset, 2);
    assert!(!third.duplicate);

    let events = reopened.read_from(0, 10).expect("read after reopen");
    let offsets: Vec<u64> = events.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [0, 1, 2]);
    assert_eq!(events[2].event.event_id.as_deref(), Some("e-3"));
    drop(reopened);

    delete_topic(&endpoint, &topic);
}

#[test]
fn missing_topic_without_create_fails() {
    let Some(endpoint) = endpoint("missing_topic_without_create_fails") else {
        return;
    };
    let topic = unique_topic("copycar-test-missing");
    let mut config = config(&endpoint, &topic);
    config.create_topic = false;
    let error = FluvioLog::open(config).err().expect("open fails");
    assert!(
        matches!(error, FluvioLogError::TopicNotFound { .. }),
        "{error}"
    );
}

#[test]
fn unreachable_endpoint_fails_to_open() {
    // Needs no cluster: nothing listens on loopback port 1 here, so the
    // connection is refused.
    let mut config = config("127.0.0.1:1", "copycar-test-unreachable");
    config.connect_timeout = Duration::from_secs(5);
    let error = FluvioLog::open(config).err().expect("open fails");
    eprintln!("open of an unreachable endpoint failed as expected: {error}");
    assert!(
        matches!(
            error,
            FluvioLogError::Connect { .. } | FluvioLogError::ConnectTimedOut { .. }
        ),
        "{error}"
    );
}
