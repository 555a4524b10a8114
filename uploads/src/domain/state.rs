//! The states an upload goes through.

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
    pub const ALL: [Self; 5] = [Self::Uploading, Self::Completing, Self::Completed, Self::Aborted, Self::Expired];

    /// The state named `name` as the API spells it (`completed`), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_parses_from_its_own_name_only() {
        for state in UploadState::ALL {
            assert_eq!(UploadState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        for name in ["", "Completed", "completed ", "done"] {
            assert_eq!(UploadState::parse(name), None, "{name:?}");
        }
    }
}
