//! `upl download ID`: resumable through a `.part` file (Range + If-Match on the ETag first seen),
//! verified against the SHA-256 the service knows, renamed into place only when complete.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, HeaderMap, IF_MATCH, RANGE};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::{Api, ApiError};
use crate::error::CliError;
use crate::progress::Ui;
use crate::retry::Transient;
use crate::state::{SavedDownload, StateStore};

/// Test hook: sleep this long after each MiB written (makes "kill halfway" deterministic).
const TEST_DELAY_ENV: &str = "UPL_TEST_CHUNK_DELAY_MS";
/// How often the object may change under us (412) before giving up.
const MAX_RESTARTS: u32 = 3;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadReport {
    pub upload_id: Uuid,
    pub path: PathBuf,
    pub size: u64,
    /// Bytes of an earlier run's `.part` file that this run kept (0 when it started from scratch).
    pub resumed_from: u64,
    /// The object changed since the `.part` file was begun (412), so it was started over.
    pub restarted: bool,
    /// Whether a SHA-256 was known and matched.
    pub verified: bool,
}

enum Fetch {
    Done,
    /// The object changed since the `.part` file was started (412): start over.
    Changed,
}

pub async fn run(
    api: &Api,
    store: &StateStore,
    ui: Ui,
    id: Uuid,
    output: Option<PathBuf>,
) -> Result<DownloadReport, CliError> {
    let status = api.status(id, false).await?;
    if status.state != "completed" {
        return Err(CliError::Other(format!(
            "upload {id} is {}, not completed: nothing to download yet",
            status.state
        )));
    }
    let output = output.unwrap_or_else(|| PathBuf::from(safe_file_name(&status.filename)));
    let part = part_path(&output);
    let server = api.base().to_string();
    let mut saved = store.load_download(&server, &part).filter(|s| s.upload_id == id);
    let mut resumed_from = match &saved {
        Some(_) => std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0),
        None => 0,
    };
    if resumed_from > 0 {
        ui.note(None, format!("upl: resuming {} from byte {resumed_from}", part.display()));
    }
    let bar = ui.bar(status.size, "download");
    let mut restarts = 0;
    let mut digest_header = None;
    loop {
        let mut failures = 0;
        let outcome = loop {
            match fetch(api, store, &bar, id, &part, status.size, &mut saved, &mut digest_header).await {
                Err(CliError::Api(err)) if err.is_transient() && failures < api.retry.retries => {
                    failures += 1;
                    ui.note(Some(&bar), format!("upl: {err}; resuming"));
                    tokio::time::sleep(api.retry.delay(failures, err.retry_after())).await;
                }
                result => break result?,
            }
        };
        match outcome {
            Fetch::Done => break,
            Fetch::Changed if restarts < MAX_RESTARTS => {
                restarts += 1;
                resumed_from = 0;
                ui.note(Some(&bar), "upl: the file changed on the server since this download began; starting over");
                saved = None;
                store.remove_download(&server, &part);
                let _ = std::fs::remove_file(&part);
            }
            Fetch::Changed => {
                return Err(CliError::Other("the file keeps changing on the server; try again later".into()));
            }
        }
    }
    bar.finish_and_clear();

    let expected = status.sha256.clone().or(digest_header);
    let verified = match &expected {
        Some(expected) => {
            let actual = file_sha256(&part)?;
            if !actual.eq_ignore_ascii_case(expected) {
                let _ = std::fs::remove_file(&part);
                store.remove_download(&server, &part);
                return Err(CliError::DigestMismatch { expected: expected.clone(), actual });
            }
            true
        }
        None => false,
    };
    std::fs::rename(&part, &output).map_err(CliError::io(format!("cannot rename {} into place", part.display())))?;
    store.remove_download(&server, &part);
    Ok(DownloadReport {
        upload_id: id,
        path: output,
        size: status.size,
        resumed_from,
        restarted: restarts > 0,
        verified,
    })
}

