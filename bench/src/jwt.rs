//! HS256 bearer tokens for the API's `Authorization` header, minted by the bench with the secret it gives the api.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A token for `subject`, valid from now for `ttl`.
pub fn mint(secret: &[u8], subject: &str, ttl: Duration) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({ "sub": subject, "iat": now, "exp": now + ttl.as_secs() as i64 });
    sign(br#"{"alg":"HS256","typ":"JWT"}"#, claims.to_string().as_bytes(), secret)
}

/// RFC 7519 compact form: base64url(header) . base64url(claims) . base64url(HMAC-SHA256 of the first two).
fn sign(header: &[u8], claims: &[u8], secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_jwt_io_example() {
        let token = sign(
            br#"{"alg":"HS256","typ":"JWT"}"#,
            br#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#,
            b"your-256-bit-secret",
        );
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
    }

    #[test]
    fn minted_tokens_carry_subject_and_expiry() {
        let token = mint(b"secret", "bench", Duration::from_secs(60));
        let claims = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["sub"], "bench");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 60);
    }
}
