//! Listing every multipart upload in progress, for the sweep that aborts those no live upload owns.

use chrono::{DateTime, Utc};

use super::{S3Operation, Storage, StorageError};

/// A multipart upload S3 holds open (ListMultipartUploads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMultipartUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<DateTime<Utc>>,
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
            let request = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_uploads(page_size)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send();
            let out = self.observe(S3Operation::ListMultipartUploads, request).await?;
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
}
