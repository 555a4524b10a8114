use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SHA-256 digest. Clients speak hex; S3 speaks base64; Postgres stores the 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Sha256ParseError {
    #[error("a SHA-256 is 64 hexadecimal characters")]
    Hex,
    #[error("a SHA-256 checksum is 32 bytes in base64")]
    Base64,
}

impl Sha256Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(data).into())
    }

    pub fn parse_hex(value: &str) -> Result<Self, Sha256ParseError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(value.trim(), &mut bytes).map_err(|_| Sha256ParseError::Hex)?;
        Ok(Self(bytes))
    }

    /// S3's `x-amz-checksum-sha256` form. A composite (`...=-N`) checksum is not a digest and fails.
    pub fn parse_base64(value: &str) -> Result<Self, Sha256ParseError> {
        let bytes = BASE64.decode(value).map_err(|_| Sha256ParseError::Base64)?;
        bytes.try_into().map(Self).map_err(|_| Sha256ParseError::Base64)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hex_round_trips_and_matches_sha2() {
        let d = Sha256Digest::parse_hex(EMPTY).unwrap();
        assert_eq!(d, Sha256Digest::of(b""));
        assert_eq!(d.to_hex(), EMPTY);
        assert_eq!(d.to_base64(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(Sha256Digest::parse_base64(&d.to_base64()).unwrap(), d);
    }

    #[test]
    fn rejects_what_is_not_a_digest() {
        for bad in ["", "abc", &EMPTY[..63], &format!("{EMPTY}00"), &EMPTY.replace('e', "g")] {
            assert_eq!(Sha256Digest::parse_hex(bad), Err(Sha256ParseError::Hex), "{bad}");
        }
        assert!(Sha256Digest::parse_base64("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=-3").is_err());
    }

    #[test]
    fn uppercase_hex_is_the_same_digest() {
        assert_eq!(Sha256Digest::parse_hex(&EMPTY.to_uppercase()).unwrap().to_hex(), EMPTY);
    }
}
