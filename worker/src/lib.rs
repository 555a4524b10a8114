//! The job runner of the resumable upload service: claims due jobs from the Postgres `jobs` table (any number
//! of replicas), holds their lease, dispatches each to its body in [`uploads::service::Uploads`], and records
//! the outcome. The job bodies (sweep, expiry, verification, completion recovery, webhook delivery) live with
//! the service.
//!
//! [`Worker::run`] is the process's loop; [`Worker::tick`] runs what is due once, for tests to drive.

pub mod config;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uploads::repository::{ClaimedJob, JobKind, JobState, Lease, Repository};
use uploads::service::{DeliveryError, Recovery, SweepSettings, UploadError, Uploads};
use uuid::Uuid;

use crate::config::{JobSettings, WorkerConfig};

/// Why a job failed: its body's error, or a job row that makes no sense.
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("{0:?} job without an upload")]
    NoUpload(JobKind),
    #[error("{0:?} job without a webhook event")]
    NoEvent(JobKind),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

impl JobError {
    /// The job must not run again, whatever its attempts.
    fn is_final(&self) -> bool {
        matches!(self, Self::Delivery(err) if err.is_final())
    }
}

/// What became of one claimed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Failed; queued again after a backoff.
    Retrying,
    /// Failed for the last time; the error stays on the row.
    Failed,
    /// Handed back unfinished on shutdown.
    Released,
    /// Another worker took the job over (this one's lease ran out).
    LeaseLost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobReport {
    pub id: i64,
    pub kind: JobKind,
    pub upload_id: Option<Uuid>,
    pub outcome: Outcome,
}

#[derive(Clone)]
pub struct Worker {
    uploads: Uploads,
    settings: JobSettings,
    lease: Lease,
}

impl Worker {
    /// Connects to Postgres (applying migrations) and S3, as the binary does.
    pub async fn connect(config: &WorkerConfig) -> anyhow::Result<Self> {
        Ok(Self::new(Uploads::connect(&config.service).await?, config.jobs.clone()))
    }

    pub fn new(uploads: Uploads, settings: JobSettings) -> Self {
        let owner = format!("worker-{}-{}", std::process::id(), Uuid::new_v4().simple());
        let lease = Lease { owner, duration: settings.lease };
        Self { uploads, settings, lease }
    }

    /// The name this worker's leases carry (`jobs.lease_owner`).
    pub fn id(&self) -> &str {
        &self.lease.owner
    }

    fn repo(&self) -> &Repository {
        self.uploads.repository()
    }

    /// Claims and runs due jobs one after another until none is due (or only jobs it already ran this tick,
    /// retrying without backoff, are); returns what it ran.
    pub async fn tick(&self) -> Result<Vec<JobReport>, sqlx::Error> {
        let never = CancellationToken::new();
        let mut seen = HashSet::new();
        let mut reports = Vec::new();
        self.reclaim_abandoned().await?;
        while let Some(job) = self.repo().claim_job(&self.lease).await? {
            if !seen.insert(job.id) {
                self.repo().release_job(job.id, &self.lease).await?;
                break;
            }
            reports.push(self.process(job, &never).await);
        }
        Ok(reports)
    }

