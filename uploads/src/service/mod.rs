//! The upload lifecycle: every transition of an upload has its one home here, whether the API or a worker job
//! asks for it, over the repository (Postgres) and storage (S3).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::{ServiceConfig, UploadPolicy};
use crate::domain::{ChunkPlanError, EventType, IndexRanges, MAX_CHUNKS, Owner, Sha256Digest, UploadKind, UploadState};
use crate::error_code::ErrorCode;
use crate::repository::{ChunkRecord, Repository, UploadRecord};
use crate::storage::{PartToPresign, PresignedRequest, Storage, StorageError};
use crate::webhooks::WebhookSender;

mod companion;
mod completion;
mod creation;
mod downloads;
mod listing;
mod retirement;
mod sweep;
mod validation;
mod verification;
mod webhooks;

pub use companion::{ClientUpload, client_object_key, upload_id_of_key};
pub use completion::Recovery;
pub use creation::{CreateUpload, Created};
pub use downloads::{CorruptObject, DownloadableFile};
pub use listing::{DEFAULT_PAGE_SIZE, ListUploads, MAX_PAGE_SIZE, UploadPage};
pub use sweep::{SweepReport, SweepSettings};
pub use webhooks::{DeliveryError, DeliveryOutcome};

pub use validation::refused_in_filename;
use validation::{invalid, parse_sha256, validate_etag};

/// Most URLs one batch request may ask for.
pub const MAX_URL_BATCH: usize = 100;

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
    Invalid { code: ErrorCode, message: String },
    #[error(
        "filename contains U+{:04X}, {kind}; rename the file without it",
        *.character as u32
    )]
    FilenameCharacter { character: char, kind: &'static str },
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
    #[error("part numbers run from 1 to 10000 (at most 100 at once)")]
    PartNumberOutOfRange,
    #[error("the parts listed ({listed}) are not the {held} parts S3 holds for this upload: list them again")]
    PartsDiffer { listed: usize, held: usize },
    #[error("{}", match .declared {
        Some(declared) => format!("this upload was declared with sha256 {declared}; the file completed now is another"),
        None => "this upload completed without a declared sha256; it cannot be declared afterwards".to_string(),
    })]
    FileChecksumConflict { declared: Option<Sha256Digest> },
    #[error("chunks are missing")]
    ChunksMissing { missing: IndexRanges },
    #[error("S3 holds chunks that differ from what was declared")]
    PartMismatch { mismatches: Vec<PartMismatch> },
    #[error("another request is completing this upload")]
    CompletionInProgress,
    #[error("the upload cannot be completed any more: {reason}; start a new upload")]
    Lost { reason: String },
    #[error("the completion task failed: {0}")]
    TaskFailed(String),
    #[error("the upload is {}: only completed uploads can be downloaded", .0.as_str())]
    NotCompleted(UploadState),
    #[error(
        "the stored object does not match the SHA-256 (or size) declared when the upload was created; \
         its owner may still fetch it with ?allowCorrupt=true"
    )]
    ObjectCorrupt { declared: Option<Sha256Digest>, stored: Option<Sha256Digest> },
    #[error("{active} of the {limit} uploads one owner may have are in progress: complete or abort one first")]
    TooManyActiveUploads { limit: u64, active: i64 },
    #[error("uploads in progress hold {active} of the {limit} bytes one owner may have: complete or abort one first")]
    TooManyActiveBytes { limit: u64, active: i64 },
    #[error("this Idempotency-Key was used for another request: send a new key for a new upload")]
    IdempotencyKeyReused,
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
    /// `None`: webhooks are off, and no event is recorded.
    webhooks: Option<WebhookSender>,
}

impl Uploads {
    pub fn new(repo: Repository, storage: Storage, policy: UploadPolicy) -> Self {
        Self { repo, storage, policy, webhooks: None }
    }

    /// Records an event with every reported transition, for `webhooks` to deliver.
    pub fn with_webhooks(self, webhooks: Option<WebhookSender>) -> Self {
        Self { webhooks, ..self }
    }

    /// Connects to Postgres (applying pending migrations) and S3, as each binary does at startup.
    pub async fn connect(config: &ServiceConfig) -> anyhow::Result<Self> {
        // Configuration first: a contradiction or a bad value is reported without waiting for a database.
        config.s3.check()?;
        let webhooks = WebhookSender::from_config(&config.webhooks)?;
        let pool = crate::db::connect_and_migrate(&config.database).await?;
        let storage = Storage::connect(&config.s3).await?;
        Ok(Self::new(Repository::new(pool), storage, config.policy.clone()).with_webhooks(webhooks))
    }

