//! Sends chunks straight to S3 through presigned URLs, several at once, and reports each to the service.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Mutex;
use tokio::sync::mpsc::UnboundedReceiver;
use uuid::Uuid;

use crate::api::{Api, ApiError, ChunkUrl};
use crate::error::CliError;
use crate::progress::{Progress, Ui};
use crate::retry::{Transient, retrying};
use crate::upload::chunks::chunk_span;

/// Most URLs one batch request asks for (the service's limit).
const MAX_URL_BATCH: usize = 100;
/// Progress is counted per slice of the body as it is handed to the connection.
const PROGRESS_SLICE: usize = 256 * 1024;
/// A URL this close to its expiry is renewed before it is used.
const EXPIRY_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

pub struct Transfer<'a> {
    pub api: &'a Api,
    pub ui: Ui,
    pub upload_id: Uuid,
    pub path: PathBuf,
    pub size: u64,
    pub chunk_size: u64,
    pub parallel: usize,
    pub progress: Progress,
}

/// Chunks hashed and waiting for a URL, and URLs fetched in batches ahead of the workers.
struct UrlQueue {
    hashed: UnboundedReceiver<(u32, String)>,
    ready: VecDeque<ChunkUrl>,
    digests: HashMap<u32, String>,
}

impl UrlQueue {
    /// Waits for the next hashed chunk, then takes as many more as are hashed already, up to `most`. Empty
    /// once hashing has ended and every chunk was taken.
    async fn take_hashed(&mut self, most: usize) -> Vec<(u32, String)> {
        let Some(first) = self.hashed.recv().await else { return Vec::new() };
        let mut taken = vec![first];
        while taken.len() < most
            && let Ok(next) = self.hashed.try_recv()
        {
            taken.push(next);
        }
        taken
    }
}

enum PutError {
    /// 403: an expired URL (or one whose signature no longer holds): ask for a new one, then try again.
    Forbidden(String),
    /// 400 BadDigest: the bytes read are not those hashed earlier.
    BadDigest,
    /// Asking the service for a new URL failed (already retried by the service call itself).
    Renewal(CliError),
    Other(ApiError),
}

impl Transient for PutError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Forbidden(_) => true,
            Self::BadDigest | Self::Renewal(_) => false,
            Self::Other(err) => err.is_transient(),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Other(err) => err.retry_after(),
            Self::Forbidden(_) | Self::BadDigest | Self::Renewal(_) => None,
        }
    }
}

impl Transfer<'_> {
    /// Sends every chunk that arrives on `hashed` (`(index, sha256 hex)`) until it closes; returns how many
    /// were sent.
    pub async fn run(&self, hashed: UnboundedReceiver<(u32, String)>) -> Result<usize, CliError> {
        let batch = (self.parallel * 4).clamp(8, MAX_URL_BATCH);
        let queue = Mutex::new(UrlQueue { hashed, ready: VecDeque::new(), digests: HashMap::new() });
        let sent = AtomicUsize::new(0);
        let workers = (0..self.parallel.max(1)).map(|_| self.worker(&queue, batch, &sent));
        futures::future::try_join_all(workers).await?;
        Ok(sent.into_inner())
    }

    async fn worker(&self, queue: &Mutex<UrlQueue>, batch: usize, sent: &AtomicUsize) -> Result<(), CliError> {
        let mut file = tokio::fs::File::open(&self.path)
            .await
            .map_err(CliError::io(format!("cannot open {}", self.path.display())))?;
        while let Some((url, sha256)) = self.next_url(queue, batch).await? {
            let index = url.index;
            let bytes = read_chunk(&mut file, &self.path, index, self.chunk_size, self.size).await?;
            let etag = self.put_chunk(url, &sha256, bytes).await?;
            self.api.confirm_chunk(self.upload_id, index, &etag, &sha256).await?;
            sent.fetch_add(1, Ordering::Relaxed);
            self.ui.detail(Some(&self.progress), format!("chunk {index} sent"));
        }
        Ok(())
    }

    /// The next chunk's URL; when none is ready, one worker asks for a batch of the chunks hashed so far while
    /// the others wait.
    async fn next_url(&self, queue: &Mutex<UrlQueue>, batch: usize) -> Result<Option<(ChunkUrl, String)>, CliError> {
        let mut queue = queue.lock().await;
        if queue.ready.is_empty() {
            let asked = queue.take_hashed(batch).await;
            if !asked.is_empty() {
                let urls = self.api.chunk_urls(self.upload_id, &asked).await?;
                queue.digests.extend(asked);
                queue.ready.extend(urls);
            }
        }
        Ok(queue.ready.pop_front().map(|url| {
            let sha256 = queue.digests[&url.index].clone();
            (url, sha256)
        }))
    }

    /// PUTs one chunk; renews its URL when expired or refused, retries network errors and 5xx with backoff.
    async fn put_chunk(&self, url: ChunkUrl, sha256: &str, bytes: Bytes) -> Result<String, CliError> {
        let index = url.index;
        let (mut url, mut refused) = (url, false);
        let note = |err: &PutError| match err {
            PutError::Forbidden(message) => self
                .ui
                .note(Some(&self.progress), format!("upl: S3 refused chunk {index} ({message}); renewing its URL")),
            PutError::Other(err) => self.ui.note(Some(&self.progress), format!("upl: chunk {index}: {err}; retrying")),
            PutError::BadDigest | PutError::Renewal(_) => {}
        };
        let result = retrying(self.api.retry, note, async || {
            if refused || url.expires_at <= Utc::now() + EXPIRY_MARGIN {
                url = self.renew(index, sha256).await.map_err(PutError::Renewal)?;
            }
            let shown = Arc::new(AtomicU64::new(0));
            let result = put_once(self.api, &url, bytes.clone(), &self.progress, &shown).await;
            if result.is_err() {
                // This attempt's bytes will be sent again: take them back off the progress.
                self.progress.rewind(shown.load(Ordering::Relaxed));
            }
            refused = matches!(result, Err(PutError::Forbidden(_)));
            result
        })
        .await;
        result.map_err(|err| match err {
            PutError::BadDigest => CliError::ChangedDuringUpload { path: self.path.clone() },
            PutError::Forbidden(message) => CliError::Other(format!("S3 keeps refusing chunk {index}: {message}")),
            PutError::Renewal(err) => err,
            PutError::Other(err) => err.into(),
        })
    }

    async fn renew(&self, index: u32, sha256: &str) -> Result<ChunkUrl, CliError> {
        let mut urls = self.api.chunk_urls(self.upload_id, &[(index, sha256.to_string())]).await?;
        urls.pop().ok_or_else(|| CliError::Other(format!("the service returned no URL for chunk {index}")))
    }
}

