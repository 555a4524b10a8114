//! Starting an upload: the checks of what the client asks for, the owner's limits, the `Idempotency-Key` that
//! makes a retried create return the first answer, and the S3 multipart upload.

use serde_json::json;
use uuid::Uuid;

use super::validation::{parse_sha256, validate_content_type, validate_filename, validate_metadata};
use super::{UploadError, Uploads};
use crate::domain::{ChunkPlan, IdempotencyKey, Owner, Sha256Digest};
use crate::repository::{ActiveLimits, ActiveUsage, FirstCreate, Insertion, NewUpload, UploadRecord};

/// What a client asks for when it starts an upload.
#[derive(Debug, Clone, Default)]
pub struct CreateUpload {
    pub filename: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub chunk_size: Option<u64>,
    pub sha256: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// The upload a create made, or, for a retry with the same `Idempotency-Key`, the one the first create made.
#[derive(Debug, Clone)]
pub struct Created {
    pub upload: UploadRecord,
    /// This create was a retry: nothing new was made.
    pub replayed: bool,
}

impl Uploads {
    /// Creates `owner`'s upload: the S3 multipart upload, then the row, within the owner's limits. With a key,
    /// the same key and request from the same owner within `UPLOAD_TTL` return the first create's upload, even
    /// when both race: the second waits for the first (on the key's row) instead of calling S3.
    /// Runs detached from the caller: a client that disconnects mid-create leaves no multipart upload without
    /// its row, and its retry with the same key finds the first answer.
    #[tracing::instrument(skip_all, fields(size = request.size))]
    pub async fn create(
        &self,
        owner: &Owner,
        request: CreateUpload,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, UploadError> {
        let (owner, key) = (owner.clone(), key.cloned());
        self.detached(move |this| async move { this.create_attached(&owner, request, key.as_ref()).await }).await
    }

    async fn create_attached(
        &self,
        owner: &Owner,
        request: CreateUpload,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, UploadError> {
        let filename = validate_filename(request.filename)?;
        let content_type = validate_content_type(request.content_type)?;
        let metadata = validate_metadata(request.metadata)?;
        let declared_sha256 = request.sha256.as_deref().map(parse_sha256).transpose()?;
        let limits = self.policy.active_limits();
        // An upload past the owner's whole allowance could never start: too large (422), not "later" (429).
        let max_size = self.policy.max_upload_size.min(limits.max_bytes);
        let plan = ChunkPlan::new(request.size, request.chunk_size, max_size)?;

        let id = Uuid::now_v7();
        let mut creation = self.repo.begin_creation(owner).await?;
        if let Some(key) = key {
            let fingerprint = Sha256Digest::of(
                json!({
                    "filename": filename,
                    "size": request.size,
                    "contentType": content_type,
                    "chunkSize": request.chunk_size,
                    "sha256": declared_sha256.map(|d| d.to_hex()),
                    "metadata": metadata,
                })
                .to_string()
                .as_bytes(),
            );
            if let Some(first) = creation.claim_idempotency_key(key, &fingerprint, id, self.policy.upload_ttl).await? {
                drop(creation);
                return self.replay(owner, first, &fingerprint).await;
            }
        }
        // Refused early, before S3 is asked for anything; the insert below decides under the owner's lock.
        if let Some(refusal) = over_limit(creation.active_usage().await?, plan.size(), limits) {
            return Err(refusal);
        }

        let object_key = self.storage.object_key(id);
        let s3_upload_id = if plan.total_chunks() == 0 {
            None
        } else {
            Some(self.storage.create_multipart_upload(&object_key, &content_type).await?)
        };
        let new = NewUpload {
            id,
            filename,
            content_type,
            plan,
            metadata,
            declared_sha256,
            object_key,
            s3_upload_id,
            ttl: self.policy.upload_ttl,
        };
        let refusal = match creation.insert(&new, limits).await {
            Ok(Insertion::Inserted(upload)) => return Ok(Created { upload: *upload, replayed: false }),
            Ok(Insertion::OverLimit(usage)) => over_limit(usage, new.plan.size(), limits)
                .unwrap_or(UploadError::TooManyActiveUploads { limit: limits.max_uploads, active: usage.uploads }),
            Err(err) => err.into(),
        };
        if let Some(s3_upload_id) = &new.s3_upload_id {
            // Leave no multipart upload that no row knows; the worker's sweep is the backstop.
            let _ = self.storage.abort_multipart_upload(&new.object_key, s3_upload_id).await;
        }
        Err(refusal)
    }

    async fn replay(&self, owner: &Owner, first: FirstCreate, request: &Sha256Digest) -> Result<Created, UploadError> {
        if first.request_sha256 != request.as_bytes() {
            return Err(UploadError::IdempotencyKeyReused);
        }
        let upload = self.repo.find_owned_upload(first.upload_id, owner).await?.ok_or(UploadError::NotFound)?;
        tracing::info!(upload_id = %upload.id, "idempotent create replayed");
        Ok(Created { upload, replayed: true })
    }
}

/// The refusal an upload of `size` more bytes meets, if it would take the owner past a limit.
fn over_limit(usage: ActiveUsage, size: u64, limits: ActiveLimits) -> Option<UploadError> {
    if usage.uploads as u64 >= limits.max_uploads {
        return Some(UploadError::TooManyActiveUploads { limit: limits.max_uploads, active: usage.uploads });
    }
    if (usage.bytes as u64).saturating_add(size) > limits.max_bytes {
        return Some(UploadError::TooManyActiveBytes { limit: limits.max_bytes, active: usage.bytes });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_the_upload_that_would_pass_them() {
        let limits = ActiveLimits { max_uploads: 2, max_bytes: 100 };
        let usage = |uploads, bytes| ActiveUsage { uploads, bytes };
        assert!(over_limit(usage(1, 50), 50, limits).is_none());
        assert!(matches!(over_limit(usage(2, 0), 1, limits), Some(UploadError::TooManyActiveUploads { .. })));
        assert!(matches!(over_limit(usage(1, 51), 50, limits), Some(UploadError::TooManyActiveBytes { .. })));
        assert!(over_limit(usage(0, 0), 100, limits).is_none());
    }

    #[test]
    fn metadata_key_order_does_not_change_a_fingerprint() {
        // serde_json's maps are sorted (no `preserve_order`), so `{a, b}` and `{b, a}` are the same request.
        let one: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": 2}"#).unwrap();
        let other: serde_json::Value = serde_json::from_str(r#"{"b": 2, "a": 1}"#).unwrap();
        assert_eq!(one.to_string(), other.to_string());
    }
}
