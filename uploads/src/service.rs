//! The upload lifecycle: the operations the API offers, over the repository (Postgres) and storage (S3).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::{ServiceConfig, UploadPolicy};
use crate::domain::{ChunkPlan, ChunkPlanError, IndexRanges, Sha256Digest, UploadState};
use crate::repository::{ChunkRecord, NewUpload, Repository, UploadRecord, VerifiedChunk};
use crate::storage::{PartToComplete, PresignedRequest, Storage, StorageError};

/// Most URLs one batch request may ask for.
pub const MAX_URL_BATCH: usize = 100;
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// How long a second `complete` waits for a concurrent one before answering 409.
const COMPLETION_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("no upload has this id")]
    NotFound,
    #[error("the upload was aborted")]
    Aborted,
    #[error("the upload expired before it was completed")]
    Expired,
    #[error("the upload is {}, not uploading", .0.as_str())]
    NotUploading(UploadState),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error(transparent)]
    Plan(#[from] ChunkPlanError),
    #[error("chunk index {index} is out of range: this upload has {total_chunks} chunks (0..={})", .total_chunks.saturating_sub(1))]
    ChunkOutOfRange { index: u32, total_chunks: u32 },
    #[error("chunk {index} has no URL yet: ask for one with its sha256 first")]
    ChunkNotDeclared { index: u32 },
    #[error(
        "chunk {index} was declared with sha256 {declared}; to send other bytes, ask for a new URL with their sha256"
    )]
    ChecksumConflict { index: u32, declared: Sha256Digest },
    #[error("chunks are missing")]
    ChunksMissing { missing: IndexRanges },
    #[error("S3 holds chunks that differ from what was declared")]
    PartMismatch { mismatches: Vec<PartMismatch> },
    #[error("another request is completing this upload")]
    CompletionInProgress,
    #[error("the upload is {}: only completed uploads can be downloaded", .0.as_str())]
    NotCompleted(UploadState),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A part whose size or checksum in S3 is not what was declared for its chunk.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartMismatch {
    pub index: u32,
    pub declared_size: u64,
    pub stored_size: u64,
    pub declared_sha256: Sha256Digest,
    pub stored_sha256: Option<Sha256Digest>,
}

fn invalid(code: &'static str, message: impl Into<String>) -> UploadError {
    UploadError::Invalid { code, message: message.into() }
}

/// What a client asks for when it starts an upload.
#[derive(Debug, Clone, Default)]
pub struct CreateUpload {
    pub owner: Option<String>,
    pub filename: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub chunk_size: Option<u64>,
    pub sha256: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct ChunkUrl {
    pub index: u32,
    pub part_number: u32,
    pub request: PresignedRequest,
}

/// Where an upload stands, for a client that comes back.
#[derive(Debug, Clone)]
pub struct UploadStatus {
    pub upload: UploadRecord,
    pub received: IndexRanges,
    pub missing: IndexRanges,
    pub received_bytes: u64,
}

#[derive(Clone)]
pub struct Uploads {
    repo: Repository,
    storage: Storage,
    policy: UploadPolicy,
}

impl Uploads {
    pub fn new(repo: Repository, storage: Storage, policy: UploadPolicy) -> Self {
        Self { repo, storage, policy }
    }

