//! `GET` and `HEAD /v1/files/{id}`: a completed upload, with ranges and conditions per RFC 9110, streamed
//! from S3 as it arrives. The rules live in [`crate::download`]; this module only wires them to HTTP.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt, stream};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use uploads::domain::Owner;
use uploads::error_code::ErrorCode;
use uploads::service::DownloadableFile;
use uploads::service::Uploads;
use uploads::storage::{ObjectRange, ObjectStream, PresignedGet};
use uuid::Uuid;

use crate::auth::Caller;
use crate::download::conditional::{self, Conditions, Precondition, Validators};
use crate::download::disposition::Disposition;
use crate::download::multipart::Multipart;
use crate::download::range::{self, ByteRange, RangeOutcome};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    #[serde(default)]
    disposition: Disposition,
    /// Answer 302 to a presigned S3 URL instead of proxying the bytes.
    #[serde(default)]
    redirect: bool,
}

pub async fn download(
    State(state): State<AppState>,
    Caller(owner): Caller,
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
    let response = respond(&state, &owner, &method, id, &query, &headers, range_header)
        .await
        .unwrap_or_else(|e| e.into_response());
    // The status beside the Range asked for: what an operator (and the browser test) reads to see seeking.
    tracing::info!(status = response.status().as_u16(), range = range_header.unwrap_or(""), "file answered");
    response
}

/// RFC 9530: the SHA-256 of the whole file, so a client can check what it assembled from ranges.
static REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");

async fn respond(
    state: &AppState,
    owner: &Owner,
    method: &Method,
    id: Uuid,
    query: &FileQuery,
    headers: &HeaderMap,
    range_header: Option<&str>,
) -> Result<Response, ApiError> {
    let uploads = &state.uploads;
    let file = uploads.downloadable_by(owner, id).await?;
    let disposition = query.disposition.header_value(&file.filename);
    let cache_control = &state.downloads.cache_control;
    if query.redirect {
        let options = PresignedGet {
            content_type: &file.content_type,
            content_disposition: &disposition,
            cache_control: cache_control.to_str().unwrap_or_default(),
            ttl: state.downloads.url_ttl,
        };
        let presigned = uploads.presign_download(&file, options).await?;
        return Ok(redirect(&presigned.url));
    }

    let last_modified = SystemTime::from(file.last_modified);
    let validators = Validators { etag: &file.etag, last_modified };
    let mut common = HeaderMap::new();
    common.insert(header::ETAG, header_value(&file.etag));
    common.insert(header::LAST_MODIFIED, header_value(&httpdate::fmt_http_date(last_modified)));
    common.insert(header::CACHE_CONTROL, cache_control.clone());
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(digest) = &file.repr_digest {
        common.insert(REPR_DIGEST.clone(), header_value(digest));
    }

    let (if_match, if_none_match) =
        (joined_value(headers, &header::IF_MATCH), joined_value(headers, &header::IF_NONE_MATCH));
    let conditions = Conditions {
        if_match: if_match.as_deref(),
        if_none_match: if_none_match.as_deref(),
        if_modified_since: single_value(headers, &header::IF_MODIFIED_SINCE),
        if_unmodified_since: single_value(headers, &header::IF_UNMODIFIED_SINCE),
        if_range: single_value(headers, &header::IF_RANGE),
    };
    let honor_range = match conditional::evaluate(&conditions, &validators) {
        Precondition::Failed => {
            let error = ApiError::request(
                StatusCode::PRECONDITION_FAILED,
                ErrorCode::PreconditionFailed,
                "If-Match or If-Unmodified-Since does not hold for the current file",
            );
            return Ok(with_headers(error.into_response(), common));
        }
        Precondition::NotModified => return Ok(with_headers(StatusCode::NOT_MODIFIED.into_response(), common)),
        Precondition::Proceed { honor_range } => honor_range,
    };

    // Range handling is defined for GET only (RFC 9110 §14.2): HEAD describes the whole object.
    let outcome = if *method == Method::GET && honor_range {
        range::resolve(range_header, file.size)
    } else {
        RangeOutcome::Full
    };
    if outcome == RangeOutcome::Unsatisfiable {
        let error = ApiError::request(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::RangeNotSatisfiable,
            format!("no requested range starts inside the file's {} bytes", file.size),
        );
        let mut response = with_headers(error.into_response(), common);
        response.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{}", file.size)));
        return Ok(response);
    }

    common.insert(header::CONTENT_DISPOSITION, header_value(&disposition));
    let mut content_type = header_value(&file.content_type);
    if *method == Method::HEAD {
        return Ok(body_response(StatusCode::OK, common, content_type, file.size, Body::empty()));
    }
    // Past this point bytes flow from S3: take a stream slot, which the body keeps until it is dropped.
    let slot = state.downloads.try_start_stream().ok_or_else(|| {
        ApiError::request(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyDownloads,
            "too many downloads at once; retry",
        )
    })?;
    let timeout = state.downloads.first_byte_timeout;
    let (status, length, bytes) = match outcome {
        RangeOutcome::Full if file.size == 0 => {
            return Ok(body_response(StatusCode::OK, common, content_type, 0, Body::empty()));
        }
        RangeOutcome::Full => (StatusCode::OK, file.size, uploads.read(&file, None, timeout).await?),
        RangeOutcome::Single(range) => {
            let bytes = uploads.read(&file, Some(object_range(range)), timeout).await?;
            common.insert(header::CONTENT_RANGE, header_value(&range.content_range(file.size)));
            (StatusCode::PARTIAL_CONTENT, range.byte_count(), bytes)
        }
        RangeOutcome::Multiple(ranges) => {
            let multipart = Multipart::new(Uuid::new_v4().simple().to_string(), &file.content_type, file.size);
            let length = multipart.content_length(&ranges);
            content_type = header_value(&multipart.content_type());
            (
                StatusCode::PARTIAL_CONTENT,
                length,
                multipart_body(uploads.clone(), file, multipart, ranges, timeout).await?,
            )
        }
        RangeOutcome::Unsatisfiable => unreachable!("answered 416 above"),
    };
    Ok(body_response(status, common, content_type, length, stream_body(bytes, slot, length)))
}

