//! Chunks: the checksums signed into URLs, the confirmations clients report, and S3's ListParts as the truth.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ChunkRecord, ConfirmedChunk, Repository, UploadRecord, VerifiedChunk, ttl_seconds};
use crate::domain::{IndexRanges, Owner, Sha256Digest};

impl Repository {
    /// Records the checksums signed into new chunk URLs and refreshes the upload's deadline, in one statement.
    /// A new checksum for a chunk already received makes it missing again: the client is re-uploading it.
    /// Returns `None`, changing nothing, unless `owner`'s upload is live and every index is within it.
    ///
    /// The statement commits without waiting for its WAL to reach the disk (`synchronous_commit = off`, for
    /// this transaction only). On a durable Postgres each request of one upload otherwise held the upload
    /// row's lock until its WAL flush: 1,173 instead of 2,906 URLs per second for one upload (bench/PROFILE.md).
    /// What a database crash can lose is the last fraction of a second of URL requests, and a client simply
    /// asks again: a chunk whose declaration was lost is refused at confirm with `chunk_not_declared` until
    /// its URL is asked for again, and S3 holds any part sent meanwhile under the same checksum.
    #[tracing::instrument(skip_all, fields(upload_id = %id, chunks = chunks.len()))]
    pub async fn declare_chunks(
        &self,
        id: Uuid,
        owner: &Owner,
        chunks: &[(u32, Sha256Digest)],
        ttl: Duration,
    ) -> Result<Option<UploadRecord>, sqlx::Error> {
        let indices: Vec<i32> = chunks.iter().map(|(i, _)| *i as i32).collect();
        let digests: Vec<Vec<u8>> = chunks.iter().map(|(_, d)| d.as_bytes().to_vec()).collect();
        // Compared as bigint: an index past i32::MAX must fail the range guard, not wrap to a negative one.
        let max_index = chunks.iter().map(|(i, _)| i64::from(*i)).max().unwrap_or(0);
        sqlx::query_as(concat!(
            "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)), \
             live AS ( \
                 UPDATE uploads SET expires_at = now() + make_interval(secs => $4), updated_at = now() \
                 WHERE id = $1 AND owner = $6 AND state = 'uploading' AND expires_at > now() AND $5 < total_chunks \
                 RETURNING ",
            upload_columns!(),
            " \
             ), declared AS ( \
                 INSERT INTO chunks AS c (upload_id, index, sha256, size) \
                 SELECT live.id, d.index, d.sha256, LEAST(live.chunk_size, live.size - d.index::bigint * live.chunk_size) \
                 FROM live, unnest($2::int[], $3::bytea[]) AS d(index, sha256) ORDER BY d.index \
                 ON CONFLICT (upload_id, index) DO UPDATE SET \
                     sha256 = EXCLUDED.sha256, \
                     declared_at = now(), \
                     etag = CASE WHEN c.sha256 = EXCLUDED.sha256 THEN c.etag END, \
                     received_at = CASE WHEN c.sha256 = EXCLUDED.sha256 THEN c.received_at END \
                 RETURNING 1 \
             ) \
             SELECT live.* FROM live, relaxed"
        ))
        .bind(id)
        .bind(&indices)
        .bind(&digests)
        .bind(ttl_seconds(ttl))
        .bind(max_index)
        .bind(owner.as_str())
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a chunk the client says S3 accepted, when its checksum is the one declared for it.
    /// The same report twice keeps the first `received_at` (and is not `newly_received`). `None`: `owner`'s upload
    /// is not live, or the chunk was never declared with this checksum; nothing changed.
    #[tracing::instrument(skip_all, fields(upload_id = %id, index))]
    pub async fn confirm_chunk(
        &self,
        id: Uuid,
        owner: &Owner,
        index: u32,
        sha256: &Sha256Digest,
        etag: &str,
        ttl: Duration,
    ) -> Result<Option<ConfirmedChunk>, sqlx::Error> {
        // `received_at` is this statement's `now()` only when this report set it: an earlier report's time is
        // another transaction's.
        sqlx::query_as(
            "WITH live AS ( \
                 UPDATE uploads SET expires_at = now() + make_interval(secs => $5), updated_at = now() \
                 WHERE id = $1 AND owner = $6 AND state = 'uploading' AND expires_at > now() \
                 RETURNING id \
             ) \
             UPDATE chunks c SET \
                 received_at = CASE WHEN c.etag = $4 THEN c.received_at ELSE now() END, \
                 etag = $4 \
             FROM live \
             WHERE c.upload_id = live.id AND c.index = $2 AND c.sha256 = $3 \
             RETURNING c.index, c.sha256, c.size, c.etag, c.declared_at, c.received_at, \
                 COALESCE(c.received_at = now(), false) AS newly_received",
        )
        .bind(id)
        .bind(index as i32)
        .bind(sha256.as_bytes().as_slice())
        .bind(etag)
        .bind(ttl_seconds(ttl))
        .bind(owner.as_str())
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

    /// Received chunks as compact index ranges. Postgres sends the received indices as one array (at
    /// most 40 KB for 10,000 chunks) and the ranges are folded here: a gaps-and-islands query (a window, then
    /// a group per island) cost Postgres about 1.5x as much for a 10,000-chunk upload.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn received_ranges(&self, id: Uuid) -> Result<IndexRanges, sqlx::Error> {
        // Sorted here, not by `ORDER BY` in the aggregate: Postgres's sort was a quarter of the statement's
        // time, and the `chunks_received` index hands the indices over in order anyway (a sorted run is one
        // pass for `sort_unstable`).
        let indices: Option<Vec<i32>> =
            sqlx::query_scalar("SELECT array_agg(index) FROM chunks WHERE upload_id = $1 AND received_at IS NOT NULL")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        let mut indices = indices.unwrap_or_default();
        indices.sort_unstable();
        Ok(IndexRanges::from_indices(indices.into_iter().map(|index| index as u32)))
    }

    /// Makes the chunk table agree with S3: `verified` chunks (found in ListParts with the declared checksum
    /// and size) are received with S3's ETag; `lacking` ones (received as read before ListParts, but not in S3
    /// as declared) are missing again, whatever the client reported, unless a confirmation changed them since
    /// they were read (it committed after the listing: not this reconcile's to judge). Rows are locked in index
    /// order, as every statement on chunks takes them, so a concurrent batch cannot deadlock with this.
    #[tracing::instrument(skip_all, fields(upload_id = %id, verified = verified.len(), lacking = lacking.len()))]
    pub async fn reconcile_chunks(
        &self,
        id: Uuid,
        verified: &[VerifiedChunk],
        lacking: &[ChunkRecord],
    ) -> Result<(), sqlx::Error> {
        let indices: Vec<i32> = verified.iter().map(|c| c.index as i32).collect();
        let digests: Vec<Vec<u8>> = verified.iter().map(|c| c.sha256.as_bytes().to_vec()).collect();
        let etags: Vec<String> = verified.iter().map(|c| c.etag.clone()).collect();
        let lacking_indices: Vec<i32> = lacking.iter().map(|c| c.index).collect();
        let lacking_etags: Vec<Option<String>> = lacking.iter().map(|c| c.etag.clone()).collect();
        let lacking_since: Vec<Option<DateTime<Utc>>> = lacking.iter().map(|c| c.received_at).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(r#"SELECT 1 FROM chunks WHERE upload_id = $1 ORDER BY index FOR UPDATE"#)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            r#"UPDATE chunks c SET etag = v.etag, received_at = COALESCE(c.received_at, now())
               FROM unnest($2::int[], $3::bytea[], $4::text[]) AS v(index, sha256, etag)
               WHERE c.upload_id = $1 AND c.index = v.index AND c.sha256 = v.sha256
                 AND (c.received_at IS NULL OR c.etag IS DISTINCT FROM v.etag)"#,
        )
        .bind(id)
        .bind(&indices)
        .bind(&digests)
        .bind(&etags)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            r#"UPDATE chunks c SET etag = NULL, received_at = NULL
               FROM unnest($2::int[], $3::text[], $4::timestamptz[]) AS l(index, etag, received_at)
               WHERE c.upload_id = $1 AND c.index = l.index
                 AND c.etag IS NOT DISTINCT FROM l.etag AND c.received_at IS NOT DISTINCT FROM l.received_at"#,
        )
        .bind(id)
        .bind(&lacking_indices)
        .bind(&lacking_etags)
        .bind(&lacking_since)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}