    /// `event`, when webhooks are on: what a transition passes the repository to be reported.
    fn report(&self, event: EventType) -> Option<EventType> {
        self.webhooks.is_some().then_some(event)
    }

    /// Runs `work` in a task of its own and awaits it: a caller that goes away (a client that disconnects drops
    /// its handler's future) does not abandon halfway what changes S3 and Postgres together.
    async fn detached<T, F>(&self, work: impl FnOnce(Uploads) -> F) -> Result<T, UploadError>
    where
        F: std::future::Future<Output = Result<T, UploadError>> + Send + 'static,
        T: Send + 'static,
    {
        let task = tokio::spawn(tracing::Instrument::instrument(work(self.clone()), tracing::Span::current()));
        task.await.map_err(|e| UploadError::TaskFailed(e.to_string()))?
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

    /// Presigned UploadPart URLs, each binding its chunk's SHA-256, for one or many chunks at once.
    #[tracing::instrument(skip_all, fields(upload_id = %id, chunks = chunks.len()))]
    pub async fn chunk_urls(
        &self,
        owner: &Owner,
        id: Uuid,
        chunks: Vec<(u32, String)>,
    ) -> Result<Vec<ChunkUrl>, UploadError> {
        if chunks.is_empty() {
            return Err(invalid(ErrorCode::EmptyBatch, "ask for at least one chunk"));
        }
        if chunks.len() > MAX_URL_BATCH {
            return Err(invalid(ErrorCode::BatchTooLarge, format!("ask for at most {MAX_URL_BATCH} chunks at once")));
        }
        chunks.iter().try_for_each(|(index, _)| within_any_plan(*index))?;
        let asked = chunks.into_iter().map(|(index, sha256)| Ok((index, parse_sha256(&sha256)?)));
        let asked: Vec<(u32, Sha256Digest)> = asked.collect::<Result<_, UploadError>>()?;
        // A batch reads as its items asked one after another: each gets a URL for its own checksum, and for an
        // index asked twice the last checksum is the one on record (as two single requests would leave it).
        let mut latest = HashMap::with_capacity(asked.len());
        latest.extend(asked.iter().map(|(index, sha256)| (*index, *sha256)));
        let declared: Vec<(u32, Sha256Digest)> = latest.into_iter().collect();
        let Some(upload) = self.repo.declare_chunks(id, owner, &declared, self.policy.upload_ttl).await? else {
            return Err(self.explain_refusal(owner, id, declared.iter().map(|(i, _)| *i).max()).await);
        };
        let s3_upload_id = upload.s3_upload_id.as_deref().unwrap_or_default();
        // declare_chunks matches only uploads with a plan (a Companion upload has none).
        let plan = upload.plan().ok_or(UploadError::NotFound)?;
        let mut urls = Vec::with_capacity(asked.len());
        for (index, sha256) in asked {
            let part_number = index + 1;
            // declare_chunks matched only indices inside the plan.
            let length = plan
                .chunk_len(index)
                .ok_or(UploadError::ChunkOutOfRange { index, total_chunks: plan.total_chunks() })?;
            let part = PartToPresign { part_number, length, sha256: &sha256 };
            let request = self
                .storage
                .presign_upload_part(&upload.object_key, s3_upload_id, part, self.policy.presign_ttl)
                .await?;
            urls.push(ChunkUrl { index, part_number, request });
        }
        Ok(urls)
    }

    /// Records a chunk the client says S3 accepted. Idempotent for the same report.
    #[tracing::instrument(skip_all, fields(upload_id = %id, index))]
    pub async fn confirm_chunk(
        &self,
        owner: &Owner,
        id: Uuid,
        index: u32,
        sha256: &str,
        etag: &str,
    ) -> Result<ChunkRecord, UploadError> {
        within_any_plan(index)?;
        let sha256 = parse_sha256(sha256)?;
        let etag = validate_etag(etag)?;
        if let Some(confirmed) =
            self.repo.confirm_chunk(id, owner, index, &sha256, &etag, self.policy.upload_ttl).await?
        {
            if confirmed.newly_received {
                crate::metrics::chunk_confirmed();
            }
            return Ok(confirmed.chunk);
        }
        let refusal = self.explain_refusal(owner, id, Some(index)).await;
        let live = matches!(refusal, UploadError::NotUploading(UploadState::Uploading));
        let completed = matches!(refusal, UploadError::NotUploading(UploadState::Completed));
        if !live && !completed {
            return Err(refusal);
        }
        match self.repo.find_chunk(id, index).await? {
            // The same report again after completion is the report on record: idempotent, as the contract says.
            Some(chunk)
                if completed
                    && chunk.sha256.as_deref() == Some(sha256.as_bytes().as_slice())
                    && chunk.etag.as_deref() == Some(&etag) =>
            {
                Ok(chunk)
            }
            _ if completed => Err(refusal),
            None => Err(UploadError::ChunkNotDeclared { index }),
            Some(chunk) => match chunk.sha256.as_deref().and_then(Sha256Digest::from_slice) {
                Some(declared) => Err(UploadError::ChecksumConflict { index, declared }),
                None => Err(UploadError::ChunkNotDeclared { index }),
            },
        }
    }

    /// Where the upload stands; with `reconcile`, after taking S3's ListParts as the truth.
    #[tracing::instrument(skip_all, fields(upload_id = %id, reconcile))]
    pub async fn status(&self, owner: &Owner, id: Uuid, reconcile: bool) -> Result<UploadStatus, UploadError> {
        let upload = self.repo.find_owned_upload(id, owner).await?.ok_or(UploadError::NotFound)?;
        gone_check(&upload, Utc::now())?;
        let mut upload = self.settle_form_post(upload).await?;
        if reconcile && upload.state == UploadState::Uploading && upload.kind == UploadKind::Multipart {
            match self.record_client_parts(&upload).await {
                Err(UploadError::Storage(StorageError::NoSuchUpload)) => upload = self.complete(owner, id).await?,
                other => {
                    other?;
                }
            }
        } else if reconcile && upload.state == UploadState::Uploading && upload.kind == UploadKind::Chunks {
            match self.reconcile(&upload).await {
                // S3 may have assembled the object (a completion cut off after CompleteMultipartUpload): a
                // completion finds it and finishes, or finds the upload lost.
                Err(UploadError::Storage(StorageError::NoSuchUpload)) => upload = self.complete(owner, id).await?,
                other => {
                    other?;
                }
            }
        }
        self.status_of(upload).await
    }

    async fn status_of(&self, upload: UploadRecord) -> Result<UploadStatus, UploadError> {
        let Some(plan) = upload.plan() else {
            // A Companion upload before it completes: what S3 was seen to hold, and nothing known missing.
            let received = self.repo.received_ranges(upload.id).await?;
            let received_bytes = self.repo.received_bytes(upload.id).await?;
            return Ok(UploadStatus { upload, received, missing: IndexRanges::default(), received_bytes });
        };
        let received = if upload.state == UploadState::Completed {
            IndexRanges::from_indices(0..plan.total_chunks())
        } else {
            self.repo.received_ranges(upload.id).await?
        };
        let missing = received.complement(plan.total_chunks());
        let received_bytes = plan.bytes_in(received.as_slice());
        Ok(UploadStatus { upload, received, missing, received_bytes })
    }

    /// Why a guarded change on `owner`'s live upload matched nothing: unknown (or another owner's), gone, not
    /// uploading, or an index out of range. `NotUploading(Uploading)` means the upload is live and the cause
    /// lies elsewhere.
    async fn explain_refusal(&self, owner: &Owner, id: Uuid, index: Option<u32>) -> UploadError {
        let upload = match self.repo.find_owned_upload(id, owner).await {
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
        let Some(total_chunks) = upload.total_chunks.map(|n| n as u32) else { return UploadError::NotFound };
        match index {
            Some(index) if index >= total_chunks => UploadError::ChunkOutOfRange { index, total_chunks },
            _ => UploadError::NotUploading(UploadState::Uploading),
        }
    }
}

/// Aborted and expired uploads answer 410 to everything.
/// An index no upload can have (S3 takes 10,000 parts) is refused as bad input, whatever state the upload is
/// in; one past this upload's own plan is a conflict with its state (409), found once the upload is read.
fn within_any_plan(index: u32) -> Result<(), UploadError> {
    match u64::from(index) < MAX_CHUNKS {
        true => Ok(()),
        false => Err(invalid(
            ErrorCode::ChunkIndexOutOfRange,
            format!("chunk index {index} is out of range: no upload has more than {MAX_CHUNKS} chunks (0..=9999)"),
        )),
    }
}

pub fn gone_check(upload: &UploadRecord, now: DateTime<Utc>) -> Result<(), UploadError> {
    if upload.state == UploadState::Aborted {
        Err(UploadError::Aborted)
    } else if upload.is_expired(now) {
        Err(UploadError::Expired)
    } else {
        Ok(())
    }
}