    /// Connects to Postgres (applying pending migrations) and S3, as each binary does at startup.
    pub async fn connect(config: &ServiceConfig) -> anyhow::Result<Self> {
        let pool = crate::db::connect_and_migrate(&config.database).await?;
        let storage = Storage::connect(&config.s3).await;
        Ok(Self::new(Repository::new(pool), storage, config.policy.clone()))
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn policy(&self) -> &UploadPolicy {
        &self.policy
    }

    #[tracing::instrument(skip_all, fields(size = request.size))]
    pub async fn create(&self, request: CreateUpload) -> Result<UploadRecord, UploadError> {
        let filename = validate_filename(request.filename)?;
        let content_type = validate_content_type(request.content_type)?;
        let metadata = validate_metadata(request.metadata)?;
        let declared_sha256 = request.sha256.as_deref().map(parse_sha256).transpose()?;
        let plan = ChunkPlan::new(request.size, request.chunk_size, self.policy.max_upload_size)?;

        let id = Uuid::now_v7();
        let object_key = format!("uploads/{id}");
        let s3_upload_id = if plan.total_chunks() == 0 {
            None
        } else {
            Some(self.storage.create_multipart_upload(&object_key, &content_type).await?)
        };
        let new = NewUpload {
            id,
            owner: request.owner,
            filename,
            content_type,
            plan,
            metadata,
            declared_sha256,
            object_key,
            s3_upload_id,
            ttl: self.policy.upload_ttl,
        };
        match self.repo.insert_upload(&new).await {
            Ok(upload) => Ok(upload),
            Err(err) => {
                if let Some(s3_upload_id) = &new.s3_upload_id {
                    // Leave no multipart upload that no row knows; the worker's sweep is the backstop.
                    let _ = self.storage.abort_multipart_upload(&new.object_key, s3_upload_id).await;
                }
                Err(err.into())
            }
        }
    }

    /// Presigned UploadPart URLs, each binding its chunk's SHA-256, for one or many chunks at once.
    #[tracing::instrument(skip_all, fields(upload_id = %id, chunks = chunks.len()))]
    pub async fn chunk_urls(&self, id: Uuid, chunks: Vec<(u32, String)>) -> Result<Vec<ChunkUrl>, UploadError> {
        if chunks.is_empty() {
            return Err(invalid("empty_batch", "ask for at least one chunk"));
        }
        if chunks.len() > MAX_URL_BATCH {
            return Err(invalid("batch_too_large", format!("ask for at most {MAX_URL_BATCH} chunks at once")));
        }
        let mut seen = HashSet::new();
        let mut declared = Vec::with_capacity(chunks.len());
        for (index, sha256) in chunks {
            if !seen.insert(index) {
                return Err(invalid("duplicate_chunk_index", format!("chunk {index} is asked for twice")));
            }
            declared.push((index, parse_sha256(&sha256)?));
        }
        let Some(upload) = self.repo.declare_chunks(id, &declared, self.policy.upload_ttl).await? else {
            return Err(self.explain_refusal(id, declared.iter().map(|(i, _)| *i).max()).await);
        };
        let s3_upload_id = upload.s3_upload_id.as_deref().unwrap_or_default();
        let mut urls = Vec::with_capacity(declared.len());
        for (index, sha256) in declared {
            let part_number = index + 1;
            let request = self
                .storage
                .presign_upload_part(&upload.object_key, s3_upload_id, part_number, &sha256, self.policy.presign_ttl)
                .await?;
            urls.push(ChunkUrl { index, part_number, request });
        }
        Ok(urls)
    }

    /// Records a chunk the client says S3 accepted. Idempotent for the same report.
    #[tracing::instrument(skip_all, fields(upload_id = %id, index))]
    pub async fn confirm_chunk(
        &self,
        id: Uuid,
        index: u32,
        sha256: &str,
        etag: &str,
    ) -> Result<ChunkRecord, UploadError> {
        let sha256 = parse_sha256(sha256)?;
        let etag = validate_etag(etag)?;
        if let Some(chunk) = self.repo.confirm_chunk(id, index, &sha256, &etag, self.policy.upload_ttl).await? {
            return Ok(chunk);
        }
        let refusal = self.explain_refusal(id, Some(index)).await;
        if !matches!(refusal, UploadError::NotUploading(UploadState::Uploading)) {
            return Err(refusal);
        }
        match self.repo.find_chunk(id, index).await? {
            None => Err(UploadError::ChunkNotDeclared { index }),
            Some(chunk) => Err(UploadError::ChecksumConflict {
                index,
                declared: Sha256Digest::from_slice(&chunk.sha256).expect("stored digests are 32 bytes"),
            }),
        }
    }

    /// Where the upload stands; with `reconcile`, after taking S3's ListParts as the truth.
    #[tracing::instrument(skip_all, fields(upload_id = %id, reconcile))]
    pub async fn status(&self, id: Uuid, reconcile: bool) -> Result<UploadStatus, UploadError> {
        let upload = self.repo.find_upload(id).await?.ok_or(UploadError::NotFound)?;
        gone_check(&upload, Utc::now())?;
        if reconcile && upload.state == UploadState::Uploading {
            self.reconcile(&upload).await?;
        }
        self.status_of(upload).await
    }

    async fn status_of(&self, upload: UploadRecord) -> Result<UploadStatus, UploadError> {
        let plan = upload.plan();
        let received = if upload.state == UploadState::Completed {
            IndexRanges::from_indices(0..plan.total_chunks())
        } else {
            self.repo.received_ranges(upload.id).await?
        };
        let missing = received.complement(plan.total_chunks());
        let received_bytes = plan.bytes_in(received.as_slice());
        Ok(UploadStatus { upload, received, missing, received_bytes })
    }

    /// Stitches the chunks into the object. Idempotent: completing a completed upload returns it again.
    /// Of two concurrent calls one wins the `uploading -> completing` transition and calls S3; the other
    /// waits for its outcome.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn complete(&self, id: Uuid) -> Result<UploadRecord, UploadError> {
        let deadline = tokio::time::Instant::now() + COMPLETION_WAIT;
        let upload = loop {
            if let Some(upload) = self.repo.begin_completion(id).await? {
                break upload;
            }
            let current = self.repo.find_upload(id).await?.ok_or(UploadError::NotFound)?;
            match current.state {
                UploadState::Completed => return Ok(current),
                UploadState::Completing if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                UploadState::Completing => return Err(UploadError::CompletionInProgress),
                _ => {
                    return Err(gone_check(&current, Utc::now())
                        .err()
                        .unwrap_or(UploadError::NotUploading(current.state)));
                }
            }
        };
        match self.stitch(&upload).await {
            Ok(etag) => match self.repo.finish_completion(id, &etag).await? {
                Some(completed) => Ok(completed),
                None => self.repo.find_upload(id).await?.ok_or(UploadError::NotFound),
            },
            Err(err) => {
                self.repo.abandon_completion(id).await?;
                Err(err)
            }
        }
    }

