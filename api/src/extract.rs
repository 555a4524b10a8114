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

/// A JSON body a request may leave out: no body at all is `None`; any body must be JSON, as for [`Json`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::body::HttpBody;
        if request.body().size_hint().exact() == Some(0) {
            return Ok(Self(None));
        }
        let Json(value) = Json::from_request(request, state).await?;
        Ok(Self(Some(value)))
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

/// JSON numbers a schema of `type: integer` admits: `60` and `60.0` alike (JSON Schema counts any number
/// with no fractional part as an integer), so a client whose language writes every number as a float is
/// not refused. Use with `#[serde(deserialize_with = "whole")]`.
pub fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::Deserialize;
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let value = match number.as_u64() {
        Some(value) => Some(value),
        // Only floats with nothing after the point, and small enough that the float is that integer exactly.
        None => {
            number.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9_007_199_254_740_992.0).map(|f| f as u64)
        }
    };
    value
        .and_then(|value| T::try_from(value).ok())
        .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number in range")))
}

/// [`whole`] for an optional field: absent and `null` are both `None`.
pub fn whole_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::Deserialize;
    #[derive(Deserialize)]
    struct Whole<T: TryFrom<u64>>(#[serde(deserialize_with = "whole")] T);
    Ok(Option::<Whole<T>>::deserialize(deserializer)?.map(|Whole(value)| value))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::whole")]
        size: u32,
        #[serde(default, deserialize_with = "super::whole_opt")]
        chunk: Option<u64>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn whole_numbers_are_taken_in_either_notation() {
        assert_eq!(parse(r#"{"size": 60}"#).unwrap().size, 60);
        assert_eq!(parse(r#"{"size": 60.0, "chunk": 5e6}"#).map(|b| (b.size, b.chunk)).unwrap(), (60, Some(5_000_000)));
        assert_eq!(parse(r#"{"size": 1, "chunk": null}"#).unwrap().chunk, None);
        assert_eq!(parse(r#"{"size": 1}"#).unwrap().chunk, None);
    }

    #[test]
    fn fractions_negatives_and_overflows_are_refused() {
        for json in [
            r#"{"size": 60.5}"#,
            r#"{"size": -1}"#,
            r#"{"size": -1.0}"#,
            r#"{"size": 4294967296}"#,
            r#"{"size": 1e300}"#,
            r#"{"size": "1"}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }
}
