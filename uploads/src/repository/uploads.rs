//! Uploads: reading one, and its guarded state transitions.

use std::time::Duration;

use sqlx::PgExecutor;
use uuid::Uuid;

use super::{ObjectShape, Repository, UploadRecord, ttl_seconds};
use crate::domain::{EventType, Owner, Sha256Digest};

/// Drops the queued recovery job of a completion that settled (a worker running it finds nothing to do).
macro_rules! recovery_not_needed {
    ($settled:literal) => {
        concat!(
            "unneeded AS (DELETE FROM jobs WHERE kind = 'recover_completion' AND state = 'queued' \
             AND upload_id IN (SELECT id FROM ",
            $settled,
            "))"
        )
    };
}

/// `completing ->` elsewhere for completion `$2`, dropping its queued recovery in the same statement.
macro_rules! settle_sql {
    ($set:literal) => {
        concat!(
            "WITH settled AS (",
            transition_sql!($set, "state = 'completing' AND completion_epoch = $2"),
            "), ",
            recovery_not_needed!("settled"),
            " SELECT * FROM settled"
        )
    };
}

impl Repository {
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn find_upload(&self, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        find_upload(&self.pool, id).await
    }

    /// The upload `id` if `owner` owns it: another owner's upload is as absent as an unknown one.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn find_owned_upload(&self, id: Uuid, owner: &Owner) -> Result<Option<UploadRecord>, sqlx::Error> {
        sqlx::query_as(concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1 AND owner = $2"))
            .bind(id)
            .bind(owner.as_str())
            .fetch_optional(&self.pool)
            .await
    }

