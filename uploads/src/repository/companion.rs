//! Statements only Companion uploads need: refreshing a live multipart upload's deadline as its client signs
//! parts, recording the parts ListParts reports, and finding form POSTs that may have happened.

use std::time::Duration;

use uuid::Uuid;

use super::{Repository, UploadRecord, ttl_seconds};
use crate::domain::Owner;

/// A part S3 holds for a Companion multipart upload: its number, ETag (quoted, as S3 gives it) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
}

impl Repository {
    /// `owner`'s live Companion multipart upload `id`, its deadline pushed back (a client signing parts is
    /// active), as `declare_chunks` does for ours. `None`, changing nothing, unless it is one and live.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn touch_client_upload(
        &self,
        id: Uuid,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE uploads SET expires_at = now() + make_interval(secs => $3), updated_at = now() \
             WHERE id = $1 AND owner = $2 AND kind = 'multipart' AND state = 'uploading' AND expires_at > now() \
             RETURNING ",
            upload_columns!()
        ))
        .bind(id)
        .bind(owner.as_str())
        .bind(ttl_seconds(ttl))
        .fetch_optional(&self.pool)
        .await
    }

    /// Makes the chunk rows of Companion upload `id` the parts S3 lists: each received (keeping when it was
    /// first seen while its ETag is the same), any other row gone. Rows are locked in index order, as every
    /// statement on chunks takes them.
    #[tracing::instrument(skip_all, fields(upload_id = %id, parts = parts.len()))]
    pub async fn record_client_parts(&self, id: Uuid, parts: &[ListedPart]) -> Result<(), sqlx::Error> {
        let indices: Vec<i32> = parts.iter().map(|p| p.part_number as i32 - 1).collect();
        let etags: Vec<&str> = parts.iter().map(|p| p.etag.as_str()).collect();
        let sizes: Vec<i64> = parts.iter().map(|p| p.size as i64).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM chunks WHERE upload_id = $1 ORDER BY index FOR UPDATE")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM chunks WHERE upload_id = $1 AND NOT (index = ANY($2))")
            .bind(id)
            .bind(&indices)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            r#"INSERT INTO chunks AS c (upload_id, index, sha256, size, etag, received_at)
               SELECT $1, p.index, NULL, p.size, p.etag, now()
               FROM unnest($2::int[], $3::text[], $4::bigint[]) AS p(index, etag, size) ORDER BY p.index
               ON CONFLICT (upload_id, index) DO UPDATE SET
                   size = EXCLUDED.size, etag = EXCLUDED.etag,
                   received_at = CASE WHEN c.etag = EXCLUDED.etag THEN c.received_at ELSE now() END"#,
        )
        .bind(id)
        .bind(&indices)
        .bind(&etags)
        .bind(&sizes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Bytes of the chunks known to be in S3.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn received_bytes(&self, id: Uuid) -> Result<u64, sqlx::Error> {
        let bytes: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(size), 0)::bigint FROM chunks WHERE upload_id = $1 AND received_at IS NOT NULL",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(bytes as u64)
    }

    /// Up to `limit` live form-POST uploads, the nearest to their deadline first: the sweep looks whether
    /// their object arrived.
    #[tracing::instrument(skip_all)]
    pub async fn pending_form_posts(&self, limit: i64) -> Result<Vec<UploadRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            upload_columns!(),
            " FROM uploads WHERE kind = 'form_post' AND state = 'uploading' AND expires_at > now() \
             ORDER BY expires_at LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}
