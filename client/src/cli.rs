//! The command line: every command and flag, and the environment variable each setting also reads.

use std::path::PathBuf;

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand};

use crate::token::Token;
use crate::upload::parse_size;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  other failure (local I/O, unexpected answer, an existing output file without --force)
  2  bad usage (also an unreadable UPL_TOKEN_FILE)
  3  the file changed since the interrupted upload started (see --restart), or while it was sent
  4  the service refused (no or bad token, unknown, aborted, expired or unfinished upload; invalid request)
  5  the service or S3 stayed unreachable or failing after every retry
  6  a download did not match the SHA-256 the service knows
  130 interrupted (Ctrl-C); run the same command again to resume
With several files, the exit code is the highest of theirs.
With --json, a failure prints {\"error\": {\"code\", \"message\", \"exitCode\"}} on stdout.";

#[derive(Debug, Parser)]
#[command(
    name = "upl",
    version,
    about = "Resumable uploads to, and downloads from, the upload service",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Base URL of the service.
    #[arg(long, global = true, env = "UPL_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token sent to the service (never to S3).
    #[arg(long, global = true, env = "UPL_TOKEN", hide_env_values = true, value_parser = Token::parse)]
    pub token: Option<Token>,
    /// A file holding the token, e.g. .dev/token as `make run` writes it (used when no --token is given).
    #[arg(long, global = true, env = "UPL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Where interrupted uploads and downloads are remembered [default: $XDG_STATE_HOME/upl or ~/.local/state/upl].
    #[arg(long, global = true, env = "UPL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// No progress and no remarks: only results on stdout, errors on stderr.
    #[arg(long, short, global = true, env = "UPL_QUIET", value_parser = FalseyValueParser::new())]
    pub quiet: bool,
    /// One line on stderr per chunk sent.
    #[arg(long, short, global = true, env = "UPL_VERBOSE", value_parser = FalseyValueParser::new())]
    pub verbose: bool,
    /// Results (and errors) as JSON on stdout, one object per line.
    #[arg(long, global = true, env = "UPL_JSON", value_parser = FalseyValueParser::new())]
    pub json: bool,
    /// Retries, with exponential backoff, of network errors, 5xx, 429 and a completion still in progress.
    #[arg(long, global = true, env = "UPL_RETRIES", default_value_t = 8)]
    pub retries: u32,
    /// Seconds between plain progress lines when stderr is not a terminal (a CI log).
    #[arg(long, global = true, env = "UPL_PROGRESS_INTERVAL", default_value_t = 5.0, value_parser = parse_seconds)]
    pub progress_interval: f64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload FILEs, each its own upload; run the same command again to resume after a crash, Ctrl-C or
    /// network loss.
    Upload(UploadArgs),
    /// Where an upload stands (checked against S3).
    Status { id: uuid::Uuid },
    /// Abort an upload: S3 drops its chunks.
    Abort { id: uuid::Uuid },
    /// Download a completed upload by id or by its download link; run again to resume.
    Download(DownloadArgs),
    /// Your uploads, newest first.
    List(ListArgs),
    /// Interrupted uploads and downloads this machine remembers, with their progress.
    Pending,
    /// Stop remembering an interrupted upload or download (a download's .part file is removed).
    Forget {
        id: uuid::Uuid,
        /// Also abort the upload on the service.
        #[arg(long)]
        abort: bool,
    },
    /// Print a shell completion script (e.g. `upl completions bash > ~/.local/share/bash-completion/completions/upl`).
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Chunks sent to S3 at once.
    #[arg(long, short, env = "UPL_PARALLEL", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Chunk size (e.g. 8MiB, 16M, 5242880); at least 5 MiB unless the file is smaller.
    #[arg(long, env = "UPL_CHUNK_SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    /// Content type [default: guessed from the extension].
    #[arg(long, env = "UPL_CONTENT_TYPE")]
    pub content_type: Option<String>,
    /// The name the service stores [default: the file's name]; only with one file.
    #[arg(long)]
    pub name: Option<String>,
    /// Metadata stored with the upload, `key=value`; repeat for more.
    #[arg(long = "metadata", short = 'm', value_name = "KEY=VALUE", value_parser = parse_metadata)]
    pub metadata: Vec<(String, String)>,
    /// Abandon the interrupted upload of this file, if any, and start over.
    #[arg(long)]
    pub restart: bool,
    /// Skip hashing the whole file (saves CPU, and on a resume a read of the whole file; downloads then cannot
    /// verify it).
    #[arg(long, env = "UPL_NO_FILE_DIGEST", value_parser = FalseyValueParser::new())]
    pub no_file_digest: bool,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// An upload id, or the download link a completed upload printed (`http(s)://.../v1/files/ID[?...]`).
    pub source: String,
    /// File or directory to write to [default: the uploaded file's name, in the current directory].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long, short)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only uploads in this state (uploading, completing, completed, aborted, expired).
    #[arg(long)]
    pub state: Option<String>,
    /// Uploads per page (the service gives at most 100).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
    /// Follow every page, not only the first.
    #[arg(long)]
    pub all: bool,
}

/// `key=value`; the value may hold `=` itself.
fn parse_metadata(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("{value:?} is not key=value")),
    }
}

fn parse_seconds(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("{value:?} is not a positive number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn metadata_is_key_equals_value() {
        assert_eq!(parse_metadata("team=video"), Ok(("team".into(), "video".into())));
        assert_eq!(parse_metadata("q=a=b"), Ok(("q".into(), "a=b".into())));
        assert_eq!(parse_metadata("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_metadata("=v").is_err());
        assert!(parse_metadata("novalue").is_err());
    }

    #[test]
    fn a_token_never_shows_in_the_parsed_command_line() {
        let cli =
            Cli::try_parse_from(["upl", "--token", "very-secret", "status", &uuid::Uuid::nil().to_string()]).unwrap();
        assert!(cli.global.token.is_some());
        assert!(!format!("{cli:?}").contains("very-secret"));
    }
}
