//! What every handler can reach.

use std::sync::Arc;

use uploads::service::Uploads;

use crate::auth::Authenticator;

/// What every handler can reach; cheap to clone (the pool and the S3 client are shared handles).
#[derive(Clone)]
pub struct AppState {
    pub uploads: Uploads,
    pub public_base_url: Arc<str>,
    pub downloads: crate::download::Downloads,
    pub auth: Authenticator,
}

impl AppState {
    pub fn download_url(&self, id: uuid::Uuid) -> String {
        format!("{}/v1/files/{id}", self.public_base_url)
    }
}
