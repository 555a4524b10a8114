//! The `Idempotency-Key` a client sends with a create, so that a retry returns the first answer.

use std::fmt;

/// Longest key accepted, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// 1 to 255 printable ASCII characters (space to `~`), as the header carries them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    #[error("an Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters")]
    Length,
    #[error("an Idempotency-Key holds printable ASCII characters only")]
    Character,
}

impl IdempotencyKey {
    pub fn parse(value: &[u8]) -> Result<Self, IdempotencyKeyError> {
        if value.is_empty() || value.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(IdempotencyKeyError::Length);
        }
        if !value.iter().all(|b| (b' '..=b'~').contains(b)) {
            return Err(IdempotencyKeyError::Character);
        }
        Ok(Self(String::from_utf8(value.to_vec()).expect("ASCII is UTF-8")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_printable_ascii() {
        for (value, expected) in [
            (&b"0f8fad5b-d9cb-469f-a165-70867728950e"[..], Ok(())),
            (b"retry me ~", Ok(())),
            (b"", Err(IdempotencyKeyError::Length)),
            (b"tab\there", Err(IdempotencyKeyError::Character)),
            ("caf\u{e9}".as_bytes(), Err(IdempotencyKeyError::Character)),
            (b"\x7f", Err(IdempotencyKeyError::Character)),
        ] {
            assert_eq!(IdempotencyKey::parse(value).map(|_| ()), expected, "{value:?}");
        }
        assert!(IdempotencyKey::parse(&[b'k'; MAX_IDEMPOTENCY_KEY_LEN]).is_ok());
        assert_eq!(IdempotencyKey::parse(&[b'k'; MAX_IDEMPOTENCY_KEY_LEN + 1]), Err(IdempotencyKeyError::Length));
    }
}
