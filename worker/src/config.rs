//! The worker's configuration: the shared sections plus its own schedule.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};
use uploads::config::{ServiceConfig, parse_bind_addr, parse_duration, parse_positive_duration};
use uploads::repository::RetryPolicy;

#[derive(Debug, Clone, Parser)]
#[command(name = "worker", about = "Resumable upload service: background jobs")]
pub struct WorkerConfig {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub jobs: JobSettings,
    /// Where the worker serves `GET /metrics` (Prometheus) and `GET /healthz`; unset: no listener, so replicas on
    /// one host need no port each.
    #[arg(long, env = "WORKER_METRICS_ADDR", value_name = "WORKER_METRICS_ADDR", value_parser = parse_bind_addr)]
    pub metrics_addr: Option<SocketAddr>,
}

/// How the worker claims, runs and retries jobs.
#[derive(Debug, Clone, Args)]
pub struct JobSettings {
    /// How often an idle worker looks for due jobs.
    #[arg(long, env = "WORKER_POLL_INTERVAL", value_name = "WORKER_POLL_INTERVAL", default_value = "2s", value_parser = parse_positive_duration)]
    pub poll_interval: Duration,

    /// How long a claimed job is held without renewal; the worker renews it every third of this while the job
    /// runs, so it only runs out when a worker died: then another worker takes the job over.
    #[arg(long, env = "WORKER_LEASE", value_name = "WORKER_LEASE", default_value = "2m", value_parser = parse_positive_duration)]
    pub lease: Duration,

    /// Jobs one worker runs at once.
    #[arg(long, env = "WORKER_CONCURRENCY", value_name = "WORKER_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,

    /// How often the sweep runs: it queues expiries and completion recoveries and aborts orphan multipart
    /// uploads in S3.
    #[arg(long, env = "WORKER_SWEEP_INTERVAL", value_name = "WORKER_SWEEP_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub sweep_interval: Duration,

    /// The sweep queues a recovery for every completion whose lease lapsed this long ago: a backstop, since each
    /// completion queues its own recovery for the moment its lease would lapse.
    #[arg(long, env = "WORKER_RECOVERY_THRESHOLD", value_name = "WORKER_RECOVERY_THRESHOLD", default_value = "1m", value_parser = parse_positive_duration)]
    pub recovery_threshold: Duration,

    /// Done jobs are deleted by the sweep after this long (failed ones are kept).
    #[arg(long, env = "WORKER_JOB_RETENTION", value_name = "WORKER_JOB_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub job_retention: Duration,

    /// Attempts before a verification job is failed for good (its error stays on the row); the sweep, expiries and
    /// completion recoveries keep retrying with capped backoff.
    #[arg(long, env = "WORKER_MAX_ATTEMPTS", value_name = "WORKER_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// Wait before the first retry; doubled after each failure.
    #[arg(long, env = "WORKER_BACKOFF", value_name = "WORKER_BACKOFF", default_value = "10s", value_parser = parse_duration)]
    pub backoff: Duration,

    /// Longest wait between retries.
    #[arg(long, env = "WORKER_BACKOFF_MAX", value_name = "WORKER_BACKOFF_MAX", default_value = "1h", value_parser = parse_duration)]
    pub backoff_max: Duration,

    /// On SIGTERM, how long jobs at hand may run on before they are released to other workers.
    #[arg(long, env = "WORKER_SHUTDOWN_GRACE", value_name = "WORKER_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl JobSettings {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy { max_attempts: self.max_attempts, backoff: self.backoff, backoff_max: self.backoff_max }
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            jobs: JobSettings,
        }
        Defaults::parse_from(["worker"]).jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = JobSettings {
            backoff: Duration::from_secs(10),
            backoff_max: Duration::from_secs(60),
            ..JobSettings::default()
        };
        let retry = settings.retry_policy();
        assert_eq!(retry.backoff_after(1), Duration::from_secs(10));
        assert_eq!(retry.backoff_after(2), Duration::from_secs(20));
        assert_eq!(retry.backoff_after(3), Duration::from_secs(40));
        assert_eq!(retry.backoff_after(4), Duration::from_secs(60));
        assert_eq!(retry.backoff_after(400), Duration::from_secs(60));
    }

    #[test]
    fn the_recovery_threshold_is_above_zero() {
        #[derive(Debug, Parser)]
        struct Example {
            #[command(flatten)]
            jobs: JobSettings,
        }
        let parse =
            |value: &str| uploads::config::parse_args_alone::<Example>(["worker", "--recovery-threshold", value]);
        assert_eq!(parse("30s").unwrap().jobs.recovery_threshold, Duration::from_secs(30));
        let error = parse("0s").unwrap_err().to_string();
        assert!(error.contains("WORKER_RECOVERY_THRESHOLD") && error.contains("must be more than zero"), "{error}");
    }

    #[test]
    fn defaults_are_production_values() {
        let settings = JobSettings::default();
        assert_eq!(settings.lease, Duration::from_secs(120));
        assert_eq!(settings.concurrency, 4);
    }
}
