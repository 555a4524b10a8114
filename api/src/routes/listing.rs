//! `GET /v1/uploads`: the caller's uploads, newest first, a page at a time.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use uploads::service::{ListUploads, UploadPage};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::routes::uploads::UploadSummary;
use crate::state::AppState;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    state: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBody {
    uploads: Vec<UploadSummary>,
    next_cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let request = ListUploads { limit: query.limit, cursor: query.cursor, states: query.state };
    let UploadPage { uploads, next_cursor } = state.uploads.list(&owner, request).await?;
    let uploads = uploads
        .into_iter()
        .map(|listed| UploadSummary::of(&state, listed.upload, listed.received_bytes.max(0) as u64))
        .collect();
    let body = ListBody { uploads, next_cursor: next_cursor.map(|cursor| cursor.encode()) };
    // Every chunk changes the list: never let a cache answer for it.
    Ok(([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body)))
}
