//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use uploads::error_code::ErrorCode;

use crate::extract::Json;
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The process is alive and serving.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Postgres and the bucket are reachable; 503 naming what failed otherwise.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.uploads.repository().ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("database: {e}")),
            Err(_) => Err("database: no answer within 3 s".to_string()),
        }
    };
    let storage = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.uploads.storage().check_bucket()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("storage: {e}")),
            Err(_) => Err("storage: no answer within 3 s".to_string()),
        }
    };
    let (database, storage) = tokio::join!(database, storage);
    let status = |r: &Result<(), String>| if r.is_ok() { "ok" } else { "failed" };
    let checks = json!({ "database": status(&database), "storage": status(&storage) });
    let failures: Vec<String> = [database, storage].into_iter().filter_map(Result::err).collect();
    if failures.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready", "checks": checks })))
    } else {
        tracing::warn!(?failures, "not ready");
        let failed: Vec<&str> = ["database", "storage"].into_iter().filter(|k| checks[k] == "failed").collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "code": ErrorCode::NotReady,
                "message": format!("unreachable: {}", failed.join(", ")),
                "checks": checks,
            })),
        )
    }
}
