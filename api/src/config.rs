//! The API's configuration: the shared sections plus what only the HTTP server needs.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use uploads::config::{ServiceConfig, parse_bind_addr, parse_duration};

use crate::auth::config::AuthConfig;

#[derive(Debug, Clone, Parser)]
#[command(name = "api", about = "Resumable upload service: HTTP API")]
pub struct ApiConfig {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub downloads: DownloadConfig,
    #[command(flatten)]
    pub auth: AuthConfig,

    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", value_name = "BIND_ADDR", default_value = "127.0.0.1:8080", value_parser = parse_bind_addr)]
    pub bind_addr: SocketAddr,

    /// Base URL clients reach the API at, for the links it hands out; default `http://BIND_ADDR`.
    #[arg(long, env = "PUBLIC_BASE_URL", value_name = "PUBLIC_BASE_URL", value_parser = parse_base_url)]
    pub public_base_url: Option<String>,

    /// On SIGTERM, how long in-flight requests may take before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_GRACE", value_name = "SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl ApiConfig {
    pub fn public_base_url(&self) -> String {
        self.public_base_url.clone().unwrap_or_else(|| format!("http://{}", self.bind_addr))
    }
}

fn parse_base_url(value: &str) -> Result<String, String> {
    let trimmed = value.trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) || trimmed.len() < "http://x".len() {
        return Err("expected an absolute http(s) URL such as https://uploads.example.com".into());
    }
    Ok(trimmed.to_string())
}

/// How `GET /v1/files/{id}` serves completed uploads.
#[derive(Debug, Clone, clap::Args)]
pub struct DownloadConfig {
    /// Downloads streamed at once by this process; one more is answered 503 with Retry-After.
    #[arg(long, env = "MAX_CONCURRENT_DOWNLOADS", value_name = "MAX_CONCURRENT_DOWNLOADS", default_value_t = 256)]
    pub max_concurrent_downloads: usize,

    /// `Cache-Control` of file responses. The bytes behind a file id never change, hence `immutable`;
    /// `private` keeps shared caches from serving one client's file to another.
    #[arg(long, env = "CACHE_CONTROL", value_name = "CACHE_CONTROL", default_value = DEFAULT_CACHE_CONTROL)]
    pub cache_control: String,

    /// Lifetime of the presigned S3 URL that `?redirect=true` answers with.
    #[arg(long, env = "DOWNLOAD_URL_TTL", value_name = "DOWNLOAD_URL_TTL", default_value = "5m", value_parser = parse_duration)]
    pub download_url_ttl: Duration,

    /// How long S3 may take to start answering a read before the download fails with 504.
    #[arg(long, env = "S3_FIRST_BYTE_TIMEOUT", value_name = "S3_FIRST_BYTE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub s3_first_byte_timeout: Duration,
}

pub const DEFAULT_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";

impl Default for DownloadConfig {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: 256,
            cache_control: DEFAULT_CACHE_CONTROL.into(),
            download_url_ttl: Duration::from_secs(300),
            s3_first_byte_timeout: Duration::from_secs(30),
        }
    }
}
