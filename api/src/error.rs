//! The one place where errors become HTTP: `{code, message}` JSON plus fields that help the client.
//! Internal causes are logged, never sent.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use uploads::domain::{ChunkPlanError, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use uploads::error_code::ErrorCode;
use uploads::service::UploadError;
use uploads::storage::StorageError;

use crate::auth::AuthError;
use crate::companion::capability::CapabilityError;
use crate::download::link::LinkError;

/// `Retry-After` of a 429 for an owner's limits.
const LIMIT_RETRY_AFTER_SECONDS: &str = "30";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error("{message}")]
    Request { status: StatusCode, code: ErrorCode, message: String },
}

impl ApiError {
    pub fn request(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Request { status, code, message: message.into() }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::request(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        Self::Upload(err.into())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, code) = match &rejection {
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidBody),
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, ErrorCode::MalformedJson),
            JsonRejection::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::JsonRequired),
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::BodyTooLarge)
            }
            _ => (rejection.status(), ErrorCode::InvalidBody),
        };
        Self::request(status, code, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(ErrorCode::InvalidPath, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

struct Body {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    extra: Map<String, Value>,
    /// `WWW-Authenticate` of a 401.
    challenge: Option<String>,
}

impl Body {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: Map::new(), challenge: None }
    }

    fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        self.extra.insert(key.into(), json!(value));
        self
    }
}

fn upload_error_body(err: &UploadError) -> Body {
    use UploadError as E;
    let message = err.to_string();
    match err {
        E::NotFound => Body::new(StatusCode::NOT_FOUND, ErrorCode::UploadNotFound, message),
        E::Aborted => Body::new(StatusCode::GONE, ErrorCode::UploadAborted, message).with("state", "aborted"),
        E::Expired => Body::new(StatusCode::GONE, ErrorCode::UploadExpired, message).with("state", "expired"),
        E::NotUploading(state) => {
            let code = match state {
                uploads::domain::UploadState::Completed => ErrorCode::UploadCompleted,
                uploads::domain::UploadState::Completing => ErrorCode::UploadCompleting,
                _ => ErrorCode::UploadNotUploading,
            };
            Body::new(StatusCode::CONFLICT, code, message).with("state", state)
        }
        E::Invalid { code, .. } => Body::new(StatusCode::UNPROCESSABLE_ENTITY, *code, message),
        E::FilenameCharacter { character, .. } => {
            Body::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidFilename, message)
                .with("character", format!("U+{:04X}", *character as u32))
        }
        E::Plan(plan) => {
            let refused = |code| Body::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
            match plan {
                ChunkPlanError::TooLarge { max, .. } => refused(ErrorCode::UploadTooLarge).with("maxUploadSize", max),
                ChunkPlanError::ChunkTooSmall { .. } => {
                    refused(ErrorCode::ChunkSizeTooSmall).with("minChunkSize", MIN_CHUNK_SIZE)
                }
                ChunkPlanError::ChunkTooLarge { .. } => {
                    refused(ErrorCode::ChunkSizeTooLarge).with("maxChunkSize", MAX_CHUNK_SIZE)
                }
                ChunkPlanError::TooManyChunks { smallest_fitting, .. } => {
                    refused(ErrorCode::TooManyChunks).with("smallestChunkSize", smallest_fitting)
                }
            }
        }
        E::ChunkOutOfRange { total_chunks, .. } => {
            // The index is well formed but names no chunk of this upload's plan: a conflict with its state.
            Body::new(StatusCode::CONFLICT, ErrorCode::ChunkIndexOutOfRange, message).with("totalChunks", total_chunks)
        }
        E::PartNumberOutOfRange => Body::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidPartNumber, message),
        E::PartsDiffer { .. } => Body::new(StatusCode::CONFLICT, ErrorCode::PartListMismatch, message),
        E::ChunkNotDeclared { .. } => Body::new(StatusCode::CONFLICT, ErrorCode::ChunkNotDeclared, message),
        E::ChecksumConflict { declared, .. } => {
            Body::new(StatusCode::CONFLICT, ErrorCode::ChecksumConflict, message).with("declaredSha256", declared)
        }
        E::FileChecksumConflict { declared } => {
            let body = Body::new(StatusCode::CONFLICT, ErrorCode::FileChecksumConflict, message);
            match declared {
                Some(declared) => body.with("declaredSha256", declared),
                None => body,
            }
        }
        E::ChunksMissing { missing } => Body::new(
            StatusCode::CONFLICT,
            ErrorCode::ChunksMissing,
            format!("{} chunk(s) are missing; upload them, then complete again", missing.count()),
        )
        .with("missingChunks", missing),
        E::PartMismatch { mismatches } => {
            Body::new(StatusCode::CONFLICT, ErrorCode::PartMismatch, message).with("mismatches", mismatches)
        }
        E::CompletionInProgress => Body::new(StatusCode::CONFLICT, ErrorCode::CompletionInProgress, message),
        E::Lost { .. } => Body::new(StatusCode::GONE, ErrorCode::UploadLost, message),
        E::TaskFailed(_) => {
            tracing::error!(error = %err, "completion task failed");
            Body::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError, "internal error")
        }
        E::NotCompleted(state) => {
            Body::new(StatusCode::CONFLICT, ErrorCode::UploadNotCompleted, message).with("state", state)
        }
        E::ObjectCorrupt { declared, stored } => Body::new(StatusCode::CONFLICT, ErrorCode::ObjectCorrupt, message)
            .with("declaredSha256", declared)
            .with("sha256", stored),
        E::TooManyActiveUploads { limit, active } => {
            Body::new(StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyActiveUploads, message)
                .with("maxActiveUploads", limit)
                .with("activeUploads", active)
        }
        E::TooManyActiveBytes { limit, active } => {
            Body::new(StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyActiveBytes, message)
                .with("maxActiveBytes", limit)
                .with("activeBytes", active)
        }
        E::IdempotencyKeyReused => {
            Body::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::IdempotencyKeyReused, message)
        }
        E::Storage(storage) => storage_error_body(storage),
        E::Database(db) => database_error_body(db),
    }
}

