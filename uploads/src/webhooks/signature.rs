//! Standard Webhooks signatures (<https://www.standardwebhooks.com>, spec "Signature scheme"): `v1,` and the
//! base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under the shared key, so receivers can
//! verify with any of the scheme's libraries.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// The spec's prefix of a base64 secret, as its libraries take it.
const SECRET_PREFIX: &str = "whsec_";
/// The spec recommends keys of 24 to 64 bytes.
pub const MIN_KEY_BYTES: usize = 24;

/// The HMAC key; `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("WEBHOOK_SECRET starts with whsec_ but what follows is not base64")]
    NotBase64,
    #[error("WEBHOOK_SECRET holds {0} bytes of key; at least {MIN_KEY_BYTES} are needed")]
    TooShort(usize),
}

impl SigningKey {
    /// `whsec_<base64>` is the key those bytes decode to (as the spec's libraries read it); any other secret is
    /// its own bytes.
    pub fn from_secret(secret: &Secret) -> Result<Self, KeyError> {
        let key = match secret.expose().strip_prefix(SECRET_PREFIX) {
            Some(encoded) => STANDARD.decode(encoded).map_err(|_| KeyError::NotBase64)?,
            None => secret.expose().as_bytes().to_vec(),
        };
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(key.len()));
        }
        Ok(Self(key))
    }

    /// The `Webhook-Signature` header value for message `id` sent at `timestamp` (Unix seconds).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> Result<SigningKey, KeyError> {
        SigningKey::from_secret(&secret.to_string().into())
    }

    /// The reference vector of the Standard Webhooks libraries.
    #[test]
    fn signs_the_reference_vector() {
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_read_as_the_spec_libraries_read_them() {
        let raw = "0123456789abcdef0123456789abcdef";
        let cases: [(&str, Result<Vec<u8>, KeyError>); 5] = [
            (raw, Ok(raw.as_bytes().to_vec())),
            ("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", Ok(b"0123456789abcdef01234567".to_vec())),
            ("whsec_not base64!", Err(KeyError::NotBase64)),
            ("whsec_c2hvcnQ=", Err(KeyError::TooShort(5))),
            ("short", Err(KeyError::TooShort(5))),
        ];
        for (secret, expected) in cases {
            assert_eq!(key(secret).map(|k| k.0), expected, "{secret}");
        }
    }

    #[test]
    fn the_key_is_never_printed() {
        let key = key("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(redacted)");
    }
}
