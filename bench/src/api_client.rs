//! Set-up calls to this service's public API: uploads to measure against, and real objects to download.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::Http;

/// S3's smallest part but the last.
pub const MIN_CHUNK: u64 = 5 * 1024 * 1024;
/// The service's batch limit for `POST /v1/uploads/{id}/urls`.
pub const URL_BATCH: u32 = 100;

/// A presigned UploadPart the service handed out.
pub struct PartUrl {
    pub index: u32,
    pub url: String,
    pub headers: HeaderMap,
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    /// Carries the bearer token.
    pub http: Http,
    /// No token: S3 refuses a request with two kinds of authentication.
    pub s3: Http,
}

impl Api {
    pub fn new(base: &str, auth: HeaderMap) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: Http::new(auth), s3: Http::new(HeaderMap::new()) }
    }

    pub async fn create(&self, size: u64, chunk_size: u64) -> anyhow::Result<String> {
        let body = json!({ "filename": "bench.bin", "size": size, "chunkSize": chunk_size });
        let created = self.http.call(Method::POST, &format!("{}/v1/uploads", self.base), Some(&body)).await?;
        Ok(created["uploadId"].as_str().ok_or_else(|| anyhow!("no uploadId in {created}"))?.to_owned())
    }

    /// Declares chunks `first..first+count` with one SHA-256 each, in batches; returns their URLs.
    pub async fn declare(&self, id: &str, first: u32, count: u32, sha256: &str) -> anyhow::Result<Vec<PartUrl>> {
        let batches: Vec<(u32, u32)> = (first..first + count)
            .step_by(URL_BATCH as usize)
            .map(|a| (a, (a + URL_BATCH).min(first + count)))
            .collect();
        let answers: Vec<Value> = stream::iter(batches)
            .map(|(a, b)| {
                let chunks: Vec<Value> = (a..b).map(|index| json!({ "index": index, "sha256": sha256 })).collect();
                let url = format!("{}/v1/uploads/{id}/urls", self.base);
                async move { self.http.call(Method::POST, &url, Some(&json!({ "chunks": chunks }))).await }
            })
            .buffered(4)
            .try_collect()
            .await?;
        let mut urls = Vec::new();
        for answer in answers {
            for u in answer["urls"].as_array().ok_or_else(|| anyhow!("no urls in {answer}"))? {
                let mut headers = HeaderMap::new();
                for (name, value) in u["headers"].as_object().into_iter().flatten() {
                    headers.insert(
                        HeaderName::try_from(name.as_str())?,
                        HeaderValue::from_str(value.as_str().unwrap_or(""))?,
                    );
                }
                let index = u["index"].as_u64().ok_or_else(|| anyhow!("no index in {u}"))? as u32;
                urls.push(PartUrl { index, url: u["url"].as_str().unwrap_or_default().to_owned(), headers });
            }
        }
        Ok(urls)
    }

    pub async fn confirm(&self, id: &str, index: u32, etag: &str, sha256: &str) -> anyhow::Result<()> {
        let url = format!("{}/v1/uploads/{id}/chunks/{index}", self.base);
        self.http.call(Method::PUT, &url, Some(&json!({ "etag": etag, "sha256": sha256 }))).await.map(drop)
    }

    pub async fn complete(&self, id: &str) -> anyhow::Result<Value> {
        self.http.call(Method::POST, &format!("{}/v1/uploads/{id}/complete", self.base), None).await
    }

    /// PUTs `data` to every URL (`parallel` at once) and confirms each chunk with the ETag S3 answered.
    pub async fn send_parts(&self, id: &str, urls: Vec<PartUrl>, data: Bytes, parallel: usize) -> anyhow::Result<()> {
        let sha256 = hex::encode(Sha256::digest(&data));
        stream::iter(urls)
            .map(|part| {
                let (data, sha256) = (data.clone(), sha256.clone());
                async move {
                    let answer = self.s3.send(Method::PUT, &part.url, &part.headers, data).await?;
                    if !answer.status.is_success() {
                        bail!(
                            "S3 refused chunk {}: {} {}",
                            part.index,
                            answer.status,
                            String::from_utf8_lossy(&answer.body)
                        );
                    }
                    let etag =
                        answer.headers.get(header::ETAG).and_then(|v| v.to_str().ok()).context("no ETag from S3")?;
                    self.confirm(id, part.index, etag, &sha256).await
                }
            })
            .buffer_unordered(parallel)
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    /// A completed upload of `chunks` chunks of `chunk_size` random bytes (one random chunk repeated:
    /// the servers do not deduplicate), verified by the worker before it returns.
    pub async fn upload_object(&self, chunks: u32, chunk_size: u64) -> anyhow::Result<String> {
        let data = Bytes::from((0..chunk_size).map(|_| rand::random::<u8>()).collect::<Vec<u8>>());
        let sha256 = hex::encode(Sha256::digest(&data));
        let id = self.create(chunk_size * u64::from(chunks), chunk_size).await?;
        let urls = self.declare(&id, 0, chunks, &sha256).await?;
        self.send_parts(&id, urls, data, 4).await?;
        self.complete(&id).await?;
        self.wait_settled(&id).await?;
        Ok(id)
    }

    /// Waits until the worker has hashed a completed upload, so its S3 read does not overlap a measurement.
    pub async fn wait_settled(&self, id: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let status = self.http.call(Method::GET, &format!("{}/v1/uploads/{id}", self.base), None).await?;
            match status["verification"]["state"].as_str() {
                Some("pending") | None => tokio::time::sleep(Duration::from_millis(200)).await,
                Some(_) => return Ok(()),
            }
        }
        bail!("upload {id} was not verified within 10 minutes")
    }

    /// The presigned S3 GET of a completed upload (`?redirect=true`).
    pub async fn presigned_get(&self, id: &str) -> anyhow::Result<String> {
        let url = format!("{}/v1/files/{id}?redirect=true", self.base);
        let answer = self.http.send(Method::GET, &url, &HeaderMap::new(), Bytes::new()).await?;
        let location = answer.headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
        Ok(location.with_context(|| format!("{url} answered {} without Location", answer.status))?.to_owned())
    }
}
