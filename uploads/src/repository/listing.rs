//! An owner's uploads, newest first, a keyset page at a time, each with the bytes received so far.

use sqlx::FromRow;

use super::{Repository, UploadRecord};
use crate::domain::{ListCursor, Owner, UploadState};

/// One upload of a page, with what its chunks add up to (its size once completed).
#[derive(Debug, Clone, FromRow)]
pub struct ListedUpload {
    #[sqlx(flatten)]
    pub upload: UploadRecord,
    pub received_bytes: i64,
}

impl Repository {
    /// Up to `limit` of `owner`'s uploads created before `after` (all when `None`), newest first (ties broken
    /// by id), whose state is one of `states` (any when empty). An upload past its deadline that the worker
    /// has not marked yet is `expired` here, in the filter and in the row, as its status answers 410.
    ///
    /// One statement: the page is taken from the `(owner, created_at, id)` index first, then each row's
    /// received bytes are summed from its chunks (primary key), so the cost follows the page, not the owner's
    /// history. The first page compares against a cursor past every upload rather than `$3 IS NULL OR ...`,
    /// which would keep the row comparison out of the index condition (and a deep page would scan every row
    /// before it).
    #[tracing::instrument(skip_all, fields(limit))]
    pub async fn list_owned_uploads(
        &self,
        owner: &Owner,
        states: &[UploadState],
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<Vec<ListedUpload>, sqlx::Error> {
        let rows: Vec<ListedRow> = sqlx::query_as(concat!(
            r#"WITH page AS (
                SELECT id FROM uploads
                WHERE owner = $1
                  AND (cardinality($2::upload_state[]) = 0
                       OR (CASE WHEN state = 'uploading' AND expires_at <= now() THEN 'expired' ELSE state END)
                          = ANY($2::upload_state[]))
                  AND (created_at, id) < (COALESCE($3::timestamptz, 'infinity'),
                                          COALESCE($4::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
                ORDER BY created_at DESC, id DESC
                LIMIT $5
            )
            SELECT "#,
            upload_columns!(),
            r#", (state = 'uploading' AND expires_at <= now()) AS lapsed,
                CASE WHEN state = 'completed' THEN size ELSE COALESCE(received.bytes, 0) END AS received_bytes
            FROM uploads JOIN page USING (id)
            LEFT JOIN LATERAL (
                SELECT sum(c.size)::bigint AS bytes FROM chunks c
                WHERE c.upload_id = uploads.id AND c.received_at IS NOT NULL
            ) received ON true
            ORDER BY created_at DESC, id DESC"#
        ))
        .bind(owner.as_str())
        .bind(states)
        .bind(after.map(|c| c.created_at))
        .bind(after.map(|c| c.id))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut listed = row.listed;
                if row.lapsed {
                    listed.upload.state = UploadState::Expired;
                }
                listed
            })
            .collect())
    }
}

#[derive(FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    listed: ListedUpload,
    lapsed: bool,
}
