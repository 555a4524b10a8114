//! `GET /metrics`: this process's figures in Prometheus text format. No token: it holds aggregates only, with
//! bounded labels (route templates, methods, statuses, S3 operations, job kinds), nothing of any owner.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let text = uploads::metrics::scrape(&state.uploads).await;
    ([(header::CONTENT_TYPE, uploads::metrics::CONTENT_TYPE)], text)
}
