//! Configuration read once at startup from the environment (or the matching flags).
//!
//! A missing or invalid value stops startup with one line that names the variable, not clap's usage page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, ValueEnum};

mod s3;
pub use s3::{S3Config, Sse};

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
    #[command(flatten)]
    pub webhooks: WebhookConfig,
}

/// Where the database lives.
#[derive(Clone, Args)]
pub struct DatabaseConfig {
    /// Postgres connection URL (it holds the password: never printed).
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// A file holding the URL instead (Docker/Kubernetes secrets; a trailing newline is ignored).
    #[arg(long, env = "DATABASE_URL_FILE", value_name = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

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

impl DatabaseConfig {
    /// The URL, from `DATABASE_URL` or `DATABASE_URL_FILE`.
    pub fn url(&self) -> anyhow::Result<Secret> {
        let inline = self.database_url.clone().map(Secret::from);
        Secret::load("DATABASE_URL", inline.as_ref(), self.database_url_file.as_deref(), 1)?
            .ok_or_else(|| anyhow::anyhow!("DATABASE_URL (or DATABASE_URL_FILE) must be set"))
    }
}

/// Shows where the database is, never its password (a config dump or a panic message would carry it).
impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("database_url_file", &self.database_url_file)
            .field("database_max_connections", &self.database_max_connections)
            .field("database_statement_timeout", &self.database_statement_timeout)
            .finish()
    }
}

/// `postgres://user:pw@host/db?password=pw` -> `postgres://user:***@host/db?***`: the password may sit in the
/// authority or in the query, so both are hidden; what is left says which server and database.
fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, _)) => (base, "?***"),
        None => (url, ""),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => {
            let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => base.to_string(),
    };
    format!("{base}{query}")
}

/// How uploads behave; read by both binaries since the worker expires what the API issued.
#[derive(Debug, Clone, Args)]
pub struct UploadPolicy {
    /// Lifetime of a presigned chunk URL, at most 7 days (SigV4's limit).
    #[arg(long, env = "PRESIGN_TTL", value_name = "PRESIGN_TTL", default_value = "15m", value_parser = parse_presign_ttl)]
    pub presign_ttl: Duration,

    /// An upload not completed within this time of its last activity expires.
    #[arg(long, env = "UPLOAD_TTL", value_name = "UPLOAD_TTL", default_value = "24h", value_parser = parse_duration)]
    pub upload_ttl: Duration,

    /// How long a completion holds its upload without renewing the hold (it renews every third of this while it
    /// runs): once a completion's process dies, the next `complete` or a worker takes over after this long.
    #[arg(long, env = "COMPLETION_LEASE", value_name = "COMPLETION_LEASE", default_value = "15s", value_parser = parse_positive_duration)]
    pub completion_lease: Duration,

    /// Largest file accepted, in bytes (AWS S3's own limit is 5 TiB); at most 10,000 parts of 5 GiB, the most a
    /// multipart upload can hold.
    #[arg(long, env = "MAX_UPLOAD_SIZE", value_name = "MAX_UPLOAD_SIZE", default_value_t = 5 * 1024 * 1024 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=MAX_MULTIPART_BYTES))]
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

/// Where upload events are POSTed. Read by both binaries: the api and the worker record events in the
/// transaction of the state change, the worker delivers them.
#[derive(Clone, Args)]
pub struct WebhookConfig {
    /// The receiver's URL (http or https); unset means no events are recorded or sent.
    #[arg(long, env = "WEBHOOK_URL", value_name = "WEBHOOK_URL", hide_env_values = true)]
    pub webhook_url: Option<String>,

    /// The signing secret: `whsec_<base64>` (Standard Webhooks) or any string of at least 24 bytes.
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        value_name = "WEBHOOK_SECRET",
        hide_env_values = true,
        conflicts_with = "webhook_secret_file"
    )]
    pub webhook_secret: Option<Secret>,

    /// A file holding the signing secret (surrounding whitespace is ignored).
    #[arg(long, env = "WEBHOOK_SECRET_FILE", value_name = "WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<std::path::PathBuf>,

    /// Longest one delivery may take, connecting included; only a 2xx within it counts as delivered.
    #[arg(long, env = "WEBHOOK_TIMEOUT", value_name = "WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub webhook_timeout: Duration,

    /// An event still undelivered this long after it happened is dead: tried no more, kept for an operator.
    #[arg(long, env = "WEBHOOK_MAX_AGE", value_name = "WEBHOOK_MAX_AGE", default_value = "3d", value_parser = parse_positive_duration)]
    pub webhook_max_age: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry credentials (userinfo, a token in its query): only whether it is set is shown.
        f.debug_struct("WebhookConfig")
            .field("webhook_url", &self.webhook_url.as_ref().map(|_| "(set)"))
            .field("webhook_secret", &self.webhook_secret)
            .field("webhook_secret_file", &self.webhook_secret_file)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("webhook_max_age", &self.webhook_max_age)
            .finish()
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            webhooks: WebhookConfig,
        }
        Defaults::parse_from(["defaults"]).webhooks
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

/// SigV4 presigned URLs live at most 7 days.
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// 10,000 parts of at most 5 GiB: the largest object any multipart upload can assemble.
pub const MAX_MULTIPART_BYTES: u64 = 10_000 * 5 * 1024 * 1024 * 1024;

