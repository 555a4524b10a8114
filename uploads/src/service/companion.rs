//! Uploads through the Companion-compatible routes, as Uppy's `@uppy/aws-s3` makes them: a form POST under a
//! presigned policy (one object), or a multipart upload whose parts the client cuts, signs one at a time and
//! lists to resume. Neither says its size: it is learnt when the upload completes. Every other rule of an
//! upload holds: the owner's limits, expiry, abort, the completion's race-safety, verification.

use chrono::Utc;
use uuid::Uuid;

use super::validation::{invalid, validate_content_type, validate_etag, validate_filename, validate_metadata};
use super::{UploadError, Uploads, gone_check};
use crate::domain::{ChunkPlan, MAX_CHUNK_SIZE, MAX_CHUNKS, Owner, UploadKind, UploadState};
use crate::error_code::ErrorCode;
use crate::repository::{Insertion, ListedPart, NewUpload, UploadRecord};
use crate::storage::{PostPolicy, PresignedPost, PresignedRequest, StorageError};

/// Longest part of the filename kept in an object key: S3 keys stop at 1,024 bytes.
const KEY_NAME_BYTES: usize = 200;
/// Form POSTs the sweep looks for at once.
const FORM_POST_BATCH: i64 = 1000;

/// What Uppy says of a file when it starts one: its name, type and meta fields.
#[derive(Debug, Clone, Default)]
pub struct ClientUpload {
    pub filename: String,
    pub content_type: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

impl Uploads {
    /// A single-object upload and the presigned POST policy that pins its key, content type and size range (up
    /// to S3's single-object limit, or less by our own), valid no longer than the upload.
    #[tracing::instrument(skip_all)]
    pub async fn create_form_post(
        &self,
        owner: &Owner,
        request: ClientUpload,
    ) -> Result<(UploadRecord, PresignedPost), UploadError> {
        let owner = owner.clone();
        let upload = self
            .detached(move |this| async move { this.create_client_upload(&owner, request, UploadKind::FormPost).await })
            .await?;
        let policy = PostPolicy {
            key: &upload.object_key,
            content_type: &upload.content_type,
            max_size: self.policy.max_upload_size.min(MAX_CHUNK_SIZE),
            ttl: self.policy.presign_ttl.min(self.policy.upload_ttl),
        };
        let post = self.storage.presign_post(policy).await?;
        Ok((upload, post))
    }

    /// A multipart upload without a checksum algorithm, its parts to be signed with [`Uploads::sign_client_part`].
    #[tracing::instrument(skip_all)]
    pub async fn create_client_multipart(
        &self,
        owner: &Owner,
        request: ClientUpload,
    ) -> Result<UploadRecord, UploadError> {
        let owner = owner.clone();
        self.detached(
            move |this| async move { this.create_client_upload(&owner, request, UploadKind::Multipart).await },
        )
        .await
    }

    async fn create_client_upload(
        &self,
        owner: &Owner,
        request: ClientUpload,
        kind: UploadKind,
    ) -> Result<UploadRecord, UploadError> {
        let filename = validate_filename(request.filename)?;
        let content_type = validate_content_type(request.content_type)?;
        let metadata = validate_metadata(request.metadata)?;
        let limits = self.policy.active_limits();
        let id = Uuid::now_v7();
        let mut creation = self.repo.begin_creation(owner).await?;
        let usage = creation.active_usage().await?;
        if usage.uploads as u64 >= limits.max_uploads {
            return Err(UploadError::TooManyActiveUploads { limit: limits.max_uploads, active: usage.uploads });
        }
        let object_key = client_object_key(self.storage.key_prefix(), &filename, id);
        let s3_upload_id = match kind {
            UploadKind::Multipart => {
                Some(self.storage.create_unchecked_multipart_upload(&object_key, &content_type).await?)
            }
            _ => None,
        };
        let new = NewUpload {
            id,
            kind,
            filename,
            content_type,
            plan: None::<ChunkPlan>,
            metadata,
            declared_sha256: None,
            object_key,
            s3_upload_id,
            ttl: self.policy.upload_ttl,
        };
        let refusal = match creation.insert(&new, limits).await {
            Ok(Insertion::Inserted(upload)) => return Ok(*upload),
            Ok(Insertion::OverLimit(usage)) => {
                UploadError::TooManyActiveUploads { limit: limits.max_uploads, active: usage.uploads }
            }
            Err(err) => err.into(),
        };
        if let Some(s3_upload_id) = &new.s3_upload_id {
            let _ = self.storage.abort_multipart_upload(&new.object_key, s3_upload_id).await;
        }
        Err(refusal)
    }

