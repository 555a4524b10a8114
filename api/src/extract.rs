//! Extractors whose rejections speak the API's error envelope.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use uploads::domain::IdempotencyKey;
use uploads::error_code::ErrorCode;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The optional `Idempotency-Key` request header; a malformed or repeated one is refused (400).
#[derive(Debug)]
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let refused =
            |message: String| ApiError::request(StatusCode::BAD_REQUEST, ErrorCode::InvalidIdempotencyKey, message);
        let mut values = parts.headers.get_all(&IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else { return Ok(Self(None)) };
        if values.next().is_some() {
            return Err(refused("send one Idempotency-Key header, not several".into()));
        }
        IdempotencyKey::parse(value.as_bytes()).map(|key| Self(Some(key))).map_err(|e| refused(e.to_string()))
    }
}
