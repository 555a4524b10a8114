//! The Companion-compatible routes Uppy's `@uppy/aws-s3` calls (`{companionEndpoint}/s3/...`), answered as
//! Uppy Companion answers them, and `POST /v1/uppy-endpoints`, which hands an owner such an endpoint. Thin:
//! every rule lives in the service ([`uploads::service::Uploads`]); docs/uppy.md has what Uppy sends and reads.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uploads::error_code::ErrorCode;
use uploads::service::{ClientUpload, UploadError};
use uploads::storage::PresignedRequest;
use uuid::Uuid;

use crate::auth::Caller;
use crate::companion::EndpointOwner;
use crate::companion::capability::Capability;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointBody {
    companion_endpoint: String,
    expires_at: DateTime<Utc>,
}

/// `POST /v1/uppy-endpoints`: the caller's own Companion endpoint, for the app to hand to Uppy.
pub async fn create_endpoint(State(state): State<AppState>, Caller(owner): Caller) -> Json<EndpointBody> {
    let capability = Capability::new(owner, SystemTime::now(), state.uppy_endpoint_ttl);
    let expires_at =
        DateTime::from_timestamp(i64::try_from(capability.expires).unwrap_or(i64::MAX), 0).unwrap_or_default();
    let companion_endpoint = format!("{}/uppy/{}", state.links.base_url(), capability.encode(state.links.key()));
    Json(EndpointBody { companion_endpoint, expires_at })
}

fn record_upload_id(id: Uuid) {
    tracing::Span::current().record("upload_id", tracing::field::display(id));
}

/// An upload id as Uppy sends it back; one that is not ours names no upload.
fn upload_id(value: &str) -> Result<Uuid, ApiError> {
    let id = value.parse().map_err(|_| UploadError::NotFound)?;
    record_upload_id(id);
    Ok(id)
}

/// Uppy's meta fields as `metadata[name]=value` query pairs, as an object.
fn metadata_of(pairs: &[(String, String)]) -> Option<Value> {
    let fields: serde_json::Map<String, Value> = pairs
        .iter()
        .filter_map(|(name, value)| {
            let field = name.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((field.to_string(), Value::String(value.clone())))
        })
        .collect();
    (!fields.is_empty()).then_some(Value::Object(fields))
}

/// `GET {endpoint}/s3/params?filename=&type=&metadata[k]=v`: a single-object upload and the presigned POST
/// policy its browser posts the file under.
pub async fn params(
    State(state): State<AppState>,
    EndpointOwner(owner): EndpointOwner,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let field = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let filename = field("filename")
        .ok_or_else(|| ApiError::bad_request(ErrorCode::InvalidQuery, "the query must carry filename"))?;
    let request = ClientUpload { filename, content_type: field("type"), metadata: metadata_of(&pairs) };
    let (upload, post) = state.uploads.create_form_post(&owner, request).await?;
    record_upload_id(upload.id);
    let fields: serde_json::Map<String, Value> = post.fields.into_iter().map(|(n, v)| (n, Value::String(v))).collect();
    let expires = (post.expires_at - Utc::now()).num_seconds().max(0);
    Ok(Json(json!({ "method": "POST", "url": post.url, "fields": fields, "expires": expires })))
}

#[derive(Debug, Deserialize)]
pub struct CreateMultipartRequest {
    filename: String,
    #[serde(rename = "type")]
    content_type: Option<String>,
    metadata: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultipartCreated {
    key: String,
    upload_id: Uuid,
}

/// `POST {endpoint}/s3/multipart` `{filename, type, metadata}`: a multipart upload Uppy cuts itself.
pub async fn create_multipart(
    State(state): State<AppState>,
    EndpointOwner(owner): EndpointOwner,
    Json(body): Json<CreateMultipartRequest>,
) -> Result<Json<MultipartCreated>, ApiError> {
    let request = ClientUpload { filename: body.filename, content_type: body.content_type, metadata: body.metadata };
    let upload = state.uploads.create_client_multipart(&owner, request).await?;
    record_upload_id(upload.id);
    Ok(Json(MultipartCreated { key: upload.object_key, upload_id: upload.id }))
}

#[derive(Debug, Deserialize)]
pub struct UploadPath {
    upload_id: String,
}

#[derive(Debug, Deserialize)]
pub struct PartPath {
    upload_id: String,
    part_number: String,
}

/// `?key=`, form-decoded (Uppy encodes it with `URLSearchParams`: a space arrives as `+`).
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    key: String,
}

#[derive(Debug, Deserialize)]
pub struct BatchQuery {
    key: String,
    #[serde(rename = "partNumbers")]
    part_numbers: String,
}

#[derive(Debug, Serialize)]
pub struct SignedPart {
    url: String,
    /// Seconds the URL stays valid, as Companion says it.
    expires: i64,
}

