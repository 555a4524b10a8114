//! How an upload's bytes reach S3, which decides what is known of it before it completes.

use serde::Serialize;

/// `chunks` is the service's own protocol (size, plan and every chunk's SHA-256 declared up front); the other
/// two come through the Companion-compatible routes Uppy uses, and learn their size when they complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    Chunks,
    /// One object, sent by a browser form POST under a presigned POST policy.
    FormPost,
    /// An S3 multipart upload whose parts the client cuts and PUTs itself, without checksums.
    Multipart,
}