async fn read_chunk(
    file: &mut tokio::fs::File,
    path: &Path,
    index: u32,
    chunk_size: u64,
    size: u64,
) -> Result<Bytes, CliError> {
    let (start, len) = chunk_span(index, chunk_size, size);
    let context = || format!("cannot read chunk {index} of {}", path.display());
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(CliError::io(context()))?;
    let mut buffer = vec![0u8; usize::try_from(len).expect("a chunk fits in memory")];
    file.read_exact(&mut buffer).await.map_err(CliError::io(context()))?;
    Ok(buffer.into())
}

async fn put_once(
    api: &Api,
    url: &ChunkUrl,
    bytes: Bytes,
    progress: &Progress,
    shown: &Arc<AtomicU64>,
) -> Result<String, PutError> {
    let len = bytes.len();
    let slices: Vec<Bytes> =
        (0..len).step_by(PROGRESS_SLICE).map(|at| bytes.slice(at..len.min(at + PROGRESS_SLICE))).collect();
    let (progress, counter) = (progress.clone(), shown.clone());
    let body = futures::stream::iter(slices).map(move |slice| {
        progress.inc(slice.len() as u64);
        counter.fetch_add(slice.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(slice)
    });
    let method = reqwest::Method::from_bytes(url.method.as_bytes()).unwrap_or(reqwest::Method::PUT);
    let mut request = api
        .http
        .request(method, &url.url)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(body));
    for (name, value) in &url.headers {
        // The signed length is the chunk's, set above from the bytes in hand; sending it twice would be two
        // Content-Length fields. A service that planned another length is a bug S3 would refuse anyway.
        if name.eq_ignore_ascii_case("content-length") {
            if value.trim() != len.to_string() {
                let message = format!("the URL for chunk {} is signed for {value} bytes, not {len}", url.index);
                return Err(PutError::Other(ApiError::Protocol(message)));
            }
            continue;
        }
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|err| PutError::Other(ApiError::network("S3")(err)))?;
    match response.status() {
        status if status.is_success() => response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| PutError::Other(ApiError::Protocol("S3 accepted a chunk without an ETag".into()))),
        StatusCode::FORBIDDEN => {
            let text = response.text().await.unwrap_or_default();
            Err(PutError::Forbidden(s3_message(&text).unwrap_or("403 Forbidden").to_string()))
        }
        StatusCode::BAD_REQUEST => {
            let err = ApiError::from_response(response).await;
            match &err {
                ApiError::Refused { message, .. } if message.contains("BadDigest") => Err(PutError::BadDigest),
                _ => Err(PutError::Other(err)),
            }
        }
        _ => Err(PutError::Other(ApiError::from_response(response).await)),
    }
}

/// The `<Message>` of an S3 XML error.
fn s3_message(xml: &str) -> Option<&str> {
    let start = xml.find("<Message>")? + "<Message>".len();
    let end = xml[start..].find("</Message>")? + start;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_s3_error_messages() {
        let xml =
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        assert_eq!(super::s3_message(xml), Some("Request has expired"));
        assert_eq!(super::s3_message("nope"), None);
    }
}