fn link_error_body(err: &LinkError) -> Body {
    let message = err.to_string();
    match err {
        LinkError::Expired { expires } => {
            let expired_at = i64::try_from(*expires).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0));
            Body::new(StatusCode::FORBIDDEN, ErrorCode::LinkExpired, message).with("expiredAt", expired_at)
        }
        LinkError::Invalid(_) => Body::new(StatusCode::FORBIDDEN, ErrorCode::LinkInvalid, message),
        LinkError::LifetimeOutOfRange { max_seconds } => {
            Body::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidExpiresIn, message)
                .with("maxExpiresIn", max_seconds)
        }
    }
}

/// RFC 6750 §3: a 401 names the scheme; where a token was sent, `error` says whether the request or the token
/// was at fault.
fn auth_error_body(err: &AuthError) -> Body {
    use AuthError as E;
    let message = err.to_string();
    let code = match err {
        E::Missing => ErrorCode::TokenMissing,
        E::NotBearer | E::Malformed(_) => ErrorCode::TokenMalformed,
        E::Expired => ErrorCode::TokenExpired,
        E::NotYetValid => ErrorCode::TokenNotYetValid,
        E::InvalidSignature => ErrorCode::TokenInvalidSignature,
        E::WrongAudience => ErrorCode::TokenWrongAudience,
        E::WrongIssuer => ErrorCode::TokenWrongIssuer,
        E::UnknownKey => ErrorCode::TokenUnknownKey,
        E::InvalidSubject(_) => ErrorCode::TokenInvalidSubject,
        E::KeysUnavailable(cause) => {
            tracing::error!(error = %cause, "cannot verify tokens");
            return Body::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::AuthUnavailable,
                "the keys that verify tokens cannot be fetched; retry",
            );
        }
    };
    let challenge = match err {
        E::Missing => format!("Bearer realm=\"{REALM}\""),
        E::NotBearer => format!("Bearer realm=\"{REALM}\", error=\"invalid_request\""),
        _ => format!("Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{code}\""),
    };
    let mut body = Body::new(StatusCode::UNAUTHORIZED, code, message);
    body.challenge = Some(challenge);
    body
}

