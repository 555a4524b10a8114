//! What a call to the service (or to S3) can end in, and which of those are worth another try.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::retry::Transient;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service answered with an error (after retries, for 5xx).
    #[error("{message} ({status}{})", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Refused { status: StatusCode, code: Option<String>, message: String, body: Value, retry_after: Option<Duration> },
    #[error("cannot reach {url}: {source}")]
    Network {
        /// Without its query: a signed link's signature is a capability, and never printed.
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected answer from the service: {0}")]
    Protocol(String),
    /// A body that ended early: as retryable as a network error.
    #[error("{0}")]
    Interrupted(String),
}

/// The service is still assembling the object for another `complete`: ask again after `Retry-After`.
const COMPLETION_IN_PROGRESS: &str = "completion_in_progress";

impl ApiError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            Self::Network { .. } | Self::Protocol(_) | Self::Interrupted(_) => None,
        }
    }

    /// Maps a transport error; neither the URL's query nor reqwest's copy of the URL is kept.
    pub fn network(url: &str) -> impl FnOnce(reqwest::Error) -> Self + '_ {
        move |source| Self::Network { url: without_query(url).to_string(), source: source.without_url() }
    }

    /// Reads an error answer: the service's `{code, message}` envelope, or whatever text S3 or a proxy sent.
    pub async fn from_response(response: Response) -> Self {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        let code = body["code"].as_str().map(String::from);
        let message = match body["message"].as_str() {
            Some(message) => message.to_string(),
            None if text.trim().is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
            None => text.chars().take(300).collect(),
        };
        Self::Refused { status, code, message, body, retry_after }
    }
}

impl Transient for ApiError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Interrupted(_) => true,
            Self::Protocol(_) => false,
            Self::Refused { status, code, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || (*status == StatusCode::CONFLICT && code.as_deref() == Some(COMPLETION_IN_PROGRESS))
            }
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            Self::Network { .. } | Self::Protocol(_) | Self::Interrupted(_) => None,
        }
    }
}

fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// A refusal as the service sends it, for tests.
#[cfg(test)]
pub fn refused(status: u16, code: Option<&str>) -> ApiError {
    ApiError::Refused {
        status: StatusCode::from_u16(status).unwrap(),
        code: code.map(String::from),
        message: "refused".into(),
        body: Value::Null,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_worth_another_try() {
        let table = [
            (refused(503, Some("storage_unavailable")), true),
            (refused(500, None), true),
            (refused(429, Some("too_many_uploads")), true),
            (refused(409, Some("completion_in_progress")), true),
            (refused(409, Some("chunks_missing")), false),
            (refused(401, Some("token_missing")), false),
            (refused(404, Some("upload_not_found")), false),
            (ApiError::Interrupted("cut".into()), true),
            (ApiError::Protocol("nonsense".into()), false),
        ];
        for (err, transient) in table {
            assert_eq!(err.is_transient(), transient, "{err}");
        }
    }

    #[test]
    fn queries_are_dropped_from_printed_urls() {
        assert_eq!(without_query("http://h/v1/files/x?expires=1&sig=abc"), "http://h/v1/files/x");
        assert_eq!(without_query("http://h/v1/files/x"), "http://h/v1/files/x");
    }
}
