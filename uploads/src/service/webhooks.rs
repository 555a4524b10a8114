//! Delivering one webhook event: the worker's `deliver_webhook` job. Each attempt is signed anew and logged;
//! a 2xx delivers the event, anything else is retried by the job queue with capped backoff until the event is
//! `WEBHOOK_MAX_AGE` old, when it is dead.

use chrono::Utc;
use uuid::Uuid;

use super::Uploads;
use crate::repository::WebhookEventState;

/// Why a delivery attempt did not deliver its event.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("attempt {attempt}: {reason}")]
    Failed { attempt: i32, reason: String },
    /// This process has no `WEBHOOK_URL` (the api that recorded the event has): the event waits for a worker
    /// that has one, or for its max age.
    #[error("WEBHOOK_URL is not set on this worker")]
    NotConfigured,
    /// Tried for `WEBHOOK_MAX_AGE`: no more attempts.
    #[error("dead after {attempts} attempts over WEBHOOK_MAX_AGE: {reason}")]
    Dead { attempts: i32, reason: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl DeliveryError {
    /// Whether the job must not run again.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Dead { .. })
    }
}

/// How one attempt ended, as an operator counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// This attempt failed; the event is tried again later.
    Retrying,
    /// This attempt failed and was the last: the event is dead.
    Dead,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
        }
    }
}

/// The one place an attempt's outcome is known: `upl_webhook_deliveries_total{outcome}` counts here.
fn delivery_finished(event_id: Uuid, attempt: i32, outcome: DeliveryOutcome) {
    match outcome {
        DeliveryOutcome::Delivered => {
            tracing::info!(webhook_id = %event_id, attempt, outcome = outcome.as_str(), "webhook delivered");
        }
        _ => tracing::warn!(webhook_id = %event_id, attempt, outcome = outcome.as_str(), "webhook not delivered"),
    }
}

impl Uploads {
    /// One attempt at delivering event `id`. Idempotent: an event delivered or dead meanwhile is left alone.
    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn deliver_webhook(&self, id: Uuid) -> Result<(), DeliveryError> {
        let Some(event) = self.repo.pending_webhook_event(id).await? else { return Ok(()) };
        let Some(sender) = &self.webhooks else { return Err(DeliveryError::NotConfigured) };
        let body = serde_json::to_vec(&event.payload).expect("a JSON value serializes");
        let sent = sender.send(&id.to_string(), body).await;
        let attempt = self.repo.record_webhook_attempt(id, &sent).await?;
        let Some(reason) = sent.error else {
            self.repo.finish_webhook_event(id, WebhookEventState::Delivered).await?;
            delivery_finished(id, attempt, DeliveryOutcome::Delivered);
            return Ok(());
        };
        let age = (Utc::now() - event.created_at).to_std().unwrap_or_default();
        if age >= sender.max_age() {
            self.repo.finish_webhook_event(id, WebhookEventState::Dead).await?;
            delivery_finished(id, attempt, DeliveryOutcome::Dead);
            return Err(DeliveryError::Dead { attempts: attempt, reason });
        }
        delivery_finished(id, attempt, DeliveryOutcome::Retrying);
        Err(DeliveryError::Failed { attempt, reason })
    }
}
