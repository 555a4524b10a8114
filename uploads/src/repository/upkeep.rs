//! The upkeep statements the worker's jobs make on uploads: finding overdue and stuck ones to queue jobs for,
//! which multipart uploads are still live, recording whole-object verifications, and forgetting expired
//! idempotency keys.

use std::time::Duration;

use uuid::Uuid;

use super::{Repository, UploadRecord, ttl_seconds};
use crate::domain::{EventType, Sha256Digest, VerificationState};

impl Repository {
    /// Queues an expiry for every live upload past its deadline; returns how many were queued.
    #[tracing::instrument(skip_all)]
    pub async fn enqueue_overdue_expiries(&self) -> Result<u64, sqlx::Error> {
        let queued = sqlx::query(
            "INSERT INTO jobs (kind, upload_id) \
             SELECT 'expire_upload', id FROM uploads WHERE state = 'uploading' AND expires_at <= now() \
             ON CONFLICT (kind, upload_id) DO NOTHING",
        )
        .execute(&self.pool)
        .await?;
        Ok(queued.rows_affected())
    }

    /// Queues a recovery for every completion whose lease lapsed more than `threshold` ago: the backstop for a
    /// recovery job lost with its worker (each completion queues its own when it begins).
    #[tracing::instrument(skip_all)]
    pub async fn enqueue_stuck_completions(&self, threshold: Duration) -> Result<u64, sqlx::Error> {
        let queued = sqlx::query(
            r#"INSERT INTO jobs (kind, upload_id)
               SELECT 'recover_completion', id FROM uploads
               WHERE state = 'completing' AND completing_until <= now() - make_interval(secs => $1)
               ON CONFLICT (kind, upload_id) DO UPDATE SET
                   state = 'queued', attempts = 0, run_at = now(), finished_at = NULL, updated_at = now()
               WHERE jobs.state = 'done'"#,
        )
        .bind(ttl_seconds(threshold))
        .execute(&self.pool)
        .await?;
        Ok(queued.rows_affected())
    }

    /// Deletes the idempotency keys past their expiry (`UPLOAD_TTL` after their create); returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn delete_expired_idempotency_keys(&self) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= now()").execute(&self.pool).await?;
        Ok(deleted.rows_affected())
    }

    /// Of these S3 multipart upload ids, those a live (`uploading` or `completing`) upload still owns.
    #[tracing::instrument(skip_all, fields(candidates = s3_upload_ids.len()))]
    pub async fn live_s3_upload_ids(&self, s3_upload_ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT s3_upload_id FROM uploads \
             WHERE s3_upload_id = ANY($1) AND state IN ('uploading', 'completing')",
        )
        .bind(s3_upload_ids)
        .fetch_all(&self.pool)
        .await
    }

    /// Records the hash of a completed object and what it means, reported as `event` if given. `None` unless
    /// the upload is completed.
    #[tracing::instrument(skip_all, fields(upload_id = %id, ?outcome))]
    pub async fn record_verification(
        &self,
        id: Uuid,
        outcome: VerificationState,
        object_sha256: &Sha256Digest,
        event: Option<EventType>,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        let transition = sqlx::query_as(concat!(
            "UPDATE uploads SET verification_state = $2, object_sha256 = $3, verified_at = now(), \
                 verification_error = NULL, updated_at = now() \
             WHERE id = $1 AND state = 'completed' RETURNING ",
            upload_columns!()
        ))
        .bind(id)
        .bind(outcome)
        .bind(object_sha256.as_bytes().as_slice());
        self.transition_reporting(transition, event).await
    }

    /// The worker gave up hashing the object: say so on the upload, unless a result is already recorded.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn fail_verification(&self, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE uploads SET verification_state = 'failed', verification_error = $2, updated_at = now() \
             WHERE id = $1 AND state = 'completed' AND verification_state = 'pending'",
        )
        .bind(id)
        .bind(error)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}
