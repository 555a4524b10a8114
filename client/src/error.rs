//! What can go wrong, and the exit code each failure gives scripts (documented in `upl --help`).

use std::path::PathBuf;

use uuid::Uuid;

use crate::api::ApiError;
use crate::retry::Transient;

/// Exit codes scripts can rely on.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything else: a local I/O error, an unexpected answer.
    pub const FAILURE: u8 = 1;
    // 2 is clap's, for bad command-line usage.
    /// The file changed since the interrupted upload started: resuming would mix old and new bytes.
    pub const FILE_CHANGED: u8 = 3;
    /// The service refused the request (4xx: unknown, aborted, expired, not completed, invalid).
    pub const REFUSED: u8 = 4;
    /// The service or S3 stayed unreachable or failing (network errors, 5xx) after every retry.
    pub const UNAVAILABLE: u8 = 5;
    /// A downloaded file does not match the SHA-256 the service knows.
    pub const DIGEST_MISMATCH: u8 = 6;
    /// Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

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
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
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
            Self::Api(err) if err.is_transient() => exit::UNAVAILABLE,
            Self::Api(_) => exit::REFUSED,
            Self::Io { .. } | Self::Other(_) => exit::FAILURE,
        }
    }
}
