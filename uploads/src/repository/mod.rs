//! Every SQL statement of the service lives here. State changes are single guarded statements
//! (`... WHERE state = 'uploading' RETURNING ...`), never read-then-write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::{ChunkPlan, IndexRanges, Sha256Digest, UploadState, VerificationState};

#[derive(Debug, Clone, FromRow)]
pub struct UploadRecord {
    pub id: Uuid,
    pub owner: Option<String>,
    pub state: UploadState,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub chunk_size: i64,
    pub total_chunks: i32,
    pub metadata: serde_json::Value,
    pub declared_sha256: Option<Vec<u8>>,
    pub object_key: String,
    pub s3_upload_id: Option<String>,
    pub etag: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// `None` until completed; then set by the worker's verification job.
    pub verification_state: Option<VerificationState>,
    pub object_sha256: Option<Vec<u8>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub verification_error: Option<String>,
}

impl UploadRecord {
    pub fn plan(&self) -> ChunkPlan {
        ChunkPlan::from_stored(self.size as u64, self.chunk_size as u64)
    }

    pub fn declared_sha256(&self) -> Option<Sha256Digest> {
        self.declared_sha256.as_deref().and_then(Sha256Digest::from_slice)
    }

    /// The object's SHA-256 as the worker computed it from S3's bytes.
    pub fn object_sha256(&self) -> Option<Sha256Digest> {
        self.object_sha256.as_deref().and_then(Sha256Digest::from_slice)
    }

    /// The `Repr-Digest` header value (RFC 9530) for a download, once the object's digest is known.
    pub fn repr_digest(&self) -> Option<String> {
        self.object_sha256().map(|digest| format!("sha-256=:{}:", digest.to_base64()))
    }

    /// Past its deadline, whether or not the worker has marked it yet.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.state == UploadState::Expired || (self.state == UploadState::Uploading && self.expires_at <= now)
    }
}

#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: Uuid,
    pub owner: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub plan: ChunkPlan,
    pub metadata: serde_json::Value,
    pub declared_sha256: Option<Sha256Digest>,
    pub object_key: String,
    pub s3_upload_id: Option<String>,
    pub ttl: Duration,
}

#[derive(Debug, Clone, FromRow)]
pub struct ChunkRecord {
    pub index: i32,
    pub sha256: Vec<u8>,
    pub size: i64,
    pub etag: Option<String>,
    pub declared_at: DateTime<Utc>,
    pub received_at: Option<DateTime<Utc>>,
}

/// A chunk whose bytes S3 holds as declared (index, ETag from ListParts).
#[derive(Debug, Clone)]
pub struct VerifiedChunk {
    pub index: u32,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub etag: String,
}

/// The columns of [`UploadRecord`], as a literal so that statements stay `&'static str` (sqlx audits dynamic SQL).
macro_rules! upload_columns {
    () => {
        "id, owner, state, filename, content_type, size, chunk_size, total_chunks, metadata, \
         declared_sha256, object_key, s3_upload_id, etag, created_at, updated_at, expires_at, completed_at, \
         verification_state, object_sha256, verified_at, verification_error"
    };
}

/// `UPDATE uploads` with a state guard, returning the row when the guard held.
macro_rules! transition_sql {
    ($set:literal, $guard:literal) => {
        concat!(
            "UPDATE uploads SET ",
            $set,
            ", updated_at = now() WHERE id = $1 AND ",
            $guard,
            " RETURNING ",
            upload_columns!()
        )
    };
}

mod jobs;
pub use jobs::{ClaimedJob, JobKind, JobState, Lease};

fn ttl_seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

#[derive(Clone)]
pub struct Repository {
    pool: PgPool,
}

impl Repository {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

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

