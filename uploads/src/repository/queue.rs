//! The worker's queue: jobs claimed with `FOR UPDATE SKIP LOCKED` under a lease that the worker renews while
//! it runs the job, so N workers never run a job at once and a dead worker's job is claimed again once its
//! lease runs out.

use std::time::Duration;

use sqlx::FromRow;
use uuid::Uuid;

use super::{Repository, ttl_seconds};

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "job_kind", rename_all = "snake_case")]
pub enum JobKind {
    /// Recurring: enqueues expiries and recoveries, aborts orphan multipart uploads in S3.
    Sweep,
    ExpireUpload,
    VerifyObject,
    RecoverCompletion,
    /// One webhook event (`webhook_event_id`; no upload).
    DeliverWebhook,
}

impl JobKind {
    pub const ALL: [Self; 5] =
        [Self::Sweep, Self::ExpireUpload, Self::VerifyObject, Self::RecoverCompletion, Self::DeliverWebhook];

    /// The sweep recurs, an upload must never stay `completing` forever nor its parts live forever: these keep
    /// retrying with capped backoff. A webhook delivery is bounded by its event's age (`WEBHOOK_MAX_AGE`), not
    /// by a count of attempts. Only a verification fails for good after `max_attempts` (the upload then says so).
    pub fn retries_forever(self) -> bool {
        matches!(self, Self::Sweep | Self::ExpireUpload | Self::RecoverCompletion | Self::DeliverWebhook)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "job_state", rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    /// Attempts exhausted; kept with its last error.
    Failed,
}

/// A job this worker holds the lease on.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: JobKind,
    pub upload_id: Option<Uuid>,
    /// The event a `deliver_webhook` job delivers.
    pub webhook_event_id: Option<Uuid>,
    /// This claim included.
    pub attempts: i32,
}

/// A job taken back from a worker that stopped renewing its lease.
#[derive(FromRow)]
struct Reclaimed {
    #[sqlx(flatten)]
    job: ClaimedJob,
    /// Failed for good: its attempts are spent.
    spent: bool,
}

/// How failed jobs are retried: `backoff * 2^(attempt-1)`, at most `backoff_max`, until `max_attempts`
/// (for the kinds that may fail for good).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based).
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.backoff.saturating_mul(factor).min(self.backoff_max)
    }
}

/// Who holds a job, and for how long each claim or renewal holds it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub duration: Duration,
}

impl Repository {
    /// Claims the most overdue queued job whose time has come. Concurrent claimers skip each other's locked
    /// rows instead of waiting.
    #[tracing::instrument(skip_all)]
    pub async fn claim_job(&self, lease: &Lease) -> Result<Option<ClaimedJob>, sqlx::Error> {
        sqlx::query_as(
            r#"UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1,
                   lease_expires_at = now() + make_interval(secs => $2), updated_at = now()
               WHERE id = (
                   SELECT id FROM jobs WHERE state = 'queued' AND run_at <= now()
                   ORDER BY run_at
                   LIMIT 1
                   FOR UPDATE SKIP LOCKED
               )
               RETURNING id, kind, upload_id, webhook_event_id, attempts"#,
        )
        .bind(&lease.owner)
        .bind(ttl_seconds(lease.duration))
        .fetch_optional(&self.pool)
        .await
    }

