//! The API's configuration: the shared sections plus what only the HTTP server needs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use uploads::config::{Secret, ServiceConfig, parse_bind_addr, parse_duration};

use crate::auth::config::AuthConfig;
use crate::download::link::LinkKey;

#[derive(Debug, Clone, Parser)]
#[command(name = "api", about = "Resumable upload service: HTTP API")]
pub struct ApiConfig {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub downloads: DownloadConfig,
    #[command(flatten)]
    pub links: LinkConfig,
    #[command(flatten)]
    pub http: HttpConfig,
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
    /// What one value cannot say alone. Listening on every interface means clients reach the API by some other
    /// name than the bind address, so the links it hands out need that name.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.public_base_url.is_some() || !self.bind_addr.ip().is_unspecified(),
            "PUBLIC_BASE_URL must be set when BIND_ADDR is {} (links would name an address no client can reach)",
            self.bind_addr
        );
        Ok(())
    }

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

    /// A download whose client reads nothing for this long is closed, freeing its stream slot.
    #[arg(long, env = "DOWNLOAD_IDLE_TIMEOUT", value_name = "DOWNLOAD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub download_idle_timeout: Duration,
}

pub const DEFAULT_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";

impl Default for DownloadConfig {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: 256,
            cache_control: DEFAULT_CACHE_CONTROL.into(),
            download_url_ttl: Duration::from_secs(300),
            s3_first_byte_timeout: Duration::from_secs(30),
            download_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Signed links to files (`POST /v1/files/{id}/links`, and the `downloadUrl` of a completed upload).
#[derive(Debug, Clone, clap::Args)]
pub struct LinkConfig {
    /// Key of the links' HMAC-SHA256, at least 32 bytes (e.g. `openssl rand -base64 32`). Rotating it revokes
    /// every link handed out.
    #[arg(long, env = "LINK_SIGNING_KEY", value_name = "LINK_SIGNING_KEY", hide_env_values = true)]
    pub link_signing_key: Option<Secret>,

    /// A file holding the key instead (a trailing newline is ignored).
    #[arg(long, env = "LINK_SIGNING_KEY_FILE", value_name = "LINK_SIGNING_KEY_FILE")]
    pub link_signing_key_file: Option<PathBuf>,

    /// Longest lifetime a client may ask for a link.
    #[arg(long, env = "MAX_LINK_TTL", value_name = "MAX_LINK_TTL", default_value = "7d", value_parser = parse_positive_duration)]
    pub max_link_ttl: Duration,

    /// Lifetime of the `downloadUrl` in the answers of complete and status, and of a link asked for without
    /// `expiresIn`.
    #[arg(long, env = "DOWNLOAD_LINK_TTL", value_name = "DOWNLOAD_LINK_TTL", default_value = "1h", value_parser = parse_positive_duration)]
    pub download_link_ttl: Duration,

    /// Lifetime of a Companion endpoint (`POST /v1/uppy-endpoints`): Uppy's access to its owner's uploads,
    /// signed with the link key. Past it every route under the endpoint answers 401: ask for a new one.
    #[arg(long, env = "UPPY_ENDPOINT_TTL", value_name = "UPPY_ENDPOINT_TTL", default_value = "1h", value_parser = parse_positive_duration)]
    pub uppy_endpoint_ttl: Duration,
}

/// Shortest link-signing key accepted: as long as the HMAC-SHA256 output.
const MIN_LINK_KEY_BYTES: usize = 32;

impl LinkConfig {
    /// The key, from `LINK_SIGNING_KEY` or `LINK_SIGNING_KEY_FILE`: there is no default, so a deployment never
    /// signs with a key anyone could know.
    pub fn signing_key(&self) -> anyhow::Result<LinkKey> {
        let secret = Secret::load(
            "LINK_SIGNING_KEY",
            self.link_signing_key.as_ref(),
            self.link_signing_key_file.as_deref(),
            MIN_LINK_KEY_BYTES,
        )?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "LINK_SIGNING_KEY (or LINK_SIGNING_KEY_FILE) must be set: a key of at least 32 bytes that signs file links"
            )
        })?;
        let key = LinkKey::new(secret.expose().as_bytes()).map_err(|e| anyhow::anyhow!("LINK_SIGNING_KEY {e}"))?;
        anyhow::ensure!(
            self.download_link_ttl <= self.max_link_ttl,
            "DOWNLOAD_LINK_TTL ({:?}) must not exceed MAX_LINK_TTL ({:?})",
            self.download_link_ttl,
            self.max_link_ttl
        );
        Ok(key)
    }
}

