//! `GET` and `HEAD /v1/files/{id}`: a completed upload, with ranges and conditions per RFC 9110, streamed
//! from S3 as it arrives, or through a signed link. The rules live in [`crate::download`]; this module only
//! wires them to HTTP.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uploads::error_code::ErrorCode;
use uploads::service::{CorruptObject, DownloadableFile};
use uploads::storage::{PresignedRead, ReadMethod};
use uuid::Uuid;

use crate::auth::Caller;
use crate::download::body;
use crate::download::conditional::{self, Conditions, Precondition, Validators};
use crate::download::disposition::{self, Disposition};
use crate::download::link::{Link, LinkParams};
use crate::download::multipart::Multipart;
use crate::download::range::{self, RangeOutcome};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileQuery {
    #[serde(default)]
    disposition: Disposition,
    /// Answer 302 to a presigned S3 URL instead of proxying the bytes.
    #[serde(default)]
    redirect: bool,
    /// The owner (with a token, not a link) asks for an object the worker found corrupt, knowing it is.
    #[serde(default)]
    allow_corrupt: bool,
    /// A signed link's expiry (unix seconds) and signature; see [`crate::download::link`].
    expires: Option<String>,
    sig: Option<String>,
}

impl FileQuery {
    fn link_params(&self) -> LinkParams<'_> {
        LinkParams { expires: self.expires.as_deref(), sig: self.sig.as_deref(), disposition: self.disposition }
    }
}

pub async fn download(
    State(state): State<AppState>,
    method: Method,
    Path(id): Path<Uuid>,
    Query(query): Query<FileQuery>,
    headers: HeaderMap,
) -> Response {
    let span = tracing::Span::current();
    span.record("upload_id", tracing::field::display(id));
    let range_header = single_value(&headers, &header::RANGE);
    if let Some(range) = range_header {
        span.record("range", range);
    }
    let response =
        respond(&state, &method, id, &query, &headers, range_header).await.unwrap_or_else(|e| e.into_response());
    // The status beside the Range asked for: what an operator (and the browser test) reads to see seeking.
    tracing::info!(status = response.status().as_u16(), range = range_header.unwrap_or(""), "file answered");
    with_safe_origin(response)
}

/// RFC 9530: the SHA-256 of the whole file, so a client can check what it assembled from ranges.
static REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");

/// A file shares the web page's origin: whatever it holds, the browser must neither guess a more active type
/// than the one sent (`nosniff`) nor run anything of it (`sandbox`: no script, no same-origin access, and
/// `default-src 'none'`: no fetch of anything).
fn with_safe_origin(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    response
}

/// One straight road: who may read which file, then a redirect or the answer RFC 9110 gives for the
/// request's conditions and range, then the bytes.
async fn respond(
    state: &AppState,
    method: &Method,
    id: Uuid,
    query: &FileQuery,
    headers: &HeaderMap,
    range_header: Option<&str>,
) -> Result<Response, ApiError> {
    let now = SystemTime::now();
    let (file, link) = resolve_file(state, id, query, headers, now).await?;
    let media_type = disposition::served_media_type(&file.content_type);
    let content_type: &str = media_type.as_ref();
    let disposition = query.disposition.allowed_for(&media_type).header_value(&file.filename);
    if query.redirect {
        return redirect(state, method, &file, content_type, &disposition, link.as_ref(), now).await;
    }

    let mut headers_out = validator_headers(&file);
    let honor_range = match evaluate_conditions(headers, &file) {
        Precondition::Failed => return Ok(precondition_failed(headers_out)),
        Precondition::NotModified => {
            headers_out.insert(header::CACHE_CONTROL, state.downloads.cache_control.clone());
            return Ok(with_headers(StatusCode::NOT_MODIFIED.into_response(), headers_out));
        }
        Precondition::Proceed { honor_range } => honor_range,
    };
    // Range handling is defined for GET only (RFC 9110 §14.2): HEAD describes the whole object.
    let outcome = if *method == Method::GET && honor_range {
        range::resolve(range_header, file.size)
    } else {
        RangeOutcome::Full
    };
    if outcome == RangeOutcome::Unsatisfiable {
        return Ok(range_not_satisfiable(headers_out, file.size));
    }

    // Only a representation (or part of one) is cacheable as the file: not the 412 and 416 above.
    headers_out.insert(header::CACHE_CONTROL, state.downloads.cache_control.clone());
    headers_out.insert(header::CONTENT_DISPOSITION, header_value(&disposition));
    if *method == Method::HEAD {
        return Ok(body_response(StatusCode::OK, headers_out, header_value(content_type), file.size, Body::empty()));
    }
    open_body(state, file, outcome, content_type, headers_out).await
}

