//! The bodies of file responses: S3's bytes streamed as they arrive, one ranged read per part of a
//! multi-range answer, each holding its download slot until sent or dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use tokio::sync::OwnedSemaphorePermit;
use uploads::metrics::DownloadStream;
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
    let stream = DownloadStream::start();
    let mut progress = Progress { _slot: slot, stream, length, sent: 0, span: tracing::Span::current() };
    Body::from_stream(Gathered::new(bytes).map(move |chunk| {
        let chunk = chunk.inspect_err(|err| {
            progress.span.in_scope(|| tracing::warn!(error = %err, "S3 stream failed mid-response; closing"));
        })?;
        progress.sent += chunk.len() as u64;
        progress.stream.sent(chunk.len() as u64);
        Ok::<_, std::io::Error>(chunk)
    }))
}

/// How many bytes a body holds back before handing them to hyper, which writes the frames it is given in a
/// row with one `writev` (up to 16 frames, ~400 KiB). S3's bytes arrive about 100 KiB a read; handing each
/// over as it comes made one write per read, three times nginx's count for the same bytes (bench/PROFILE.md).
const GATHER_BYTES: usize = 256 * 1024;

/// S3's chunks, held until `GATHER_BYTES` are in hand (or the stream ends or fails), then released one after
/// another without waiting, so hyper sees them ready together. Nothing is copied: the chunks are queued as
/// they are, and at most `GATHER_BYTES` plus one chunk is held per download.
struct Gathered {
    inner: ObjectStream,
    queue: VecDeque<std::io::Result<Bytes>>,
    queued: usize,
    releasing: bool,
    ended: bool,
    /// The body has waited once before releasing an error (see `poll_next`).
    flushed: bool,
}

impl Gathered {
    fn new(inner: ObjectStream) -> Self {
        Self { inner, queue: VecDeque::new(), queued: 0, releasing: false, ended: false, flushed: false }
    }
}

impl Stream for Gathered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        while !this.releasing && !this.ended {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let failed = item.is_err();
                    this.queued += item.as_ref().map_or(0, Bytes::len);
                    this.queue.push_back(item);
                    this.releasing = failed || this.queued >= GATHER_BYTES;
                }
                Poll::Ready(None) => this.ended = true,
                // The inner stream has registered the waker: the held chunks go with the next ones.
                Poll::Pending => return Poll::Pending,
            }
        }
        // hyper writes what it was handed only once the body waits: wait once before an error, so the bytes
        // that came before it reach the client instead of dying with the connection the error closes.
        if this.queue.front().is_some_and(Result::is_err) && !std::mem::replace(&mut this.flushed, true) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match this.queue.pop_front() {
            Some(item) => {
                this.queued -= item.as_ref().map_or(0, Bytes::len);
                if this.queue.is_empty() {
                    this.releasing = false;
                }
                Poll::Ready(Some(item))
            }
            None => Poll::Ready(None),
        }
    }
}

/// Lives as long as the response body: holds the download slot, counts the stream and its bytes in the
/// metrics, and notes a body dropped unfinished (the client left, or S3 failed), whose S3 read is cancelled with it.
struct Progress {
    _slot: OwnedSemaphorePermit,
    stream: DownloadStream,
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

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use futures::channel::mpsc;

    use super::*;

    fn chunk(byte: u8, len: usize) -> std::io::Result<Bytes> {
        Ok(Bytes::from(vec![byte; len]))
    }

    #[test]
    fn holds_chunks_until_enough_are_in_hand_then_releases_them_in_order() {
        let (tx, rx) = mpsc::unbounded();
        let mut gathered = Gathered::new(Box::pin(rx));
        tx.unbounded_send(chunk(1, 100 * 1024)).unwrap();
        tx.unbounded_send(chunk(2, 100 * 1024)).unwrap();
        assert!(gathered.next().now_or_never().is_none(), "200 KiB is held while S3 has more to send");
        tx.unbounded_send(chunk(3, 100 * 1024)).unwrap();
        for byte in [1, 2, 3] {
            let released = gathered.next().now_or_never().expect("released without waiting");
            assert_eq!(released.unwrap().unwrap()[0], byte);
        }
        tx.unbounded_send(chunk(4, 10)).unwrap();
        assert!(gathered.next().now_or_never().is_none());
        drop(tx);
        assert_eq!(gathered.next().now_or_never().unwrap().unwrap().unwrap()[..], [4; 10], "the tail at the end");
        assert!(gathered.next().now_or_never().unwrap().is_none());
    }

    #[test]
    fn an_error_releases_what_came_before_it() {
        let (tx, rx) = mpsc::unbounded();
        let mut gathered = Gathered::new(Box::pin(rx));
        tx.unbounded_send(chunk(1, 10)).unwrap();
        tx.unbounded_send(Err(std::io::Error::other("S3 failed"))).unwrap();
        assert_eq!(gathered.next().now_or_never().unwrap().unwrap().unwrap()[..], [1; 10]);
        assert!(gathered.next().now_or_never().is_none(), "waits once, so hyper writes the bytes before");
        assert!(gathered.next().now_or_never().unwrap().unwrap().is_err());
    }
}