    /// Runs jobs, up to `WORKER_CONCURRENCY` at once, until `shutdown` resolves. Then it claims nothing more,
    /// lets the jobs at hand finish for up to `WORKER_SHUTDOWN_GRACE`, and releases the rest to other workers.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let worker = Arc::new(self);
        let stop = CancellationToken::new();
        let mut running = JoinSet::new();
        tokio::pin!(shutdown);
        tracing::info!(worker = worker.id(), settings = ?worker.settings, "worker started");
        loop {
            if let Err(err) = worker.reclaim_abandoned().await {
                tracing::warn!(error = %err, "cannot reclaim abandoned jobs");
            }
            while running.len() < worker.settings.concurrency as usize {
                match worker.repo().claim_job(&worker.lease).await {
                    Ok(Some(job)) => {
                        let (worker, stop) = (worker.clone(), stop.clone());
                        running.spawn(async move { worker.process(job, &stop).await });
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot claim jobs");
                        break;
                    }
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    if let Err(err) = joined {
                        // Its lease runs out and another worker (or this one) runs it again.
                        tracing::error!(error = %err, "job panicked");
                    }
                }
                () = tokio::time::sleep(worker.settings.poll_interval) => {}
            }
        }
        tracing::info!(jobs_at_hand = running.len(), "shutting down: claiming no more jobs");
        let grace = tokio::time::sleep(worker.settings.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                () = &mut grace => {
                    stop.cancel();
                    while running.join_next().await.is_some() {}
                    break;
                }
            }
        }
        tracing::info!("worker stopped");
    }

    /// Queues again (after a backoff) the jobs of workers that stopped renewing their lease; a verification
    /// whose attempts are spent that way is given up, and its upload says so.
    async fn reclaim_abandoned(&self) -> Result<(), sqlx::Error> {
        for job in self.repo().reclaim_abandoned_jobs(&self.settings.retry_policy()).await? {
            tracing::warn!(job_id = job.id, kind = ?job.kind, attempts = job.attempts, "abandoned job failed for good");
            self.give_up(&job, "its worker stopped renewing the lease on every attempt").await;
        }
        Ok(())
    }

    /// What a job failed for good leaves on its upload.
    async fn give_up(&self, job: &ClaimedJob, error: &str) {
        if let (JobKind::VerifyObject, Some(id)) = (job.kind, job.upload_id)
            && let Err(err) = self.uploads.give_up_verification(id, error).await
        {
            tracing::warn!(error = %err, "cannot record the failed verification");
        }
    }

    /// Runs one claimed job under its lease (renewed meanwhile) and records the outcome.
    async fn process(&self, job: ClaimedJob, stop: &CancellationToken) -> JobReport {
        let span = tracing::info_span!(
            "job",
            job_id = job.id,
            kind = ?job.kind,
            upload_id = ?job.upload_id,
            webhook_id = ?job.webhook_event_id,
            attempt = job.attempts
        );
        let outcome = tracing::Instrument::instrument(self.process_leased(&job, stop), span).await;
        JobReport { id: job.id, kind: job.kind, upload_id: job.upload_id, outcome }
    }

    async fn process_leased(&self, job: &ClaimedJob, stop: &CancellationToken) -> Outcome {
        // Boxed: the job bodies are deep async state machines, and without the box the type of the spawned
        // future nests past the compiler's layout depth limit in release builds.
        let mut work = Box::pin(self.execute(job));
        let renew_every = self.lease.duration / 3;
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                () = stop.cancelled() => {
                    return match self.repo().release_job(job.id, &self.lease).await {
                        Ok(_) => Outcome::Released,
                        // The lease runs out and another worker takes the job: released all the same.
                        Err(err) => { tracing::warn!(error = %err, "cannot release job"); Outcome::Released }
                    };
                }
                () = tokio::time::sleep(renew_every) => match self.repo().renew_lease(job.id, &self.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("lease lost: another worker has the job");
                        return Outcome::LeaseLost;
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot renew lease"),
                },
            }
        };
        match self.record(job, result).await {
            Ok(outcome) => outcome,
            Err(err) => {
                // The lease runs out and the job runs again: every job is idempotent.
                tracing::warn!(error = %err, "cannot record the job's outcome");
                Outcome::LeaseLost
            }
        }
    }

    /// Dispatches the job to its body in the service; returns when it must run again, if it must.
    async fn execute(&self, job: &ClaimedJob) -> Result<Option<Duration>, JobError> {
        let upload_id = || job.upload_id.ok_or(JobError::NoUpload(job.kind));
        let uploads = &self.uploads;
        match job.kind {
            JobKind::Sweep => {
                let settings = SweepSettings {
                    recovery_threshold: self.settings.recovery_threshold,
                    job_retention: self.settings.job_retention,
                };
                uploads.sweep(settings).await?;
                return Ok(Some(self.settings.sweep_interval));
            }
            JobKind::ExpireUpload => uploads.expire(upload_id()?).await?,
            JobKind::VerifyObject => uploads.verify_object(upload_id()?).await?,
            JobKind::DeliverWebhook => {
                uploads.deliver_webhook(job.webhook_event_id.ok_or(JobError::NoEvent(job.kind))?).await?;
            }
            JobKind::RecoverCompletion => {
                if let Recovery::NotDue(until) = uploads.recover_completion(upload_id()?).await? {
                    return Ok(Some((until - Utc::now()).to_std().unwrap_or_default()));
                }
            }
        }
        Ok(None)
    }

    async fn record(
        &self,
        job: &ClaimedJob,
        result: Result<Option<Duration>, JobError>,
    ) -> Result<Outcome, sqlx::Error> {
        let repo = self.repo();
        let recorded = match result {
            Ok(Some(after)) => repo.reschedule_job(job.id, &self.lease, after).await?.then_some(Outcome::Done),
            Ok(None) => repo.complete_job(job.id, &self.lease).await?.then_some(Outcome::Done),
            Err(err) => {
                let error = format!("{err:#}");
                let last = err.is_final()
                    || (!job.kind.retries_forever() && job.attempts as u32 >= self.settings.max_attempts);
                let retry_after = (!last).then(|| self.settings.retry_policy().backoff_after(job.attempts as u32));
                tracing::warn!(error = %error, last, ?retry_after, "job failed");
                let state = repo.fail_job(job.id, &self.lease, &error, retry_after).await?;
                if state == Some(JobState::Failed) {
                    self.give_up(job, &error).await;
                }
                state.map(|s| if s == JobState::Failed { Outcome::Failed } else { Outcome::Retrying })
            }
        };
        Ok(recorded.unwrap_or(Outcome::LeaseLost))
    }
}