    /// `uploading -> completing` under a new epoch and a lease of `lease`, or the takeover of a completion whose
    /// lease lapsed (its process died, or gave up after a transient failure), for `owner` (the worker's
    /// recovery names none). `None` when neither holds: only one caller can win this. In the same statement the
    /// recovery job is queued for when the lease would lapse, so a completion whose process dies is finished by
    /// a worker without waiting for a sweep.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn begin_completion(
        &self,
        id: Uuid,
        owner: Option<&Owner>,
        lease: Duration,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "WITH begun AS (",
            transition_sql!(
                "state = 'completing', completion_epoch = completion_epoch + 1, \
                 completing_until = now() + make_interval(secs => $2)",
                "($3::text IS NULL OR owner = $3) \
                 AND ((state = 'uploading' AND expires_at > now()) OR (state = 'completing' AND completing_until <= now()))"
            ),
            r#"), recovery AS (
                INSERT INTO jobs (kind, upload_id, run_at) SELECT 'recover_completion', id, completing_until FROM begun
                ON CONFLICT (kind, upload_id) DO UPDATE SET
                    state = 'queued', attempts = 0, run_at = EXCLUDED.run_at, last_error = NULL, finished_at = NULL,
                    updated_at = now()
                WHERE jobs.state <> 'running'
            )
            SELECT * FROM begun"#
        ))
        .bind(id)
        .bind(ttl_seconds(lease))
        .bind(owner.map(Owner::as_str))
        .fetch_optional(&self.pool)
        .await
    }

    /// Extends the lease of completion `epoch`; `false` when it no longer holds it (finished, or taken over).
    #[tracing::instrument(skip_all, fields(upload_id = %id, epoch))]
    pub async fn renew_completion(&self, id: Uuid, epoch: i64, lease: Duration) -> Result<bool, sqlx::Error> {
        let renewed = sqlx::query(
            r#"UPDATE uploads SET completing_until = now() + make_interval(secs => $3)
               WHERE id = $1 AND state = 'completing' AND completion_epoch = $2"#,
        )
        .bind(id)
        .bind(epoch)
        .bind(ttl_seconds(lease))
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Completion `epoch` is about to ask S3 to assemble the object: recorded first, so that whoever handles a
    /// failure from here on knows S3 may hold the object. `false` when the completion lost its lease.
    #[tracing::instrument(skip_all, fields(upload_id = %id, epoch))]
    pub async fn record_assembly_requested(&self, id: Uuid, epoch: i64) -> Result<bool, sqlx::Error> {
        let recorded = sqlx::query(
            r#"UPDATE uploads SET assembly_requested_at = COALESCE(assembly_requested_at, now())
               WHERE id = $1 AND state = 'completing' AND completion_epoch = $2"#,
        )
        .bind(id)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(recorded.rows_affected() == 1)
    }

    /// Completion `epoch` failed in a way a retry may mend: it stays `completing` (S3 may have assembled the
    /// object) with its lease lapsed at once, so the next `complete` or the recovery job takes it over.
    #[tracing::instrument(skip_all, fields(upload_id = %id, epoch))]
    pub async fn release_completion(&self, id: Uuid, epoch: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            r#"UPDATE uploads SET completing_until = now(), updated_at = now()
               WHERE id = $1 AND state = 'completing' AND completion_epoch = $2"#,
        )
        .bind(id)
        .bind(epoch)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// `completing -> uploading` for completion `epoch`, when S3 definitively lacks or refuses parts: the client
    /// resends them.
    #[tracing::instrument(skip_all, fields(upload_id = %id, epoch))]
    pub async fn abandon_completion(&self, id: Uuid, epoch: i64) -> Result<Option<UploadRecord>, sqlx::Error> {
        self.transition_epoch(
            settle_sql!("state = 'uploading', completing_until = NULL, assembly_requested_at = NULL"),
            id,
            epoch,
        )
        .await
    }

    /// `completing -> aborted` for completion `epoch`, when S3 holds neither the parts nor a right object: the
    /// upload cannot be completed any more. Reported as `event`, if given.
    #[tracing::instrument(skip_all, fields(upload_id = %id, epoch))]
    pub async fn lose_completion(
        &self,
        id: Uuid,
        epoch: i64,
        event: Option<EventType>,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        let sql = settle_sql!("state = 'aborted', completing_until = NULL");
        self.transition_reporting(sqlx::query_as(sql).bind(id).bind(epoch), event).await
    }

    /// `completing -> completed` for completion `epoch`, with the object's ETag, enqueueing its verification in
    /// the same statement (so in the same transaction): no completed object goes unverified, whoever completed it.
    /// Reported as `event`, if given, in that transaction too. A Companion upload's `shape` (its size, learnt
    /// only now) is recorded in the same statement.
    #[tracing::instrument(skip_all, fields(upload_id = %id, epoch))]
    pub async fn finish_completion(
        &self,
        id: Uuid,
        epoch: i64,
        etag: &str,
        shape: Option<ObjectShape>,
        event: Option<EventType>,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        let transition = sqlx::query_as(concat!(
            "WITH completed AS (",
            transition_sql!(
                "state = 'completed', etag = $3, completed_at = now(), completing_until = NULL, \
                 verification_state = 'pending', size = COALESCE(size, $4), chunk_size = COALESCE(chunk_size, $5), \
                 total_chunks = COALESCE(total_chunks, $6)",
                "state = 'completing' AND completion_epoch = $2"
            ),
            r#"), queued AS (
                INSERT INTO jobs (kind, upload_id) SELECT 'verify_object', id FROM completed
                ON CONFLICT (kind, upload_id) DO NOTHING
            ), "#,
            recovery_not_needed!("completed"),
            " SELECT * FROM completed"
        ))
        .bind(id)
        .bind(epoch)
        .bind(etag)
        .bind(shape.map(|s| i64::try_from(s.size).unwrap_or(i64::MAX)))
        .bind(shape.map(|s| i64::try_from(s.chunk_size).unwrap_or(i64::MAX)))
        .bind(shape.map(|s| s.total_chunks as i32));
        self.transition_reporting(transition, event).await
    }

    /// Declares the whole file's SHA-256 of `owner`'s live upload, one created without it (a client that hashes
    /// while it sends learns the digest only at the end). `false` when the upload is not live or already has
    /// a digest: the caller reads the row to say which.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn declare_file_sha256(
        &self,
        id: Uuid,
        owner: &Owner,
        digest: &Sha256Digest,
    ) -> Result<bool, sqlx::Error> {
        let declared = sqlx::query(
            "UPDATE uploads SET declared_sha256 = $3, updated_at = now() WHERE id = $1 AND owner = $2 \
             AND state = 'uploading' AND expires_at > now() AND declared_sha256 IS NULL",
        )
        .bind(id)
        .bind(owner.as_str())
        .bind(digest.as_bytes().as_slice())
        .execute(&self.pool)
        .await?;
        Ok(declared.rows_affected() == 1)
    }

    /// `uploading -> aborted`, for its owner, while the upload is live: one past its deadline is expired (410)
    /// like everywhere else, and the worker's expiry removes its parts. Reported as `event`, if given.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn abort(
        &self,
        id: Uuid,
        owner: &Owner,
        event: Option<EventType>,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        let sql = transition_sql!("state = 'aborted'", "owner = $2 AND state = 'uploading' AND expires_at > now()");
        self.transition_reporting(sqlx::query_as(sql).bind(id).bind(owner.as_str()), event).await
    }

    /// `uploading -> expired`, only once its deadline has passed (activity may have refreshed it). Reported as
    /// `event`, if given.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn expire(&self, id: Uuid, event: Option<EventType>) -> Result<Option<UploadRecord>, sqlx::Error> {
        let sql = transition_sql!("state = 'expired'", "state = 'uploading' AND expires_at <= now()");
        self.transition_reporting(sqlx::query_as(sql).bind(id), event).await
    }

    async fn transition_epoch(
        &self,
        sql: &'static str,
        id: Uuid,
        epoch: i64,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        sqlx::query_as(sql).bind(id).bind(epoch).fetch_optional(&self.pool).await
    }
}

pub async fn find_upload(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await
}
