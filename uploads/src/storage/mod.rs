//! Every aws-sdk-s3 call of the service lives here.

mod call_counts;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Region, RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use aws_smithy_http_client::tls;
use chrono::{DateTime, Utc};

mod companion;
mod listing;
pub use companion::{PostPolicy, PresignedPost};
pub use listing::OpenMultipartUpload;

use crate::config::{S3Config, Sse};
use crate::domain::Sha256Digest;

mod objects;
mod origin;
mod signing;
pub use call_counts::{S3CallCounts, S3Operation};
pub use objects::{ObjectHash, ObjectStream, PresignedRead, ReadMethod};
pub use signing::presign_query_url;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("S3 has no such multipart upload")]
    NoSuchUpload,
    #[error("S3 has no such object")]
    NotFound,
    #[error("S3 refused a part: {0}")]
    InvalidPart(String),
    #[error("S3 precondition failed")]
    PreconditionFailed,
    #[error("S3 cannot satisfy the range")]
    InvalidRange,
    #[error("S3 did not answer in time: {0}")]
    Timeout(String),
    #[error("S3 could not be reached: {0}")]
    Unreachable(String),
    #[error("S3 answered {code}: {message}")]
    Service { code: String, message: String },
    #[error("presigning failed: {0}")]
    Presign(String),
}

impl<E, R> From<SdkError<E, R>> for StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(err: SdkError<E, R>) -> Self {
        match &err {
            SdkError::TimeoutError(_) => return Self::Timeout(format!("{err:?}")),
            SdkError::DispatchFailure(f) if f.is_timeout() => return Self::Timeout(format!("{f:?}")),
            SdkError::DispatchFailure(f) => return Self::Unreachable(format!("{f:?}")),
            _ => {}
        }
        let code = err.code().unwrap_or("Unknown").to_string();
        let message = err.message().unwrap_or_default().to_string();
        match code.as_str() {
            "NoSuchUpload" => Self::NoSuchUpload,
            "NoSuchKey" | "NotFound" => Self::NotFound,
            "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "BadDigest" => Self::InvalidPart(message),
            "PreconditionFailed" => Self::PreconditionFailed,
            "InvalidRange" => Self::InvalidRange,
            _ => Self::Service { code, message },
        }
    }
}

/// A request the client sends itself, straight to S3.
#[derive(Debug, Clone)]
pub struct PresignedRequest {
    pub url: String,
    pub method: String,
    /// Headers that are part of the signature: the client must send them exactly.
    pub headers: Vec<(String, String)>,
    pub expires_at: DateTime<Utc>,
}

/// One part as S3 holds it (ListParts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub sha256: Option<Sha256Digest>,
}

/// One part a client is to PUT: its number, exact length and SHA-256, all signed into the URL.
#[derive(Debug, Clone, Copy)]
pub struct PartToPresign<'a> {
    pub part_number: u32,
    pub length: u64,
    pub sha256: &'a Sha256Digest,
}

/// One part to stitch into the object (CompleteMultipartUpload).
#[derive(Debug, Clone)]
pub struct PartToComplete {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    /// `None` for a part the client cut itself, on a multipart upload created without a checksum algorithm.
    pub sha256: Option<Sha256Digest>,
}

/// What HeadObject says of a finished object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub etag: String,
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
    pub parts_count: Option<u32>,
}

#[derive(Clone)]
pub struct Storage {
    client: Client,
    /// Signs the URLs clients are handed, for `S3_PUBLIC_ENDPOINT`; never sends a request.
    presigner: Client,
    /// The same client for downloads' GetObject, without the SDK's stalled-stream protection: that check
    /// reads the clock and books throughput on every frame of the body, and [`Storage::get_object`] has its
    /// own stall timer, armed only while S3 is silent.
    reads: Client,
    /// What signs UploadPart URLs and POST policies, which this module signs itself (`signing`, `companion`).
    credentials: Arc<signing::SigningCredentials>,
    /// The bucket's URL as clients reach it, resolved once by the SDK (`origin`).
    bucket_url: String,
    region: String,
    bucket: String,
    key_prefix: String,
    new_objects: NewObjects,
    complete_timeout: Duration,
    calls: Arc<S3CallCounts>,
}

