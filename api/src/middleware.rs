//! Layers around the routes: CORS for the configured origins, the JSON routes' deadline, a panic turned into a
//! 500 envelope instead of a dropped connection, and the HTTP metrics.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_body::Body as _;
use tower_http::cors::{AllowOrigin, CorsLayer};
use uploads::error_code::ErrorCode;

use crate::config::Origins;
use crate::error::ApiError;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// CORS for `origins`; `None` when there are none, so other origins get no CORS header at all.
pub fn cors(origins: &Origins) -> Option<CorsLayer> {
    if origins.0.is_empty() {
        return None;
    }
    let origins = origins.0.iter().map(|origin| HeaderValue::from_str(origin).expect("origins are checked at startup"));
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                header::RANGE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
                header::IF_UNMODIFIED_SINCE,
                header::IF_RANGE,
            ])
            // What the web page and clients read from answers; CORS hides every other header from scripts.
            .expose_headers([
                header::ETAG,
                header::CONTENT_RANGE,
                header::ACCEPT_RANGES,
                header::CONTENT_LENGTH,
                header::CONTENT_DISPOSITION,
                header::LOCATION,
                header::RETRY_AFTER,
                REQUEST_ID.clone(),
                HeaderName::from_static("repr-digest"),
            ])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Answers a request that takes longer than `limit`: 408 while the client is still sending its body, 504 once
/// the service has it all and is the slow one (waiting on S3 or Postgres).
pub async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let body_read = Arc::new(AtomicBool::new(request.body().is_end_stream()));
    let request = if body_read.load(Ordering::Relaxed) {
        request
    } else {
        // The body, unchanged, with a note of when it has been read to its end.
        let read = body_read.clone();
        request.map(move |body| {
            let end = futures::stream::poll_fn(move |_| {
                read.store(true, Ordering::Relaxed);
                std::task::Poll::Ready(None::<Result<bytes::Bytes, axum::Error>>)
            });
            Body::from_stream(body.into_data_stream().chain(end))
        })
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) if !body_read.load(Ordering::Relaxed) => ApiError::request(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!("the request body did not arrive within {limit:?}"),
        )
        .into_response(),
        Err(_) => ApiError::request(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!("the service did not finish the request within {limit:?}; retry"),
        )
        .into_response(),
    }
}

/// Counts and times every answer under its route template (`unmatched` for a path no route has), so the label
/// set stays bounded whatever paths clients send. The time runs to the response's head: a body streams on.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = uploads::metrics::method_label(request.method().as_str());
    let response = next.run(request).await;
    uploads::metrics::http_request(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// The request's path and query for a log line, with a link's signature left out: whoever reads the logs
/// could otherwise use the link.
pub fn loggable_uri(uri: &Uri) -> String {
    let path = loggable_path(uri.path());
    let Some(query) = uri.query() else { return path };
    let query: Vec<&str> =
        query.split('&').map(|pair| if pair.starts_with("sig=") { "sig=redacted" } else { pair }).collect();
    format!("{path}?{}", query.join("&"))
}

/// The path with a Companion endpoint's capability (`/uppy/<capability>/...`) left out: it grants its owner's
/// uploads to whoever holds it.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/uppy/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, after)) => format!("/uppy/redacted/{after}"),
            None => "/uppy/redacted".to_string(),
        },
        None => path.to_string(),
    }
}

/// A handler's panic, for tower-http's `CatchPanicLayer`: logged, answered as the opaque 500 envelope.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::request(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError, "internal error").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_uris_never_carry_a_signature() {
        let table = [
            ("/v1/files/x", "/v1/files/x"),
            ("/v1/files/x?redirect=true", "/v1/files/x?redirect=true"),
            ("/v1/files/x?expires=1&sig=abc&redirect=true", "/v1/files/x?expires=1&sig=redacted&redirect=true"),
            ("/v1/files/x?sig=abc", "/v1/files/x?sig=redacted"),
            ("/v1/files/x?sig=abc&sig=def", "/v1/files/x?sig=redacted&sig=redacted"),
            ("/uppy/1.YWxpY2U.sig/s3/params?filename=a", "/uppy/redacted/s3/params?filename=a"),
            ("/uppy/1.YWxpY2U.sig", "/uppy/redacted"),
            ("/uppy/1.YWxpY2U.sig/", "/uppy/redacted/"),
            ("/uppyx/secret", "/uppyx/secret"),
        ];
        for (uri, logged) in table {
            assert_eq!(loggable_uri(&uri.parse().unwrap()), logged);
        }
    }
}
