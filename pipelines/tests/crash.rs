//! Kills a writer with SIGKILL in the middle of appending and checks that no
//! acknowledged event was lost.

use copycar_events::{EventLog, LogOptions};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CYCLES: usize = 5;

/// Lines to read before the kill. The writer keeps running while the test
/// reads, so the kill lands at an arbitrary point of a later batch.
const LINES_BEFORE_KILL: usize = 500;

/// Returns the path of the `crash_writer` example, which `cargo test` builds
/// next to the `deps` directory that contains this test binary.
fn crash_writer_path() -> PathBuf {
    let test_binary = std::env::current_exe().unwrap();
    let profile_dir = test_binary.parent().unwrap().parent().unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("crash_writer{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "crash_writer example not found at {}; run `cargo test -p copycar-events`, \
         which builds examples, or `cargo build -p copycar-events --example crash_writer` first",
        path.display()
    );
    path
}

#[test]
fn killed_writer_loses_no_acknowledged_event() {
    let writer = crash_writer_path();
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::new();

    for cycle in 0..CYCLES {
        let mut child = Command::new(&writer)
            .arg(dir.path())
            .arg(format!("run{cycle}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());

        // Only whole lines count: a line cut short by the kill was never
        // printed in full, so its batch may not have been acknowledged.
        let mut line = String::new();
        let mut lines_read = 0;
        let mut killed = false;
        loop {
            line.clear();
            let read = stdout.read_line(&mut line).unwrap();
            if read == 0 {
                break;
            }
            if line.ends_with('\n') {
                acknowledged.push(line.trim_end().to_string());
            }
            lines_read += 1;
            if !killed && lines_read >= LINES_BEFORE_KILL {
                // `Child::kill` sends SIGKILL to this child's pid on Unix.
                child.kill().unwrap();
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        assert!(
            killed,
            "cycle {cycle}: writer exited on its own with {status}"
        );

        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        let stored = log.read_from(0, usize::MAX).unwrap();
        let offsets: Vec<u64> = stored.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, (0..stored.len() as u64).collect::<Vec<_>>());

        let ids: HashSet<&str> = stored
            .iter()
            .map(|s| s.event.event_id.as_deref().unwrap())
            .collect();
        assert_eq!(
            ids.len(),
            stored.len(),
            "cycle {cycle}: an id is stored twice"
        );
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !ids.contains(id.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: {} acknowledged ids missing, first {:?}",
            missing.len(),
            missing.first()
        );
    }
}
