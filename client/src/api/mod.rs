//! The upload service's public HTTP API as the CLI uses it. Every call carries the bearer token (S3's
//! presigned URLs never do) and goes through the one retry policy.

mod error;
mod types;

use std::time::Duration;

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

pub use error::ApiError;
#[cfg(test)]
pub use error::refused;
pub use types::{ChunkUrl, Completed, Created, Listed, NewUpload, Page, Status};

use crate::retry::{RetryPolicy, retrying};
use crate::token::Token;

/// A retried create must not make a second upload: the service answers the first one again for this key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Clone)]
pub struct Api {
    /// Shared with the S3 PUTs, so it carries no default headers: the token is added per service call.
    pub http: reqwest::Client,
    base: String,
    token: Option<Token>,
    pub retry: RetryPolicy,
    pub quiet: bool,
}

impl Api {
    pub fn new(server: &str, token: Option<Token>, retry: RetryPolicy, quiet: bool) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // No overall timeout: a chunk or a download may take long. A stalled connection still fails.
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("upl/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base: server.trim_end_matches('/').to_string(), token, retry, quiet })
    }

    /// The same client, settings and token, for another server (used for state files of the same server only).
    pub fn for_server(&self, server: &str) -> Self {
        let token = (server.trim_end_matches('/') == self.base).then(|| self.token.clone()).flatten();
        Self { base: server.trim_end_matches('/').to_string(), token, ..self.clone() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn file_url(&self, id: Uuid) -> String {
        self.url(&format!("/v1/files/{id}"))
    }

    /// A request to the service, with the bearer token when there is one.
    pub fn service_request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, token.header_value()),
            None => request,
        }
    }

    /// One JSON call with retries; `extra` adds query or headers. An empty success body reads as JSON `null`
    /// (so `()` fits a 204).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<T, ApiError> {
        let url = self.url(path);
        let quiet = self.quiet;
        let warn = |err: &ApiError| {
            if !quiet {
                eprintln!("upl: {err}; retrying");
            }
        };
        retrying(self.retry, warn, async || {
            let mut request = extra(self.service_request(method.clone(), &url));
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(ApiError::network(&url))?;
            if !response.status().is_success() {
                return Err(ApiError::from_response(response).await);
            }
            let bytes = response.bytes().await.map_err(ApiError::network(&url))?;
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            serde_json::from_slice(bytes).map_err(|err| ApiError::Protocol(format!("{method} {path}: {err}")))
        })
        .await
    }

    /// Creates an upload; every attempt carries the same `key`, so a lost answer never makes a second one.
    pub async fn create(&self, upload: &NewUpload<'_>, key: Uuid) -> Result<Created, ApiError> {
        let key = key.to_string();
        self.call(Method::POST, "/v1/uploads", Some(json!(upload)), |r| r.header(IDEMPOTENCY_KEY, &key)).await
    }

    /// Presigned URLs for a batch of chunks (`(index, sha256 hex)`, at most 100).
    pub async fn chunk_urls(&self, id: Uuid, chunks: &[(u32, String)]) -> Result<Vec<ChunkUrl>, ApiError> {
        #[derive(Deserialize)]
        struct Batch {
            urls: Vec<ChunkUrl>,
        }
        let chunks: Vec<Value> =
            chunks.iter().map(|(index, sha256)| json!({"index": index, "sha256": sha256})).collect();
        let path = format!("/v1/uploads/{id}/urls");
        let batch: Batch = self.call(Method::POST, &path, Some(json!({ "chunks": chunks })), |r| r).await?;
        Ok(batch.urls)
    }

    pub async fn confirm_chunk(&self, id: Uuid, index: u32, etag: &str, sha256: &str) -> Result<(), ApiError> {
        let body = json!({"etag": etag, "sha256": sha256});
        let _: Value = self.call(Method::PUT, &format!("/v1/uploads/{id}/chunks/{index}"), Some(body), |r| r).await?;
        Ok(())
    }

    pub async fn status_json(&self, id: Uuid, reconcile: bool) -> Result<Value, ApiError> {
        self.call(Method::GET, &format!("/v1/uploads/{id}?reconcile={reconcile}"), None, |r| r).await
    }

    pub async fn status(&self, id: Uuid, reconcile: bool) -> Result<Status, ApiError> {
        self.call(Method::GET, &format!("/v1/uploads/{id}?reconcile={reconcile}"), None, |r| r).await
    }

    /// Completes, declaring the whole file's `sha256` (hex) if given; `completion_in_progress` (another
    /// completion is assembling it) is retried after Retry-After.
    pub async fn complete(&self, id: Uuid, sha256: Option<&str>) -> Result<Completed, ApiError> {
        let body = sha256.map(|sha256| json!({ "sha256": sha256 }));
        self.call(Method::POST, &format!("/v1/uploads/{id}/complete"), body, |r| r).await
    }

    pub async fn abort(&self, id: Uuid) -> Result<(), ApiError> {
        self.call(Method::DELETE, &format!("/v1/uploads/{id}"), None, |r| r).await
    }

    /// One page of the caller's uploads, newest first.
    pub async fn list(&self, limit: u32, cursor: Option<&str>, state: Option<&str>) -> Result<Page, ApiError> {
        let mut query = vec![("limit", limit.to_string())];
        query.extend(cursor.map(|c| ("cursor", c.to_string())));
        query.extend(state.map(|s| ("state", s.to_string())));
        self.call(Method::GET, "/v1/uploads", None, |r| r.query(&query)).await
    }
}
