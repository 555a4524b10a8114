//! `upl upload FILE`: hash, initiate (or resume), send the missing chunks, complete.

mod chunks;
mod transfer;

use std::path::{Path, PathBuf};

use serde::Serialize;
use uuid::Uuid;

pub use chunks::parse_size;

use crate::api::{Api, NewUpload};
use crate::error::CliError;
use crate::progress::Ui;
use crate::state::{FileIdentity, SavedUpload, StateStore};
use chunks::{Digests, chunk_size_for, chunk_span, expand_ranges, hash_chunks, total_chunks};
use transfer::Transfer;

#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub file: PathBuf,
    pub chunk_size: Option<u64>,
    pub parallel: usize,
    pub content_type: Option<String>,
    pub restart: bool,
    /// Hash the whole file too and declare it, so downloads can verify it end to end.
    pub file_digest: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadReport {
    pub upload_id: Uuid,
    pub download_url: String,
    pub size: u64,
    pub total_chunks: u32,
    /// Chunks this run sent to S3 (on a resume: only the missing ones).
    pub chunks_sent: usize,
    pub resumed: bool,
}

/// Where a run starts: a fresh upload, or what a previous run left missing.
struct Session {
    upload_id: Uuid,
    chunk_size: u64,
    /// `(index, sha256 hex)` of every chunk this run must send.
    to_send: Vec<(u32, String)>,
    resumed: bool,
}

pub async fn run(api: &Api, store: &StateStore, ui: Ui, options: &UploadOptions) -> Result<UploadReport, CliError> {
    let file = FileIdentity::of(&options.file)?;
    let session = match resume(api, store, ui, options, &file).await? {
        Some(session) => session,
        None => start(api, store, ui, options, &file).await?,
    };
    let to_send_bytes: u64 =
        session.to_send.iter().map(|(index, _)| chunk_span(*index, session.chunk_size, file.size).1).sum();
    let bar = ui.bar(file.size, "uploading");
    bar.set_position(file.size - to_send_bytes);
    let transfer = Transfer {
        api,
        ui,
        upload_id: session.upload_id,
        path: file.path.clone(),
        size: file.size,
        chunk_size: session.chunk_size,
        parallel: options.parallel,
        bar: bar.clone(),
    };
    let chunks_sent = transfer.run(session.to_send).await?;
    let completed = api.complete(session.upload_id).await?;
    bar.finish_and_clear();
    store.remove_upload(api.base(), &file.path);
    Ok(UploadReport {
        upload_id: completed.upload_id,
        download_url: completed.download_url,
        size: file.size,
        total_chunks: total_chunks(file.size, session.chunk_size),
        chunks_sent,
        resumed: session.resumed,
    })
}

/// Picks up the upload a previous run of this command left, if there is one and the file is unchanged.
async fn resume(
    api: &Api,
    store: &StateStore,
    ui: Ui,
    options: &UploadOptions,
    file: &FileIdentity,
) -> Result<Option<Session>, CliError> {
    let Some(saved) = store.load_upload(api.base(), &file.path) else { return Ok(None) };
    if options.restart {
        ui.note(None, format!("upl: --restart: abandoning upload {}", saved.upload_id));
        // Best effort: the service's expiry sweep aborts it anyway.
        let _ = api.abort(saved.upload_id).await;
        store.remove_upload(api.base(), &file.path);
        return Ok(None);
    }
    if let Some(detail) = saved.file.differences(file) {
        return Err(CliError::FileChanged { path: file.path.clone(), upload_id: saved.upload_id, detail });
    }
    let status = match api.status(saved.upload_id, true).await {
        Ok(status) => status,
        Err(err) if matches!(err.status().map(|s| s.as_u16()), Some(404 | 410)) => {
            ui.note(None, format!("upl: upload {} can no longer be resumed ({err}); starting over", saved.upload_id));
            store.remove_upload(api.base(), &file.path);
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    if status.state != "uploading" && status.state != "completed" && status.state != "completing" {
        ui.note(None, format!("upl: upload {} is {}; starting over", saved.upload_id, status.state));
        store.remove_upload(api.base(), &file.path);
        return Ok(None);
    }
    let missing = expand_ranges(&status.missing_chunks);
    ui.note(
        None,
        format!(
            "upl: resuming upload {}: {} of {} chunks already received, {} to send",
            saved.upload_id,
            status.total_chunks as usize - missing.len(),
            status.total_chunks,
            missing.len()
        ),
    );
    let digests = hash(ui, &file.path, status.chunk_size, file.size, missing, false).await?;
    Ok(Some(Session {
        upload_id: saved.upload_id,
        chunk_size: status.chunk_size,
        to_send: hex_digests(&digests),
        resumed: true,
    }))
}

/// A new upload: hash every chunk (and the whole file), initiate, and remember it before sending anything.
async fn start(
    api: &Api,
    store: &StateStore,
    ui: Ui,
    options: &UploadOptions,
    file: &FileIdentity,
) -> Result<Session, CliError> {
    let chunk_size = chunk_size_for(file.size, options.chunk_size);
    let all: Vec<u32> = (0..total_chunks(file.size, chunk_size)).collect();
    let digests = hash(ui, &file.path, chunk_size, file.size, all, options.file_digest).await?;
    let filename = file.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let content_type = options.content_type.clone().unwrap_or_else(|| guess_content_type(&file.path).into());
    let created = api
        .create(&NewUpload {
            filename: &filename,
            size: file.size,
            content_type: &content_type,
            chunk_size,
            sha256: digests.file.map(hex::encode),
        })
        .await?;
    store.save_upload(&SavedUpload {
        server: api.base().to_string(),
        upload_id: created.upload_id,
        file: file.clone(),
        chunk_size: created.chunk_size,
    })?;
    ui.detail(
        None,
        format!(
            "upload {} started: {} chunks of {} bytes",
            created.upload_id, created.total_chunks, created.chunk_size
        ),
    );
    Ok(Session {
        upload_id: created.upload_id,
        chunk_size: created.chunk_size,
        to_send: hex_digests(&digests),
        resumed: false,
    })
}

/// Hashes on a blocking thread (it is CPU and disk work) with its own progress bar.
async fn hash(
    ui: Ui,
    path: &Path,
    chunk_size: u64,
    size: u64,
    indices: Vec<u32>,
    whole_file: bool,
) -> Result<Digests, CliError> {
    let bytes: u64 = indices.iter().map(|index| chunk_span(*index, chunk_size, size).1).sum();
    let bar = ui.bar(bytes, "hashing");
    let path = path.to_path_buf();
    let hashing = bar.clone();
    let digests =
        tokio::task::spawn_blocking(move || hash_chunks(&path, chunk_size, size, &indices, whole_file, &hashing))
            .await
            .map_err(|err| CliError::Other(format!("hashing stopped: {err}")))??;
    bar.finish_and_clear();
    Ok(digests)
}

fn hex_digests(digests: &Digests) -> Vec<(u32, String)> {
    digests.chunks.iter().map(|(index, digest)| (*index, hex::encode(digest))).collect()
}

/// Enough for a browser to play or show the common kinds; anything else is a download.
fn guess_content_type(path: &Path) -> &'static str {
    let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "txt" => "text/plain",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}