    /// Calls S3 to assemble the object from the parts it verifiably holds; returns the object's ETag.
    /// Public for the worker, which finishes completions an API process left half done.
    pub async fn stitch(&self, upload: &UploadRecord) -> Result<String, UploadError> {
        let Some(s3_upload_id) = upload.s3_upload_id.as_deref() else {
            return Ok(self.storage.put_empty_object(&upload.object_key, &upload.content_type).await?);
        };
        let (verified, mismatches) = match self.reconcile(upload).await {
            Err(UploadError::Storage(StorageError::NoSuchUpload)) => {
                return self.completed_object_etag(upload).await;
            }
            other => other?,
        };
        if !mismatches.is_empty() {
            return Err(UploadError::PartMismatch { mismatches });
        }
        let missing =
            IndexRanges::from_indices(verified.iter().map(|c| c.index)).complement(upload.total_chunks as u32);
        if !missing.is_empty() {
            return Err(UploadError::ChunksMissing { missing });
        }
        let parts: Vec<PartToComplete> = verified
            .into_iter()
            .map(|c| PartToComplete { part_number: c.index + 1, etag: c.etag, sha256: c.sha256 })
            .collect();
        match self.storage.complete_multipart_upload(&upload.object_key, s3_upload_id, &parts).await {
            // A retried completion whose first answer was lost: the object is there already.
            Err(StorageError::NoSuchUpload) => self.completed_object_etag(upload).await,
            Err(other) => Err(other.into()),
            Ok(etag) => {
                self.check_object_size(upload).await?;
                Ok(etag)
            }
        }
    }

    /// S3 assembles the parts it holds; an upload is completed only if that is the declared size. (LocalStack
    /// 4.13 empties a part when a later PUT to it fails BadDigest, while ListParts still reports it intact.)
    async fn check_object_size(&self, upload: &UploadRecord) -> Result<(), UploadError> {
        let stored = self.storage.head_object(&upload.object_key).await?.map(|object| object.size);
        if stored == Some(upload.size as u64) {
            return Ok(());
        }
        Err(StorageError::Service {
            code: "ObjectSizeMismatch".into(),
            message: format!("S3 assembled {stored:?} bytes where {} were declared", upload.size),
        }
        .into())
    }

