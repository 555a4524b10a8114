//! Where one file's run starts: the upload a previous run left (only its missing chunks), or a new one,
//! created with an idempotency key that is on disk before the service is asked. Nothing is hashed here: the
//! chunks are hashed while they are sent (see `super::run`).

use std::path::Path;

use uuid::Uuid;

use super::UploadOptions;
use super::chunks::{chunk_size_for, expand_ranges};
use crate::api::{Api, ApiError, NewUpload};
use crate::error::CliError;
use crate::progress::Ui;
use crate::state::{FileIdentity, SavedUpload, StateStore};

/// What this run sends.
pub struct Session {
    pub upload_id: Uuid,
    pub chunk_size: u64,
    /// Every chunk this run must send, ascending.
    pub to_send: Vec<u32>,
    pub resumed: bool,
}

/// What the state directory says about this file.
enum Previous {
    Resumable(Session),
    /// No upload to continue: create one with this key and chunk size.
    Create {
        key: Uuid,
        chunk_size: u64,
    },
}

pub async fn open(
    api: &Api,
    store: &StateStore,
    ui: Ui,
    options: &UploadOptions,
    file: &FileIdentity,
) -> Result<Session, CliError> {
    match previous(api, store, ui, options, file).await? {
        Previous::Resumable(session) => Ok(session),
        Previous::Create { key, chunk_size } => start(api, store, ui, options, file, key, chunk_size).await,
    }
}

/// Picks up the upload a previous run of this command left, if there is one and the file is unchanged.
async fn previous(
    api: &Api,
    store: &StateStore,
    ui: Ui,
    options: &UploadOptions,
    file: &FileIdentity,
) -> Result<Previous, CliError> {
    let fresh = || Previous::Create { key: Uuid::new_v4(), chunk_size: chunk_size_for(file.size, options.chunk_size) };
    let Some(saved) = store.load_upload(api.base(), &file.path) else { return Ok(fresh()) };
    let changed = saved.file.differences(file);
    let Some(upload_id) = saved.upload_id else {
        store.remove_upload(api.base(), &file.path);
        if options.restart || changed.is_some() {
            // An upload the service may have made for the old bytes has no chunk and expires on its own.
            return Ok(fresh());
        }
        ui.note(None, "upl: the service never answered the last run's create; asking again with the same key");
        return Ok(Previous::Create { key: saved.idempotency_key, chunk_size: saved.chunk_size });
    };
    if options.restart {
        ui.note(None, format!("upl: --restart: abandoning upload {upload_id}"));
        // Best effort: the service's expiry sweep aborts it anyway.
        let _ = api.abort(upload_id).await;
        store.remove_upload(api.base(), &file.path);
        return Ok(fresh());
    }
    if let Some(detail) = changed {
        return Err(CliError::FileChanged { path: file.path.clone(), upload_id, detail });
    }
    let status = match api.status(upload_id, true).await {
        Ok(status) => status,
        Err(err) if gone(&err) => {
            ui.note(None, format!("upl: upload {upload_id} can no longer be resumed ({err}); starting over"));
            store.remove_upload(api.base(), &file.path);
            return Ok(fresh());
        }
        Err(err) => return Err(err.into()),
    };
    if !matches!(status.state.as_str(), "uploading" | "completing" | "completed") {
        ui.note(None, format!("upl: upload {upload_id} is {}; starting over", status.state));
        store.remove_upload(api.base(), &file.path);
        return Ok(fresh());
    }
    let missing = expand_ranges(&status.missing_chunks);
    ui.note(
        None,
        format!(
            "upl: resuming upload {upload_id}: {} of {} chunks already received, {} to send",
            status.total_chunks as usize - missing.len(),
            status.total_chunks,
            missing.len()
        ),
    );
    Ok(Previous::Resumable(Session { upload_id, chunk_size: status.chunk_size, to_send: missing, resumed: true }))
}

fn gone(err: &ApiError) -> bool {
    matches!(err.status().map(|s| s.as_u16()), Some(404 | 410))
}

/// A new upload: save the key, create, and remember the upload before sending anything. The file's digest
/// is declared at completion, once the chunks hashed while they were sent have covered it.
async fn start(
    api: &Api,
    store: &StateStore,
    ui: Ui,
    options: &UploadOptions,
    file: &FileIdentity,
    key: Uuid,
    chunk_size: u64,
) -> Result<Session, CliError> {
    let default_name = || file.path.file_name().map(|n| n.to_string_lossy().into_owned());
    let filename = options.name.clone().or_else(default_name).unwrap_or_else(|| "file".into());
    let content_type = options.content_type.clone().unwrap_or_else(|| guess_content_type(&file.path));
    let mut saved = SavedUpload {
        server: api.base().to_string(),
        idempotency_key: key,
        upload_id: None,
        file: file.clone(),
        chunk_size,
    };
    store.save_upload(&saved)?;
    let upload = NewUpload {
        filename: &filename,
        size: file.size,
        content_type: &content_type,
        chunk_size,
        metadata: &options.metadata,
    };
    let created = api.create(&upload, key).await?;
    if created.chunk_size != chunk_size {
        // Only possible if the key was reused with another request; the chunks were hashed for ours.
        store.remove_upload(api.base(), &file.path);
        return Err(ApiError::Protocol(format!(
            "upload {} has {}-byte chunks, not the {chunk_size} asked for",
            created.upload_id, created.chunk_size
        ))
        .into());
    }
    saved.upload_id = Some(created.upload_id);
    store.save_upload(&saved)?;
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
        to_send: (0..created.total_chunks).collect(),
        resumed: false,
    })
}

/// What a browser needs to play or show the file, from its extension; anything unknown is a download.
fn guess_content_type(path: &Path) -> String {
    mime_guess::from_path(path).first_or_octet_stream().essence_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_come_from_the_extension() {
        let table = [
            ("film.mp4", "video/mp4"),
            ("clip.WEBM", "video/webm"),
            ("song.flac", "audio/flac"),
            ("photo.jpeg", "image/jpeg"),
            ("notes.txt", "text/plain"),
            ("archive.tar.gz", "application/gzip"),
            ("no-extension", "application/octet-stream"),
            ("odd.zzzunknown", "application/octet-stream"),
        ];
        for (name, expected) in table {
            assert_eq!(guess_content_type(Path::new(name)), expected, "{name}");
        }
    }
}
