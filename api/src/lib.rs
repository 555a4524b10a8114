//! The HTTP API of the resumable upload service.

pub mod auth;
pub mod companion;
pub mod config;
pub mod download;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod routes;
pub mod server;
pub mod state;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use uploads::error_code::ErrorCode;
use uploads::service::Uploads;

use crate::auth::Authenticator;
use crate::config::{ApiConfig, HttpConfig};
use crate::download::link::Links;
use crate::error::ApiError;
use crate::middleware::REQUEST_ID;
pub use crate::server::{App, ConnectionTimeouts, serve};
use crate::state::AppState;

/// JSON request bodies are small: a batch of 100 checksums is ~10 KiB, metadata at most 16 KiB.
const MAX_JSON_BODY: usize = 64 * 1024;

/// Checks the configuration, connects to Postgres (applying migrations) and S3, and builds the state every
/// handler shares.
pub async fn build_state(config: &ApiConfig) -> anyhow::Result<AppState> {
    // Before anything is counted: S3 and Postgres calls at startup are metrics too.
    uploads::metrics::install();
    // Configuration first: a missing key is reported without waiting for a database.
    config.check()?;
    let auth = Authenticator::from_config(&config.auth)?;
    if auth.is_off() {
        tracing::warn!("AUTH=none: authentication is off, every request acts as the owner `anonymous`");
    }
    let key = config.links.signing_key()?;
    let links = Links::new(key, &config.public_base_url(), config.links.download_link_ttl, config.links.max_link_ttl);
    let downloads = download::Downloads::new(&config.downloads)?;
    let uploads = Uploads::connect(&config.service).await?;
    let storage_origin = uploads
        .storage()
        .presigned_origin()
        .inspect_err(|err| tracing::warn!(error = %err, "the web page's policy lets chunks go to any https origin"))
        .ok();
    let page_policy = routes::web::page_policy(storage_origin.as_deref(), &config.public_base_url());
    let uppy_endpoint_ttl = config.links.uppy_endpoint_ttl;
    Ok(AppState {
        uploads,
        downloads,
        links,
        http: Arc::new(config.http.clone()),
        auth,
        uppy_endpoint_ttl,
        page_policy,
    })
}

/// The router and its connections' deadlines, as `serve` runs them.
pub fn app(state: AppState) -> App {
    let timeouts =
        ConnectionTimeouts { header_read: state.http.header_read_timeout, stalled_write: state.downloads.idle_timeout };
    App { router: router(state), timeouts }
}

/// Every route under every layer.
pub fn router(state: AppState) -> Router {
    let http = state.http.clone();
    with_middleware(routes(state), &http)
}

/// The routes with their handlers, the JSON ones under `REQUEST_TIMEOUT`; no cross-cutting layer yet, so a
/// test can add a route before [`with_middleware`].
pub fn routes(state: AppState) -> Router {
    let deadline = axum::middleware::from_fn_with_state(state.http.request_timeout, middleware::request_timeout);
    let json = Router::new()
        .route("/v1/uploads", get(routes::listing::list).post(routes::uploads::create))
        .route("/v1/uploads/{id}", get(routes::uploads::status).delete(routes::uploads::abort))
        .route("/v1/uploads/{id}/urls", post(routes::uploads::chunk_urls))
        .route("/v1/uploads/{id}/chunks/{index}/url", post(routes::uploads::chunk_url))
        .route("/v1/uploads/{id}/chunks/{index}", put(routes::uploads::confirm_chunk))
        .route("/v1/uploads/{id}/complete", post(routes::uploads::complete))
        .route("/v1/files/{id}/links", post(routes::links::create))
        .route("/v1/uppy-endpoints", post(routes::companion::create_endpoint))
        .route("/uppy/{capability}/s3/params", get(routes::companion::params))
        .route("/uppy/{capability}/s3/multipart", post(routes::companion::create_multipart))
        .route(
            "/uppy/{capability}/s3/multipart/{upload_id}",
            get(routes::companion::list_parts).delete(routes::companion::abort),
        )
        .route("/uppy/{capability}/s3/multipart/{upload_id}/batch", get(routes::companion::sign_batch))
        .route("/uppy/{capability}/s3/multipart/{upload_id}/complete", post(routes::companion::complete))
        .route("/uppy/{capability}/s3/multipart/{upload_id}/{part_number}", get(routes::companion::sign_part))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/", get(routes::web::index))
        .route("/app.js", get(routes::web::app_script))
        .route("/api.js", get(routes::web::api_script))
        .route("/dom.js", get(routes::web::dom_script))
        .route("/library.js", get(routes::web::library_script))
        .route("/messages.js", get(routes::web::messages_script))
        .route("/transfer.js", get(routes::web::transfer_script))
        .route("/style.css", get(routes::web::style));
    let json = if state.http.metrics_addr.is_none() { with_metrics(json) } else { json };
    let json = json.layer(deadline);
    // A file body may stream for hours: its only deadlines are S3's first byte and a client that stops reading.
    let files = Router::new().route("/v1/files/{id}", get(routes::files::download));
    json.merge(files)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(state)
}

/// `GET /metrics`: no token, as Prometheus scrapes; it holds aggregates only, nothing of any owner.
fn with_metrics(router: Router<AppState>) -> Router<AppState> {
    router.route("/metrics", get(routes::metrics::scrape))
}

/// `GET /metrics` alone, for `METRICS_ADDR`'s own listener, under the same layers as every route.
pub fn metrics_router(state: AppState) -> Router {
    let http = state.http.clone();
    let deadline = axum::middleware::from_fn_with_state(http.request_timeout, middleware::request_timeout);
    let routes = with_metrics(Router::new()).layer(deadline).fallback(not_found).with_state(state);
    with_middleware(routes, &http)
}

/// The layers every route runs under, innermost first: a panic becomes a 500 envelope (which CORS, the
/// metrics, the request id and the trace then see like any answer), CORS, the metrics (preflights counted too),
/// the request id, the request's log span.
pub fn with_middleware(routes: Router, http: &HttpConfig) -> Router {
    let mut router = routes.layer(CatchPanicLayer::custom(middleware::panic_response));
    if let Some(cors) = middleware::cors(&http.cors_allowed_origins) {
        router = router.layer(cors);
    }
    router = router.layer(axum::middleware::from_fn(middleware::record_metrics));
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
        let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::info_span!(
            "request",
            method = %request.method(),
            route,
            uri = %middleware::loggable_uri(request.uri()),
            request_id,
            owner = tracing::field::Empty,
            upload_id = tracing::field::Empty,
            range = tracing::field::Empty,
        )
    });
    router
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
