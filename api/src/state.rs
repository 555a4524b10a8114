//! What every handler shares.

use std::sync::Arc;
use std::time::SystemTime;

use uploads::service::Uploads;

use crate::auth::Authenticator;
use crate::config::HttpConfig;
use crate::download::disposition::Disposition;
use crate::download::link::{Link, Links};

/// What every handler can reach; cheap to clone (the pool and the S3 client are shared handles).
#[derive(Clone)]
pub struct AppState {
    pub uploads: Uploads,
    pub downloads: crate::download::Downloads,
    pub links: Links,
    pub http: Arc<HttpConfig>,
    pub auth: Authenticator,
    /// Lifetime of the Companion endpoints `POST /v1/uppy-endpoints` hands out.
    pub uppy_endpoint_ttl: std::time::Duration,
    /// The web page's Content-Security-Policy ([`crate::routes::web::page_policy`]).
    pub page_policy: axum::http::HeaderValue,
}

impl AppState {
    /// The `downloadUrl` of a completed upload: a signed link, so a browser can follow it without a token.
    pub fn download_url(&self, id: uuid::Uuid) -> String {
        self.links.url(&Link::new(id, Disposition::Attachment, SystemTime::now(), self.links.default_ttl))
    }
}