/// Each part is its own ranged GetObject, opened when the previous part is sent. The first is opened before
/// answering, so an S3 failure still becomes a 5xx instead of a truncated 206.
async fn multipart_body(
    uploads: Uploads,
    file: DownloadableFile,
    multipart: Multipart,
    ranges: Vec<ByteRange>,
    timeout: Duration,
) -> Result<ObjectStream, ApiError> {
    let first = uploads.read(&file, Some(object_range(ranges[0])), timeout).await?;
    let head = stream::once(std::future::ready(Ok(multipart.part_header(0, &ranges[0])))).chain(first);
    let closing = stream::once(std::future::ready(Ok(multipart.closing())));
    let later_parts: Vec<(usize, ByteRange)> = ranges.into_iter().enumerate().skip(1).collect();
    let rest = stream::iter(later_parts)
        .then(move |(index, range)| {
            let (uploads, file, header) = (uploads.clone(), file.clone(), multipart.part_header(index, &range));
            async move {
                let bytes =
                    uploads.read(&file, Some(object_range(range)), timeout).await.map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(stream::once(std::future::ready(Ok(header))).chain(bytes))
            }
        })
        .try_flatten();
    Ok(Box::pin(head.chain(rest).chain(closing)))
}

/// The body that streams S3's bytes while holding the download slot. An error after the first byte ends the
/// response early: the connection closes, which is how HTTP/1.1 signals truncation, and the client resumes
/// with a Range request.
fn stream_body(bytes: ObjectStream, slot: OwnedSemaphorePermit, length: u64) -> Body {
    let mut progress = Progress { _slot: slot, length, sent: 0, span: tracing::Span::current() };
    Body::from_stream(bytes.map(move |chunk| {
        let chunk = chunk.inspect_err(|err| {
            progress.span.in_scope(|| tracing::warn!(error = %err, "S3 stream failed mid-response; closing"));
        })?;
        progress.sent += chunk.len() as u64;
        Ok::<_, std::io::Error>(chunk)
    }))
}

/// Lives as long as the response body: holds the download slot, and notes a body dropped unfinished
/// (the client left, or S3 failed), whose S3 read is cancelled with it.
struct Progress {
    _slot: OwnedSemaphorePermit,
    length: u64,
    sent: u64,
    span: tracing::Span,
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.sent < self.length {
            let (sent, length) = (self.sent, self.length);
            self.span.in_scope(|| tracing::info!(sent, length, "download ended early; S3 read cancelled"));
        }
    }
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

fn redirect(url: &str) -> Response {
    let headers =
        [(header::LOCATION, header_value(url)), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    (StatusCode::FOUND, headers).into_response()
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

fn object_range(range: ByteRange) -> ObjectRange {
    ObjectRange { first: range.start, last: range.end }
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
