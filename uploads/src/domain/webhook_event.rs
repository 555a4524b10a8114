//! The events a webhook receiver is told of, and the body each is sent as.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Sha256Digest, UploadState, VerificationState};
use crate::repository::UploadRecord;

/// What happened to an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "upload.completed")]
    Completed,
    /// The object's SHA-256 is the one the client declared.
    #[serde(rename = "upload.verified")]
    Verified,
    /// The object's SHA-256 or size is not what the client declared.
    #[serde(rename = "upload.corrupt")]
    Corrupt,
    #[serde(rename = "upload.expired")]
    Expired,
    /// By its owner, or lost (S3 holds neither its parts nor its object).
    #[serde(rename = "upload.aborted")]
    Aborted,
}

impl EventType {
    pub const ALL: [Self; 5] = [Self::Completed, Self::Verified, Self::Corrupt, Self::Expired, Self::Aborted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "upload.completed",
            Self::Verified => "upload.verified",
            Self::Corrupt => "upload.corrupt",
            Self::Expired => "upload.expired",
            Self::Aborted => "upload.aborted",
        }
    }

    /// The event a verification outcome is reported as: a computed digest (none was declared) and a given-up
    /// verification are not events.
    pub fn of_verification(outcome: VerificationState) -> Option<Self> {
        match outcome {
            VerificationState::Verified => Some(Self::Verified),
            VerificationState::Corrupt => Some(Self::Corrupt),
            VerificationState::Pending | VerificationState::Computed | VerificationState::Failed => None,
        }
    }
}

/// The body of a webhook request: `{id, type, createdAt, upload}`. The same bytes on every attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// Also the `Webhook-Id` header.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub created_at: DateTime<Utc>,
    pub upload: EventUpload,
}

impl WebhookEvent {
    /// A new event about `upload` as it stands after the change.
    pub fn new(event_type: EventType, upload: &UploadRecord) -> Self {
        Self { id: Uuid::now_v7(), event_type, created_at: Utc::now(), upload: EventUpload::of(upload) }
    }
}

/// The upload's status fields, as `GET /v1/uploads/{id}` names them, plus its owner (the receiver is the
/// deployer's backend, which knows its users by the tokens' `sub`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventUpload {
    pub upload_id: Uuid,
    pub owner: String,
    pub state: UploadState,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub chunk_size: i64,
    pub total_chunks: i32,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The SHA-256 the client declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<EventVerification>,
}

/// The worker's whole-object check, once the upload is completed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventVerification {
    pub state: VerificationState,
    /// The object's SHA-256 as hashed from S3's bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
}

impl EventUpload {
    fn of(upload: &UploadRecord) -> Self {
        let verification = upload.verification_state.map(|state| EventVerification {
            state,
            sha256: upload.object_sha256(),
            verified_at: upload.verified_at,
        });
        Self {
            upload_id: upload.id,
            owner: upload.owner.clone(),
            state: upload.state,
            filename: upload.filename.clone(),
            content_type: upload.content_type.clone(),
            size: upload.size,
            chunk_size: upload.chunk_size,
            total_chunks: upload.total_chunks,
            metadata: upload.metadata.clone(),
            created_at: upload.created_at,
            expires_at: upload.expires_at,
            completed_at: upload.completed_at,
            etag: upload.etag.clone(),
            sha256: upload.declared_sha256(),
            verification,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_serializes_as_its_name() {
        for event_type in EventType::ALL {
            assert_eq!(serde_json::to_value(event_type).unwrap(), event_type.as_str());
        }
    }

    #[test]
    fn only_a_judged_digest_is_an_event() {
        let cases = [
            (VerificationState::Verified, Some(EventType::Verified)),
            (VerificationState::Corrupt, Some(EventType::Corrupt)),
            (VerificationState::Computed, None),
            (VerificationState::Failed, None),
            (VerificationState::Pending, None),
        ];
        for (outcome, expected) in cases {
            assert_eq!(EventType::of_verification(outcome), expected, "{outcome:?}");
        }
    }
}