/// What every new object is created with.
#[derive(Debug, Clone, Default)]
struct NewObjects {
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    storage_class: Option<StorageClass>,
}

impl Storage {
    /// Builds the S3 clients of the process: one that calls S3 and, when clients reach S3 at another address,
    /// one that only presigns for that address. Presigning is CPU work on a shared client; building a client or
    /// reloading credentials per request is the classic slowdown.
    pub async fn connect(config: &S3Config) -> anyhow::Result<Self> {
        config.check()?;
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_timeout(config.s3_operation_timeout)
                .build(),
        );
        // Without S3_REGION, aws-config's own chain decides: AWS_REGION, the profile, then IMDS.
        if let Some(region) = &config.s3_region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.s3_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        anyhow::ensure!(
            shared.region().is_some(),
            "S3_REGION is not set and AWS found no region either (AWS_REGION, AWS_DEFAULT_REGION, profile, IMDS)"
        );
        let builder_for = |endpoint: Option<&String>| {
            let mut builder = aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(config.s3_force_path_style)
                // Checksums are computed by the client that holds the bytes and passed explicitly; a download is
                // checked against the whole object's SHA-256 by whoever needs it (`Repr-Digest`), not per GET.
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
            if let Some(endpoint) = endpoint {
                builder = builder.endpoint_url(endpoint);
            }
            builder
        };
        let client = Client::from_conf(builder_for(None).build());
        let reads = Client::from_conf(
            builder_for(None).stalled_stream_protection(StalledStreamProtectionConfig::disabled()).build(),
        );
        let presigner = match &config.s3_public_endpoint {
            Some(public) => Client::from_conf(builder_for(Some(public)).build()),
            None => client.clone(),
        };
        let bucket_url = origin::bucket_url(&presigner, &config.s3_bucket).await?;
        Ok(Self {
            client,
            presigner,
            reads,
            credentials: Arc::new(signing::SigningCredentials::new(shared.credentials_provider())),
            bucket_url,
            region: shared.region().map(|r| r.to_string()).unwrap_or_default(),
            bucket: config.s3_bucket.clone(),
            key_prefix: config.s3_key_prefix.clone(),
            new_objects: NewObjects {
                sse: config.s3_sse.map(Sse::header_value),
                sse_kms_key_id: config.s3_sse_kms_key_id.clone(),
                storage_class: config.storage_class(),
            },
            complete_timeout: config.s3_complete_timeout,
            calls: Arc::default(),
        })
    }

    /// Where upload `id`'s object lives: under `S3_KEY_PREFIX`, the only keys this service writes or lists.
    pub fn object_key(&self, id: uuid::Uuid) -> String {
        format!("{}{id}", self.key_prefix)
    }

    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The raw client, for tests and tools that inspect the bucket.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Requests this process sent to S3 so far, per operation (shared by every clone).
    pub fn calls(&self) -> &S3CallCounts {
        &self.calls
    }

    pub async fn check_bucket(&self) -> Result<(), StorageError> {
        self.observe(S3Operation::HeadBucket, self.client.head_bucket().bucket(&self.bucket).send()).await?;
        Ok(())
    }

    pub async fn create_multipart_upload(&self, key: &str, content_type: &str) -> Result<String, StorageError> {
        self.create_multipart(key, content_type, Some(ChecksumAlgorithm::Sha256)).await
    }

    /// CreateMultipartUpload; with `checksum`, S3 takes only parts that carry one of that algorithm.
    async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
        checksum: Option<ChecksumAlgorithm>,
    ) -> Result<String, StorageError> {
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_checksum_algorithm(checksum)
            .set_server_side_encryption(self.new_objects.sse.clone())
            .set_ssekms_key_id(self.new_objects.sse_kms_key_id.clone())
            .set_storage_class(self.new_objects.storage_class.clone())
            .send();
        let out = self.observe(S3Operation::CreateMultipartUpload, request).await?;
        out.upload_id.ok_or_else(|| StorageError::Service {
            code: "MissingUploadId".into(),
            message: "CreateMultipartUpload answered without an upload id".into(),
        })
    }

    /// A presigned UploadPart whose signature covers `x-amz-checksum-sha256` and `Content-Length`: S3 itself
    /// refuses other bytes, and a part larger (or smaller) than the chunk plan says.
    pub async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: PartToPresign<'_>,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        self.presign_part(key, upload_id, part.part_number, Some(part), ttl).await
    }

    /// A presigned UploadPart, binding the part's length and SHA-256 when `bound` says them.
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        bound: Option<PartToPresign<'_>>,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let part = signing::PartUrl {
            bucket_url: &self.bucket_url,
            region: &self.region,
            key,
            upload_id,
            part_number,
            bound,
            ttl,
        };
        signing::presign_part_url(&part, self.credentials.current().await?, SystemTime::now())
    }

    /// Every part S3 holds for the upload, all pages.
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, StorageError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let request = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send();
            let out = self.observe(S3Operation::ListParts, request).await?;
            for part in out.parts() {
                let (Some(number), Some(etag)) = (part.part_number(), part.e_tag()) else { continue };
                parts.push(StoredPart {
                    part_number: number as u32,
                    etag: etag.to_string(),
                    size: part.size().unwrap_or(0) as u64,
                    sha256: part.checksum_sha256().and_then(|c| Sha256Digest::parse_base64(c).ok()),
                });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) => marker = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(parts)
    }

    /// Stitches the parts into the object; returns its ETag.
    pub async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartToComplete],
    ) -> Result<String, StorageError> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.part_number as i32)
                            .e_tag(&p.etag)
                            .set_checksum_sha256(p.sha256.map(|d| d.to_base64()))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::new()
                    .timeout_config(TimeoutConfig::builder().operation_timeout(self.complete_timeout).build()),
            )
            .send();
        let out = self.observe(S3Operation::CompleteMultipartUpload, request).await?;
        Ok(out.e_tag.unwrap_or_default())
    }

    pub async fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        let request = self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload_id).send();
        match self.observe(S3Operation::AbortMultipartUpload, request).await {
            // Already aborted (or completed) is the state we wanted.
            Ok(_) | Err(StorageError::NoSuchUpload) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// A zero-byte file is one empty object: S3 has no zero-part multipart upload.
    pub async fn put_empty_object(&self, key: &str, content_type: &str) -> Result<String, StorageError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_sha256(Sha256Digest::of(b"").to_base64())
            .set_server_side_encryption(self.new_objects.sse.clone())
            .set_ssekms_key_id(self.new_objects.sse_kms_key_id.clone())
            .set_storage_class(self.new_objects.storage_class.clone())
            .body(ByteStream::from_static(b""))
            .send();
        let out = self.observe(S3Operation::PutEmptyObject, request).await?;
        Ok(out.e_tag.unwrap_or_default())
    }

    pub async fn head_object(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let request = self.client.head_object().bucket(&self.bucket).key(key).send();
        match self.observe(S3Operation::HeadObject, request).await {
            Ok(out) => {
                let etag = out.e_tag.unwrap_or_default();
                Ok(Some(ObjectInfo {
                    parts_count: multipart_etag_parts(&etag),
                    etag,
                    size: out.content_length.unwrap_or(0) as u64,
                    last_modified: out.last_modified.as_ref().and_then(utc),
                }))
            }
            Err(StorageError::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

/// S3's timestamps as chrono's, for the repository and the API.
pub(crate) fn utc(time: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// A multipart object's ETag is `"<md5 of the part md5s>-<part count>"`.
pub fn multipart_etag_parts(etag: &str) -> Option<u32> {
    etag.trim_matches('"').rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_count_from_a_multipart_etag() {
        assert_eq!(multipart_etag_parts("\"9b2cf535f27731c974343645a3985328-3\""), Some(3));
        assert_eq!(multipart_etag_parts("\"9b2cf535f27731c974343645a3985328\""), None);
    }
}
