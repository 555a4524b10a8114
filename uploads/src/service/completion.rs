//! Completion: `uploading -> completing -> completed`, with S3's ListParts as the truth, whether a client's
//! `complete` or the worker's recovery of a completion an API process left half done drives it.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{PartMismatch, UploadError, Uploads, gone_check};
use crate::domain::{IndexRanges, Owner, Sha256Digest, UploadState};
use crate::repository::{UploadRecord, VerifiedChunk};
use crate::storage::{PartToComplete, StorageError};

/// How long a second `complete` waits for a concurrent one before answering 409.
const COMPLETION_WAIT: Duration = Duration::from_secs(60);

/// What a completion does with its upload when S3 or Postgres fails in a way a retry may mend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterTransientFailure {
    /// The API's client is told and may complete again at once.
    ReturnToUploading,
    /// The worker's recovery runs again after a backoff.
    StayCompleting,
}

impl Uploads {
    /// Stitches `owner`'s chunks into the object. Idempotent: completing a completed upload returns it again.
    /// Of two concurrent calls one wins the `uploading -> completing` transition and calls S3; the other
    /// waits for its outcome.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn complete(&self, owner: &Owner, id: Uuid) -> Result<UploadRecord, UploadError> {
        let deadline = tokio::time::Instant::now() + COMPLETION_WAIT;
        let upload = loop {
            if let Some(upload) = self.repo.begin_completion(id, owner).await? {
                break upload;
            }
            let current = self.repo.find_owned_upload(id, owner).await?.ok_or(UploadError::NotFound)?;
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
        self.settle(upload, AfterTransientFailure::ReturnToUploading).await
    }

    /// Finishes a completion an API process left in `completing` for longer than `threshold` (it died): the
    /// object is assembled, or found already assembled; when S3 definitively cannot, the upload goes back to
    /// `uploading` so the client can resend. A transient failure leaves it `completing` for the next attempt.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn recover_completion(&self, id: Uuid, threshold: Duration) -> Result<(), UploadError> {
        let Some(upload) = self.repo.find_upload(id).await? else { return Ok(()) };
        let stuck = upload.state == UploadState::Completing && upload.updated_at <= Utc::now() - threshold;
        if !stuck {
            return Ok(());
        }
        match self.settle(upload, AfterTransientFailure::StayCompleting).await {
            Ok(_) => tracing::info!("interrupted completion finished"),
            Err(err) if err.is_definitive_refusal() => {
                tracing::warn!(error = %err, "interrupted completion cannot finish: uploading again");
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }

    /// The one road from `completing`: stitch, then `completed`, or back to `uploading` when S3 definitively
    /// refuses (or, for `ReturnToUploading`, on any failure).
    async fn settle(&self, upload: UploadRecord, after: AfterTransientFailure) -> Result<UploadRecord, UploadError> {
        let id = upload.id;
        match self.stitch(&upload).await {
            Ok(etag) => match self.repo.finish_completion(id, &etag).await? {
                Some(completed) => Ok(completed),
                None => self.repo.find_upload(id).await?.ok_or(UploadError::NotFound),
            },
            Err(err) => {
                if err.is_definitive_refusal() || after == AfterTransientFailure::ReturnToUploading {
                    self.repo.abandon_completion(id).await?;
                }
                Err(err)
            }
        }
    }

    /// Calls S3 to assemble the object from the parts it verifiably holds; returns the object's ETag.
    async fn stitch(&self, upload: &UploadRecord) -> Result<String, UploadError> {
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
    pub(super) async fn reconcile(
        &self,
        upload: &UploadRecord,
    ) -> Result<(Vec<VerifiedChunk>, Vec<PartMismatch>), UploadError> {
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
}
