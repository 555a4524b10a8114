//! Serving completed uploads: which ones can be read, and opening their bytes.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::{UploadError, Uploads, gone_check};
use crate::domain::{ByteRange, Owner, UploadState, VerificationState};
use crate::repository::UploadRecord;
use crate::storage::{ObjectStream, PresignedRead, PresignedRequest, StorageError};

/// A completed upload, described as the representation a GET returns.
#[derive(Debug, Clone)]
pub struct DownloadableFile {
    pub id: Uuid,
    pub object_key: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// S3's strong ETag of the object, quoted.
    pub etag: String,
    /// Whole seconds, as an HTTP-date carries it.
    pub last_modified: DateTime<Utc>,
    /// RFC 9530 `Repr-Digest` value, once the worker has hashed the object.
    pub repr_digest: Option<String>,
}

/// Whether a download may serve an object the worker found `corrupt` (its bytes are not the ones declared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptObject {
    /// Answer `object_corrupt`: what a client fetches must be what was uploaded.
    Refuse,
    /// The owner asked for the bytes anyway, knowing (to inspect or salvage them).
    Serve,
}

impl Uploads {
    /// The completed upload `id`, whoever owns it: for a request that proved its right to the file otherwise
    /// (a signed link). Unknown, gone (aborted, expired), unfinished and corrupt uploads are errors: only the
    /// owner may opt in to corrupt bytes.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn downloadable(&self, id: Uuid) -> Result<DownloadableFile, UploadError> {
        self.file_of(self.repo.find_upload(id).await?, CorruptObject::Refuse).await
    }

    /// The completed upload `id` if `owner` owns it; another owner's file is as unknown as a missing one.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn downloadable_by(
        &self,
        owner: &Owner,
        id: Uuid,
        corrupt: CorruptObject,
    ) -> Result<DownloadableFile, UploadError> {
        self.file_of(self.repo.find_owned_upload(id, owner).await?, corrupt).await
    }

    async fn file_of(
        &self,
        upload: Option<UploadRecord>,
        corrupt: CorruptObject,
    ) -> Result<DownloadableFile, UploadError> {
        let upload = upload.ok_or(UploadError::NotFound)?;
        gone_check(&upload, Utc::now())?;
        let upload = self.settle_form_post(upload).await?;
        if upload.state != UploadState::Completed {
            return Err(UploadError::NotCompleted(upload.state));
        }
        if upload.verification_state == Some(VerificationState::Corrupt) && corrupt == CorruptObject::Refuse {
            return Err(UploadError::ObjectCorrupt {
                declared: upload.declared_sha256(),
                stored: upload.object_sha256(),
            });
        }
        let etag = match upload.etag.clone() {
            Some(etag) if !etag.is_empty() => etag,
            // Completed before the ETag was recorded: ask S3 once.
            _ => self.storage().head_object(&upload.object_key).await?.ok_or(StorageError::NotFound)?.etag,
        };
        let last_modified = upload.completed_at.unwrap_or(upload.updated_at).trunc_subsecs(0);
        Ok(DownloadableFile {
            id: upload.id,
            repr_digest: upload.repr_digest(),
            size: upload.known_size(),
            object_key: upload.object_key,
            filename: upload.filename,
            content_type: upload.content_type,
            etag,
            last_modified,
        })
    }

    /// Opens the file's bytes (a range of them) as a stream from S3, which must start within `first_byte_timeout`.
    pub async fn read(
        &self,
        file: &DownloadableFile,
        range: Option<ByteRange>,
        first_byte_timeout: Duration,
    ) -> Result<ObjectStream, UploadError> {
        Ok(self.storage().get_object(&file.object_key, range, &file.etag, first_byte_timeout).await?)
    }

    /// A presigned GET (or HEAD) for clients that fetch from S3 themselves.
    pub async fn presign_download(
        &self,
        file: &DownloadableFile,
        options: PresignedRead<'_>,
    ) -> Result<PresignedRequest, UploadError> {
        Ok(self.storage().presign_read(&file.object_key, options).await?)
    }
}
