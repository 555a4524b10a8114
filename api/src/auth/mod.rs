//! Who is calling: the bearer token of every `/v1` request, verified (HS256 with the shared secret, or
//! RS256/ES256 with a key of the JWKS), its `sub` the caller's [`Owner`]. [`Caller`] is the extractor handlers
//! take; its rejection is the API's error envelope (mapped in `crate::error`).

pub mod config;
pub mod jwks;
pub mod mint;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uploads::domain::Owner;

use crate::error::ApiError;
use crate::state::AppState;
use config::{AuthConfig, AuthMode};
use jwks::{Jwks, JwksSettings, JwksUnavailable};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;
/// What a JWKS key may sign with. HMAC is never among them: it comes only from the configured secret.
const ASYMMETRIC: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why a request is not authenticated. Messages name the reason, never the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this route needs an Authorization: Bearer <token> header")]
    Missing,
    #[error("the Authorization header must be one `Bearer <token>`")]
    NotBearer,
    #[error("the bearer token is not a usable JWT: {0}")]
    Malformed(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's signature does not verify")]
    InvalidSignature,
    #[error("the token's aud does not name this service")]
    WrongAudience,
    #[error("the token's iss is not the accepted issuer")]
    WrongIssuer,
    #[error("the token's kid names no key of the key set")]
    UnknownKey,
    #[error("the token's sub is not a usable owner: {0}")]
    InvalidSubject(String),
    #[error(transparent)]
    KeysUnavailable(#[from] JwksUnavailable),
}

/// Verifies bearer tokens, or (with `AUTH=none`, no verifier) lets everyone in as `anonymous`. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator(Option<Arc<Verifier>>);

struct Verifier {
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
    audience: Option<String>,
    issuer: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    iss: Option<serde_json::Value>,
}

impl Authenticator {
    /// From the configuration; with authentication on and no key source, the error names the variables.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Self> {
        Self::with_jwks_settings(config, JwksSettings::default())
    }

    pub fn with_jwks_settings(config: &AuthConfig, settings: JwksSettings) -> anyhow::Result<Self> {
        if config.auth == AuthMode::None {
            return Ok(Self(None));
        }
        let secret = config.secret.load()?;
        if secret.is_none() && config.auth_jwks_url.is_none() {
            anyhow::bail!(
                "authentication is on (AUTH=jwt) but no key is configured: set AUTH_JWT_SECRET or \
                 AUTH_JWT_SECRET_FILE (HS256), or AUTH_JWKS_URL (RS256/ES256), or AUTH=none to turn it off"
            );
        }
        let jwks = config.auth_jwks_url.clone().map(|url| Jwks::new(url, settings)).transpose()?;
        Ok(Self(Some(Arc::new(Verifier {
            secret: secret.map(|s| DecodingKey::from_secret(s.expose().as_bytes())).transpose()?,
            jwks,
            audience: config.auth_audience.clone(),
            issuer: config.auth_issuer.clone(),
        }))))
    }

    pub fn is_off(&self) -> bool {
        self.0.is_none()
    }

    /// The owner the request's `Authorization` header proves.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Owner, AuthError> {
        let Some(verifier) = &self.0 else { return Ok(Owner::anonymous()) };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().ok_or(AuthError::Missing)?;
        if values.next().is_some() {
            return Err(AuthError::NotBearer);
        }
        let token = bearer_token(value.as_bytes()).ok_or(AuthError::NotBearer)?;
        verifier.verify(token).await
    }
}

/// RFC 6750 §2.1: `Bearer` (any case), one space, then the token.
fn bearer_token(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' ')).then_some(token)
}

impl Verifier {
    async fn verify(&self, token: &str) -> Result<Owner, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let key = self.key_for(header.alg, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = self.audience.is_some();
        // jsonwebtoken checks `aud` and `iss` when present; whether they are present is checked below, in a
        // fixed order (its own check of required claims runs in HashSet order: which it names would vary).
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(refusal)?.claims;
        if self.audience.is_some() && claims.aud.is_none() {
            return Err(AuthError::WrongAudience);
        }
        if self.issuer.is_some() && claims.iss.is_none() {
            return Err(AuthError::WrongIssuer);
        }
        let sub = claims.sub.ok_or_else(|| AuthError::InvalidSubject("no sub claim".into()))?;
        if sub == Owner::ANONYMOUS {
            // The owner of everything made with AUTH=none: no token may claim those uploads.
            return Err(AuthError::InvalidSubject(format!("`{sub}` is reserved for AUTH=none")));
        }
        Owner::parse(&sub).map_err(|e| AuthError::InvalidSubject(e.to_string()))
    }

    async fn key_for(&self, algorithm: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        if algorithm == Algorithm::HS256 {
            return self.secret.clone().ok_or_else(|| not_accepted(algorithm));
        }
        let jwks = match &self.jwks {
            Some(jwks) if ASYMMETRIC.contains(&algorithm) => jwks,
            _ => return Err(not_accepted(algorithm)),
        };
        let key = jwks.key(kid).await?.ok_or(AuthError::UnknownKey)?;
        if !jwks::fits(&key, algorithm) {
            return Err(AuthError::InvalidSignature);
        }
        Ok(key.key)
    }
}

fn not_accepted(algorithm: Algorithm) -> AuthError {
    AuthError::Malformed(format!("tokens signed with {algorithm:?} are not accepted here"))
}

fn refusal(err: jsonwebtoken::errors::Error) -> AuthError {
    match err.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => {
            AuthError::InvalidSignature
        }
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "aud" => AuthError::WrongAudience,
            "iss" => AuthError::WrongIssuer,
            "sub" => AuthError::InvalidSubject("no sub claim".into()),
            other => AuthError::Malformed(format!("no {other} claim")),
        },
        ErrorKind::InvalidClaimFormat(claim) if claim == "aud" => AuthError::WrongAudience,
        ErrorKind::InvalidClaimFormat(claim) if claim == "iss" => AuthError::WrongIssuer,
        _ => AuthError::Malformed(err.to_string()),
    }
}

/// The authenticated caller of a `/v1` route: the owner its token names.
#[derive(Debug, Clone)]
pub struct Caller(pub Owner);

impl Caller {
    /// The caller the request's headers prove, noted on the request's span. For routes where a token is one
    /// way in among others (a signed link); the others take the extractor.
    pub async fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, ApiError> {
        let owner = state.auth.authenticate(headers).await?;
        tracing::Span::current().record("owner", tracing::field::display(&owner));
        Ok(Self(owner))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Self::from_headers(state, &parts.headers).await
    }
}

#[cfg(test)]
mod tests;
