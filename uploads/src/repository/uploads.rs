//! Uploads: creating one, reading it, and its guarded state transitions.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::{NewUpload, Repository, UploadRecord, ttl_seconds};

impl Repository {
    #[tracing::instrument(skip_all, fields(upload_id = %new.id))]
    pub async fn insert_upload(&self, new: &NewUpload) -> Result<UploadRecord, sqlx::Error> {
        sqlx::query_as(concat!(
            "INSERT INTO uploads (id, owner, filename, content_type, size, chunk_size, total_chunks, metadata, \
                 declared_sha256, object_key, s3_upload_id, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12)) \
             RETURNING ",
            upload_columns!()
        ))
        .bind(new.id)
        .bind(&new.owner)
        .bind(&new.filename)
        .bind(&new.content_type)
        .bind(new.plan.size() as i64)
        .bind(new.plan.chunk_size() as i64)
        .bind(new.plan.total_chunks() as i32)
        .bind(&new.metadata)
        .bind(new.declared_sha256.map(|d| d.as_bytes().to_vec()))
        .bind(&new.object_key)
        .bind(&new.s3_upload_id)
        .bind(ttl_seconds(new.ttl))
        .fetch_one(&self.pool)
        .await
    }

    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn find_upload(&self, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        find_upload(&self.pool, id).await
    }

    /// `uploading -> completing`; `None` when the upload is not live. Only one caller can win this.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn begin_completion(&self, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        self.transition(transition_sql!("state = 'completing'", "state = 'uploading' AND expires_at > now()"), id).await
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

    /// `uploading -> aborted`, while the upload is live: one past its deadline is expired (410) like
    /// everywhere else, and the worker's expiry removes its parts.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn abort(&self, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        self.transition(transition_sql!("state = 'aborted'", "state = 'uploading' AND expires_at > now()"), id).await
    }

    /// `uploading -> expired`, only once its deadline has passed (activity may have refreshed it).
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn expire(&self, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        self.transition(transition_sql!("state = 'expired'", "state = 'uploading' AND expires_at <= now()"), id).await
    }

    async fn transition(&self, sql: &'static str, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
        sqlx::query_as(sql).bind(id).fetch_optional(&self.pool).await
    }
}

pub async fn find_upload(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UploadRecord>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await
}
