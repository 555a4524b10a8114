//! The API's configuration: the shared sections plus what only the HTTP server needs.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use uploads::config::{DatabaseConfig, LogConfig, S3Config, UploadPolicy, parse_bind_addr, parse_duration};

#[derive(Debug, Clone, Parser)]
#[command(name = "api", about = "Resumable upload service: HTTP API")]
pub struct ApiConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub policy: UploadPolicy,
    #[command(flatten)]
    pub log: LogConfig,

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
