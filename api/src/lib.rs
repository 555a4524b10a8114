//! The HTTP API of the resumable upload service.

pub mod auth;
pub mod config;
pub mod download;
pub mod error;
pub mod extract;
pub mod routes;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use uploads::error_code::ErrorCode;
use uploads::service::Uploads;

use crate::auth::Authenticator;
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// JSON request bodies are small: a batch of 100 checksums is ~10 KiB, metadata at most 16 KiB.
const MAX_JSON_BODY: usize = 64 * 1024;
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Connects to Postgres (applying migrations) and S3, and builds the state every handler shares.
pub async fn build_state(config: &ApiConfig) -> anyhow::Result<AppState> {
    let auth = Authenticator::from_config(&config.auth)?;
    if auth.is_off() {
        tracing::warn!("AUTH=none: authentication is off, every request acts as the owner `anonymous`");
    }
    Ok(AppState {
        uploads: Uploads::connect(&config.service).await?,
        public_base_url: Arc::from(config.public_base_url()),
        downloads: download::Downloads::new(&config.downloads)?,
        auth,
    })
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/uploads", post(routes::uploads::create))
        .route("/v1/uploads/{id}", get(routes::uploads::status).delete(routes::uploads::abort))
        .route("/v1/uploads/{id}/urls", post(routes::uploads::chunk_urls))
        .route("/v1/uploads/{id}/chunks/{index}/url", post(routes::uploads::chunk_url))
        .route("/v1/uploads/{id}/chunks/{index}", put(routes::uploads::confirm_chunk))
        .route("/v1/uploads/{id}/complete", post(routes::uploads::complete))
        .route("/v1/files/{id}", get(routes::files::download))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/", get(routes::web::index))
        .route("/app.js", get(routes::web::script))
        .route("/style.css", get(routes::web::style))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(state);

    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers(Any)
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::CONTENT_LENGTH,
            header::CONTENT_DISPOSITION,
            REQUEST_ID.clone(),
            HeaderName::from_static("repr-digest"),
        ])
        .max_age(Duration::from_secs(3600));

    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
        let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::info_span!(
            "request",
            method = %request.method(),
            route,
            uri = %request.uri(),
            request_id,
            owner = tracing::field::Empty,
            upload_id = tracing::field::Empty,
            range = tracing::field::Empty,
        )
    });

    api.layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        // Outermost: whatever logs or inspects a request later sees the token only as `Sensitive`.
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
}

async fn not_found() -> ApiError {
    ApiError::request(StatusCode::NOT_FOUND, ErrorCode::RouteNotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::request(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