fn parse_presign_ttl(value: &str) -> Result<Duration, String> {
    match parse_positive_duration(value)? {
        ttl if ttl > MAX_PRESIGN_TTL => Err("at most 7d, the longest S3 honours a presigned URL".into()),
        ttl => Ok(ttl),
    }
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

/// Every environment variable `T` reads (its arguments' `env`), e.g. to check what a deployment file sets.
pub fn variables<T: CommandFactory>() -> Vec<String> {
    T::command().get_arguments().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into_owned()).collect()
}

/// Parses `T` as if `vars` were its environment (given as the matching flags, so the process's own environment
/// is not changed); the error is the line startup would print.
pub fn parse_with<T: Parser>(name: &str, vars: &[(String, String)]) -> Result<T, String> {
    let command = T::command();
    let mut args = vec![name.to_string()];
    for (var, value) in vars {
        let arg = command.get_arguments().find(|arg| arg.get_env().is_some_and(|env| env == var.as_str()));
        let arg = arg.ok_or_else(|| format!("{var} is read by no argument of {name}"))?;
        args.push(format!("--{}={value}", arg.get_long().unwrap_or_default()));
    }
    parse_args_alone::<T>(args).map_err(|err| one_line(&err))
}

/// Parses `T` from `args` alone, reading none of the process's environment: a test then says the same in a
/// shell where `make services` exported `S3_REGION` and friends as in CI's clean one.
pub fn parse_args_alone<T: Parser>(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<T, clap::Error> {
    let mut matches = T::command().mut_args(|arg| arg.env(None)).try_get_matches_from(args)?;
    T::from_arg_matches_mut(&mut matches)
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
        let err = parse_args_alone::<Example>(["x"]).unwrap_err();
        assert_eq!(one_line(&err), "S3_BUCKET must be set");
    }

    #[test]
    fn invalid_value_names_the_variable_and_the_reason() {
        let err = parse_args_alone::<Example>(["x", "--s3-bucket", "b", "--presign-ttl", "soon"]).unwrap_err();
        let line = one_line(&err);
        assert!(line.starts_with("PRESIGN_TTL has an invalid value \"soon\""), "{line}");
        assert!(!line.contains('\n'));
    }

    fn policy(args: &[&str]) -> Result<UploadPolicy, String> {
        let args = ["x", "--s3-bucket", "b"].iter().chain(args);
        parse_args_alone::<Example>(args).map(|e| e.policy).map_err(|e| one_line(&e))
    }

    #[test]
    fn presigned_urls_live_at_most_seven_days() {
        assert_eq!(policy(&["--presign-ttl", "7d"]).unwrap().presign_ttl, MAX_PRESIGN_TTL);
        for bad in ["7d 1s", "8d", "0s"] {
            let line = policy(&["--presign-ttl", bad]).unwrap_err();
            assert!(line.starts_with(&format!("PRESIGN_TTL has an invalid value {bad:?}")), "{line}");
        }
    }

    #[test]
    fn uploads_fit_in_ten_thousand_parts_of_five_gib() {
        let most = MAX_MULTIPART_BYTES.to_string();
        assert_eq!(policy(&["--max-upload-size", &most]).unwrap().max_upload_size, 53_687_091_200_000);
        let line = policy(&["--max-upload-size", &(MAX_MULTIPART_BYTES + 1).to_string()]).unwrap_err();
        assert!(line.starts_with("MAX_UPLOAD_SIZE has an invalid value \"53687091200001\""), "{line}");
        assert!(!line.contains('\n'));
        assert!(policy(&["--max-upload-size", "0"]).is_err());
    }

    #[test]
    fn the_database_password_is_never_printed() {
        let config = DatabaseConfig {
            database_url: Some(
                "postgres://app:hunter2@db.internal:5432/uploads?sslmode=require&password=hunter2".into(),
            ),
            database_url_file: None,
            database_max_connections: 20,
            database_statement_timeout: Duration::from_secs(10),
            database_acquire_timeout: Duration::from_secs(5),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal:5432/uploads?***"), "{shown}");
        assert_eq!(config.url().unwrap().expose(), config.database_url.as_deref().unwrap());
        assert_eq!(redact_url("postgres://localhost/uploads"), "postgres://localhost/uploads");
        assert_eq!(redact_url("postgres://a:b:c@d@host/x"), "postgres://a:***@host/x");
    }

    #[test]
    fn the_database_url_may_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("database-url-{}", std::process::id()));
        std::fs::write(&path, "postgres://app:pw@db/uploads\n").unwrap();
        let mut config = DatabaseConfig {
            database_url: None,
            database_url_file: Some(path.clone()),
            database_max_connections: 20,
            database_statement_timeout: Duration::from_secs(10),
            database_acquire_timeout: Duration::from_secs(5),
        };
        assert_eq!(config.url().unwrap().expose(), "postgres://app:pw@db/uploads");
        config.database_url = Some("postgres://other".into());
        assert_eq!(config.url().unwrap_err().to_string(), "set DATABASE_URL or DATABASE_URL_FILE, not both");
        config.database_url_file = None;
        config.database_url = None;
        assert_eq!(config.url().unwrap_err().to_string(), "DATABASE_URL (or DATABASE_URL_FILE) must be set");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert!(parse_duration("15").is_err());
    }
}
