//! Small JSON files that let a re-run continue where a crash, Ctrl-C or network loss left off:
//! one per file being uploaded, one per download in progress.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::CliError;

/// What identifies the bytes of a local file well enough to refuse resuming after it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileIdentity {
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: u128,
}

impl FileIdentity {
    pub fn of(path: &Path) -> Result<Self, CliError> {
        let path = fs::canonicalize(path).map_err(CliError::io(format!("cannot open {}", path.display())))?;
        let meta = fs::metadata(&path).map_err(CliError::io(format!("cannot read {}", path.display())))?;
        if !meta.is_file() {
            return Err(CliError::Other(format!("{} is not a regular file", path.display())));
        }
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Ok(Self { path, size: meta.len(), mtime_ns })
    }

    /// Why `self` (as saved) is not `now`, if it is not.
    pub fn differences(&self, now: &FileIdentity) -> Option<String> {
        match (self.size != now.size, self.mtime_ns != now.mtime_ns) {
            (false, false) => None,
            (true, _) => Some(format!("size was {} bytes, is now {}", self.size, now.size)),
            (false, true) => Some("same size, but modified since".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedUpload {
    pub server: String,
    /// Sent with every attempt to create the upload; saved before the first, so a run that died before the
    /// answer arrived creates with the same key, and the service answers with the upload it already made.
    pub idempotency_key: Uuid,
    /// `None` until the service answered the create.
    pub upload_id: Option<Uuid>,
    pub file: FileIdentity,
    pub chunk_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedDownload {
    pub server: String,
    pub upload_id: Uuid,
    pub part: PathBuf,
    /// The ETag of the first response: every continuation asks `If-Match` on it.
    pub etag: String,
    /// The whole file's size, for `upl pending` to show progress without asking the service.
    #[serde(default)]
    pub size: Option<u64>,
}

/// One interrupted transfer found in the state directory.
#[derive(Debug, Clone)]
pub enum Pending {
    Upload(SavedUpload),
    Download(SavedDownload),
}

impl Pending {
    pub fn server(&self) -> &str {
        match self {
            Self::Upload(saved) => &saved.server,
            Self::Download(saved) => &saved.server,
        }
    }

    pub fn upload_id(&self) -> Option<Uuid> {
        match self {
            Self::Upload(saved) => saved.upload_id,
            Self::Download(saved) => Some(saved.upload_id),
        }
    }
}

pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// `--state-dir` / `UPL_STATE_DIR`, else `$XDG_STATE_HOME/upl`, else `~/.local/state/upl`.
    pub fn new(explicit: Option<PathBuf>) -> Self {
        let env_dir = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = explicit
            .or_else(|| env_dir("XDG_STATE_HOME").map(|d| d.join("upl")))
            .or_else(|| env_dir("HOME").map(|d| d.join(".local/state/upl")))
            .or_else(|| env_dir("LOCALAPPDATA").map(|d| d.join("upl")))
            .unwrap_or_else(|| PathBuf::from(".upl-state"));
        Self { dir }
    }

    fn path_for(&self, kind: &str, server: &str, target: &Path) -> PathBuf {
        let key = Sha256::digest(format!("{server}\n{}", target.display()).as_bytes());
        self.dir.join(format!("{kind}-{}.json", hex::encode(&key[..10])))
    }

    fn load<T: DeserializeOwned>(&self, path: &Path) -> Option<T> {
        // An unreadable or corrupt state file is treated as absent: at worst an upload starts over.
        fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    /// Written to a temporary file and renamed, so a crash never leaves half a state file.
    fn save<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), CliError> {
        let context = || format!("cannot write state file {}", path.display());
        fs::create_dir_all(&self.dir).map_err(CliError::io(context()))?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(value).expect("state serializes"))
            .map_err(CliError::io(context()))?;
        fs::rename(&tmp, path).map_err(CliError::io(context()))
    }

    fn remove(&self, path: &Path) {
        let _ = fs::remove_file(path);
    }

    pub fn load_upload(&self, server: &str, file: &Path) -> Option<SavedUpload> {
        self.load(&self.path_for("upload", server, file))
    }

    pub fn save_upload(&self, saved: &SavedUpload) -> Result<(), CliError> {
        self.save(&self.path_for("upload", &saved.server, &saved.file.path), saved)
    }

    pub fn remove_upload(&self, server: &str, file: &Path) {
        self.remove(&self.path_for("upload", server, file));
    }

    /// Every interrupted upload and download with its state file, oldest first; unreadable ones are skipped.
    pub fn pending(&self) -> Vec<(PathBuf, Pending)> {
        let Ok(entries) = fs::read_dir(&self.dir) else { return Vec::new() };
        let mut found: Vec<(std::time::SystemTime, PathBuf, Pending)> = entries
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?;
                if !name.ends_with(".json") {
                    return None;
                }
                let pending = if name.starts_with("upload-") {
                    Pending::Upload(self.load(&path)?)
                } else if name.starts_with("download-") {
                    Pending::Download(self.load(&path)?)
                } else {
                    return None;
                };
                let modified = fs::metadata(&path).and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH);
                Some((modified, path, pending))
            })
            .collect();
        found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        found.into_iter().map(|(_, path, pending)| (path, pending)).collect()
    }

