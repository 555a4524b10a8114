//! Every way a bearer token can be refused, as one table over HS256 (the JWKS path is tested end to end).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{EncodingKey, Header, get_current_timestamp};
use serde_json::{Value, json};

use super::config::{AuthConfig, AuthMode, JwtSecretArgs};
use super::mint::{TokenRequest, mint_hs256};
use super::*;

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes";

fn config(audience: Option<&str>, issuer: Option<&str>) -> AuthConfig {
    AuthConfig {
        auth: AuthMode::Jwt,
        secret: JwtSecretArgs { auth_jwt_secret: Some(SECRET.parse().unwrap()), auth_jwt_secret_file: None },
        auth_jwks_url: None,
        auth_audience: audience.map(String::from),
        auth_issuer: issuer.map(String::from),
    }
}

fn sign(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap()).unwrap()
}

fn headers(authorization: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = authorization {
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    headers
}

fn outcome(result: Result<Owner, AuthError>) -> String {
    match result {
        Ok(owner) => format!("ok {owner}"),
        Err(err) => format!("{err:?}").split(['(', ' ']).next().unwrap().to_string(),
    }
}

#[tokio::test]
async fn every_token_is_accepted_or_refused_for_its_reason() {
    let now = get_current_timestamp();
    let valid = json!({ "sub": "alice", "exp": now + 600 });
    let with = |extra: Value| {
        let mut claims = valid.clone();
        claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        claims
    };
    let bearer = |claims: Value| format!("Bearer {}", sign(claims, SECRET));
    let plain = Authenticator::from_config(&config(None, None)).unwrap();
    let strict = Authenticator::from_config(&config(Some("uploads"), Some("https://id.example"))).unwrap();
    let strict_claims = json!({ "aud": "uploads", "iss": "https://id.example" });

    let cases: Vec<(&str, &Authenticator, Option<String>, &str)> = vec![
        ("valid", &plain, Some(bearer(valid.clone())), "ok alice"),
        ("scheme in any case", &plain, Some(bearer(valid.clone()).replace("Bearer", "bEARER")), "ok alice"),
        ("within the leeway", &plain, Some(bearer(with(json!({ "exp": now - 10 })))), "ok alice"),
        ("aud ignored when not configured", &plain, Some(bearer(with(json!({ "aud": "other" })))), "ok alice"),
        ("no header", &plain, None, "Missing"),
        ("basic auth", &plain, Some("Basic YWxpY2U6c2VjcmV0".into()), "NotBearer"),
        ("empty bearer", &plain, Some("Bearer ".into()), "NotBearer"),
        ("not a JWT", &plain, Some("Bearer abc.def".into()), "Malformed"),
        ("expired", &plain, Some(bearer(with(json!({ "exp": now - 120 })))), "Expired"),
        ("no exp", &plain, Some(bearer(json!({ "sub": "alice" }))), "Malformed"),
        ("not yet valid", &plain, Some(bearer(with(json!({ "nbf": now + 600 })))), "NotYetValid"),
        (
            "other secret",
            &plain,
            Some(format!("Bearer {}", sign(valid.clone(), "another-secret-of-at-least-32-bytes"))),
            "InvalidSignature",
        ),
        ("no sub", &plain, Some(bearer(json!({ "exp": now + 600 }))), "InvalidSubject"),
        ("empty sub", &plain, Some(bearer(with(json!({ "sub": "" })))), "InvalidSubject"),
        ("control character in sub", &plain, Some(bearer(with(json!({ "sub": "a\nb" })))), "InvalidSubject"),
        ("the reserved anonymous", &plain, Some(bearer(with(json!({ "sub": "anonymous" })))), "InvalidSubject"),
        ("strict: valid", &strict, Some(bearer(with(strict_claims.clone()))), "ok alice"),
        (
            "strict: aud in a list",
            &strict,
            Some(bearer(with(json!({ "aud": ["x", "uploads"], "iss": "https://id.example" })))),
            "ok alice",
        ),
        (
            "strict: wrong aud",
            &strict,
            Some(bearer(with(json!({ "aud": "other", "iss": "https://id.example" })))),
            "WrongAudience",
        ),
        ("strict: no aud", &strict, Some(bearer(with(json!({ "iss": "https://id.example" })))), "WrongAudience"),
        (
            "strict: wrong iss",
            &strict,
            Some(bearer(with(json!({ "aud": "uploads", "iss": "https://evil.example" })))),
            "WrongIssuer",
        ),
        ("strict: no iss", &strict, Some(bearer(with(json!({ "aud": "uploads" })))), "WrongIssuer"),
    ];
    let mut failures = Vec::new();
    for (name, authenticator, authorization, expected) in &cases {
        let got = outcome(authenticator.authenticate(&headers(authorization.as_deref())).await);
        if got != *expected {
            failures.push(format!("{name}: expected {expected}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test]
async fn alg_none_and_asymmetric_algorithms_without_a_key_set_are_refused() {
    let authenticator = Authenticator::from_config(&config(None, None)).unwrap();
    let body = |header: Value| {
        let encode = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let claims = json!({ "sub": "mallory", "exp": get_current_timestamp() + 600 });
        format!("Bearer {}.{}.c2ln", encode(&header), encode(&claims))
    };
    for header in [json!({ "alg": "none" }), json!({ "alg": "RS256", "kid": "k" }), json!({ "alg": "HS512" })] {
        let got = outcome(authenticator.authenticate(&headers(Some(&body(header.clone())))).await);
        assert_eq!(got, "Malformed", "{header}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let authenticator = Authenticator::from_config(&config(None, None)).unwrap();
    let token = mint_hs256(
        SECRET.as_bytes(),
        TokenRequest { subject: "alice", ttl: Duration::from_secs(60), audience: None, issuer: None },
    )
    .unwrap();
    let mut twice = headers(Some(&format!("Bearer {token}")));
    twice.append(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    assert_eq!(outcome(authenticator.authenticate(&twice).await), "NotBearer");
    assert_eq!(outcome(authenticator.authenticate(&headers(Some(&format!("Bearer {token}")))).await), "ok alice");
}

#[tokio::test]
async fn auth_none_lets_everyone_in_as_anonymous_and_auth_on_needs_a_key() {
    let off = AuthConfig { auth: AuthMode::None, secret: JwtSecretArgs::default(), ..config(None, None) };
    let authenticator = Authenticator::from_config(&off).unwrap();
    assert!(authenticator.is_off());
    assert_eq!(outcome(authenticator.authenticate(&headers(None)).await), "ok anonymous");
    assert_eq!(outcome(authenticator.authenticate(&headers(Some("Bearer junk"))).await), "ok anonymous");

    let keyless = AuthConfig { secret: JwtSecretArgs::default(), ..config(None, None) };
    let error = Authenticator::from_config(&keyless).err().unwrap().to_string();
    for variable in ["AUTH_JWT_SECRET", "AUTH_JWT_SECRET_FILE", "AUTH_JWKS_URL", "AUTH=none"] {
        assert!(error.contains(variable), "{error}");
    }
    assert!(!error.contains('\n'), "{error}");
}
