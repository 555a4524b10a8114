use serde::{Deserialize, Serialize};

use super::Sha256Digest;

/// What the worker found when it hashed a completed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "verification_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum VerificationState {
    /// Completed, not hashed yet.
    Pending,
    /// The object's SHA-256 is the one the client declared.
    Verified,
    /// The object's SHA-256 (or size) differs from what the client declared.
    Corrupt,
    /// No hash was declared; the object's SHA-256 is recorded so downloads can offer it.
    Computed,
    /// The worker gave up (attempts exhausted); the error is recorded.
    Failed,
}

impl VerificationState {
    pub const ALL: [Self; 5] = [Self::Pending, Self::Verified, Self::Corrupt, Self::Computed, Self::Failed];

    /// The name in Postgres, JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Corrupt => "corrupt",
            Self::Computed => "computed",
            Self::Failed => "failed",
        }
    }

    /// The outcome of hashing an object of `size` bytes whose upload declared `declared` and `expected_size`.
    pub fn judge(declared: Option<Sha256Digest>, computed: Sha256Digest, expected_size: u64, size: u64) -> Self {
        match declared {
            _ if size != expected_size => Self::Corrupt,
            Some(declared) if declared == computed => Self::Verified,
            Some(_) => Self::Corrupt,
            None => Self::Computed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_the_serialized_names() {
        for state in VerificationState::ALL {
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{}\"", state.as_str()));
        }
    }

    #[test]
    fn judges_against_the_declared_digest_and_size() {
        let good = Sha256Digest::of(b"abc");
        let other = Sha256Digest::of(b"abd");
        assert_eq!(VerificationState::judge(Some(good), good, 3, 3), VerificationState::Verified);
        assert_eq!(VerificationState::judge(Some(other), good, 3, 3), VerificationState::Corrupt);
        assert_eq!(VerificationState::judge(None, good, 3, 3), VerificationState::Computed);
        assert_eq!(VerificationState::judge(Some(good), good, 4, 3), VerificationState::Corrupt);
        assert_eq!(VerificationState::judge(None, good, 4, 3), VerificationState::Corrupt);
    }
}
