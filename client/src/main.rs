//! `upl`: a resumable command-line client of the upload service.

mod api;
mod cli;
mod download;
mod error;
mod list;
mod output;
mod pending;
mod progress;
mod retry;
mod state;
mod token;
mod upload;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::api::Api;
use crate::cli::{Cli, Command, Global};
use crate::error::{CliError, error_json, exit};
use crate::output::Output;
use crate::progress::Ui;
use crate::retry::RetryPolicy;
use crate::state::StateStore;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let out = Output { json: cli.global.json, quiet: cli.global.quiet };
    let result = tokio::select! {
        result = run(cli) => result,
        _ = tokio::signal::ctrl_c() => {
            // Everything needed to resume is already on disk: the state file is written before any chunk.
            let message = "interrupted; run the same command again to continue where it stopped";
            eprintln!("\nupl: {message}");
            if out.json {
                out.json_line(&error_json("interrupted", message, exit::INTERRUPTED));
            }
            return ExitCode::from(exit::INTERRUPTED);
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            out.error(None, &err);
            ExitCode::from(err.exit_code())
        }
    }
}

/// clap's own output for --help and --version; bad usage as JSON too when `--json` or `UPL_JSON` asked for it.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let falsey = |v: String| matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false" | "no" | "off" | "n" | "f");
    let wants_json = std::env::args().any(|arg| arg == "--json") || std::env::var("UPL_JSON").is_ok_and(|v| !falsey(v));
    if wants_json && !matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let rendered = err.to_string();
        let first = rendered.lines().next().unwrap_or("bad usage");
        println!("{}", error_json("usage", first.trim_start_matches("error: "), exit::USAGE));
    }
    let _ = err.print();
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(exit::USAGE))
}

/// Runs one command; returns the exit code (a command over several files can partly fail).
async fn run(cli: Cli) -> Result<u8, CliError> {
    let Global { server, token, token_file, state_dir, quiet, verbose, json, retries, progress_interval } = cli.global;
    let out = Output { json, quiet };
    let ui = Ui { quiet, verbose, plain_every: Duration::from_secs_f64(progress_interval) };
    // Read only by the commands that talk to a service, so `completions` works whatever the environment holds.
    let api = || -> Result<Api, CliError> {
        let token = token::resolve(token.clone(), token_file.as_deref())?;
        Api::new(&server, token, RetryPolicy::new(retries), quiet)
            .map_err(|err| CliError::Other(format!("cannot set up HTTP: {err}")))
    };
    let store = StateStore::new(state_dir.clone());
    match cli.command {
        Command::Upload(args) => return upload::run_all(&api()?, &store, ui, out, &args).await,
        Command::Status { id } => out.status(&api()?.status_json(id, true).await?),
        Command::Abort { id } => {
            api()?.abort(id).await?;
            out.aborted(id);
        }
        Command::Download(args) => out.downloaded(&download::run(&api()?, &store, ui, &args).await?),
        Command::List(args) => list::run(&api()?, out, &args).await?,
        Command::Pending => pending::list(&api()?, &store, out).await,
        Command::Forget { id, abort } => pending::forget(&api()?, &store, out, id, abort).await?,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "upl", &mut std::io::stdout());
        }
    }
    Ok(exit::OK)
}