/// One GET: from scratch, or the rest of the `.part` file on the condition that the object is unchanged.
#[allow(clippy::too_many_arguments)]
async fn fetch(
    api: &Api,
    store: &StateStore,
    bar: &indicatif::ProgressBar,
    id: Uuid,
    part: &Path,
    size: u64,
    saved: &mut Option<SavedDownload>,
    digest_header: &mut Option<String>,
) -> Result<Fetch, CliError> {
    let part_context = || format!("cannot write {}", part.display());
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if saved.is_none() || have > size {
        // Bytes of unknown origin are never trusted.
        have = 0;
    }
    if saved.is_some() && have == size {
        bar.set_position(size);
        return Ok(Fetch::Done);
    }
    let url = api.file_url(id);
    let mut request = api.service_request(reqwest::Method::GET, &url);
    if let (Some(saved), true) = (saved.as_ref(), have > 0) {
        request = request.header(RANGE, format!("bytes={have}-")).header(IF_MATCH, &saved.etag);
    }
    let response = request.send().await.map_err(ApiError::network(&url))?;
    let start = match response.status() {
        StatusCode::OK => 0,
        StatusCode::PARTIAL_CONTENT if range_start(response.headers()) == Some(have) => have,
        StatusCode::PARTIAL_CONTENT => {
            return Err(CliError::Other(format!("the server answered a range that does not start at byte {have}")));
        }
        StatusCode::PRECONDITION_FAILED => return Ok(Fetch::Changed),
        StatusCode::RANGE_NOT_SATISFIABLE => return Ok(Fetch::Changed),
        _ => return Err(ApiError::from_response(response).await.into()),
    };
    if start == 0 {
        let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let record = SavedDownload { server: api.base().to_string(), upload_id: id, part: part.to_path_buf(), etag };
        store.save_download(&record)?;
        *saved = Some(record);
    }
    if let Some(digest) = repr_digest_sha256(response.headers()) {
        *digest_header = Some(digest);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(CliError::io(part_context()))?;
    file.set_len(start).map_err(CliError::io(part_context()))?;
    file.seek(SeekFrom::Start(start)).map_err(CliError::io(part_context()))?;
    bar.set_position(start);
    let delay = std::env::var(TEST_DELAY_ENV).ok().and_then(|v| v.parse::<u64>().ok()).map(Duration::from_millis);
    let mut written_since_delay = 0u64;
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(ApiError::network(&url))?;
        file.write_all(&piece).map_err(CliError::io(part_context()))?;
        bar.inc(piece.len() as u64);
        written_since_delay += piece.len() as u64;
        if let Some(delay) = delay.filter(|_| written_since_delay >= 1024 * 1024) {
            written_since_delay = 0;
            file.flush().map_err(CliError::io(part_context()))?;
            tokio::time::sleep(delay).await;
        }
    }
    file.sync_all().map_err(CliError::io(part_context()))?;
    let now = file.metadata().map_err(CliError::io(part_context()))?.len();
    if now != size {
        // The connection closed early without an error (that is how HTTP signals truncation): continue.
        return Err(ApiError::Interrupted(format!("the download stopped at byte {now} of {size}")).into());
    }
    Ok(Fetch::Done)
}

/// The first byte of `Content-Range: bytes a-b/size`.
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    value.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// `Repr-Digest: sha-256=:BASE64:` (RFC 9530) as hex.
fn repr_digest_sha256(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("repr-digest")?.to_str().ok()?;
    value.split(',').find_map(|member| {
        let (algorithm, rest) = member.trim().split_once('=')?;
        if !algorithm.trim().eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(rest.trim().trim_matches(':')).ok()?;
        (bytes.len() == 32).then(|| hex::encode(bytes))
    })
}

fn file_sha256(path: &Path) -> Result<String, CliError> {
    let context = || format!("cannot read {}", path.display());
    let mut file = std::fs::File::open(path).map_err(CliError::io(context()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(CliError::io(context()))?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

fn part_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// The last path component of a name the uploader chose, never `..` or a hidden path.
fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim().trim_start_matches('.');
    if base.is_empty() { "download".into() } else { base.into() }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn reads_content_range_and_repr_digest() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 100-199/500"));
        assert_eq!(range_start(&headers), Some(100));
        let digest = Sha256::digest(b"hello");
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        headers.insert("repr-digest", HeaderValue::from_str(&format!("sha-512=:AAAA:, sha-256=:{b64}:")).unwrap());
        assert_eq!(repr_digest_sha256(&headers), Some(hex::encode(digest)));
    }

    #[test]
    fn file_names_from_the_service_stay_in_the_current_directory() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\x\\movie.mp4"), "movie.mp4");
        assert_eq!(safe_file_name(".."), "download");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(part_path(Path::new("a/b.mp4")), PathBuf::from("a/b.mp4.part"));
    }
}
