//! Whole-object verification: the worker streams a completed object through SHA-256 and records what that
//! means against the digest and size the client declared.

use uuid::Uuid;

use super::{UploadError, Uploads};
use crate::domain::{EventType, UploadState, VerificationState};

impl Uploads {
    /// Hashes the object of a completed upload whose verification is pending (or failed before) and records the
    /// outcome. Idempotent: an upload verified meanwhile, or no longer completed, is left alone.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn verify_object(&self, id: Uuid) -> Result<(), UploadError> {
        let Some(upload) = self.repo.find_upload(id).await? else { return Ok(()) };
        let pending = matches!(upload.verification_state, Some(VerificationState::Pending | VerificationState::Failed));
        if upload.state != UploadState::Completed || !pending {
            return Ok(());
        }
        let hash = self.storage.hash_object(&upload.object_key).await?;
        let outcome = VerificationState::judge(upload.declared_sha256(), hash.sha256, upload.size as u64, hash.size);
        let event = EventType::of_verification(outcome).and_then(|event| self.report(event));
        self.repo.record_verification(id, outcome, &hash.sha256, event).await?;
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

    /// The worker gave up hashing the object: the upload says so, with the error, unless a result is recorded.
    pub async fn give_up_verification(&self, id: Uuid, error: &str) -> Result<(), UploadError> {
        Ok(self.repo.fail_verification(id, error).await?)
    }
}
