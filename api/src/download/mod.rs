//! Downloads: the RFC 9110 range and conditional rules and the signed-link rules as pure modules, plus what
//! every download shares.

pub mod body;
pub mod conditional;
pub mod disposition;
pub mod link;
pub mod multipart;
pub mod range;

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::DownloadConfig;

/// Settings and the stream limit, shared by every download of the process.
#[derive(Clone)]
pub struct Downloads {
    streams: Arc<Semaphore>,
    pub cache_control: HeaderValue,
    pub url_ttl: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Downloads {
    pub fn new(config: &DownloadConfig) -> anyhow::Result<Self> {
        let cache_control = HeaderValue::from_str(&config.cache_control)
            .map_err(|_| anyhow::anyhow!("CACHE_CONTROL {:?} is not a valid header value", config.cache_control))?;
        anyhow::ensure!(config.max_concurrent_downloads > 0, "MAX_CONCURRENT_DOWNLOADS must be at least 1");
        Ok(Self {
            streams: Arc::new(Semaphore::new(config.max_concurrent_downloads)),
            cache_control,
            url_ttl: config.download_url_ttl,
            first_byte_timeout: config.s3_first_byte_timeout,
            idle_timeout: config.download_idle_timeout,
        })
    }

    /// A slot for one streaming response, held by its body until the last byte is sent or the client leaves.
    pub fn try_start_stream(&self) -> Option<OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// Streams not running now; for tests and metrics.
    pub fn idle_slots(&self) -> usize {
        self.streams.available_permits()
    }
}
