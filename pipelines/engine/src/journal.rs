//! The step journal of a pipeline: one JSON line per step taken since the
//! last checkpoint, written and synced before the step's rows are
//! published.
//!
//! Late-event drops, window closing and row trimming depend on where one
//! micro-batch ends and the next begins, and on the wall-clock time of
//! idle heartbeats. After a crash, replaying the same steps (the same
//! event ranges at the same recorded times) rebuilds exactly the state
//! that readers saw, which reading the log again in fresh batches would
//! not.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One step of a pipeline, with the inputs needed to take it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Step {
    /// Processed the events from the previous next offset up to `end`
    /// (exclusive) at wall-clock time `now_ms`.
    Process { end: u64, now_ms: i64 },
    /// A heartbeat at wall-clock time `now_ms` that moved a watermark.
    Heartbeat { now_ms: i64 },
}

#[derive(Serialize, Deserialize)]
struct Line {
    /// The step's number; the checkpoint stores the number of the last
    /// step it contains.
    seq: u64,
    #[serde(flatten)]
    step: Step,
}

pub(crate) struct Journal {
    path: PathBuf,
    file: Option<File>,
}

impl Journal {
    pub(crate) fn new(path: PathBuf) -> Journal {
        Journal { path, file: None }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the steps numbered above `seq`, in order. A last line cut
    /// short by a crash belongs to a step that was never published, so it
    /// is cut off the file and not returned. A line that does not parse
    /// before other valid lines is damage, not a crash: it is skipped with
    /// a warning and the steps after it are kept.
    pub(crate) fn read_after(&mut self, seq: u64) -> io::Result<Vec<(u64, Step)>> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
        let mut steps = Vec::new();
        let mut valid = 0;
        for (index, line) in lines.iter().enumerate() {
            let parsed = line
                .ends_with(b"\n")
                .then(|| serde_json::from_slice::<Line>(line).ok())
                .flatten();
            match parsed {
                Some(parsed) => {
                    if parsed.seq > seq {
                        steps.push((parsed.seq, parsed.step));
                    }
                }
                None if index + 1 == lines.len() => break,
                None => {
                    tracing::warn!(journal = %self.path.display(), line = index + 1, "skipped an unreadable line of the step journal; the steps around it are replayed, so results may differ slightly from before the restart");
                }
            }
            valid += line.len();
        }
        if valid < bytes.len() {
            tracing::warn!(journal = %self.path.display(), kept = valid, dropped = bytes.len() - valid, "cut a torn tail off the step journal");
            let file = OpenOptions::new().write(true).open(&self.path)?;
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        Ok(steps)
    }

    /// Appends step `seq` and syncs it to disk.
    pub(crate) fn append(&mut self, seq: u64, step: Step) -> io::Result<()> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        let mut line = serde_json::to_vec(&Line { seq, step }).map_err(io::Error::from)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Empties the journal once a checkpoint contains all its steps, and
    /// returns whether there was a journal file.
    pub(crate) fn clear(&mut self) -> io::Result<bool> {
        self.file = None;
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_after_seq_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::new(dir.path().join("p.journal"));
        journal
            .append(1, Step::Process { end: 10, now_ms: 5 })
            .unwrap();
        journal.append(2, Step::Heartbeat { now_ms: 9 }).unwrap();
        journal
            .append(
                3,
                Step::Process {
                    end: 12,
                    now_ms: 11,
                },
            )
            .unwrap();

        let steps = journal.read_after(1).unwrap();
        assert_eq!(
            steps,
            vec![
                (2, Step::Heartbeat { now_ms: 9 }),
                (
                    3,
                    Step::Process {
                        end: 12,
                        now_ms: 11
                    }
                )
            ]
        );
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.journal");
        let mut journal = Journal::new(path.clone());
        journal
            .append(1, Step::Process { end: 4, now_ms: 1 })
            .unwrap();
        let whole = fs::metadata(&path).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":2,"kind":"pro"#).unwrap();

        let mut reopened = Journal::new(path.clone());
        assert_eq!(reopened.read_after(0).unwrap().len(), 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), whole);
        reopened.append(2, Step::Heartbeat { now_ms: 3 }).unwrap();
        assert_eq!(reopened.read_after(0).unwrap().len(), 2);
    }

    #[test]
    fn damaged_middle_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.journal");
        let mut journal = Journal::new(path.clone());
        for seq in 1..=3 {
            journal
                .append(seq, Step::Heartbeat { now_ms: seq as i64 })
                .unwrap();
        }
        let text = fs::read_to_string(&path).unwrap();
        let damaged: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, line)| {
                if i == 1 {
                    "garbage {".to_string()
                } else {
                    line.to_string()
                }
            })
            .collect();
        fs::write(&path, damaged.join("\n") + "\n").unwrap();

        let mut reopened = Journal::new(path.clone());
        let steps = reopened.read_after(0).unwrap();
        assert_eq!(
            steps,
            vec![
                (1, Step::Heartbeat { now_ms: 1 }),
                (3, Step::Heartbeat { now_ms: 3 })
            ]
        );
        // The damaged file is left as it is for inspection.
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            damaged.join("\n") + "\n"
        );
    }

    #[test]
    fn clear_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.journal");
        let mut journal = Journal::new(path.clone());
        journal.append(1, Step::Heartbeat { now_ms: 1 }).unwrap();
        assert!(journal.clear().unwrap());
        assert!(!path.exists());
        assert!(journal.read_after(0).unwrap().is_empty());
        assert!(!journal.clear().unwrap());
    }
}
