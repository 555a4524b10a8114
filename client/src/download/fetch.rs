//! One download into its `.part` file: GETs from scratch or `Range` + `If-Match` on the ETag first seen,
//! retried by the one retry policy; the bytes are written and hashed on a blocking thread, never on the
//! async runtime.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{ETAG, IF_MATCH, RANGE};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::source::{Remote, range_start, repr_digest_sha256};
use crate::api::{Api, ApiError};
use crate::error::CliError;
use crate::progress::{Progress, Ui};
use crate::retry::{Transient, retrying};
use crate::state::{SavedDownload, StateStore};

/// Pieces of body waiting for the writer thread: bounded, so a slow disk slows the download, not memory.
const WRITE_QUEUE: usize = 32;
const READ_BUFFER: usize = 1024 * 1024;

pub struct Download<'a> {
    pub api: &'a Api,
    pub store: &'a StateStore,
    pub ui: Ui,
    pub progress: Progress,
    pub remote: Remote,
    pub part: PathBuf,
    /// This download's record: its ETag, on which every continuation is conditional.
    saved: Option<SavedDownload>,
    /// The SHA-256 of the `.part` file's first bytes, carried from one attempt to the next.
    hashed: Option<Hashed>,
    /// The `Repr-Digest` the service sent, if any.
    pub digest_header: Option<String>,
    /// Bytes of an earlier run's `.part` file that were kept.
    pub resumed_from: u64,
    /// The object changed since the `.part` file was begun (412), so it was started over.
    pub restarted: bool,
}

/// How an attempt ended when it did not end the download.
enum FetchError {
    /// The object is not the one the `.part` file was begun from (412/416): start over, right away.
    Changed,
    Failed(CliError),
}

impl Transient for FetchError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Changed => true,
            Self::Failed(CliError::Api(err)) => err.is_transient(),
            Self::Failed(_) => false,
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Failed(CliError::Api(err)) => err.retry_after(),
            Self::Changed | Self::Failed(_) => None,
        }
    }
}

impl<T: Into<CliError>> From<T> for FetchError {
    fn from(err: T) -> Self {
        Self::Failed(err.into())
    }
}

impl<'a> Download<'a> {
    pub async fn new(
        api: &'a Api,
        store: &'a StateStore,
        ui: Ui,
        progress: Progress,
        remote: Remote,
        part: PathBuf,
    ) -> Self {
        let saved = store.load_download(&remote.server, &part).filter(|saved| saved.upload_id == remote.id);
        let resumed_from = match &saved {
            Some(_) => part_len(&part).await.min(remote.size),
            None => 0,
        };
        if resumed_from > 0 {
            ui.note(None, format!("upl: resuming {} from byte {resumed_from}", part.display()));
        }
        Self {
            api,
            store,
            ui,
            progress,
            remote,
            part,
            saved,
            hashed: None,
            digest_header: None,
            resumed_from,
            restarted: false,
        }
    }

    /// Fetches until the `.part` file holds the whole object; returns its SHA-256 (hex).
    pub async fn run(&mut self) -> Result<String, CliError> {
        let (ui, progress) = (self.ui, self.progress.clone());
        let note = |err: &FetchError| match err {
            FetchError::Changed => {
                ui.note(Some(&progress), "upl: the file changed on the server since this download began; starting over")
            }
            FetchError::Failed(err) => ui.note(Some(&progress), format!("upl: {err}; resuming")),
        };
        retrying(self.api.retry, note, async || self.fetch().await).await.map_err(|err| match err {
            FetchError::Changed => CliError::Other("the file keeps changing on the server; try again later".into()),
            FetchError::Failed(err) => err,
        })?;
        match self.hashed.take() {
            Some(hashed) if hashed.len == self.remote.size => Ok(hashed.hex()),
            // The `.part` file was complete before this run: one read.
            _ => {
                blocking(self.part.clone(), move |part| hash_prefix(&mut open(&part)?, u64::MAX).map(|h| h.hex())).await
            }
        }
    }

    /// Forgets the `.part` file and its record, so that nothing of the old object is ever kept.
    pub async fn discard(&mut self) {
        self.saved = None;
        self.hashed = None;
        self.store.remove_download(&self.remote.server, &self.part);
        let _ = tokio::fs::remove_file(&self.part).await;
    }

