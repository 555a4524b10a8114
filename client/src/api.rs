//! The upload service's public HTTP API as the CLI uses it. Every call retries network errors and 5xx.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::retry::{RetryPolicy, Transient, retrying};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service answered with an error (after retries, for 5xx).
    #[error("{message} ({status}{})", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Refused { status: StatusCode, code: Option<String>, message: String, body: Value, retry_after: Option<Duration> },
    #[error("cannot reach {url}: {source}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected answer from the service: {0}")]
    Protocol(String),
    /// A body that ended early: as retryable as a network error.
    #[error("{0}")]
    Interrupted(String),
}

impl ApiError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            Self::Network { .. } | Self::Protocol(_) | Self::Interrupted(_) => None,
        }
    }

    pub fn network(url: &str) -> impl FnOnce(reqwest::Error) -> Self + '_ {
        move |source| Self::Network { url: url.to_string(), source }
    }

    /// Reads an error answer: the service's `{code, message}` envelope, or whatever text S3 or a proxy sent.
    pub async fn from_response(response: Response) -> Self {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        let code = body["code"].as_str().map(String::from);
        let message = match body["message"].as_str() {
            Some(message) => message.to_string(),
            None if text.trim().is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
            None => text.chars().take(300).collect(),
        };
        Self::Refused { status, code, message, body, retry_after }
    }
}

impl Transient for ApiError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Interrupted(_) => true,
            Self::Protocol(_) => false,
            Self::Refused { status, .. } => status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            Self::Network { .. } | Self::Protocol(_) | Self::Interrupted(_) => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub upload_id: Uuid,
    pub chunk_size: u64,
    pub total_chunks: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkUrl {
    pub index: u32,
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub state: String,
    pub filename: String,
    pub size: u64,
    pub chunk_size: u64,
    pub total_chunks: u32,
    pub missing_chunks: Vec<(u32, u32)>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completed {
    pub upload_id: Uuid,
    pub download_url: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUpload<'a> {
    pub filename: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub chunk_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Clone)]
pub struct Api {
    /// Plain: S3's presigned URLs get exactly the headers signed into them, never the service's token.
    pub http: reqwest::Client,
    base: String,
    /// The bearer token of service calls (`UPL_TOKEN`).
    token: Option<String>,
    pub retry: RetryPolicy,
    pub quiet: bool,
}

impl Api {
    pub fn new(server: &str, retry: RetryPolicy, quiet: bool) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // No overall timeout: a chunk or a download may take long. A stalled connection still fails.
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("upl/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let token = std::env::var("UPL_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        Ok(Self { http, base: server.trim_end_matches('/').to_string(), token, retry, quiet })
    }

    /// A request to the service itself, with the bearer token.
    pub fn service_request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
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

    /// One JSON call with retries. An empty success body reads as JSON `null` (so `()` fits a 204).
    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<Value>) -> Result<T, ApiError> {
        let url = self.url(path);
        let quiet = self.quiet;
        let warn = |err: &ApiError| {
            if !quiet {
                eprintln!("upl: {err}; retrying");
            }
        };
        retrying(self.retry, warn, || async {
            let mut request = self.service_request(method.clone(), &url);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(ApiError::network(&url))?;
            if !response.status().is_success() {
                return Err(ApiError::from_response(response).await);
            }
            let bytes = response.bytes().await.map_err(ApiError::network(&url))?;
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            serde_json::from_slice(bytes).map_err(|err| ApiError::Protocol(format!("{method} {url}: {err}")))
        })
        .await
    }

    pub async fn create(&self, upload: &NewUpload<'_>) -> Result<Created, ApiError> {
        self.call(Method::POST, "/v1/uploads", Some(json!(upload))).await
    }

    /// Presigned URLs for a batch of chunks (`(index, sha256 hex)`, at most 100).
    pub async fn chunk_urls(&self, id: Uuid, chunks: &[(u32, String)]) -> Result<Vec<ChunkUrl>, ApiError> {
        #[derive(Deserialize)]
        struct Batch {
            urls: Vec<ChunkUrl>,
        }
        let chunks: Vec<Value> =
            chunks.iter().map(|(index, sha256)| json!({"index": index, "sha256": sha256})).collect();
        let batch: Batch =
            self.call(Method::POST, &format!("/v1/uploads/{id}/urls"), Some(json!({ "chunks": chunks }))).await?;
        Ok(batch.urls)
    }

    pub async fn confirm_chunk(&self, id: Uuid, index: u32, etag: &str, sha256: &str) -> Result<(), ApiError> {
        let body = json!({"etag": etag, "sha256": sha256});
        let _: Value = self.call(Method::PUT, &format!("/v1/uploads/{id}/chunks/{index}"), Some(body)).await?;
        Ok(())
    }

    pub async fn status_json(&self, id: Uuid, reconcile: bool) -> Result<Value, ApiError> {
        self.call(Method::GET, &format!("/v1/uploads/{id}?reconcile={reconcile}"), None).await
    }

    pub async fn status(&self, id: Uuid, reconcile: bool) -> Result<Status, ApiError> {
        self.call(Method::GET, &format!("/v1/uploads/{id}?reconcile={reconcile}"), None).await
    }

    pub async fn complete(&self, id: Uuid) -> Result<Completed, ApiError> {
        self.call(Method::POST, &format!("/v1/uploads/{id}/complete"), None).await
    }

    pub async fn abort(&self, id: Uuid) -> Result<(), ApiError> {
        self.call(Method::DELETE, &format!("/v1/uploads/{id}"), None).await
    }
}