    /// A presigned PUT for part `part_number` of `owner`'s Companion multipart upload `id` under `key`.
    #[tracing::instrument(skip_all, fields(upload_id = %id, part_number))]
    pub async fn sign_client_part(
        &self,
        owner: &Owner,
        id: Uuid,
        key: &str,
        part_number: u32,
    ) -> Result<PresignedRequest, UploadError> {
        Ok(self.sign_client_parts(owner, id, key, &[part_number]).await?.remove(0))
    }

    /// Presigned PUTs for several parts at once (Companion's batch route), in the order asked.
    #[tracing::instrument(skip_all, fields(upload_id = %id, parts = part_numbers.len()))]
    pub async fn sign_client_parts(
        &self,
        owner: &Owner,
        id: Uuid,
        key: &str,
        part_numbers: &[u32],
    ) -> Result<Vec<PresignedRequest>, UploadError> {
        if part_numbers.is_empty() || part_numbers.len() > super::MAX_URL_BATCH {
            return Err(UploadError::PartNumberOutOfRange);
        }
        if part_numbers.iter().any(|n| !(1..=MAX_CHUNKS as u32).contains(n)) {
            return Err(UploadError::PartNumberOutOfRange);
        }
        let upload = match self.repo.touch_client_upload(id, owner, self.policy.upload_ttl).await? {
            Some(upload) if upload.object_key == key => upload,
            Some(_) => return Err(UploadError::NotFound),
            None => return Err(self.client_refusal(owner, id, key).await),
        };
        let s3_upload_id = upload.s3_upload_id.as_deref().unwrap_or_default();
        let mut urls = Vec::with_capacity(part_numbers.len());
        for &part_number in part_numbers {
            let ttl = self.policy.presign_ttl;
            urls.push(self.storage.presign_unchecked_part(&upload.object_key, s3_upload_id, part_number, ttl).await?);
        }
        Ok(urls)
    }

    /// Every part S3 holds for the upload (all ListParts pages), recorded as its received chunks so that the
    /// status route says the same.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn list_client_parts(&self, owner: &Owner, id: Uuid, key: &str) -> Result<Vec<ListedPart>, UploadError> {
        let upload = self.client_upload(owner, id, key, UploadKind::Multipart).await?;
        if upload.state != UploadState::Uploading {
            return Err(UploadError::NotUploading(upload.state));
        }
        self.record_client_parts(&upload).await
    }

    pub(super) async fn record_client_parts(&self, upload: &UploadRecord) -> Result<Vec<ListedPart>, UploadError> {
        let s3_upload_id = upload.s3_upload_id.as_deref().ok_or(StorageError::NoSuchUpload)?;
        let parts: Vec<ListedPart> = self
            .storage
            .list_parts(&upload.object_key, s3_upload_id)
            .await?
            .into_iter()
            .map(|p| ListedPart { part_number: p.part_number, etag: p.etag, size: p.size })
            .collect();
        self.repo.record_client_parts(upload.id, &parts).await?;
        Ok(parts)
    }