    /// Takes back the jobs whose worker stopped renewing their lease (it crashed, stalled or was killed): each
    /// is queued again after the backoff its attempts call for, or failed for good once they are spent (for the
    /// kinds that may fail), so a job that kills its worker every time cannot run in a tight loop. Returns the
    /// jobs failed this way.
    #[tracing::instrument(skip_all)]
    pub async fn reclaim_abandoned_jobs(&self, retry: &RetryPolicy) -> Result<Vec<ClaimedJob>, sqlx::Error> {
        let forever: Vec<JobKind> = JobKind::ALL.into_iter().filter(|k| k.retries_forever()).collect();
        sqlx::query_as(
            r#"WITH abandoned AS (
                   SELECT id, attempts >= $1 AND NOT (kind = ANY($4)) AS spent FROM jobs
                   WHERE state = 'running' AND lease_expires_at <= now()
                   FOR UPDATE SKIP LOCKED
               )
               UPDATE jobs SET
                   state = CASE WHEN abandoned.spent THEN 'failed'::job_state ELSE 'queued'::job_state END,
                   run_at = now() + make_interval(secs => LEAST($2 * power(2, LEAST(GREATEST(attempts - 1, 0), 30)), $3)),
                   finished_at = CASE WHEN abandoned.spent THEN now() END,
                   last_error = 'the worker holding this job stopped renewing its lease (crashed, stalled or killed)',
                   lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
               FROM abandoned WHERE jobs.id = abandoned.id
               RETURNING jobs.id, kind, upload_id, webhook_event_id, attempts, abandoned.spent"#,
        )
        .bind(retry.max_attempts as i32)
        .bind(retry.backoff.as_secs_f64())
        .bind(retry.backoff_max.as_secs_f64())
        .bind(&forever)
        .fetch_all(&self.pool)
        .await
        .map(|rows: Vec<Reclaimed>| rows.into_iter().filter(|r| r.spent).map(|r| r.job).collect())
    }

    /// Extends the lease; `false` when another worker took the job over (this one must stop).
    #[tracing::instrument(skip_all, fields(job_id = id))]
    pub async fn renew_lease(&self, id: i64, lease: &Lease) -> Result<bool, sqlx::Error> {
        let renewed = sqlx::query(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3), updated_at = now() \
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(id)
        .bind(&lease.owner)
        .bind(ttl_seconds(lease.duration))
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// The job is done; `false` when the lease was lost meanwhile (the job is idempotent, so no harm).
    #[tracing::instrument(skip_all, fields(job_id = id))]
    pub async fn complete_job(&self, id: i64, lease: &Lease) -> Result<bool, sqlx::Error> {
        self.while_leased(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, finished_at = now(), \
                 updated_at = now() \
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            id,
            lease,
        )
        .await
    }

    /// A recurring job ran: queue it again for `after` from now, its attempts reset.
    #[tracing::instrument(skip_all, fields(job_id = id))]
    pub async fn reschedule_job(&self, id: i64, lease: &Lease, after: Duration) -> Result<bool, sqlx::Error> {
        let queued = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = now() + make_interval(secs => $3), \
                 lease_owner = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now() \
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(id)
        .bind(&lease.owner)
        .bind(ttl_seconds(after))
        .execute(&self.pool)
        .await?;
        Ok(queued.rows_affected() == 1)
    }

    /// Records the error; the job runs again after `retry_after`, or with `None` it is failed for good.
    /// Returns the job's new state, or `None` when the lease was lost meanwhile.
    #[tracing::instrument(skip_all, fields(job_id = id))]
    pub async fn fail_job(
        &self,
        id: i64,
        lease: &Lease,
        error: &str,
        retry_after: Option<Duration>,
    ) -> Result<Option<JobState>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE jobs SET \
                 state = CASE WHEN $4::float8 IS NULL THEN 'failed'::job_state ELSE 'queued'::job_state END, \
                 run_at = CASE WHEN $4::float8 IS NULL THEN run_at ELSE now() + make_interval(secs => $4) END, \
                 finished_at = CASE WHEN $4::float8 IS NULL THEN now() END, \
                 last_error = $3, lease_owner = NULL, lease_expires_at = NULL, updated_at = now() \
             WHERE id = $1 AND state = 'running' AND lease_owner = $2 \
             RETURNING state",
        )
        .bind(id)
        .bind(&lease.owner)
        .bind(error)
        .bind(retry_after.map(ttl_seconds))
        .fetch_optional(&self.pool)
        .await
    }

    /// Hands the job back unfinished (shutdown): claimable at once, and the claim does not count as an attempt.
    #[tracing::instrument(skip_all, fields(job_id = id))]
    pub async fn release_job(&self, id: i64, lease: &Lease) -> Result<bool, sqlx::Error> {
        self.while_leased(
            "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), lease_owner = NULL, \
                 lease_expires_at = NULL, updated_at = now() \
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            id,
            lease,
        )
        .await
    }

    /// Runs a job update guarded by `lease_owner = $2`; `true` when this worker still held the job.
    async fn while_leased(&self, sql: &'static str, id: i64, lease: &Lease) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query(sql).bind(id).bind(&lease.owner).execute(&self.pool).await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Forgets jobs done longer than `retention` ago; returns how many. Safe: a done job is never needed to
    /// prevent a second run (its upload has moved on), and failed ones stay for an operator.
    #[tracing::instrument(skip_all)]
    pub async fn delete_done_jobs(&self, retention: Duration) -> Result<u64, sqlx::Error> {
        let deleted =
            sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < now() - make_interval(secs => $1)")
                .bind(ttl_seconds(retention))
                .execute(&self.pool)
                .await?;
        Ok(deleted.rows_affected())
    }
}
