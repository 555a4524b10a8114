//! Webhook events: written in the transaction of the state change they report together with the job that
//! delivers each (the jobs table is the outbox), then the log of every delivery attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{FromRow, PgExecutor, Postgres};
use uuid::Uuid;

use super::{Repository, UploadRecord, ttl_seconds};
use crate::domain::{EventType, WebhookEvent};
use crate::webhooks::Attempt;

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "webhook_event_state", rename_all = "lowercase")]
pub enum WebhookEventState {
    Pending,
    Delivered,
    /// Undelivered past `WEBHOOK_MAX_AGE`; tried no more.
    Dead,
}

/// An event still to deliver.
#[derive(Debug, Clone, FromRow)]
pub struct PendingEvent {
    pub id: Uuid,
    /// The request body, as recorded with the state change.
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl Repository {
    /// Runs a guarded upload transition and, when it matched and `event` is given, records the event and its
    /// delivery job in the same transaction: a change is never reported without having happened, nor happens
    /// unreported. Without `event` (webhooks off) it is the plain statement.
    pub(super) async fn transition_reporting<'q>(
        &self,
        transition: QueryAs<'q, Postgres, UploadRecord, PgArguments>,
        event: Option<EventType>,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        let Some(event) = event else { return transition.fetch_optional(&self.pool).await };
        let mut tx = self.pool.begin().await?;
        let upload = transition.fetch_optional(&mut *tx).await?;
        if let Some(upload) = &upload {
            insert_event(&mut *tx, &WebhookEvent::new(event, upload)).await?;
        }
        tx.commit().await?;
        Ok(upload)
    }

    /// The event `id` if it is still to deliver.
    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn pending_webhook_event(&self, id: Uuid) -> Result<Option<PendingEvent>, sqlx::Error> {
        sqlx::query_as("SELECT id, payload, created_at FROM webhook_events WHERE id = $1 AND state = 'pending'")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Logs one delivery attempt of event `id`; returns its number (1 for the first).
    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn record_webhook_attempt(&self, id: Uuid, attempt: &Attempt) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar(
            r#"INSERT INTO webhook_deliveries (event_id, attempt, status_code, error, duration_ms)
               SELECT $1, COALESCE(max(attempt), 0) + 1, $2, $3, $4 FROM webhook_deliveries WHERE event_id = $1
               RETURNING attempt"#,
        )
        .bind(id)
        .bind(attempt.status.map(i32::from))
        .bind(attempt.error.as_deref())
        .bind(i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX))
        .fetch_one(&self.pool)
        .await
    }

    /// `pending -> delivered` or `pending -> dead`; `false` when the event was no longer pending.
    #[tracing::instrument(skip_all, fields(webhook_id = %id, ?state))]
    pub async fn finish_webhook_event(&self, id: Uuid, state: WebhookEventState) -> Result<bool, sqlx::Error> {
        let finished = sqlx::query(
            "UPDATE webhook_events SET state = $2, finished_at = now() WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(state)
        .execute(&self.pool)
        .await?;
        Ok(finished.rows_affected() == 1)
    }

    /// Forgets events delivered longer than `retention` ago, with their attempts and jobs; dead ones stay for an
    /// operator. Returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn delete_delivered_webhook_events(&self, retention: Duration) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query(
            "DELETE FROM webhook_events WHERE state = 'delivered' AND finished_at < now() - make_interval(secs => $1)",
        )
        .bind(ttl_seconds(retention))
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }
}

async fn insert_event(executor: impl PgExecutor<'_>, event: &WebhookEvent) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_value(event).expect("an event serializes");
    sqlx::query(
        r#"WITH event AS (
               INSERT INTO webhook_events (id, upload_id, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)
               RETURNING id
           )
           INSERT INTO jobs (kind, webhook_event_id) SELECT 'deliver_webhook', id FROM event"#,
    )
    .bind(event.id)
    .bind(event.upload.upload_id)
    .bind(event.event_type.as_str())
    .bind(payload)
    .bind(event.created_at)
    .execute(executor)
    .await
    .map(|_| ())
}
