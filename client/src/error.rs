//! What can go wrong, the exit code each failure gives scripts (documented in `upl --help`), and the code
//! `--json` names it by.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::ApiError;
use crate::retry::Transient;

/// Exit codes scripts can rely on.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything else: a local I/O error, an unexpected answer.
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage (clap's code too).
    pub const USAGE: u8 = 2;
    /// The file changed since the interrupted upload started: resuming would mix old and new bytes.
    pub const FILE_CHANGED: u8 = 3;
    /// The service refused the request (4xx: no token, unknown, aborted, expired, not completed, invalid).
    pub const REFUSED: u8 = 4;
    /// The service or S3 stayed unreachable or failing (network errors, 5xx) after every retry.
    pub const UNAVAILABLE: u8 = 5;
    /// A downloaded file does not match the SHA-256 the service knows.
    pub const DIGEST_MISMATCH: u8 = 6;
    /// Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

const TOKEN_HINT: &str = "the service wants a bearer token: pass --token, or set UPL_TOKEN, or UPL_TOKEN_FILE to a \
                          file holding one (e.g. UPL_TOKEN_FILE=.dev/token, which `make run` writes)";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "{path} changed since upload {upload_id} started ({detail}); resuming would mix old and new bytes.\n\
         To abandon that upload and send the file as it is now, run the same command with --restart"
    )]
    FileChanged { path: PathBuf, upload_id: Uuid, detail: String },
    #[error("{path} changed while it was being uploaded (S3 refused a chunk whose bytes no longer match); run again")]
    ChangedDuringUpload { path: PathBuf },
    #[error("the downloaded file's SHA-256 is {actual}, but the service says {expected}; the partial file was removed")]
    DigestMismatch { expected: String, actual: String },
    #[error(
        "upload {id} is not completed{}: nothing to download yet",
        state.as_deref().map(|s| format!(" (it is {s})")).unwrap_or_default()
    )]
    NotCompleted { id: Uuid, state: Option<String> },
    #[error("{0} exists; pass --force to overwrite it")]
    OutputExists(PathBuf),
    /// 401 from the service.
    #[error("{0}; {TOKEN_HINT}")]
    Unauthorized(ApiError),
    #[error(transparent)]
    Api(ApiError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Other(String),
}

impl From<ApiError> for CliError {
    fn from(err: ApiError) -> Self {
        if err.status() == Some(StatusCode::UNAUTHORIZED) { Self::Unauthorized(err) } else { Self::Api(err) }
    }
}

impl CliError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::FileChanged { .. } | Self::ChangedDuringUpload { .. } => exit::FILE_CHANGED,
            Self::DigestMismatch { .. } => exit::DIGEST_MISMATCH,
            Self::NotCompleted { .. } | Self::Unauthorized(_) => exit::REFUSED,
            Self::Api(err) if err.is_transient() => exit::UNAVAILABLE,
            Self::Api(ApiError::Refused { .. }) => exit::REFUSED,
            Self::Usage(_) => exit::USAGE,
            Self::Api(_) | Self::OutputExists(_) | Self::Io { .. } | Self::Other(_) => exit::FAILURE,
        }
    }

    /// A stable, machine-readable name: the service's own code when it sent one.
    pub fn code(&self) -> String {
        let own = match self {
            Self::FileChanged { .. } => "file_changed",
            Self::ChangedDuringUpload { .. } => "file_changed_during_upload",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::NotCompleted { .. } => "upload_not_completed",
            Self::OutputExists(_) => "output_exists",
            Self::Unauthorized(err) | Self::Api(err) => return api_code(err),
            Self::Io { .. } => "io_error",
            Self::Usage(_) => "usage",
            Self::Other(_) => "failed",
        };
        own.to_string()
    }

    /// `{"error": {"code", "message", "exitCode"}}`, what `--json` prints on stdout instead of a result.
    pub fn to_json(&self) -> Value {
        error_json(&self.code(), &self.to_string(), self.exit_code())
    }
}

pub fn error_json(code: &str, message: &str, exit_code: u8) -> Value {
    json!({ "error": { "code": code, "message": message, "exitCode": exit_code } })
}

fn api_code(err: &ApiError) -> String {
    match err {
        ApiError::Refused { code: Some(code), .. } => code.clone(),
        ApiError::Refused { status: StatusCode::UNAUTHORIZED, .. } => "unauthorized".into(),
        ApiError::Refused { status, .. } => format!("http_{}", status.as_u16()),
        ApiError::Network { .. } => "unreachable".into(),
        ApiError::Interrupted(_) => "transfer_interrupted".into(),
        ApiError::Protocol(_) => "unexpected_answer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::refused;

    #[test]
    fn exit_codes_and_json_codes() {
        let id = Uuid::nil();
        let table: Vec<(CliError, u8, &str)> = vec![
            (refused(401, Some("token_missing")).into(), 4, "token_missing"),
            (refused(401, None).into(), 4, "unauthorized"),
            (refused(404, Some("upload_not_found")).into(), 4, "upload_not_found"),
            (refused(409, Some("upload_not_completed")).into(), 4, "upload_not_completed"),
            (refused(503, Some("storage_unavailable")).into(), 5, "storage_unavailable"),
            (refused(418, None).into(), 4, "http_418"),
            (ApiError::Protocol("x".into()).into(), 1, "unexpected_answer"),
            (CliError::NotCompleted { id, state: Some("uploading".into()) }, 4, "upload_not_completed"),
            (CliError::Usage("bad".into()), 2, "usage"),
            (CliError::OutputExists("f".into()), 1, "output_exists"),
            (CliError::DigestMismatch { expected: "a".into(), actual: "b".into() }, 6, "digest_mismatch"),
        ];
        for (err, exit_code, code) in table {
            assert_eq!((err.exit_code(), err.code().as_str()), (exit_code, code), "{err}");
            let json = err.to_json();
            assert_eq!(json["error"]["exitCode"], exit_code);
            assert_eq!(json["error"]["message"], err.to_string());
        }
    }

    #[test]
    fn a_401_says_how_to_pass_a_token() {
        let err = CliError::from(refused(401, Some("token_missing")));
        let message = err.to_string();
        assert!(message.contains("--token") && message.contains("UPL_TOKEN_FILE"), "{message}");
        assert!(message.contains(".dev/token"), "{message}");
    }
}