    /// The ETag of an object S3 already assembled with the upload's part count.
    async fn completed_object_etag(&self, upload: &UploadRecord) -> Result<String, UploadError> {
        match self.storage.head_object(&upload.object_key).await? {
            Some(object)
                if object.size == upload.size as u64 && object.parts_count == Some(upload.total_chunks as u32) =>
            {
                Ok(object.etag)
            }
            _ => Err(StorageError::NoSuchUpload.into()),
        }
    }

    /// Takes S3's ListParts as the truth: a part holding the declared checksum and size is received (even if
    /// its confirmation was lost); anything else is missing. Returns the verified chunks and the mismatches.
    async fn reconcile(&self, upload: &UploadRecord) -> Result<(Vec<VerifiedChunk>, Vec<PartMismatch>), UploadError> {
        let Some(s3_upload_id) = upload.s3_upload_id.as_deref() else { return Ok((vec![], vec![])) };
        let parts = self.storage.list_parts(&upload.object_key, s3_upload_id).await?;
        let chunks = self.repo.list_chunks(upload.id).await?;
        let mut verified = Vec::new();
        let mut mismatches = Vec::new();
        let mut parts = parts.into_iter().peekable();
        for chunk in chunks {
            let index = chunk.index as u32;
            let declared = Sha256Digest::from_slice(&chunk.sha256).expect("stored digests are 32 bytes");
            while parts.next_if(|p| p.part_number < index + 1).is_some() {}
            let Some(part) = parts.next_if(|p| p.part_number == index + 1) else { continue };
            if part.sha256 == Some(declared) && part.size == chunk.size as u64 {
                verified.push(VerifiedChunk { index, sha256: declared, size: part.size, etag: part.etag });
            } else {
                mismatches.push(PartMismatch {
                    index,
                    declared_size: chunk.size as u64,
                    stored_size: part.size,
                    declared_sha256: declared,
                    stored_sha256: part.sha256,
                });
            }
        }
        self.repo.reconcile_chunks(upload.id, &verified).await?;
        Ok((verified, mismatches))
    }

    /// Aborts the S3 multipart upload and marks the upload aborted.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn abort(&self, id: Uuid) -> Result<(), UploadError> {
        let Some(upload) = self.repo.abort(id).await? else {
            return Err(self.explain_refusal(id, None).await);
        };
        if let Some(s3_upload_id) = &upload.s3_upload_id {
            // Marked aborted first so no completion can start; should S3 fail here, the worker's sweep
            // aborts multipart uploads whose rows are no longer live.
            self.storage.abort_multipart_upload(&upload.object_key, s3_upload_id).await?;
        }
        Ok(())
    }

    /// Why a guarded change on a live upload matched nothing: unknown, gone, not uploading, or an index
    /// out of range. `NotUploading(Uploading)` means the upload is live and the cause lies elsewhere.
    async fn explain_refusal(&self, id: Uuid, index: Option<u32>) -> UploadError {
        let upload = match self.repo.find_upload(id).await {
            Ok(Some(upload)) => upload,
            Ok(None) => return UploadError::NotFound,
            Err(err) => return err.into(),
        };
        if let Err(gone) = gone_check(&upload, Utc::now()) {
            return gone;
        }
        if upload.state != UploadState::Uploading {
            return UploadError::NotUploading(upload.state);
        }
        match index {
            Some(index) if index >= upload.total_chunks as u32 => {
                UploadError::ChunkOutOfRange { index, total_chunks: upload.total_chunks as u32 }
            }
            _ => UploadError::NotUploading(UploadState::Uploading),
        }
    }
}

/// Aborted and expired uploads answer 410 to everything.
pub fn gone_check(upload: &UploadRecord, now: DateTime<Utc>) -> Result<(), UploadError> {
    if upload.state == UploadState::Aborted {
        Err(UploadError::Aborted)
    } else if upload.is_expired(now) {
        Err(UploadError::Expired)
    } else {
        Ok(())
    }
}

