//! `/v1/uploads`: thin handlers over [`uploads::service::Uploads`].

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uploads::domain::{IndexRanges, Sha256Digest, UploadKind, UploadState, VerificationState};
use uploads::repository::UploadRecord;
use uploads::service::{ChunkUrl, CreateUpload, Created, UploadStatus};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{IdempotencyKeyHeader, Json, OptionalJson, Path, Query, whole, whole_opt};
use crate::state::AppState;

fn record_upload_id(id: Uuid) {
    tracing::Span::current().record("upload_id", tracing::field::display(id));
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUploadRequest {
    filename: String,
    #[serde(deserialize_with = "whole")]
    size: u64,
    content_type: Option<String>,
    #[serde(default, deserialize_with = "whole_opt")]
    chunk_size: Option<u64>,
    sha256: Option<String>,
    metadata: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadCreated {
    upload_id: Uuid,
    state: UploadState,
    filename: String,
    size: i64,
    chunk_size: i64,
    total_chunks: i32,
    expires_at: DateTime<Utc>,
}

/// Marks the answer to a retried create: the upload is the one the first create with this key made.
static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub async fn create(
    State(state): State<AppState>,
    Caller(owner): Caller,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    Json(body): Json<CreateUploadRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let request = CreateUpload {
        filename: body.filename,
        size: body.size,
        content_type: body.content_type,
        chunk_size: body.chunk_size,
        sha256: body.sha256,
        metadata: body.metadata,
    };
    let Created { upload, replayed } = state.uploads.create(&owner, request, key.as_ref()).await?;
    record_upload_id(upload.id);
    let location = HeaderValue::from_str(&format!("/v1/uploads/{}", upload.id)).expect("a path is a header value");
    let created = UploadCreated {
        upload_id: upload.id,
        state: upload.state,
        filename: upload.filename,
        // This route makes only uploads of our own protocol, whose plan is known from the start.
        size: upload.size.unwrap_or_default(),
        chunk_size: upload.chunk_size.unwrap_or_default(),
        total_chunks: upload.total_chunks.unwrap_or_default(),
        expires_at: upload.expires_at,
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, location);
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED.clone(), HeaderValue::from_static("true"));
    }
    Ok((StatusCode::CREATED, headers, Json(created)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChunkUrlRequest {
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchChunk {
    #[serde(deserialize_with = "whole")]
    index: u32,
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchUrlRequest {
    chunks: Vec<BatchChunk>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkUrlBody {
    index: u32,
    part_number: u32,
    url: String,
    method: String,
    headers: BTreeMap<String, String>,
    expires_at: DateTime<Utc>,
}

impl From<ChunkUrl> for ChunkUrlBody {
    fn from(chunk: ChunkUrl) -> Self {
        Self {
            index: chunk.index,
            part_number: chunk.part_number,
            url: chunk.request.url,
            method: chunk.request.method,
            headers: chunk.request.headers.into_iter().collect(),
            expires_at: chunk.request.expires_at,
        }
    }
}

pub async fn chunk_url(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Path((id, index)): Path<(Uuid, u32)>,
    Json(body): Json<ChunkUrlRequest>,
) -> Result<Json<ChunkUrlBody>, ApiError> {
    record_upload_id(id);
    let mut urls = state.uploads.chunk_urls(&owner, id, vec![(index, body.sha256)]).await?;
    Ok(Json(urls.remove(0).into()))
}

#[derive(Debug, Serialize)]
pub struct BatchUrlBody {
    urls: Vec<ChunkUrlBody>,
}

pub async fn chunk_urls(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<BatchUrlRequest>,
) -> Result<Json<BatchUrlBody>, ApiError> {
    record_upload_id(id);
    let chunks = body.chunks.into_iter().map(|c| (c.index, c.sha256)).collect();
    let urls = state.uploads.chunk_urls(&owner, id, chunks).await?;
    Ok(Json(BatchUrlBody { urls: urls.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChunkReport {
    etag: String,
    sha256: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkReceived {
    index: i32,
    etag: Option<String>,
    sha256: String,
    received_at: Option<DateTime<Utc>>,
}

pub async fn confirm_chunk(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Path((id, index)): Path<(Uuid, u32)>,
    Json(body): Json<ChunkReport>,
) -> Result<Json<ChunkReceived>, ApiError> {
    record_upload_id(id);
    let chunk = state.uploads.confirm_chunk(&owner, id, index, &body.sha256, &body.etag).await?;
    Ok(Json(ChunkReceived {
        index: chunk.index,
        etag: chunk.etag,
        sha256: chunk.sha256.as_deref().map(hex::encode).unwrap_or_default(),
        received_at: chunk.received_at,
    }))
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatusQuery {
    #[serde(default)]
    reconcile: bool,
}

/// An upload as a client sees it, without its chunk ranges: an item of `GET /v1/uploads`, and the most of
/// its status.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSummary {
    upload_id: Uuid,
    state: UploadState,
    filename: String,
    content_type: String,
    kind: UploadKind,
    /// `null` until an upload made through the Companion routes completes: Uppy never says.
    size: Option<i64>,
    chunk_size: Option<i64>,
    total_chunks: Option<i32>,
    received_bytes: u64,
    metadata: serde_json::Value,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<Sha256Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    download_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<VerificationBody>,
}

impl UploadSummary {
    pub fn of(state: &AppState, upload: UploadRecord, received_bytes: u64) -> Self {
        let download_url = (upload.state == UploadState::Completed).then(|| state.download_url(upload.id));
        Self {
            upload_id: upload.id,
            state: upload.state,
            sha256: upload.declared_sha256(),
            verification: VerificationBody::of(&upload),
            filename: upload.filename,
            content_type: upload.content_type,
            kind: upload.kind,
            size: upload.size,
            chunk_size: upload.chunk_size,
            total_chunks: upload.total_chunks,
            received_bytes,
            metadata: upload.metadata,
            expires_at: upload.expires_at,
            created_at: upload.created_at,
            completed_at: upload.completed_at,
            etag: upload.etag,
            download_url,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusBody {
    #[serde(flatten)]
    summary: UploadSummary,
    received_chunks: IndexRanges,
    missing_chunks: IndexRanges,
    next_expected_chunk: Option<u32>,
}

/// The worker's whole-object check of a completed upload.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationBody {
    state: VerificationState,
    /// The object's SHA-256 as hashed from S3's bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<Sha256Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    declared_sha256: Option<Sha256Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_at: Option<DateTime<Utc>>,
}

impl VerificationBody {
    fn of(upload: &UploadRecord) -> Option<Self> {
        Some(Self {
            state: upload.verification_state?,
            sha256: upload.object_sha256(),
            declared_sha256: upload.declared_sha256(),
            verified_at: upload.verified_at,
        })
    }
}

fn status_body(state: &AppState, status: UploadStatus) -> StatusBody {
    let UploadStatus { upload, received, missing, received_bytes } = status;
    StatusBody {
        summary: UploadSummary::of(state, upload, received_bytes),
        next_expected_chunk: missing.first(),
        received_chunks: received,
        missing_chunks: missing,
    }
}

pub async fn status(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Path(id): Path<Uuid>,
    Query(query): Query<StatusQuery>,
) -> Result<impl IntoResponse, ApiError> {
    record_upload_id(id);
    let status = state.uploads.status(&owner, id, query.reconcile).await?;
    let mut headers = HeaderMap::new();
    // Status changes with every chunk: never let a cache answer a returning client.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((headers, Json(status_body(&state, status))))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedBody {
    upload_id: Uuid,
    state: UploadState,
    size: i64,
    etag: Option<String>,
    download_url: String,
}

fn completed_body(state: &AppState, upload: UploadRecord) -> CompletedBody {
    CompletedBody {
        upload_id: upload.id,
        state: upload.state,
        size: upload.size.unwrap_or_default(),
        etag: upload.etag,
        download_url: state.download_url(upload.id),
    }
}

/// The optional body of a completion.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    /// The whole file's digest, for a client that learns it only once every chunk is sent.
    sha256: Option<String>,
}

pub async fn complete(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<CompleteRequest>,
) -> Result<Json<CompletedBody>, ApiError> {
    record_upload_id(id);
    let sha256 = body.and_then(|body| body.sha256);
    // The service runs the completion detached from this request: cut by REQUEST_TIMEOUT or a client gone,
    // it still ends, and a retry finds its result.
    let upload = state.uploads.complete_declaring(&owner, id, sha256.as_deref()).await?;
    Ok(Json(completed_body(&state, upload)))
}

pub async fn abort(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    record_upload_id(id);
    state.uploads.abort(&owner, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
