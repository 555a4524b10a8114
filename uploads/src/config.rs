//! Configuration read once at startup from the environment (or the matching flags).
//!
//! A missing or invalid value stops startup with one line that names the variable, not clap's usage page.

use std::net::SocketAddr;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, ValueEnum};

/// What both binaries need: the database, the bucket, the upload rules and logging.
#[derive(Debug, Clone, Args)]
pub struct ServiceConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub policy: UploadPolicy,
    #[command(flatten)]
    pub log: LogConfig,
}

/// Where the database lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_name = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,

    /// Longest one SQL statement may run (Postgres cancels it); every statement of the service is short.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT", value_name = "DATABASE_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub database_statement_timeout: Duration,

    /// Longest a request waits for a pooled connection (connecting included) before it answers 503: while
    /// Postgres is down or every connection is busy, requests fail this fast instead of queueing.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT", value_name = "DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration)]
    pub database_acquire_timeout: Duration,
}

/// Where the bytes live.
#[derive(Debug, Clone, Args)]
pub struct S3Config {
    /// S3 endpoint URL; unset means AWS's default resolution.
    #[arg(long, env = "S3_ENDPOINT", value_name = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    #[arg(long, env = "S3_REGION", value_name = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    #[arg(long, env = "S3_BUCKET", value_name = "S3_BUCKET")]
    pub s3_bucket: String,

    /// Path-style addressing (`endpoint/bucket/key`), needed by LocalStack and most S3-compatible stores.
    #[arg(long, env = "S3_FORCE_PATH_STYLE", value_name = "S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,

    /// Longest an S3 request may take, retries included, until S3 starts answering (ListParts, Head, Abort,
    /// Create, a read's first byte...): a hung S3 becomes a 504 instead of a hung request.
    #[arg(long, env = "S3_OPERATION_TIMEOUT", value_name = "S3_OPERATION_TIMEOUT", default_value = "20s", value_parser = parse_positive_duration)]
    pub s3_operation_timeout: Duration,

    /// Longest a CompleteMultipartUpload may take: S3 may need minutes to assemble 10,000 parts.
    #[arg(long, env = "S3_COMPLETE_TIMEOUT", value_name = "S3_COMPLETE_TIMEOUT", default_value = "10m", value_parser = parse_positive_duration)]
    pub s3_complete_timeout: Duration,
}

/// How uploads behave; read by both binaries since the worker expires what the API issued.
#[derive(Debug, Clone, Args)]
pub struct UploadPolicy {
    /// Lifetime of a presigned chunk URL.
    #[arg(long, env = "PRESIGN_TTL", value_name = "PRESIGN_TTL", default_value = "15m", value_parser = parse_duration)]
    pub presign_ttl: Duration,

    /// An upload not completed within this time of its last activity expires.
    #[arg(long, env = "UPLOAD_TTL", value_name = "UPLOAD_TTL", default_value = "24h", value_parser = parse_duration)]
    pub upload_ttl: Duration,

    /// How long a completion holds its upload without renewing the hold (it renews every third of this while it
    /// runs): once a completion's process dies, the next `complete` or a worker takes over after this long.
    #[arg(long, env = "COMPLETION_LEASE", value_name = "COMPLETION_LEASE", default_value = "15s", value_parser = parse_positive_duration)]
    pub completion_lease: Duration,

    /// Largest file accepted, in bytes (S3's own limit is 5 TiB).
    #[arg(long, env = "MAX_UPLOAD_SIZE", value_name = "MAX_UPLOAD_SIZE", default_value_t = 5 * 1024 * 1024 * 1024 * 1024)]
    pub max_upload_size: u64,

    /// Uploads one owner may have in `uploading` at once; one more is answered 429.
    #[arg(long, env = "MAX_ACTIVE_UPLOADS", value_name = "MAX_ACTIVE_UPLOADS", default_value_t = 100)]
    pub max_active_uploads: u64,

    /// Bytes (the sum of the declared sizes) one owner may have in `uploading` uploads at once; also caps one
    /// upload's size. The default lets two uploads of the largest size run at once.
    #[arg(long, env = "MAX_ACTIVE_BYTES", value_name = "MAX_ACTIVE_BYTES", default_value_t = 10 * 1024 * 1024 * 1024 * 1024)]
    pub max_active_bytes: u64,
}

