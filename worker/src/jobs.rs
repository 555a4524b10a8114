//! What each job does. Every job is idempotent: a retry, or a second worker taking over a dead one's job,
//! finds the work done or half done and finishes it.

use std::collections::HashSet;

use anyhow::Context;
use chrono::Utc;
use uploads::domain::{UploadState, VerificationState};
use uploads::repository::UploadRecord;
use uploads::service::UploadError;
use uploads::storage::StorageError;
use uuid::Uuid;

use crate::Worker;

/// Where the service keeps its objects (`uploads/<id>`); the sweep leaves other keys of the bucket alone.
const OBJECT_KEY_PREFIX: &str = "uploads/";
/// Ids per query when asking the database which multipart uploads are live (one ListMultipartUploads page).
const LIVE_LOOKUP_BATCH: usize = 1000;

/// What a sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expiries_queued: u64,
    pub recoveries_queued: u64,
    pub done_jobs_deleted: u64,
    pub multipart_uploads_seen: usize,
    pub orphans_aborted: usize,
}

impl Worker {
    /// Queues expiries and completion recoveries, deletes old done jobs, then aborts every multipart upload under our prefix that no
    /// live row owns and that is older than `UPLOAD_TTL` (younger ones may belong to a row being inserted).
    pub(crate) async fn sweep(&self) -> anyhow::Result<SweepReport> {
        let repo = self.uploads.repository();
        let mut report = SweepReport {
            expiries_queued: repo.enqueue_overdue_expiries().await?,
            recoveries_queued: repo.enqueue_stuck_completions(self.settings.recovery_threshold).await?,
            done_jobs_deleted: repo.delete_done_jobs(self.settings.job_retention).await?,
            ..SweepReport::default()
        };
        let open = self.uploads.storage().list_multipart_uploads(OBJECT_KEY_PREFIX).await?;
        report.multipart_uploads_seen = open.len();
        let cutoff = Utc::now() - self.uploads.policy().upload_ttl;
        let old: Vec<_> = open.into_iter().filter(|u| u.initiated.is_some_and(|at| at <= cutoff)).collect();
        for batch in old.chunks(LIVE_LOOKUP_BATCH) {
            let ids: Vec<String> = batch.iter().map(|u| u.upload_id.clone()).collect();
            let live: HashSet<String> = repo.live_s3_upload_ids(&ids).await?.into_iter().collect();
            for orphan in batch.iter().filter(|u| !live.contains(&u.upload_id)) {
                self.uploads.storage().abort_multipart_upload(&orphan.key, &orphan.upload_id).await?;
                tracing::info!(key = %orphan.key, s3_upload_id = %orphan.upload_id, "aborted orphan multipart upload");
                report.orphans_aborted += 1;
            }
        }
        tracing::info!(?report, "sweep done");
        Ok(report)
    }

    /// `uploading -> expired` once past the deadline, then the S3 multipart upload is aborted. Marked first so
    /// no completion can start; a retry after a failed abort finds the row expired and aborts again.
    pub(crate) async fn expire(&self, id: Uuid) -> anyhow::Result<()> {
        let repo = self.uploads.repository();
        let upload = match repo.expire(id).await? {
            Some(upload) => upload,
            None => match repo.find_upload(id).await? {
                Some(upload) if upload.state == UploadState::Expired => upload,
                // Completed, aborted, or gone: nothing to expire.
                _ => return Ok(()),
            },
        };
        if let Some(s3_upload_id) = &upload.s3_upload_id {
            self.uploads.storage().abort_multipart_upload(&upload.object_key, s3_upload_id).await?;
        }
        tracing::info!(upload_id = %id, "upload expired");
        Ok(())
    }

    /// Streams the object through SHA-256 and records what it means against the declared digest and size.
    pub(crate) async fn verify(&self, id: Uuid) -> anyhow::Result<()> {
        let repo = self.uploads.repository();
        let Some(upload) = repo.find_upload(id).await? else { return Ok(()) };
        let pending = matches!(upload.verification_state, Some(VerificationState::Pending | VerificationState::Failed));
        if upload.state != UploadState::Completed || !pending {
            return Ok(());
        }
        let hash = self.uploads.storage().hash_object(&upload.object_key).await.context("hashing the object")?;
        let outcome = VerificationState::judge(upload.declared_sha256(), hash.sha256, upload.size as u64, hash.size);
        repo.record_verification(id, outcome, &hash.sha256).await?;
        match outcome {
            VerificationState::Corrupt => tracing::warn!(
                upload_id = %id,
                declared = ?upload.declared_sha256(),
                computed = %hash.sha256,
                size = hash.size,
                "object does not match its declared digest"
            ),
            _ => tracing::info!(upload_id = %id, ?outcome, sha256 = %hash.sha256, "object hashed"),
        }
        Ok(())
    }

    /// Finishes a completion an API process left in `completing`: `stitch` completes the S3 upload, or finds
    /// the object S3 already assembled; when S3 definitively cannot, the upload goes back to `uploading`.
    pub(crate) async fn recover(&self, id: Uuid) -> anyhow::Result<()> {
        let repo = self.uploads.repository();
        let Some(upload) = repo.find_upload(id).await? else { return Ok(()) };
        if !self.is_stuck(&upload) {
            return Ok(());
        }
        match self.uploads.stitch(&upload).await {
            Ok(etag) => {
                repo.finish_completion(id, &etag).await?;
                tracing::info!(upload_id = %id, "interrupted completion finished");
            }
            Err(err) if is_definitive(&err) => {
                repo.abandon_completion(id).await?;
                tracing::warn!(upload_id = %id, error = %err, "interrupted completion cannot finish: uploading again");
            }
            Err(err) => return Err(err.into()),
        }
        Ok(())
    }

    fn is_stuck(&self, upload: &UploadRecord) -> bool {
        upload.state == UploadState::Completing && upload.updated_at <= Utc::now() - self.settings.recovery_threshold
    }
}

/// Errors a retry would only repeat: S3 does not hold the parts (or the object) the completion needs.
fn is_definitive(err: &UploadError) -> bool {
    matches!(
        err,
        UploadError::ChunksMissing { .. }
            | UploadError::PartMismatch { .. }
            | UploadError::Storage(StorageError::NoSuchUpload | StorageError::InvalidPart(_))
    )
}