    /// Completes a Companion multipart upload with the parts its client lists (ETags quoted or not), once they
    /// are exactly what S3 holds; then the same completion as ours (one winner among racing calls, detached,
    /// idempotent: completing a completed upload returns it again).
    #[tracing::instrument(skip_all, fields(upload_id = %id, parts = parts.len()))]
    pub async fn complete_client_parts(
        &self,
        owner: &Owner,
        id: Uuid,
        key: &str,
        parts: Vec<(u32, String)>,
    ) -> Result<UploadRecord, UploadError> {
        if parts.is_empty() || parts.len() > MAX_CHUNKS as usize {
            return Err(invalid(ErrorCode::InvalidBody, format!("parts must list 1 to {MAX_CHUNKS} parts")));
        }
        let mut listed = Vec::with_capacity(parts.len());
        for (part_number, etag) in parts {
            if !(1..=MAX_CHUNKS as u32).contains(&part_number) {
                return Err(UploadError::PartNumberOutOfRange);
            }
            listed.push((part_number, validate_etag(&etag)?));
        }
        if !listed.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            return Err(invalid(
                ErrorCode::InvalidBody,
                "parts must be listed in ascending PartNumber order, once each",
            ));
        }
        let upload = self.client_upload(owner, id, key, UploadKind::Multipart).await?;
        if upload.state == UploadState::Uploading {
            let held = match self.record_client_parts(&upload).await {
                // Gone from S3: the completion finds whether S3 assembled it already.
                Err(UploadError::Storage(StorageError::NoSuchUpload)) => None,
                other => Some(other?),
            };
            if let Some(held) = held {
                let held: Vec<(u32, String)> = held.into_iter().map(|p| (p.part_number, p.etag)).collect();
                if held != listed {
                    return Err(UploadError::PartsDiffer { listed: listed.len(), held: held.len() });
                }
            }
        }
        self.complete(owner, id).await
    }

    /// Aborts `owner`'s Companion upload `id` under `key`.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn abort_client_upload(&self, owner: &Owner, id: Uuid, key: &str) -> Result<(), UploadError> {
        self.client_upload(owner, id, key, UploadKind::Multipart).await?;
        self.abort(owner, id).await
    }

    /// `owner`'s Companion upload `id` of `kind`, if `key` is its object key; gone ones answer 410.
    async fn client_upload(
        &self,
        owner: &Owner,
        id: Uuid,
        key: &str,
        kind: UploadKind,
    ) -> Result<UploadRecord, UploadError> {
        let upload = self.repo.find_owned_upload(id, owner).await?.ok_or(UploadError::NotFound)?;
        if upload.kind != kind || upload.object_key != key {
            return Err(UploadError::NotFound);
        }
        gone_check(&upload, Utc::now())?;
        Ok(upload)
    }

    async fn client_refusal(&self, owner: &Owner, id: Uuid, key: &str) -> UploadError {
        match self.client_upload(owner, id, key, UploadKind::Multipart).await {
            Ok(upload) => UploadError::NotUploading(upload.state),
            Err(err) => err,
        }
    }

    /// A live form-POST upload whose object S3 now holds is completed (verification follows as for any
    /// upload); one whose object is not there yet is returned as it is. Uppy reports nothing after its POST:
    /// status, download and the sweep ask S3 themselves.
    pub(super) async fn settle_form_post(&self, upload: UploadRecord) -> Result<UploadRecord, UploadError> {
        if upload.kind != UploadKind::FormPost
            || upload.state != UploadState::Uploading
            || upload.is_expired(Utc::now())
        {
            return Ok(upload);
        }
        if self.storage.head_object(&upload.object_key).await?.is_none() {
            return Ok(upload);
        }
        let owner = Owner::parse(&upload.owner).map_err(|e| UploadError::Lost { reason: e.to_string() })?;
        self.complete(&owner, upload.id).await
    }

    /// The sweep's part: every live form POST whose object arrived is completed. Returns how many.
    pub(super) async fn settle_form_posts(&self) -> Result<u64, UploadError> {
        let mut completed = 0;
        for upload in self.repo.pending_form_posts(FORM_POST_BATCH).await? {
            let id = upload.id;
            match self.settle_form_post(upload).await {
                Ok(settled) if settled.state == UploadState::Completed => completed += 1,
                Ok(_) => {}
                // The next sweep (or a status) tries again; the others need not wait for it.
                Err(err) => tracing::warn!(upload_id = %id, error = %err, "cannot settle a form POST upload"),
            }
        }
        Ok(completed)
    }
}

/// `<S3_KEY_PREFIX><filename>-<id>`: the name keeps the object recognisable in the bucket, the id at the end lets
/// whoever holds the key (Uppy reports only the key after a POST) find the upload. A `/` in the name would
/// make a folder of it, and is replaced.
pub fn client_object_key(prefix: &str, filename: &str, id: Uuid) -> String {
    let mut name: String = filename.chars().map(|c| if c == '/' || c == '\\' { '_' } else { c }).collect();
    if name.len() > KEY_NAME_BYTES {
        let mut end = KEY_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    format!("{prefix}{name}-{id}")
}

/// The upload id a Companion object key ends in.
pub fn upload_id_of_key(key: &str) -> Option<Uuid> {
    let start = key.len().checked_sub(36)?;
    key.get(start..)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_end_in_the_upload_id_and_keep_a_short_name() {
        let id: Uuid = "01a2088e-f7d1-737b-9b97-67fc3c09d39b".parse().unwrap();
        let table = [
            ("big file+1.bin", "uploads/big file+1.bin-01a2088e-f7d1-737b-9b97-67fc3c09d39b"),
            ("a/b\\c", "uploads/a_b_c-01a2088e-f7d1-737b-9b97-67fc3c09d39b"),
        ];
        for (filename, key) in table {
            assert_eq!(client_object_key("uploads/", filename, id), key);
            assert_eq!(upload_id_of_key(key), Some(id));
        }
        let long = client_object_key("uploads/", &"é".repeat(300), id);
        assert_eq!(long.len(), "uploads/".len() + 200 + 1 + 36);
        assert_eq!(upload_id_of_key(&long), Some(id));
        assert_eq!(upload_id_of_key("uploads/x"), None);
    }
}
