//! The bodies of file responses: S3's bytes streamed as they arrive, one ranged read per part of a
//! multi-range answer, each holding its download slot until sent or dropped.

use std::time::Duration;

use axum::body::Body;
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::OwnedSemaphorePermit;
use uploads::service::{DownloadableFile, Uploads};
use uploads::storage::ObjectStream;

use super::multipart::Multipart;
use super::range::ByteRange;
use crate::error::ApiError;

/// Each part is its own ranged GetObject, opened when the previous part is sent. The first is opened before
/// answering, so an S3 failure still becomes a 5xx instead of a truncated 206.
pub async fn multipart(
    uploads: Uploads,
    file: DownloadableFile,
    multipart: Multipart,
    ranges: Vec<ByteRange>,
    timeout: Duration,
) -> Result<ObjectStream, ApiError> {
    let first = uploads.read(&file, Some(ranges[0]), timeout).await?;
    let head = stream::once(std::future::ready(Ok(multipart.part_header(0, &ranges[0])))).chain(first);
    let closing = stream::once(std::future::ready(Ok(multipart.closing())));
    let later_parts: Vec<(usize, ByteRange)> = ranges.into_iter().enumerate().skip(1).collect();
    let rest = stream::iter(later_parts)
        .then(move |(index, range)| {
            let (uploads, file, header) = (uploads.clone(), file.clone(), multipart.part_header(index, &range));
            async move {
                let bytes = uploads.read(&file, Some(range), timeout).await.map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(stream::once(std::future::ready(Ok(header))).chain(bytes))
            }
        })
        .try_flatten();
    Ok(Box::pin(head.chain(rest).chain(closing)))
}

/// The body that streams S3's bytes while holding the download slot. An error after the first byte ends the
/// response early: the connection closes, which is how HTTP/1.1 signals truncation, and the client resumes
/// with a Range request.
pub fn streaming(bytes: ObjectStream, slot: OwnedSemaphorePermit, length: u64) -> Body {
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
