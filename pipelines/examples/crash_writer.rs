//! Appends batches to an event log until it is killed, printing each event id
//! on stdout once its batch is acknowledged. `tests/crash.rs` kills it with
//! SIGKILL and checks that every printed id survived.
//!
//! Usage: `crash_writer <log-dir> <run-name>`

use copycar_events::{Event, EventLog, EventType, LogOptions};
use std::io::Write;

const BATCH_SIZE: usize = 50;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(run)) = (args.next(), args.next()) else {
        eprintln!("usage: crash_writer <log-dir> <run-name>");
        std::process::exit(2);
    };

    // Small segments make the writer roll often, so kills also land near a
    // roll.
    let options = LogOptions {
        segment_max_bytes: 64 * 1024,
        ..LogOptions::default()
    };
    let log = EventLog::open(&dir, options).unwrap_or_else(|error| {
        eprintln!("crash_writer: {error}");
        std::process::exit(1);
    });

    let stdout = std::io::stdout();
    for batch_number in 0u64.. {
        let batch = (0..BATCH_SIZE)
            .map(|i| {
                let mut event = Event::new("acme", EventType::Sent, 1_700_000_000_000);
                event.event_id = Some(format!("{run}-{batch_number}-{i}"));
                event
            })
            .collect();
        let results = log.append_batch(batch).unwrap_or_else(|error| {
            eprintln!("crash_writer: {error}");
            std::process::exit(1);
        });

        let mut out = stdout.lock();
        for result in results {
            let appended = result.expect("the writer only builds valid events");
            writeln!(out, "{}", appended.event_id).expect("stdout is writable");
        }
        out.flush().expect("stdout is writable");
    }
}
