//! `upl`: a resumable command-line client of the upload service.

mod api;
mod download;
mod error;
mod progress;
mod retry;
mod state;
mod upload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;
use uuid::Uuid;

use crate::api::Api;
use crate::error::{CliError, exit};
use crate::progress::Ui;
use crate::retry::RetryPolicy;
use crate::state::StateStore;
use crate::upload::{UploadOptions, parse_size};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure (local I/O, unexpected answer)
  2  bad usage
  3  the file changed since the interrupted upload started (see --restart), or while it was sent
  4  the service refused (unknown, aborted, expired or unfinished upload; invalid request)
  5  the service or S3 stayed unreachable or failing after every retry
  6  a download did not match the SHA-256 the service knows
  130 interrupted (Ctrl-C); run the same command again to resume";

#[derive(Debug, Parser)]
#[command(name = "upl", version, about = "Resumable uploads to, and downloads from, the upload service", after_help = EXIT_CODES)]
struct Cli {
    /// Base URL of the service.
    #[arg(long, global = true, env = "UPL_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Where interrupted uploads and downloads are remembered [default: $XDG_STATE_HOME/upl or ~/.local/state/upl].
    #[arg(long, global = true, env = "UPL_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// No progress bar and no remarks: only the result on stdout, errors on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// One line on stderr per chunk sent.
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Retries, with exponential backoff, of network errors and 5xx answers.
    #[arg(long, global = true, default_value_t = 8)]
    retries: u32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload FILE; run the same command again to resume after a crash, Ctrl-C or network loss.
    Upload {
        file: PathBuf,
        /// Chunks sent to S3 at once.
        #[arg(long, short, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallel: u16,
        /// Chunk size (e.g. 8MiB, 16M, 5242880); at least 5 MiB unless the file is smaller.
        #[arg(long, value_parser = parse_size)]
        chunk_size: Option<u64>,
        /// Content type [default: guessed from the extension].
        #[arg(long)]
        content_type: Option<String>,
        /// Abandon the interrupted upload of this file, if any, and start over.
        #[arg(long)]
        restart: bool,
        /// Skip hashing the whole file (saves one read of it; downloads then cannot verify it).
        #[arg(long)]
        no_file_digest: bool,
    },
    /// Where an upload stands (checked against S3).
    Status { id: Uuid },
    /// Abort an upload: S3 drops its chunks.
    Abort { id: Uuid },
    /// Download a completed upload; run again to resume an interrupted download.
    Download {
        id: Uuid,
        /// Where to write it [default: the uploaded file's name, in the current directory].
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = tokio::select! {
        result = run(cli) => result,
        _ = tokio::signal::ctrl_c() => {
            // Everything needed to resume is already on disk: the state file is written before any chunk.
            eprintln!("\nupl: interrupted; run the same command again to continue where it stopped");
            return ExitCode::from(exit::INTERRUPTED);
        }
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            eprintln!("upl: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let ui = Ui { quiet: cli.quiet, verbose: cli.verbose };
    let api = Api::new(&cli.server, RetryPolicy::new(cli.retries), cli.quiet)
        .map_err(|err| CliError::Other(format!("cannot set up HTTP: {err}")))?;
    let store = StateStore::new(cli.state_dir);
    match cli.command {
        Command::Upload { file, parallel, chunk_size, content_type, restart, no_file_digest } => {
            let options = UploadOptions {
                file,
                chunk_size,
                parallel: usize::from(parallel),
                content_type,
                restart,
                file_digest: !no_file_digest,
            };
            let report = upload::run(&api, &store, ui, &options).await?;
            if cli.json {
                print_json(&report);
            } else {
                if !cli.quiet {
                    eprintln!(
                        "upl: uploaded {} bytes, {} of {} chunks sent by this run",
                        report.size, report.chunks_sent, report.total_chunks
                    );
                }
                println!("upload id:    {}", report.upload_id);
                println!("download url: {}", report.download_url);
            }
        }
        Command::Status { id } => {
            let status = api.status_json(id, true).await?;
            if cli.json {
                print_json(&status);
            } else {
                print_status(&status);
            }
        }
        Command::Abort { id } => {
            api.abort(id).await?;
            if cli.json {
                print_json(&serde_json::json!({ "uploadId": id, "state": "aborted" }));
            } else if !cli.quiet {
                println!("aborted {id}");
            }
        }
        Command::Download { id, output } => {
            let report = download::run(&api, &store, ui, id, output).await?;
            if cli.json {
                print_json(&report);
            } else {
                let verified = if report.verified { ", SHA-256 verified" } else { "" };
                println!("{} ({} bytes{verified})", report.path.display(), report.size);
            }
        }
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).expect("serializable"));
}

fn print_status(status: &Value) {
    let ranges = |key: &str| {
        let ranges = status[key].as_array().cloned().unwrap_or_default();
        let parts: Vec<String> = ranges
            .iter()
            .map(|r| match (r[0].as_u64(), r[1].as_u64()) {
                (Some(a), Some(b)) if a == b => a.to_string(),
                (Some(a), Some(b)) => format!("{a}-{b}"),
                _ => r.to_string(),
            })
            .collect();
        if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
    };
    println!("upload:   {}", status["uploadId"].as_str().unwrap_or_default());
    println!("state:    {}", status["state"].as_str().unwrap_or_default());
    println!("file:     {} ({} bytes)", status["filename"].as_str().unwrap_or_default(), status["size"]);
    println!("received: {} of {} bytes; chunks {}", status["receivedBytes"], status["size"], ranges("receivedChunks"));
    println!("missing:  {}", ranges("missingChunks"));
    if let Some(url) = status["downloadUrl"].as_str() {
        println!("download: {url}");
    }
}
