//! The S3 calls of the worker: listing every multipart upload in progress, and hashing a whole object as a
//! stream (objects reach 5 TiB: never in memory).

use chrono::{DateTime, Utc};
use sha2::Digest;

use super::{Storage, StorageError};
use crate::domain::Sha256Digest;

/// A multipart upload S3 holds open (ListMultipartUploads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMultipartUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<DateTime<Utc>>,
}

/// A whole object's SHA-256 and the number of bytes hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHash {
    pub sha256: Sha256Digest,
    pub size: u64,
}

impl Storage {
    /// Every multipart upload in progress under `prefix`, all pages.
    pub async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<OpenMultipartUpload>, StorageError> {
        self.list_multipart_uploads_paged(prefix, 1000).await
    }

    /// As [`Self::list_multipart_uploads`], asking S3 for pages of `page_size` (S3's maximum is 1,000).
    pub async fn list_multipart_uploads_paged(
        &self,
        prefix: &str,
        page_size: i32,
    ) -> Result<Vec<OpenMultipartUpload>, StorageError> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut upload_id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_uploads(page_size)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await?;
            for upload in out.uploads() {
                let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) else { continue };
                uploads.push(OpenMultipartUpload {
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                    initiated: upload.initiated().and_then(super::utc),
                });
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(String::from);
            upload_id_marker = out.next_upload_id_marker().map(String::from);
            if key_marker.is_none() && upload_id_marker.is_none() {
                break;
            }
        }
        Ok(uploads)
    }

    /// Streams the object through SHA-256, one network buffer at a time.
    pub async fn hash_object(&self, key: &str) -> Result<ObjectHash, StorageError> {
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await?;
        let mut body = out.body;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(bytes) = body.try_next().await.map_err(|e| StorageError::Unreachable(format!("{e:?}")))? {
            size += bytes.len() as u64;
            hasher.update(&bytes);
        }
        Ok(ObjectHash { sha256: Sha256Digest::from_bytes(hasher.finalize().into()), size })
    }
}
