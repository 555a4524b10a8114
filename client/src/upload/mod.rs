//! `upl upload FILE...`: for each file, create (or resume), send the missing chunks while they are hashed,
//! complete with the file's digest. One file's failure does not stop the others; the exit code is the worst
//! of theirs.

mod chunks;
mod session;
mod transfer;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use uuid::Uuid;

pub use chunks::parse_size;

use crate::api::Api;
use crate::cli::UploadArgs;
use crate::error::{CliError, exit};
use crate::output::Output;
use crate::progress::Ui;
use crate::state::{FileIdentity, StateStore};
use chunks::{chunk_span, hash_chunks, total_chunks};
use transfer::Transfer;

#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub file: PathBuf,
    pub name: Option<String>,
    pub metadata: BTreeMap<String, String>,
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
    /// As given on the command line.
    pub file: PathBuf,
    pub upload_id: Uuid,
    pub download_url: String,
    pub size: u64,
    pub total_chunks: u32,
    /// Chunks this run sent to S3 (on a resume: only the missing ones).
    pub chunks_sent: usize,
    pub resumed: bool,
}

/// Uploads every file in turn, printing each result (or failure) as it ends; returns the worst exit code.
pub async fn run_all(api: &Api, store: &StateStore, ui: Ui, out: Output, args: &UploadArgs) -> Result<u8, CliError> {
    if args.name.is_some() && args.files.len() > 1 {
        return Err(CliError::Usage("--name names one file; it cannot be used with several".into()));
    }
    let metadata: BTreeMap<String, String> = args.metadata.iter().cloned().collect();
    let mut worst = exit::OK;
    for file in &args.files {
        let options = UploadOptions {
            file: file.clone(),
            name: args.name.clone(),
            metadata: metadata.clone(),
            chunk_size: args.chunk_size,
            parallel: usize::from(args.parallel),
            content_type: args.content_type.clone(),
            restart: args.restart,
            file_digest: !args.no_file_digest,
        };
        match run(api, store, ui, &options).await {
            Ok(report) => out.uploaded(&report),
            Err(err) => {
                out.error(Some(file), &err);
                worst = worst.max(err.exit_code());
            }
        }
    }
    Ok(worst)
}

pub async fn run(api: &Api, store: &StateStore, ui: Ui, options: &UploadOptions) -> Result<UploadReport, CliError> {
    let file = FileIdentity::of(&options.file)?;
    let session = session::open(api, store, ui, options, &file).await?;
    let to_send_bytes: u64 =
        session.to_send.iter().map(|index| chunk_span(*index, session.chunk_size, file.size).1).sum();
    let progress = ui.progress(file.size, "uploading");
    progress.set_position(file.size - to_send_bytes);
    let transfer = Transfer {
        api,
        ui,
        upload_id: session.upload_id,
        path: file.path.clone(),
        size: file.size,
        chunk_size: session.chunk_size,
        parallel: options.parallel,
        progress: progress.clone(),
    };
    // Hashing runs ahead of the sends on a thread of its own: each chunk's digest (which its URL is signed
    // with) is known long before a connection is free for it, and the first PUT starts after one chunk's read
    // instead of after a pass over the whole file. That pass also yields the file's digest for the completion.
    let (hashed, digests) = tokio::sync::mpsc::unbounded_channel();
    let (path, chunk_size, size, file_digest) = (file.path.clone(), session.chunk_size, file.size, options.file_digest);
    let to_send = session.to_send;
    let hashing = tokio::task::spawn_blocking(move || {
        hash_chunks(&path, chunk_size, size, &to_send, file_digest, |index, digest| {
            hashed.send((index, hex::encode(digest))).is_ok()
        })
    });
    let chunks_sent = transfer.run(digests).await?;
    let file_sha256 =
        hashing.await.map_err(|err| CliError::Other(format!("hashing stopped: {err}")))??.map(hex::encode);
    let completed = api.complete(session.upload_id, file_sha256.as_deref()).await?;
    progress.finish();
    store.remove_upload(api.base(), &file.path);
    Ok(UploadReport {
        file: options.file.clone(),
        upload_id: completed.upload_id,
        download_url: completed.download_url,
        size: file.size,
        total_chunks: total_chunks(file.size, session.chunk_size),
        chunks_sent,
        resumed: session.resumed,
    })
}