fn parse_sha256(value: &str) -> Result<Sha256Digest, UploadError> {
    Sha256Digest::parse_hex(value).map_err(|e| invalid("invalid_sha256", format!("sha256 {value:?}: {e}")))
}

fn validate_filename(filename: String) -> Result<String, UploadError> {
    let trimmed = filename.trim();
    if trimmed.is_empty() || trimmed.len() > 1024 || trimmed.chars().any(char::is_control) {
        return Err(invalid("invalid_filename", "filename must be 1 to 1024 bytes of text without control characters"));
    }
    Ok(trimmed.to_string())
}

fn validate_content_type(content_type: Option<String>) -> Result<String, UploadError> {
    let Some(value) = content_type else { return Ok("application/octet-stream".into()) };
    let value = value.trim();
    let valid = value.len() <= 255
        && value.split_once('/').is_some_and(|(t, s)| !t.is_empty() && !s.is_empty())
        && value.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if !valid {
        return Err(invalid(
            "invalid_content_type",
            format!("contentType {value:?} is not a media type like video/mp4"),
        ));
    }
    Ok(value.to_string())
}

fn validate_metadata(metadata: Option<serde_json::Value>) -> Result<serde_json::Value, UploadError> {
    match metadata {
        None | Some(serde_json::Value::Null) => Ok(serde_json::json!({})),
        Some(value @ serde_json::Value::Object(_)) if value.to_string().len() > MAX_METADATA_BYTES => {
            Err(invalid("invalid_metadata", format!("metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")))
        }
        // Postgres jsonb cannot hold U+0000: refuse it here rather than fail the insert.
        Some(value @ serde_json::Value::Object(_)) if holds_nul(&value) => {
            Err(invalid("invalid_metadata", "metadata must not contain the character U+0000"))
        }
        Some(value @ serde_json::Value::Object(_)) => Ok(value),
        Some(_) => Err(invalid("invalid_metadata", "metadata must be a JSON object")),
    }
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(key, item)| key.contains('\0') || holds_nul(item)),
        _ => false,
    }
}

fn validate_etag(etag: &str) -> Result<String, UploadError> {
    let etag = etag.trim();
    if etag.is_empty() || etag.len() > 256 || !etag.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid("invalid_etag", "etag must be the ETag header S3 answered to the chunk's PUT"));
    }
    // S3 quotes ETags; browsers and clients may pass them with or without. Store S3's form.
    Ok(format!("\"{}\"", etag.trim_matches('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_stored_quoted() {
        assert_eq!(validate_etag("abc").unwrap(), "\"abc\"");
        assert_eq!(validate_etag("\"abc\"").unwrap(), "\"abc\"");
        assert!(validate_etag("").is_err());
        assert!(validate_etag("a b").is_err());
    }

    #[test]
    fn content_type_defaults_and_validates() {
        assert_eq!(validate_content_type(None).unwrap(), "application/octet-stream");
        assert_eq!(validate_content_type(Some("video/mp4".into())).unwrap(), "video/mp4");
        assert!(validate_content_type(Some("video".into())).is_err());
        assert!(validate_content_type(Some("a/b\n".into())).is_ok()); // trimmed
        assert!(validate_content_type(Some("a/\u{7}b".into())).is_err());
    }

    #[test]
    fn filenames_and_metadata() {
        assert!(validate_filename("  ".into()).is_err());
        assert!(validate_filename("a\nb".into()).is_err());
        assert_eq!(validate_filename(" film.mp4 ".into()).unwrap(), "film.mp4");
        assert!(validate_metadata(Some(serde_json::json!([1]))).is_err());
        assert_eq!(validate_metadata(None).unwrap(), serde_json::json!({}));
        assert!(validate_metadata(Some(serde_json::json!({ "a": ["x\u{0}"] }))).is_err());
        assert!(validate_metadata(Some(serde_json::json!({ "a\u{0}": 1 }))).is_err());
        assert!(validate_metadata(Some(serde_json::json!({ "a": "\\u0000" }))).is_ok());
    }
}
