//! The two ways an upload ends without a file: the client aborts it, or it expires. Both mark the row first
//! (so no completion can start), then remove what S3 holds for it.

use uuid::Uuid;

use super::{UploadError, Uploads};
use crate::domain::{EventType, Owner, UploadState};
use crate::repository::UploadRecord;

impl Uploads {
    /// `uploading -> aborted` by its owner, then S3 drops the parts. Should S3 fail here, the sweep aborts
    /// multipart uploads whose rows are no longer live.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn abort(&self, owner: &Owner, id: Uuid) -> Result<(), UploadError> {
        let Some(upload) = self.repo.abort(id, owner, self.report(EventType::Aborted)).await? else {
            return Err(self.explain_refusal(owner, id, None).await);
        };
        self.detached(move |this| async move { this.remove_stored_bytes(&upload).await }).await
    }

    /// `uploading -> expired` once past its deadline (activity may have refreshed it), then S3 drops the parts.
    /// A retry after a failed S3 call finds the row expired and removes them again; an upload that completed or
    /// was aborted meanwhile is left alone.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn expire(&self, id: Uuid) -> Result<(), UploadError> {
        let upload = match self.repo.expire(id, self.report(EventType::Expired)).await? {
            Some(upload) => upload,
            None => match self.repo.find_upload(id).await? {
                Some(upload) if upload.state == UploadState::Expired => upload,
                _ => return Ok(()),
            },
        };
        self.remove_stored_bytes(&upload).await?;
        tracing::info!(upload_id = %id, "upload expired");
        Ok(())
    }

    /// Aborts the multipart upload and deletes the object, should S3 have assembled one (a completion cut off
    /// after CompleteMultipartUpload): no bytes outlive a row that is no longer live. Both calls are idempotent.
    pub(super) async fn remove_stored_bytes(&self, upload: &UploadRecord) -> Result<(), UploadError> {
        if let Some(s3_upload_id) = &upload.s3_upload_id {
            self.storage.abort_multipart_upload(&upload.object_key, s3_upload_id).await?;
        }
        self.storage.delete_object(&upload.object_key).await?;
        Ok(())
    }
}
