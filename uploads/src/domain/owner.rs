//! Who an upload belongs to: the `sub` of the caller's token, or `anonymous` when authentication is off.

use std::fmt;

/// Longest owner accepted, in bytes (the column's CHECK says the same).
pub const MAX_OWNER_LEN: usize = 255;

/// An owner that can only hold a valid value: 1 to 255 bytes of text without control characters.
/// Two callers are the same owner exactly when their strings are equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("the subject is empty")]
    Empty,
    #[error("the subject is longer than {MAX_OWNER_LEN} bytes")]
    TooLong,
    #[error("the subject contains a control character")]
    ControlCharacter,
}

impl Owner {
    /// The one owner of every upload when authentication is off (`AUTH=none`).
    pub const ANONYMOUS: &'static str = "anonymous";

    pub fn parse(value: &str) -> Result<Self, OwnerError> {
        if value.is_empty() {
            return Err(OwnerError::Empty);
        }
        if value.len() > MAX_OWNER_LEN {
            return Err(OwnerError::TooLong);
        }
        if value.chars().any(char::is_control) {
            return Err(OwnerError::ControlCharacter);
        }
        Ok(Self(value.to_string()))
    }

    pub fn anonymous() -> Self {
        Self(Self::ANONYMOUS.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owner({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_bounded_text() {
        for (value, expected) in [
            ("alice", Ok("alice")),
            ("auth0|5f7c8ec7c33c6c004bbafe82", Ok("auth0|5f7c8ec7c33c6c004bbafe82")),
            ("zoë@example.com", Ok("zoë@example.com")),
            ("", Err(OwnerError::Empty)),
            ("a\nb", Err(OwnerError::ControlCharacter)),
            ("a\u{0}", Err(OwnerError::ControlCharacter)),
        ] {
            assert_eq!(Owner::parse(value).as_ref().map(Owner::as_str), expected.as_ref().copied(), "{value:?}");
        }
        assert!(Owner::parse(&"x".repeat(MAX_OWNER_LEN)).is_ok());
        assert_eq!(Owner::parse(&"x".repeat(MAX_OWNER_LEN + 1)), Err(OwnerError::TooLong));
        assert_eq!(Owner::anonymous().as_str(), "anonymous");
    }
}