fn seconds_left(request: &PresignedRequest) -> i64 {
    (request.expires_at - Utc::now()).num_seconds().max(0)
}

/// A part number as sent: 1 to 10,000, plain digits.
fn part_number(value: &str) -> Result<u32, ApiError> {
    let valid = !value.is_empty() && value.len() <= 5 && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u32>() {
        Ok(n) if valid && (1..=10_000).contains(&n) => Ok(n),
        _ => Err(UploadError::PartNumberOutOfRange.into()),
    }
}

/// `GET {endpoint}/s3/multipart/{uploadId}/{partNumber}?key=`: a presigned PUT for one part (signing `host`
/// only: Uppy sends no checksum).
pub async fn sign_part(
    State(state): State<AppState>,
    EndpointOwner(owner): EndpointOwner,
    Path(path): Path<PartPath>,
    Query(query): Query<KeyQuery>,
) -> Result<Json<SignedPart>, ApiError> {
    let id = upload_id(&path.upload_id)?;
    let number = part_number(&path.part_number)?;
    let request = state.uploads.sign_client_part(&owner, id, &query.key, number).await?;
    Ok(Json(SignedPart { expires: seconds_left(&request), url: request.url }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedBatch {
    presigned_urls: BTreeMap<String, String>,
}

/// `GET {endpoint}/s3/multipart/{uploadId}/batch?key=&partNumbers=1,2,3` (older Uppy versions sign so).
pub async fn sign_batch(
    State(state): State<AppState>,
    EndpointOwner(owner): EndpointOwner,
    Path(path): Path<UploadPath>,
    Query(query): Query<BatchQuery>,
) -> Result<Json<SignedBatch>, ApiError> {
    let id = upload_id(&path.upload_id)?;
    let numbers = query.part_numbers.split(',').map(part_number).collect::<Result<Vec<_>, _>>()?;
    let urls = state.uploads.sign_client_parts(&owner, id, &query.key, &numbers).await?;
    let presigned_urls = numbers.iter().zip(urls).map(|(n, request)| (n.to_string(), request.url)).collect();
    Ok(Json(SignedBatch { presigned_urls }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartBody {
    part_number: u32,
    #[serde(rename = "ETag")]
    etag: String,
    size: u64,
}

/// `GET {endpoint}/s3/multipart/{uploadId}?key=`: every part S3 holds, a bare array (Uppy resumes from it).
pub async fn list_parts(
    State(state): State<AppState>,
    EndpointOwner(owner): EndpointOwner,
    Path(path): Path<UploadPath>,
    Query(query): Query<KeyQuery>,
) -> Result<Json<Vec<PartBody>>, ApiError> {
    let id = upload_id(&path.upload_id)?;
    let parts = state.uploads.list_client_parts(&owner, id, &query.key).await?;
    Ok(Json(parts.into_iter().map(|p| PartBody { part_number: p.part_number, etag: p.etag, size: p.size }).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompletedPartRequest {
    part_number: i64,
    #[serde(rename = "ETag")]
    etag: String,
}

#[derive(Debug, Deserialize)]
pub struct CompleteRequest {
    parts: Vec<CompletedPartRequest>,
}

#[derive(Debug, Serialize)]
pub struct CompletedBody {
    /// The upload's download link (a signed one: Uppy hands it on as the file's `uploadURL`).
    location: String,
    key: String,
    bucket: String,
}

/// `POST {endpoint}/s3/multipart/{uploadId}/complete?key=` `{parts: [{PartNumber, ETag}]}`.
pub async fn complete(
    State(state): State<AppState>,
    EndpointOwner(owner): EndpointOwner,
    Path(path): Path<UploadPath>,
    Query(query): Query<KeyQuery>,
    Json(body): Json<CompleteRequest>,
) -> Result<Json<CompletedBody>, ApiError> {
    let id = upload_id(&path.upload_id)?;
    let parts = body
        .parts
        .into_iter()
        .map(|p| u32::try_from(p.part_number).map(|n| (n, p.etag)).map_err(|_| UploadError::PartNumberOutOfRange))
        .collect::<Result<Vec<_>, _>>()?;
    let upload = state.uploads.complete_client_parts(&owner, id, &query.key, parts).await?;
    Ok(Json(CompletedBody {
        location: state.download_url(upload.id),
        key: upload.object_key,
        bucket: state.uploads.storage().bucket().to_string(),
    }))
}

/// `DELETE {endpoint}/s3/multipart/{uploadId}?key=` -> `{}`.
pub async fn abort(
    State(state): State<AppState>,
    EndpointOwner(owner): EndpointOwner,
    Path(path): Path<UploadPath>,
    Query(query): Query<KeyQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = upload_id(&path.upload_id)?;
    state.uploads.abort_client_upload(&owner, id, &query.key).await?;
    Ok(Json(json!({})))
}
