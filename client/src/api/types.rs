//! The JSON shapes `upl` sends to and reads from the service (camelCase, as in openapi.yaml).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub upload_id: Uuid,
    pub chunk_size: u64,
    pub total_chunks: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkUrl {
    pub index: u32,
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub state: String,
    pub filename: String,
    pub size: u64,
    pub chunk_size: u64,
    pub total_chunks: u32,
    pub received_bytes: u64,
    pub missing_chunks: Vec<(u32, u32)>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completed {
    pub upload_id: Uuid,
    pub download_url: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUpload<'a> {
    pub filename: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub chunk_size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: &'a BTreeMap<String, String>,
}

/// One page of `GET /v1/uploads`, newest first.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// Kept as sent, so `--json` prints every field the service has, even ones this client does not know.
    pub uploads: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// The fields of a listed upload that the table shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub upload_id: Uuid,
    pub state: String,
    pub filename: String,
    /// `None` until an upload made with Uppy (through the Companion routes) completes.
    pub size: Option<u64>,
    #[serde(default)]
    pub received_bytes: u64,
    pub created_at: DateTime<Utc>,
}