    /// Records the checksums signed into new chunk URLs and refreshes the upload's deadline, in one statement.
    /// A new checksum for a chunk already received makes it missing again: the client is re-uploading it.
    /// Returns `None`, changing nothing, unless the upload is live and every index is within it.
    #[tracing::instrument(skip_all, fields(upload_id = %id, chunks = chunks.len()))]
    pub async fn declare_chunks(
        &self,
        id: Uuid,
        chunks: &[(u32, Sha256Digest)],
        ttl: Duration,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        let indices: Vec<i32> = chunks.iter().map(|(i, _)| *i as i32).collect();
        let digests: Vec<Vec<u8>> = chunks.iter().map(|(_, d)| d.as_bytes().to_vec()).collect();
        // Compared as bigint: an index past i32::MAX must fail the range guard, not wrap to a negative one.
        let max_index = chunks.iter().map(|(i, _)| i64::from(*i)).max().unwrap_or(0);
        sqlx::query_as(concat!(
            "WITH live AS ( \
                 UPDATE uploads SET expires_at = now() + make_interval(secs => $4), updated_at = now() \
                 WHERE id = $1 AND state = 'uploading' AND expires_at > now() AND $5 < total_chunks \
                 RETURNING ",
            upload_columns!(),
            " \
             ), declared AS ( \
                 INSERT INTO chunks AS c (upload_id, index, sha256, size) \
                 SELECT live.id, d.index, d.sha256, LEAST(live.chunk_size, live.size - d.index::bigint * live.chunk_size) \
                 FROM live, unnest($2::int[], $3::bytea[]) AS d(index, sha256) \
                 ON CONFLICT (upload_id, index) DO UPDATE SET \
                     sha256 = EXCLUDED.sha256, \
                     declared_at = now(), \
                     etag = CASE WHEN c.sha256 = EXCLUDED.sha256 THEN c.etag END, \
                     received_at = CASE WHEN c.sha256 = EXCLUDED.sha256 THEN c.received_at END \
                 RETURNING 1 \
             ) \
             SELECT * FROM live"
        ))
        .bind(id)
        .bind(&indices)
        .bind(&digests)
        .bind(ttl_seconds(ttl))
        .bind(max_index)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a chunk the client says S3 accepted, when its checksum is the one declared for it.
    /// The same report twice keeps the first `received_at`. `None`: the upload is not live, or the chunk
    /// was never declared with this checksum; nothing changed.
    #[tracing::instrument(skip_all, fields(upload_id = %id, index))]
    pub async fn confirm_chunk(
        &self,
        id: Uuid,
        index: u32,
        sha256: &Sha256Digest,
        etag: &str,
        ttl: Duration,
    ) -> Result<Option<ChunkRecord>, sqlx::Error> {
        sqlx::query_as(
            "WITH live AS ( \
                 UPDATE uploads SET expires_at = now() + make_interval(secs => $5), updated_at = now() \
                 WHERE id = $1 AND state = 'uploading' AND expires_at > now() \
                 RETURNING id \
             ) \
             UPDATE chunks c SET \
                 received_at = CASE WHEN c.etag = $4 THEN c.received_at ELSE now() END, \
                 etag = $4 \
             FROM live \
             WHERE c.upload_id = live.id AND c.index = $2 AND c.sha256 = $3 \
             RETURNING c.index, c.sha256, c.size, c.etag, c.declared_at, c.received_at",
        )
        .bind(id)
        .bind(index as i32)
        .bind(sha256.as_bytes().as_slice())
        .bind(etag)
        .bind(ttl_seconds(ttl))
        .fetch_optional(&self.pool)
        .await
    }

    #[tracing::instrument(skip_all, fields(upload_id = %id, index))]
    pub async fn find_chunk(&self, id: Uuid, index: u32) -> Result<Option<ChunkRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT index, sha256, size, etag, declared_at, received_at FROM chunks WHERE upload_id = $1 AND index = $2",
        )
        .bind(id)
        .bind(index as i32)
        .fetch_optional(&self.pool)
        .await
    }

    /// Declared chunks, in index order.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn list_chunks(&self, id: Uuid) -> Result<Vec<ChunkRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT index, sha256, size, etag, declared_at, received_at FROM chunks WHERE upload_id = $1 ORDER BY index",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
    }

    /// Received chunks as compact index ranges, computed by Postgres (gaps and islands), so a
    /// 10,000-chunk upload answers with a handful of rows.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn received_ranges(&self, id: Uuid) -> Result<IndexRanges, sqlx::Error> {
        let rows: Vec<(i32, i32)> = sqlx::query_as(
            "SELECT min(index), max(index) FROM ( \
                 SELECT index, index - row_number() OVER (ORDER BY index) AS island \
                 FROM chunks WHERE upload_id = $1 AND received_at IS NOT NULL \
             ) t GROUP BY island ORDER BY 1",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(IndexRanges::from_sorted(rows.into_iter().map(|(a, b)| (a as u32, b as u32)).collect()))
    }

    /// Makes the chunk table agree with S3: `verified` chunks (found in ListParts with the declared checksum
    /// and size) are received with S3's ETag; every other chunk is missing, whatever the client reported.
    #[tracing::instrument(skip_all, fields(upload_id = %id, verified = verified.len()))]
    pub async fn reconcile_chunks(&self, id: Uuid, verified: &[VerifiedChunk]) -> Result<(), sqlx::Error> {
        let indices: Vec<i32> = verified.iter().map(|c| c.index as i32).collect();
        let digests: Vec<Vec<u8>> = verified.iter().map(|c| c.sha256.as_bytes().to_vec()).collect();
        let etags: Vec<String> = verified.iter().map(|c| c.etag.clone()).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE chunks c SET etag = v.etag, received_at = COALESCE(c.received_at, now()) \
             FROM unnest($2::int[], $3::bytea[], $4::text[]) AS v(index, sha256, etag) \
             WHERE c.upload_id = $1 AND c.index = v.index AND c.sha256 = v.sha256 \
               AND (c.received_at IS NULL OR c.etag IS DISTINCT FROM v.etag)",
        )
        .bind(id)
        .bind(&indices)
        .bind(&digests)
        .bind(&etags)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE chunks SET etag = NULL, received_at = NULL \
             WHERE upload_id = $1 AND received_at IS NOT NULL AND NOT (index = ANY($2))",
        )
        .bind(id)
        .bind(&indices)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
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
