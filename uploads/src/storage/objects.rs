//! Finished objects: ranged, conditional GetObject streamed as it arrives, presigned GETs and HEADs, hashing a whole
//! object as a stream (objects reach 5 TiB: never in memory), and deleting one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use sha2::Digest;

use super::{PresignedRequest, Storage, StorageError};
use crate::domain::{ByteRange, Sha256Digest};

/// An object's bytes as S3 sends them, chunk by chunk; nothing is buffered beyond the chunk in hand.
/// Dropping it closes the S3 connection, which is how a client's disconnect cancels the read.
pub type ObjectStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A whole object's SHA-256 and the number of bytes hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHash {
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// Which read a presigned URL is for: SigV4 signs the method, so a URL presigned for GET answers a HEAD 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMethod {
    Get,
    Head,
}

/// Options of a presigned read, signed into the URL so S3 answers with the headers the API would.
#[derive(Debug, Clone)]
pub struct PresignedRead<'a> {
    pub method: ReadMethod,
    pub content_type: &'a str,
    pub content_disposition: &'a str,
    pub cache_control: &'a str,
    pub ttl: Duration,
}

impl Storage {
    /// GetObject for `range` (or all of it), only if the object still has `etag`: S3 answers 412 rather than
    /// send other bytes than those the caller's headers describe. Errors here happen before any byte is sent;
    /// S3 must start answering within `timeout`, and then never stay silent longer than that (the body
    /// itself may take as long as it takes): a stall ends the stream with an error.
    pub async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
        etag: &str,
        timeout: Duration,
    ) -> Result<ObjectStream, StorageError> {
        let request = self
            .reads
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.as_ref().map(ByteRange::to_header))
            .if_match(etag)
            .send();
        let out = tokio::time::timeout(timeout, request)
            .await
            .map_err(|_| StorageError::Timeout(format!("GetObject sent nothing within {timeout:?}")))??;
        Ok(Box::pin(StallGuard {
            body: Box::pin(out.body),
            idle: timeout,
            timer: None,
            progressed: false,
            done: false,
        }))
    }

    /// A short-lived GET or HEAD URL straight to S3; it honours `Range` and conditional headers itself.
    pub async fn presign_read(&self, key: &str, options: PresignedRead<'_>) -> Result<PresignedRequest, StorageError> {
        let presigning = PresigningConfig::expires_in(options.ttl).map_err(|e| StorageError::Presign(e.to_string()))?;
        let expires_at = DateTime::<Utc>::from(SystemTime::now() + options.ttl);
        // GetObject and HeadObject take the same options through builders of different types.
        macro_rules! presign {
            ($operation:ident) => {
                self.presigner
                    .$operation()
                    .bucket(&self.bucket)
                    .key(key)
                    .response_content_type(options.content_type)
                    .response_content_disposition(options.content_disposition)
                    .response_cache_control(options.cache_control)
                    .presigned(presigning)
                    .await
                    .map_err(|e| StorageError::Presign(format!("{e:?}")))
            };
        }
        let presigned = match options.method {
            ReadMethod::Get => presign!(get_object),
            ReadMethod::Head => presign!(head_object),
        };
        let request = presigned?;
        Ok(PresignedRequest {
            url: request.uri().to_string(),
            method: request.method().to_string(),
            headers: vec![],
            expires_at,
        })
    }

    /// Streams the object through SHA-256, one network buffer at a time.
    pub async fn hash_object(&self, key: &str) -> Result<ObjectHash, StorageError> {
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await?;
        let mut body = out.body;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(bytes) = body.try_next().await.map_err(|e| StorageError::Unreachable(format!("{e:?}")))? {
            size += bytes.len() as u64;
            hasher.update(&bytes);
        }
        Ok(ObjectHash { sha256: Sha256Digest::from_bytes(hasher.finalize().into()), size })
    }

    /// Deletes the object; one that is not there is already what was wanted.
    pub async fn delete_object(&self, key: &str) -> Result<(), StorageError> {
        self.calls.record(super::S3Operation::DeleteObject);
        match self.client.delete_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(()),
            Err(err) => match StorageError::from(err) {
                StorageError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }
}

/// S3's body, ended with a `TimedOut` error when S3 sends nothing for `idle`. The timer is armed when the body
/// first waits and re-armed only when it fires after progress, so a steady stream costs no clock read per
/// frame (the SDK's stalled-stream protection, disabled on the read client, books every frame).
struct StallGuard {
    body: Pin<Box<aws_sdk_s3::primitives::ByteStream>>,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A chunk arrived since the timer was (re)armed.
    progressed: bool,
    done: bool,
}

impl Stream for StallGuard {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.body.as_mut().poll_next(cx) {
            self.progressed = true;
            self.done = item.is_none();
            return Poll::Ready(item.map(|chunk| chunk.map_err(std::io::Error::other)));
        }
        let idle = self.idle;
        let this = &mut *self;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        while timer.as_mut().poll(cx).is_ready() {
            if !std::mem::take(&mut this.progressed) {
                this.done = true;
                let message = format!("S3 sent nothing for {idle:?} in the middle of an object");
                return Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message))));
            }
            timer.as_mut().reset(tokio::time::Instant::now() + idle);
        }
        Poll::Pending
    }
}