    /// One GET: from scratch, or the rest of the `.part` file on the condition that the object is unchanged.
    async fn fetch(&mut self) -> Result<(), FetchError> {
        let size = self.remote.size;
        let mut have = part_len(&self.part).await;
        if self.saved.is_none() || have > size {
            // Bytes of unknown origin are never trusted.
            have = 0;
        }
        if self.saved.is_some() && have == size {
            self.progress.set_position(size);
            return Ok(());
        }
        let mut request = self.remote.request(self.api, Method::GET);
        if let (Some(saved), true) = (&self.saved, have > 0) {
            request = request.header(RANGE, format!("bytes={have}-")).header(IF_MATCH, &saved.etag);
        }
        let response = request.send().await.map_err(ApiError::network(&self.remote.url))?;
        let start = match response.status() {
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT if range_start(response.headers()) == Some(have) => have,
            StatusCode::PARTIAL_CONTENT => {
                return Err(
                    CliError::Other(format!("the server answered a range that does not start at {have}")).into()
                );
            }
            StatusCode::PRECONDITION_FAILED | StatusCode::RANGE_NOT_SATISFIABLE => {
                self.discard().await;
                self.resumed_from = 0;
                self.restarted = true;
                return Err(FetchError::Changed);
            }
            _ => return Err(ApiError::from_response(response).await.into()),
        };
        if start == 0 {
            let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let record = SavedDownload {
                server: self.remote.server.clone(),
                upload_id: self.remote.id,
                part: self.part.clone(),
                etag,
                size: Some(size),
            };
            self.store.save_download(&record)?;
            self.saved = Some(record);
        }
        if let Some(digest) = repr_digest_sha256(response.headers()) {
            self.digest_header = Some(digest);
        }
        let prefix = self.hashed.take().filter(|hashed| hashed.len == start);
        let (pieces, writer) = spawn_writer(self.part.clone(), start, prefix);
        self.progress.set_position(start);
        let mut body = response.bytes_stream();
        let mut cut = None;
        while let Some(piece) = body.next().await {
            match piece {
                Ok(piece) => {
                    self.progress.inc(piece.len() as u64);
                    if pieces.send(piece).await.is_err() {
                        break; // The writer failed: its error follows.
                    }
                }
                Err(err) => {
                    cut = Some(ApiError::network(&self.remote.url)(err));
                    break;
                }
            }
        }
        drop(pieces);
        let hashed = writer.await.map_err(|err| CliError::Other(format!("writing stopped: {err}")))??;
        let written = hashed.len;
        self.hashed = Some(hashed);
        if let Some(err) = cut {
            return Err(err.into());
        }
        if written != size {
            // The connection closed early without an error (that is how HTTP signals truncation): continue.
            return Err(ApiError::Interrupted(format!("the download stopped at byte {written} of {size}")).into());
        }
        Ok(())
    }
}

/// A running SHA-256 over a file's first `len` bytes.
struct Hashed {
    len: u64,
    hasher: Sha256,
}

impl Hashed {
    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    fn hex(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// Writes pieces at `start` of the `.part` file on a blocking thread, hashing all it holds; answers with the
/// hash of everything written when the sender is dropped. `prefix` is the hash of the first `start` bytes,
/// when an earlier attempt of this run left it; otherwise they are read back once.
fn spawn_writer(
    part: PathBuf,
    start: u64,
    prefix: Option<Hashed>,
) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<Result<Hashed, CliError>>) {
    let (sender, mut pieces) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || {
        let context = || format!("cannot write {}", part.display());
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&part)
            .map_err(CliError::io(context()))?;
        file.set_len(start).map_err(CliError::io(context()))?;
        let mut hashed = match prefix {
            Some(hashed) => hashed,
            None => hash_prefix(&mut file, start)?,
        };
        file.seek(SeekFrom::Start(start)).map_err(CliError::io(context()))?;
        while let Some(piece) = pieces.blocking_recv() {
            file.write_all(&piece).map_err(CliError::io(context()))?;
            hashed.update(&piece);
        }
        file.sync_all().map_err(CliError::io(context()))?;
        Ok(hashed)
    });
    (sender, writer)
}

/// The hash of the file's first `len` bytes (all of it, for `u64::MAX`).
fn hash_prefix(file: &mut File, len: u64) -> Result<Hashed, CliError> {
    let mut hashed = Hashed { len: 0, hasher: Sha256::new() };
    file.seek(SeekFrom::Start(0)).map_err(CliError::io("cannot read the .part file"))?;
    let mut buffer = vec![0u8; READ_BUFFER];
    while hashed.len < len {
        let want = buffer.len().min(usize::try_from(len - hashed.len).unwrap_or(usize::MAX));
        let read = file.read(&mut buffer[..want]).map_err(CliError::io("cannot read the .part file"))?;
        if read == 0 {
            break;
        }
        hashed.update(&buffer[..read]);
    }
    Ok(hashed)
}

fn open(path: &Path) -> Result<File, CliError> {
    File::open(path).map_err(CliError::io(format!("cannot read {}", path.display())))
}

/// Runs file work on a blocking thread.
async fn blocking<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce(PathBuf) -> Result<T, CliError> + Send + 'static,
) -> Result<T, CliError> {
    tokio::task::spawn_blocking(move || work(path)).await.map_err(|err| CliError::Other(format!("stopped: {err}")))?
}

async fn part_len(part: &Path) -> u64 {
    tokio::fs::metadata(part).await.map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_appends_and_hashes_what_the_file_holds() {
        let part = std::env::temp_dir().join(format!("upl-writer-{}.part", uuid::Uuid::new_v4()));
        std::fs::write(&part, b"hello, stale tail").unwrap();
        // Keeps the first 7 bytes (read back and hashed), drops the rest, appends two pieces.
        let (pieces, writer) = spawn_writer(part.clone(), 7, None);
        pieces.send(Bytes::from_static(b"wor")).await.unwrap();
        pieces.send(Bytes::from_static(b"ld")).await.unwrap();
        drop(pieces);
        let hashed = writer.await.unwrap().unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), b"hello, world");
        assert_eq!(hashed.len, 12);
        assert_eq!(hashed.hex(), hex::encode(Sha256::digest(b"hello, world")));

        // A carried prefix hash is used as it is (the file is not read back).
        let mut prefix = Hashed { len: 0, hasher: Sha256::new() };
        prefix.update(b"hello, world");
        let (pieces, writer) = spawn_writer(part.clone(), 12, Some(prefix));
        pieces.send(Bytes::from_static(b"!")).await.unwrap();
        drop(pieces);
        assert_eq!(writer.await.unwrap().unwrap().hex(), hex::encode(Sha256::digest(b"hello, world!")));
        let whole = hash_prefix(&mut open(&part).unwrap(), u64::MAX).unwrap();
        assert_eq!(whole.hex(), hex::encode(Sha256::digest(b"hello, world!")));
        std::fs::remove_file(part).unwrap();
    }
}
