//! Who calls the Companion-compatible routes: the owner named by the capability in their path.

pub mod capability;

use std::time::SystemTime;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;
use capability::{Capability, CapabilityError};
use uploads::domain::Owner;

/// The path parameter that carries the capability (`/uppy/{capability}/s3/...`).
pub const CAPABILITY_PARAM: &str = "capability";

/// The owner a Companion route acts for, as its capability proves: the extractor of every such route.
#[derive(Debug, Clone)]
pub struct EndpointOwner(pub Owner);

impl FromRequestParts<AppState> for EndpointOwner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| CapabilityError::Invalid("the path carries none"))?;
        let segment = params
            .iter()
            .find_map(|(name, value)| (name == CAPABILITY_PARAM).then_some(value))
            .ok_or(CapabilityError::Invalid("the path carries none"))?;
        let capability = Capability::decode(state.links.key(), segment, SystemTime::now())?;
        tracing::Span::current().record("owner", tracing::field::display(&capability.owner));
        Ok(Self(capability.owner))
    }
}