/// A signed link is checked before anything is looked up: a forged one learns nothing about the id. With a
/// link, the link is the permission and no token is needed; without one, the caller must own the file.
async fn resolve_file(
    state: &AppState,
    id: Uuid,
    query: &FileQuery,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<(DownloadableFile, Option<Link>), ApiError> {
    let link = state.links.verify(id, &query.link_params(), now)?;
    let file = match &link {
        Some(_) => state.uploads.downloadable(id).await?,
        None => {
            let corrupt = if query.allow_corrupt { CorruptObject::Serve } else { CorruptObject::Refuse };
            state.uploads.downloadable_by(&Caller::from_headers(state, headers).await?.0, id, corrupt).await?
        }
    };
    Ok((file, link))
}

/// `302` to S3 itself, presigned for the request's method with the headers the API would have sent.
async fn redirect(
    state: &AppState,
    method: &Method,
    file: &DownloadableFile,
    content_type: &str,
    disposition: &str,
    link: Option<&Link>,
    now: SystemTime,
) -> Result<Response, ApiError> {
    let options = PresignedRead {
        method: if *method == Method::HEAD { ReadMethod::Head } else { ReadMethod::Get },
        content_type,
        content_disposition: disposition,
        cache_control: state.downloads.cache_control.to_str().unwrap_or_default(),
        ttl: presign_ttl(state, link, now),
    };
    let presigned = state.uploads.presign_download(file, options).await?;
    let headers = [
        (header::LOCATION, header_value(&presigned.url)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    Ok((StatusCode::FOUND, headers).into_response())
}

/// What every answer about the file carries, whatever its status: its validators and, once known, its digest.
fn validator_headers(file: &DownloadableFile) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, header_value(&file.etag));
    headers.insert(header::LAST_MODIFIED, header_value(&httpdate::fmt_http_date(file.last_modified.into())));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(digest) = &file.repr_digest {
        headers.insert(REPR_DIGEST.clone(), header_value(digest));
    }
    headers
}

/// RFC 9110 §13.2.2 against the file's recorded ETag and completion time: no S3 call.
fn evaluate_conditions(headers: &HeaderMap, file: &DownloadableFile) -> Precondition {
    let (if_match, if_none_match) =
        (joined_value(headers, &header::IF_MATCH), joined_value(headers, &header::IF_NONE_MATCH));
    let conditions = Conditions {
        if_match: if_match.as_deref(),
        if_none_match: if_none_match.as_deref(),
        if_modified_since: single_value(headers, &header::IF_MODIFIED_SINCE),
        if_unmodified_since: single_value(headers, &header::IF_UNMODIFIED_SINCE),
        if_range: single_value(headers, &header::IF_RANGE),
    };
    conditional::evaluate(&conditions, &Validators { etag: &file.etag, last_modified: file.last_modified.into() })
}

fn precondition_failed(headers: HeaderMap) -> Response {
    let error = ApiError::request(
        StatusCode::PRECONDITION_FAILED,
        ErrorCode::PreconditionFailed,
        "If-Match or If-Unmodified-Since does not hold for the current file",
    );
    with_headers(error.into_response(), headers)
}

fn range_not_satisfiable(mut headers: HeaderMap, size: u64) -> Response {
    let error = ApiError::request(
        StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::RangeNotSatisfiable,
        format!("no requested range starts inside the file's {size} bytes"),
    );
    headers.insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}")));
    with_headers(error.into_response(), headers)
}

/// Takes a stream slot (the body keeps it until dropped) and opens the bytes from S3 before answering, so a
/// failure to start is still a 5xx.
async fn open_body(
    state: &AppState,
    file: DownloadableFile,
    outcome: RangeOutcome,
    content_type: &str,
    mut headers: HeaderMap,
) -> Result<Response, ApiError> {
    let slot = state.downloads.try_start_stream().ok_or_else(|| {
        ApiError::request(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyDownloads,
            "too many downloads at once; retry",
        )
    })?;
    let (uploads, timeout) = (&state.uploads, state.downloads.first_byte_timeout);
    let (status, type_header, length, bytes) = match outcome {
        RangeOutcome::Full if file.size == 0 => {
            return Ok(body_response(StatusCode::OK, headers, header_value(content_type), 0, Body::empty()));
        }
        RangeOutcome::Full => {
            (StatusCode::OK, content_type.to_string(), file.size, uploads.read(&file, None, timeout).await?)
        }
        RangeOutcome::Single(range) => {
            let bytes = uploads.read(&file, Some(range), timeout).await?;
            headers.insert(header::CONTENT_RANGE, header_value(&range.content_range(file.size)));
            (StatusCode::PARTIAL_CONTENT, content_type.to_string(), range.byte_count(), bytes)
        }
        RangeOutcome::Multiple(ranges) => {
            let multipart = Multipart::new(Uuid::new_v4().simple().to_string(), content_type, file.size);
            let (length, type_header) = (multipart.content_length(&ranges), multipart.content_type());
            let bytes = body::multipart(uploads.clone(), file, multipart, ranges, timeout).await?;
            (StatusCode::PARTIAL_CONTENT, type_header, length, bytes)
        }
        RangeOutcome::Unsatisfiable => unreachable!("answered 416 before any body is opened"),
    };
    Ok(body_response(status, headers, header_value(&type_header), length, body::streaming(bytes, slot, length)))
}

/// A presigned URL lives `DOWNLOAD_URL_TTL`, and never longer than the link it was reached through.
fn presign_ttl(state: &AppState, link: Option<&Link>, now: SystemTime) -> std::time::Duration {
    let ttl = state.downloads.url_ttl;
    link.map_or(ttl, |link| ttl.min(link.remaining(now)).max(std::time::Duration::from_secs(1)))
}

fn body_response(
    status: StatusCode,
    headers: HeaderMap,
    content_type: HeaderValue,
    length: u64,
    body: Body,
) -> Response {
    let mut response = with_headers((status, body).into_response(), headers);
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

fn with_headers(mut response: Response, headers: HeaderMap) -> Response {
    response.headers_mut().extend(headers);
    response
}

/// A header that must appear once; a repeated one is treated as absent (invalid).
fn single_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// A list header, whose lines may be split over several fields: joined with commas (RFC 9110 §5.3).
fn joined_value(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("")).collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