impl UploadPolicy {
    pub fn active_limits(&self) -> crate::repository::ActiveLimits {
        crate::repository::ActiveLimits { max_uploads: self.max_active_uploads, max_bytes: self.max_active_bytes }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// What logging looks like.
#[derive(Debug, Clone, Args)]
pub struct LogConfig {
    /// `json` for production, `pretty` for a terminal.
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
}

/// A secret read from the environment: `Debug` never shows it, so no config dump or log line carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret given inline (`NAME`) or as a file holding it (`NAME_FILE`, the Docker/Kubernetes way; the
    /// trailing newline an editor leaves is not part of it), at least `min_bytes` long. `None` when neither is
    /// set; an unreadable file, both at once or a short secret is an error naming the variable.
    pub fn load(
        name: &str,
        inline: Option<&Secret>,
        file: Option<&std::path::Path>,
        min_bytes: usize,
    ) -> anyhow::Result<Option<Secret>> {
        let (secret, source) = match (inline, file) {
            (Some(_), Some(_)) => anyhow::bail!("set {name} or {name}_FILE, not both"),
            (Some(secret), None) => (secret.clone(), name.to_string()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("{name}_FILE {}: {e}", path.display()))?;
                (Secret(text.trim().to_string()), format!("{name}_FILE"))
            }
            (None, None) => return Ok(None),
        };
        anyhow::ensure!(
            secret.0.len() >= min_bytes,
            "{source} must hold at least {min_bytes} bytes (make one with: openssl rand -hex 32)"
        );
        Ok(Some(secret))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("{e} (examples: 90s, 15m, 24h)"))
}

/// A duration that must be more than zero: a zero lease or poll interval would spin.
pub fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    match parse_duration(value)? {
        Duration::ZERO => Err("must be more than zero".into()),
        duration => Ok(duration),
    }
}

/// Parses `T` from the environment and arguments, or exits with one line naming what is wrong.
pub fn load<T: Parser>() -> T {
    match T::try_parse() {
        Ok(config) => config,
        Err(err) if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => err.exit(),
        Err(err) => {
            eprintln!("configuration error: {}", one_line(&err));
            std::process::exit(2);
        }
    }
}

fn one_line(err: &clap::Error) -> String {
    let names = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => vec![env_name(s)],
        Some(ContextValue::Strings(v)) => v.iter().map(|s| env_name(s)).collect(),
        _ => vec![],
    };
    match err.kind() {
        ErrorKind::MissingRequiredArgument => format!("{} must be set", names(ContextKind::InvalidArg).join(", ")),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let value = match err.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let reason = err.source().map(|s| format!(": {s}")).unwrap_or_default();
            format!("{} has an invalid value {value:?}{reason}", names(ContextKind::InvalidArg).join(", "))
        }
        _ => err.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_string(),
    }
}

/// `--presign-ttl <PRESIGN_TTL>` -> `PRESIGN_TTL`: every argument's value name is its variable's name.
fn env_name(arg: &str) -> String {
    match (arg.find('<'), arg.rfind('>')) {
        (Some(start), Some(end)) if start < end => arg[start + 1..end].to_string(),
        _ => arg.to_string(),
    }
}

use std::error::Error as _;

/// Where a listening socket goes.
pub fn parse_bind_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|e| format!("{e} (example: 127.0.0.1:8080)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Example {
        #[command(flatten)]
        policy: UploadPolicy,
        #[arg(long, value_name = "S3_BUCKET")]
        s3_bucket: String,
    }

    #[test]
    fn missing_value_names_the_variable() {
        let err = Example::try_parse_from(["x"]).unwrap_err();
        assert_eq!(one_line(&err), "S3_BUCKET must be set");
    }

    #[test]
    fn invalid_value_names_the_variable_and_the_reason() {
        let err = Example::try_parse_from(["x", "--s3-bucket", "b", "--presign-ttl", "soon"]).unwrap_err();
        let line = one_line(&err);
        assert!(line.starts_with("PRESIGN_TTL has an invalid value \"soon\""), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert!(parse_duration("15").is_err());
    }
}
