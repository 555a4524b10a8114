//! Creating an upload: one transaction that claims the create's `Idempotency-Key`, if it has one, and inserts
//! the row within the owner's limits, so that neither a concurrent duplicate nor a concurrent create of the
//! same owner gets past them.

use std::time::Duration;

use sqlx::{FromRow, Postgres, Transaction};
use uuid::Uuid;

use super::{NewUpload, Repository, UploadRecord, ttl_seconds};
use crate::domain::{IdempotencyKey, Owner, Sha256Digest};

/// How much an owner may have in flight: uploads in `uploading`, and the sum of their sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveLimits {
    pub max_uploads: u64,
    pub max_bytes: u64,
}

/// What an owner has in flight now: live (`uploading`, not past their deadline) uploads and their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct ActiveUsage {
    pub uploads: i64,
    pub bytes: i64,
}

/// The create that used an idempotency key first.
#[derive(Debug, Clone, FromRow)]
pub struct FirstCreate {
    pub request_sha256: Vec<u8>,
    pub upload_id: Uuid,
}

#[derive(Debug)]
pub enum Insertion {
    Inserted(Box<UploadRecord>),
    /// Nothing was inserted: the upload would take the owner past a limit.
    OverLimit(ActiveUsage),
}

/// One create in progress for one owner. Dropped without [`Creation::insert`] it rolls back, releasing the key.
pub struct Creation {
    tx: Transaction<'static, Postgres>,
    owner: Owner,
}

impl Repository {
    pub async fn begin_creation(&self, owner: &Owner) -> Result<Creation, sqlx::Error> {
        Ok(Creation { tx: self.pool.begin().await?, owner: owner.clone() })
    }
}

impl Creation {
    /// Claims `key` for the upload `upload_id` about to be created; `Some` when a live create holds it already.
    /// A concurrent create with the same key holds its row lock until it commits (then this one finds it) or
    /// rolls back (then this one claims the key). A key past its expiry is taken over.
    #[tracing::instrument(skip_all, fields(owner = %self.owner, upload_id = %upload_id))]
    pub async fn claim_idempotency_key(
        &mut self,
        key: &IdempotencyKey,
        request_sha256: &Sha256Digest,
        upload_id: Uuid,
        ttl: Duration,
    ) -> Result<Option<FirstCreate>, sqlx::Error> {
        // The sweep may delete an expired key between the two statements: then the claim is simply tried again
        // (twice more at most; a third such race in a row is past belief, and answered as a fault).
        for _ in 0..3 {
            let claimed: Option<Uuid> = sqlx::query_scalar(
                r#"
                INSERT INTO idempotency_keys AS k (owner, key, request_sha256, upload_id, expires_at)
                VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
                ON CONFLICT (owner, key) DO UPDATE SET
                    request_sha256 = EXCLUDED.request_sha256, upload_id = EXCLUDED.upload_id,
                    created_at = now(), expires_at = EXCLUDED.expires_at
                WHERE k.expires_at <= now()
                RETURNING upload_id
                "#,
            )
            .bind(self.owner.as_str())
            .bind(key.as_str())
            .bind(request_sha256.as_bytes().as_slice())
            .bind(upload_id)
            .bind(ttl_seconds(ttl))
            .fetch_optional(&mut *self.tx)
            .await?;
            if claimed.is_some() {
                return Ok(None);
            }
            let first =
                sqlx::query_as("SELECT request_sha256, upload_id FROM idempotency_keys WHERE owner = $1 AND key = $2")
                    .bind(self.owner.as_str())
                    .bind(key.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await?;
            if first.is_some() {
                return Ok(first);
            }
        }
        Err(sqlx::Error::RowNotFound)
    }

    /// The owner's uploads in flight, read without a lock: a cheap early refusal before S3 is asked for
    /// anything. [`Creation::insert`] decides under the owner's lock.
    #[tracing::instrument(skip_all, fields(owner = %self.owner))]
    pub async fn active_usage(&mut self) -> Result<ActiveUsage, sqlx::Error> {
        sqlx::query_as(ACTIVE_USAGE).bind(self.owner.as_str()).fetch_one(&mut *self.tx).await
    }

    /// Inserts the upload if the owner stays within `limits`, and commits (with the claimed key). The owner's
    /// advisory lock serializes this statement among the owner's creates, so N racing creates at the limit
    /// cannot all see room for one more.
    #[tracing::instrument(skip_all, fields(owner = %self.owner, upload_id = %new.id))]
    pub async fn insert(mut self, new: &NewUpload, limits: ActiveLimits) -> Result<Insertion, sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('uploads.owner:' || $1, 0))")
            .bind(self.owner.as_str())
            .execute(&mut *self.tx)
            .await?;
        let inserted: Option<UploadRecord> = sqlx::query_as(concat!(
            r#"
            INSERT INTO uploads (id, owner, filename, content_type, size, chunk_size, total_chunks, metadata,
                declared_sha256, object_key, s3_upload_id, expires_at, kind)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12), $15
            WHERE (
                SELECT count(*) < $13 AND coalesce(sum(size), 0) + coalesce($5, 0) <= $14 FROM uploads
                WHERE owner = $2 AND state = 'uploading' AND expires_at > now()
            )
            RETURNING "#,
            upload_columns!()
        ))
        .bind(new.id)
        .bind(self.owner.as_str())
        .bind(&new.filename)
        .bind(&new.content_type)
        .bind(new.plan.map(|p| p.size() as i64))
        .bind(new.plan.map(|p| p.chunk_size() as i64))
        .bind(new.plan.map(|p| p.total_chunks() as i32))
        .bind(&new.metadata)
        .bind(new.declared_sha256.map(|d| d.as_bytes().to_vec()))
        .bind(&new.object_key)
        .bind(&new.s3_upload_id)
        .bind(ttl_seconds(new.ttl))
        .bind(saturating_i64(limits.max_uploads))
        .bind(saturating_i64(limits.max_bytes))
        .bind(new.kind)
        .fetch_optional(&mut *self.tx)
        .await?;
        match inserted {
            Some(upload) => {
                self.tx.commit().await?;
                Ok(Insertion::Inserted(Box::new(upload)))
            }
            None => {
                let usage = sqlx::query_as(ACTIVE_USAGE).bind(self.owner.as_str()).fetch_one(&mut *self.tx).await?;
                Ok(Insertion::OverLimit(usage))
            }
        }
    }
}

const ACTIVE_USAGE: &str = r#"
    SELECT count(*) AS uploads, coalesce(sum(size), 0)::bigint AS bytes FROM uploads
    WHERE owner = $1 AND state = 'uploading' AND expires_at > now()
"#;

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
