//! Every machine-readable error code the service answers, listed once. `openapi.yaml` documents exactly these
//! (a test compares the two), and clients switch on them.

use serde::Serialize;

/// A stable error code, serialised in snake_case (`upload_not_found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, strum::EnumIter, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    // The request itself.
    MalformedJson,
    InvalidPath,
    InvalidQuery,
    RouteNotFound,
    MethodNotAllowed,
    BodyTooLarge,
    JsonRequired,
    InvalidBody,
    InvalidIdempotencyKey,
    // Who is calling.
    TokenMissing,
    TokenMalformed,
    TokenExpired,
    TokenNotYetValid,
    TokenInvalidSignature,
    TokenWrongAudience,
    TokenWrongIssuer,
    TokenUnknownKey,
    TokenInvalidSubject,
    UppyEndpointExpired,
    UppyEndpointInvalid,
    // Per-owner limits.
    TooManyActiveUploads,
    TooManyActiveBytes,
    // Uploads.
    UploadNotFound,
    UploadAborted,
    UploadExpired,
    UploadCompleted,
    UploadCompleting,
    UploadNotUploading,
    UploadNotCompleted,
    ObjectCorrupt,
    ChunkNotDeclared,
    ChecksumConflict,
    FileChecksumConflict,
    ChunksMissing,
    PartMismatch,
    CompletionInProgress,
    PartsRejected,
    PartListMismatch,
    UploadLost,
    IdempotencyKeyReused,
    // Refused values.
    InvalidFilename,
    InvalidContentType,
    InvalidMetadata,
    InvalidSha256,
    InvalidEtag,
    UploadTooLarge,
    ChunkSizeTooSmall,
    ChunkSizeTooLarge,
    TooManyChunks,
    ChunkIndexOutOfRange,
    InvalidPartNumber,
    EmptyBatch,
    BatchTooLarge,
    InvalidExpiresIn,
    InvalidLimit,
    InvalidCursor,
    InvalidStateFilter,
    // Downloads.
    PreconditionFailed,
    RangeNotSatisfiable,
    TooManyDownloads,
    LinkExpired,
    LinkInvalid,
    // Faults of the service or its dependencies.
    InternalError,
    RequestTimeout,
    StorageError,
    StorageUnavailable,
    StorageTimeout,
    DatabaseUnavailable,
    AuthUnavailable,
    NotReady,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every code, for the test that keeps `openapi.yaml` equal to this list.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_strum_spell_every_code_alike() {
        for code in ErrorCode::all() {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(ErrorCode::UploadNotFound.as_str(), "upload_not_found");
        assert_eq!(ErrorCode::InvalidSha256.as_str(), "invalid_sha256");
    }
}