const REALM: &str = "uploads";

/// A Companion endpoint's capability: expired is 401 (ask for a new one), anything else 403.
fn capability_error_body(err: &CapabilityError) -> Body {
    let message = err.to_string();
    match err {
        CapabilityError::Expired { expires } => {
            let expired_at = i64::try_from(*expires).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0));
            Body::new(StatusCode::UNAUTHORIZED, ErrorCode::UppyEndpointExpired, message).with("expiredAt", expired_at)
        }
        CapabilityError::Invalid(_) => Body::new(StatusCode::FORBIDDEN, ErrorCode::UppyEndpointInvalid, message),
    }
}

fn storage_error_body(err: &StorageError) -> Body {
    match err {
        StorageError::InvalidPart(_) => {
            return Body::new(
                StatusCode::CONFLICT,
                ErrorCode::PartsRejected,
                "S3 refused some parts; the upload takes chunks again: read GET /v1/uploads/{id}?reconcile=true \
                 and resend the missing ones",
            );
        }
        StorageError::NoSuchUpload => {
            return Body::new(
                StatusCode::GONE,
                ErrorCode::UploadLost,
                "S3 no longer holds this upload's parts; start a new upload",
            );
        }
        _ => tracing::error!(error = %err, "storage error"),
    }
    match err {
        StorageError::Timeout(_) => {
            Body::new(StatusCode::GATEWAY_TIMEOUT, ErrorCode::StorageTimeout, "object storage did not answer in time")
        }
        StorageError::Unreachable(_) => Body::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::StorageUnavailable,
            "object storage cannot be reached",
        ),
        _ => Body::new(StatusCode::BAD_GATEWAY, ErrorCode::StorageError, "object storage refused the request"),
    }
}

fn database_error_body(err: &sqlx::Error) -> Body {
    tracing::error!(error = %err, "database error");
    if database_unavailable(err) {
        Body::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::DatabaseUnavailable, "the database cannot be reached")
    } else {
        Body::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError, "internal error")
    }
}

/// Postgres gone, going or overloaded, as opposed to a statement it refused: a retry will do.
fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        // A stopping Postgres tells its sessions why before it closes them: 57P01 admin shutdown, 57P02 crash
        // shutdown, 57P03 cannot connect now (starting or stopping); 08: connection exceptions; 57014: the
        // statement timeout; 53300: too many connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P0") || matches!(&*code, "57014" | "53300")
        }),
        _ => false,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self {
            ApiError::Upload(err) => upload_error_body(err),
            ApiError::Link(err) => link_error_body(err),
            ApiError::Auth(err) => auth_error_body(err),
            ApiError::Capability(err) => capability_error_body(err),
            ApiError::Request { status, code, message } => Body::new(*status, *code, message.clone()),
        };
        let mut object = Map::new();
        object.insert("code".into(), json!(body.code));
        object.insert("message".into(), json!(body.message));
        object.extend(body.extra);
        let retry_after = match body.status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT | StatusCode::BAD_GATEWAY => Some("1"),
            // Room comes back when the owner completes or aborts an upload, or one expires: not in a second.
            StatusCode::TOO_MANY_REQUESTS => Some(LIMIT_RETRY_AFTER_SECONDS),
            _ if body.code == ErrorCode::CompletionInProgress => Some("1"),
            _ => None,
        };
        let mut response = (body.status, Json(Value::Object(object))).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        if let Some(challenge) = body.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
