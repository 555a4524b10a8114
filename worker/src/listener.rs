//! The worker's own small HTTP listener (`WORKER_METRICS_ADDR`): `GET /metrics` for Prometheus and
//! `GET /healthz` for a liveness probe, nothing else.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uploads::service::Uploads;

/// A connection must send a request's headers within this (an idle keep-alive one is closed after it), so a
/// client that sends nothing cannot hold connections open.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(uploads: Uploads) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route: this listener serves /metrics and /healthz\n") })
        .with_state(uploads)
}

/// Serves until `stop` is cancelled. HTTP/1.1 only, as the api: guessing HTTP/2 reads without a deadline.
pub async fn serve(listener: TcpListener, uploads: Uploads, stop: CancellationToken) {
    let router = router(uploads);
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    tracing::warn!(error = %err, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let connection =
            builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone())).into_owned();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "metrics connection ended with an error");
            }
        });
    }
}

async fn metrics(State(uploads): State<Uploads>) -> impl IntoResponse {
    let text = uploads::metrics::scrape(&uploads).await;
    ([(header::CONTENT_TYPE, uploads::metrics::CONTENT_TYPE)], text)
}

async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}
