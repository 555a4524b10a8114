//! `POST /v1/files/{id}/links`: a signed link to a completed upload, for browsers and sharing.

use std::time::SystemTime;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uploads::service::CorruptObject;
use uuid::Uuid;

use crate::auth::Caller;
use crate::download::disposition::Disposition;
use crate::download::link::Link;
use crate::error::ApiError;
use crate::extract::{Json, Path, whole_opt};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkRequest {
    /// Seconds the link stays valid; `DOWNLOAD_LINK_TTL` when left out.
    #[serde(default, deserialize_with = "whole_opt")]
    expires_in: Option<u64>,
    #[serde(default)]
    disposition: Disposition,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkBody {
    url: String,
    expires_at: DateTime<Utc>,
}

pub async fn create(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<LinkRequest>,
) -> Result<Json<LinkBody>, ApiError> {
    tracing::Span::current().record("upload_id", tracing::field::display(id));
    let lifetime = state.links.lifetime(body.expires_in)?;
    // Only the upload's owner hands out links to it: another owner's upload is upload_not_found. A link never
    // serves a corrupt object, so none is made for one.
    state.uploads.downloadable_by(&owner, id, CorruptObject::Refuse).await?;
    let link = Link::new(id, body.disposition, SystemTime::now(), lifetime);
    let expires_at = DateTime::from_timestamp(i64::try_from(link.expires).unwrap_or(i64::MAX), 0).unwrap_or_default();
    Ok(Json(LinkBody { url: state.links.url(&link), expires_at }))
}
