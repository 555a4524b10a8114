//! Signing HS256 tokens with the shared secret: what `mint-token` (and the tests) do, and what a deployer's
//! backend does in its own language.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
}

/// What a minted token says.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    pub subject: &'a str,
    pub ttl: Duration,
    pub audience: Option<&'a str>,
    pub issuer: Option<&'a str>,
}

/// An HS256 JWT for `request.subject`, valid from now for `request.ttl`.
pub fn mint_hs256(secret: &[u8], request: TokenRequest<'_>) -> Result<String, jsonwebtoken::errors::Error> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: request.subject,
        iat: now,
        exp: now + request.ttl.as_secs(),
        aud: request.audience,
        iss: request.issuer,
    };
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret)?)
}
