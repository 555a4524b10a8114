//! The recurring sweep: queues expiries and completion recoveries, forgets old done jobs, delivered webhook
//! events and expired idempotency keys, and aborts the multipart uploads in S3 that no live upload owns.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;

use super::{UploadError, Uploads};

/// Ids per query when asking the database which multipart uploads are live (one ListMultipartUploads page).
const LIVE_LOOKUP_BATCH: usize = 1000;

/// What the sweep needs to know of the worker's schedule.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// An upload `completing` for longer than this is taken to be abandoned by a dead API process.
    pub recovery_threshold: Duration,
    /// Done jobs older than this are deleted.
    pub job_retention: Duration,
}

/// What a sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expiries_queued: u64,
    pub recoveries_queued: u64,
    pub done_jobs_deleted: u64,
    pub delivered_events_deleted: u64,
    pub idempotency_keys_deleted: u64,
    pub multipart_uploads_seen: usize,
    pub orphans_aborted: usize,
}

impl Uploads {
    #[tracing::instrument(skip_all)]
    pub async fn sweep(&self, settings: SweepSettings) -> Result<SweepReport, UploadError> {
        let mut report = SweepReport {
            expiries_queued: self.repo.enqueue_overdue_expiries().await?,
            recoveries_queued: self.repo.enqueue_stuck_completions(settings.recovery_threshold).await?,
            done_jobs_deleted: self.repo.delete_done_jobs(settings.job_retention).await?,
            delivered_events_deleted: self.repo.delete_delivered_webhook_events(settings.job_retention).await?,
            idempotency_keys_deleted: self.repo.delete_expired_idempotency_keys().await?,
            ..SweepReport::default()
        };
        (report.multipart_uploads_seen, report.orphans_aborted) = self.abort_orphans().await?;
        tracing::info!(?report, "sweep done");
        Ok(report)
    }

    /// Aborts every multipart upload under `S3_KEY_PREFIX` (another service's prefix in the same bucket is not
    /// ours to judge) that no live row owns and that is older than `UPLOAD_TTL`
    /// (younger ones may belong to a row being inserted). Returns how many were seen and aborted.
    pub async fn abort_orphans(&self) -> Result<(usize, usize), UploadError> {
        let open = self.storage.list_multipart_uploads(self.storage.key_prefix()).await?;
        let seen = open.len();
        let cutoff = Utc::now() - self.policy.upload_ttl;
        let old: Vec<_> = open.into_iter().filter(|u| u.initiated.is_some_and(|at| at <= cutoff)).collect();
        let mut aborted = 0;
        for batch in old.chunks(LIVE_LOOKUP_BATCH) {
            let ids: Vec<String> = batch.iter().map(|u| u.upload_id.clone()).collect();
            let live: HashSet<String> = self.repo.live_s3_upload_ids(&ids).await?.into_iter().collect();
            for orphan in batch.iter().filter(|u| !live.contains(&u.upload_id)) {
                // One that fails is tried again by the next sweep; the others need not wait for it.
                match self.storage.abort_multipart_upload(&orphan.key, &orphan.upload_id).await {
                    Ok(()) => {
                        tracing::info!(key = %orphan.key, s3_upload_id = %orphan.upload_id, "aborted orphan multipart upload");
                        aborted += 1;
                    }
                    Err(err) => {
                        tracing::warn!(key = %orphan.key, s3_upload_id = %orphan.upload_id, error = %err, "cannot abort orphan multipart upload");
                    }
                }
            }
        }
        Ok((seen, aborted))
    }
}
