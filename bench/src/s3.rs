//! Direct aws-sdk-s3 calls: the SDK multipart upload `upl` is measured against, parts for Companion's
//! uploads, S3's own create rate for the initiate figure, and clean-up of measured objects.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};

/// A client configured as the service configures its own: path-style, checksums only where passed.
pub async fn client(endpoint: &str) -> Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .endpoint_url(endpoint)
        .http_client(http_client)
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// The reference upload: CreateMultipartUpload with SHA-256, each part read from `file`, hashed and sent
/// with its checksum, `parallel` at once, then CompleteMultipartUpload. The same integrity `upl` gives.
pub async fn multipart_upload(
    s3: &Client,
    bucket: &str,
    key: &str,
    file: &Path,
    part_size: u64,
    parallel: usize,
) -> anyhow::Result<()> {
    let size = std::fs::metadata(file)?.len();
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await?;
    let upload_id = created.upload_id().context("no upload id")?.to_owned();
    let file = Arc::new(std::fs::File::open(file)?);
    let parts: Vec<CompletedPart> = stream::iter((0..size.div_ceil(part_size)).map(|i| (i, i * part_size)))
        .map(|(i, offset)| {
            let (file, upload_id) = (file.clone(), upload_id.clone());
            async move {
                let length = part_size.min(size - offset);
                let (data, sha256) = tokio::task::spawn_blocking(move || read_part(&file, offset, length)).await??;
                let part_number = i as i32 + 1;
                let sent = s3
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(part_number)
                    .content_length(length as i64)
                    .checksum_sha256(&sha256)
                    .body(ByteStream::from(data))
                    .send()
                    .await?;
                anyhow::Ok(
                    CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(sent.e_tag().map(str::to_owned))
                        .checksum_sha256(sha256)
                        .build(),
                )
            }
        })
        .buffered(parallel)
        .try_collect()
        .await?;
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await?;
    Ok(())
}

/// One part's bytes and their SHA-256 in base64, as S3's checksum header takes it.
fn read_part(file: &std::fs::File, offset: u64, length: u64) -> std::io::Result<(Bytes, String)> {
    use std::os::unix::fs::FileExt;
    let mut data = vec![0; length as usize];
    file.read_exact_at(&mut data, offset)?;
    let sha256 = STANDARD.encode(Sha256::digest(&data));
    Ok((Bytes::from(data), sha256))
}

/// UploadPart of the same bytes as parts `1..=count` of an existing multipart upload; their ETags.
pub async fn put_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    data: Bytes,
    count: i32,
) -> anyhow::Result<Vec<(i32, String)>> {
    stream::iter(1..=count)
        .map(|part_number| {
            let data = data.clone();
            async move {
                let sent = s3
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(part_number)
                    .body(ByteStream::from(data))
                    .send()
                    .await?;
                anyhow::Ok((part_number, sent.e_tag().context("no ETag")?.to_owned()))
            }
        })
        .buffered(4)
        .try_collect()
        .await
}

/// A presigned CreateMultipartUpload of `key` as the service sends it (content type, SHA-256 checksums), and
/// the headers it was signed with. Every POST of it starts another multipart upload: the load generator
/// measures S3's own create rate with it, the ceiling of any service's initiate. The SDK presigns no
/// CreateMultipartUpload; the service's own SigV4 query signing does (the key must need no encoding).
pub fn presigned_create(endpoint: &str, bucket: &str, key: &str) -> anyhow::Result<(String, Vec<(String, String)>)> {
    anyhow::ensure!(
        key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)),
        "key {key:?} needs encoding"
    );
    let url = format!("{}/{bucket}/{key}?uploads=", endpoint.trim_end_matches('/'));
    let headers = [("content-type", "application/octet-stream"), ("x-amz-checksum-algorithm", "SHA256")];
    let credentials = Credentials::new("test", "test", None, None, "bench");
    let url = uploads::storage::presign_query_url(
        "POST",
        url,
        &headers,
        credentials,
        "us-east-1",
        Duration::from_secs(3600),
        std::time::SystemTime::now(),
    )?;
    Ok((url, headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()))
}

/// Frees LocalStack's memory of an object that was only measured.
pub async fn delete(s3: &Client, bucket: &str, key: &str) -> anyhow::Result<()> {
    s3.delete_object().bucket(bucket).key(key).send().await?;
    Ok(())
}
