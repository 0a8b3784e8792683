//! The durable progress of compaction: the next log offset to read and the
//! Parquet files that make up each tenant's history.
//!
//! A file on disk that the progress file does not list is left over from a
//! run that crashed before committing, and is deleted on open. So the files
//! and the offset always change together, and a crash neither loses nor
//! duplicates rows.

use crate::error::HistoryError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const PROGRESS_FILE: &str = "progress.json";

/// One committed Parquet file of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    pub name: String,
    pub rows: u64,
}

/// The committed state of the history directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// The first log offset not yet in any file.
    pub next_offset: u64,
    /// Sequence number for the next file name, so names are never reused.
    pub next_file: u64,
    /// Files per tenant, keyed by tenant id.
    pub tenants: BTreeMap<String, Vec<FileEntry>>,
}

impl Manifest {
    /// Loads the progress file, or returns an empty manifest when there is
    /// none yet.
    pub fn load(root: &Path) -> Result<Manifest, HistoryError> {
        let path = root.join(PROGRESS_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| HistoryError::Progress {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(HistoryError::io("read", &path, e)),
        }
    }

    /// Writes the progress file atomically: a temporary file is written and
    /// synced, then renamed over the old one, and the directory is synced.
    pub fn store(&self, root: &Path) -> Result<(), HistoryError> {
        let path = root.join(PROGRESS_FILE);
        let temporary = root.join(format!("{PROGRESS_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).expect("the manifest serializes");
        let mut file =
            File::create(&temporary).map_err(|e| HistoryError::io("create", &temporary, e))?;
        file.write_all(&bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| HistoryError::io("write", &temporary, e))?;
        fs::rename(&temporary, &path).map_err(|e| HistoryError::io("rename", &temporary, e))?;
        sync_dir(root)
    }

    /// Returns the number of the next file and advances the counter.
    pub fn take_file_number(&mut self) -> u64 {
        let number = self.next_file;
        self.next_file += 1;
        number
    }
}

/// Returns the directory name for a tenant.
///
/// Ids made of ASCII letters, digits, `-` and `_` are used as they are. Any
/// other id is written as `~` and its bytes in hex, so no id can name a
/// parent directory or collide with another tenant's directory.
pub(crate) fn tenant_dir_name(tenant: &str) -> String {
    let plain = !tenant.is_empty()
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return tenant.to_string();
    }
    let mut name = String::with_capacity(1 + tenant.len() * 2);
    name.push('~');
    for byte in tenant.bytes() {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

/// Returns the directory of a tenant's files under the history root.
pub(crate) fn tenant_dir(root: &Path, tenant: &str) -> PathBuf {
    root.join(tenant_dir_name(tenant))
}

/// Calls fsync on a directory so a rename or creation in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), HistoryError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| HistoryError::io("sync directory", dir, e))
}

/// Deletes every file under the tenant directories that `manifest` does not
/// list: the output of a run that crashed before its commit, or files a
/// merge replaced. Returns how many were deleted.
pub(crate) fn delete_unlisted(root: &Path, manifest: &Manifest) -> Result<usize, HistoryError> {
    let mut deleted = 0;
    let listed: BTreeMap<String, Vec<&str>> = manifest
        .tenants
        .iter()
        .map(|(tenant, files)| {
            let names = files.iter().map(|f| f.name.as_str()).collect();
            (tenant_dir_name(tenant), names)
        })
        .collect();
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(HistoryError::io("list", root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| HistoryError::io("list", root, e))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let keep = listed
            .get(entry.file_name().to_string_lossy().as_ref())
            .cloned()
            .unwrap_or_default();
        for file in fs::read_dir(&dir).map_err(|e| HistoryError::io("list", &dir, e))? {
            let file = file.map_err(|e| HistoryError::io("list", &dir, e))?;
            let name = file.file_name();
            if keep.iter().any(|k| name.to_str() == Some(*k)) {
                continue;
            }
            let path = file.path();
            fs::remove_file(&path).map_err(|e| HistoryError::io("delete", &path, e))?;
            tracing::info!(path = %path.display(), "deleted a history file not listed in progress");
            deleted += 1;
        }
    }
    Ok(deleted)
}