    /// Removes a state file [`StateStore::pending`] found.
    pub fn remove_state_file(&self, path: &Path) {
        self.remove(path);
    }

    pub fn load_download(&self, server: &str, part: &Path) -> Option<SavedDownload> {
        self.load(&self.path_for("download", server, part))
    }

    pub fn save_download(&self, saved: &SavedDownload) -> Result<(), CliError> {
        self.save(&self.path_for("download", &saved.server, &saved.part), saved)
    }

    pub fn remove_download(&self, server: &str, part: &Path) {
        self.remove(&self.path_for("download", server, part));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_differences_name_what_changed() {
        let saved = FileIdentity { path: "/f".into(), size: 10, mtime_ns: 5 };
        assert_eq!(saved.differences(&saved.clone()), None);
        let grown = FileIdentity { size: 11, ..saved.clone() };
        assert!(saved.differences(&grown).unwrap().contains("is now 11"));
        let touched = FileIdentity { mtime_ns: 6, ..saved.clone() };
        assert!(saved.differences(&touched).unwrap().contains("modified"));
    }

    #[test]
    fn state_round_trips_and_is_keyed_by_server_and_file() {
        let dir = std::env::temp_dir().join(format!("upl-state-test-{}", Uuid::new_v4()));
        let store = StateStore::new(Some(dir.clone()));
        let saved = SavedUpload {
            server: "http://a".into(),
            idempotency_key: Uuid::new_v4(),
            upload_id: Some(Uuid::new_v4()),
            file: FileIdentity { path: "/data/f.bin".into(), size: 1, mtime_ns: 2 },
            chunk_size: 5,
        };
        store.save_upload(&saved).unwrap();
        let loaded = store.load_upload("http://a", Path::new("/data/f.bin")).unwrap();
        assert_eq!(loaded.upload_id, saved.upload_id);
        assert!(store.load_upload("http://b", Path::new("/data/f.bin")).is_none());
        let download = SavedDownload {
            server: "http://a".into(),
            upload_id: Uuid::new_v4(),
            part: "/data/g.bin.part".into(),
            etag: "\"e\"".into(),
            size: Some(3),
        };
        store.save_download(&download).unwrap();
        fs::write(dir.join("notes.txt"), "not a state file").unwrap();
        let pending = store.pending();
        assert_eq!(pending.len(), 2, "{pending:?}");
        let ids: std::collections::BTreeSet<_> = pending.iter().map(|(_, p)| p.upload_id()).collect();
        assert_eq!(ids, [saved.upload_id, Some(download.upload_id)].into_iter().collect());
        store.remove_upload("http://a", Path::new("/data/f.bin"));
        assert!(store.load_upload("http://a", Path::new("/data/f.bin")).is_none());
        let (download_file, _) = pending.iter().find(|(_, p)| matches!(p, Pending::Download(_))).unwrap();
        store.remove_state_file(download_file);
        assert!(store.pending().is_empty());
        let _ = fs::remove_dir_all(dir);
    }
}