/// The HTTP server: who may call it from another origin, and how long a connection may keep it waiting.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpConfig {
    /// Origins whose pages may call the API (CORS), comma-separated, e.g. `https://app.example.com`.
    /// Empty: none, only pages served by the API itself.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_name = "CORS_ALLOWED_ORIGINS", default_value = "", value_parser = parse_origins)]
    pub cors_allowed_origins: Origins,

    /// How long a client may take to send a request's headers before the connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT", value_name = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,

    /// Longest a JSON route may take, body included (file downloads have no such limit).
    #[arg(long, env = "REQUEST_TIMEOUT", value_name = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,

    /// Serve `GET /metrics` on this address of its own instead of `BIND_ADDR` (which then answers it 404), so
    /// the figures can stay on an internal network. Unset: on `BIND_ADDR`.
    #[arg(long, env = "METRICS_ADDR", value_name = "METRICS_ADDR", value_parser = parse_bind_addr)]
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            cors_allowed_origins: Origins::default(),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            metrics_addr: None,
        }
    }
}

/// Web origins (`scheme://host[:port]`), as browsers send them in `Origin`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

fn parse_origins(value: &str) -> Result<Origins, String> {
    let mut origins = Vec::new();
    for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        let valid = host.is_some_and(|h| {
            !h.is_empty() && !h.contains(['/', '?', '#', '@', '*']) && !h.contains(char::is_whitespace)
        });
        if !valid {
            return Err(format!(
                "{origin:?} is not an origin like https://app.example.com (scheme, host, optional port)"
            ));
        }
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(Origins(origins))
}

fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_everywhere_needs_a_public_base_url() {
        let config = |args: &[&str]| {
            let base = ["api", "--database-url", "postgres://db/x", "--s3-bucket", "b"];
            uploads::config::parse_args_alone::<ApiConfig>(base.iter().chain(args)).unwrap()
        };
        config(&[]).check().unwrap();
        for bind in ["0.0.0.0:8080", "[::]:8080"] {
            let error = config(&["--bind-addr", bind]).check().unwrap_err().to_string();
            assert!(error.starts_with(&format!("PUBLIC_BASE_URL must be set when BIND_ADDR is {bind}")), "{error}");
            assert!(!error.contains('\n'));
            config(&["--bind-addr", bind, "--public-base-url", "https://uploads.example.com"]).check().unwrap();
        }
    }

    #[test]
    fn origins_are_a_comma_separated_list_of_scheme_host_port() {
        assert_eq!(parse_origins("").unwrap(), Origins(vec![]));
        assert_eq!(
            parse_origins(" http://127.0.0.1:8080 , https://App.Example.com/,http://127.0.0.1:8080").unwrap(),
            Origins(vec!["http://127.0.0.1:8080".into(), "https://app.example.com".into()])
        );
        for bad in ["*", "example.com", "https://", "https://a.com/path", "ftp://a.com", "https://*.a.com"] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }

    fn links(key: Option<&str>, file: Option<PathBuf>) -> LinkConfig {
        LinkConfig {
            link_signing_key: key.map(|k| k.parse().unwrap()),
            link_signing_key_file: file,
            max_link_ttl: Duration::from_secs(7 * 86_400),
            download_link_ttl: Duration::from_secs(3600),
            uppy_endpoint_ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_link_key_is_required_long_enough_and_from_one_place() {
        let error = |config: LinkConfig| config.signing_key().unwrap_err().to_string();
        assert!(error(links(None, None)).starts_with("LINK_SIGNING_KEY (or LINK_SIGNING_KEY_FILE) must be set"));
        assert!(error(links(Some("short"), None)).starts_with("LINK_SIGNING_KEY must hold at least 32 bytes"));
        let long = "k".repeat(32);
        assert!(links(Some(&long), None).signing_key().is_ok());
        let path = std::env::temp_dir().join(format!("link-key-{}", std::process::id()));
        std::fs::write(&path, format!("{}\n", "k".repeat(31))).unwrap();
        assert!(
            error(links(None, Some(path.clone()))).starts_with("LINK_SIGNING_KEY_FILE must hold at least 32 bytes")
        );
        std::fs::write(&path, format!("{long}\n")).unwrap();
        assert!(links(None, Some(path.clone())).signing_key().is_ok());
        assert!(error(links(Some(&long), Some(path.clone()))).contains("not both"));
        std::fs::remove_file(&path).unwrap();
        assert!(format!("{:?}", links(Some(&long), None)).contains("redacted"));
        assert!(!format!("{:?}", links(Some(&long), None)).contains(&long));
    }
}
