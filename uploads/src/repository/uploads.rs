//! Uploads: reading one, and its guarded state transitions.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::{Repository, UploadRecord};
use crate::domain::Owner;

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

    /// `uploading -> completing`, for its owner; `None` when the upload is not live. Only one caller can win this.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn begin_completion(&self, id: Uuid, owner: &Owner) -> Result<Option<UploadRecord>, sqlx::Error> {
        let sql = transition_sql!("state = 'completing'", "owner = $2 AND state = 'uploading' AND expires_at > now()");
        self.owned_transition(sql, id, owner).await
    }

    /// `completing -> uploading`, when chunks are missing or S3 refused the completion.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn abandon_completion(&self, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        self.transition(transition_sql!("state = 'uploading'", "state = 'completing'"), id).await
    }

    /// `completing -> completed` with the object's ETag, enqueueing its verification in the same statement
    /// (so in the same transaction): no completed object goes unverified, whoever completed it.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn finish_completion(&self, id: Uuid, etag: &str) -> Result<Option<UploadRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "WITH completed AS (",
            transition_sql!(
                "state = 'completed', etag = $2, completed_at = now(), verification_state = 'pending'",
                "state = 'completing'"
            ),
            "), queued AS ( \
                 INSERT INTO jobs (kind, upload_id) SELECT 'verify_object', id FROM completed \
                 ON CONFLICT (kind, upload_id) DO NOTHING \
             ) \
             SELECT * FROM completed"
        ))
        .bind(id)
        .bind(etag)
        .fetch_optional(&self.pool)
        .await
    }

    /// `uploading -> aborted`, for its owner, while the upload is live: one past its deadline is expired (410)
    /// like everywhere else, and the worker's expiry removes its parts.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn abort(&self, id: Uuid, owner: &Owner) -> Result<Option<UploadRecord>, sqlx::Error> {
        let sql = transition_sql!("state = 'aborted'", "owner = $2 AND state = 'uploading' AND expires_at > now()");
        self.owned_transition(sql, id, owner).await
    }

    /// `uploading -> expired`, only once its deadline has passed (activity may have refreshed it).
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn expire(&self, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        self.transition(transition_sql!("state = 'expired'", "state = 'uploading' AND expires_at <= now()"), id).await
    }

    async fn transition(&self, sql: &'static str, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        sqlx::query_as(sql).bind(id).fetch_optional(&self.pool).await
    }

    async fn owned_transition(
        &self,
        sql: &'static str,
        id: Uuid,
        owner: &Owner,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        sqlx::query_as(sql).bind(id).bind(owner.as_str()).fetch_optional(&self.pool).await
    }
}

pub async fn find_upload(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await
}
