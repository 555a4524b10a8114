use serde::{Deserialize, Serialize};

/// `uploading -> completing -> completed`, `uploading -> aborted`, `uploading -> expired`.
/// `completing -> uploading` when a completion finds chunks missing or S3 refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "upload_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    Uploading,
    Completing,
    Completed,
    Aborted,
    Expired,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Completing => "completing",
            Self::Completed => "completed",
            Self::Aborted => "aborted",
            Self::Expired => "expired",
        }
    }

    /// Aborted and expired uploads are gone for good: their bytes were removed from S3.
    pub fn is_gone(self) -> bool {
        matches!(self, Self::Aborted | Self::Expired)
    }
}
