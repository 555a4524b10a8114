//! The service's Prometheus metrics, every name, unit and label set in one place, for the api and the worker
//! alike. Code that counts something calls one function here; `/metrics` renders what this process counted.
//!
//! Labels hold only bounded values (route templates, methods, status codes, S3 operations, job kinds): never
//! an upload id, an owner, a filename or a raw path, so a scrape reveals nothing of any one owner.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::VerificationState;
use crate::repository::JobKind;
use crate::service::Uploads;

pub const HTTP_REQUESTS: &str = "upl_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "upl_http_request_duration_seconds";
pub const UPLOADS_CREATED: &str = "upl_uploads_created_total";
pub const UPLOADS_COMPLETED: &str = "upl_uploads_completed_total";
pub const UPLOADS_ABORTED: &str = "upl_uploads_aborted_total";
pub const UPLOADS_EXPIRED: &str = "upl_uploads_expired_total";
pub const CHUNKS_CONFIRMED: &str = "upl_chunks_confirmed_total";
pub const UPLOAD_BYTES_COMPLETED: &str = "upl_upload_bytes_completed_total";
pub const DOWNLOAD_BYTES: &str = "upl_download_bytes_total";
pub const DOWNLOAD_STREAMS_ACTIVE: &str = "upl_download_streams_active";
pub const S3_REQUESTS: &str = "upl_s3_requests_total";
pub const S3_REQUEST_DURATION: &str = "upl_s3_request_duration_seconds";
pub const JOBS: &str = "upl_jobs_total";
pub const JOBS_QUEUED: &str = "upl_jobs_queued";
pub const VERIFICATIONS: &str = "upl_verifications_total";
pub const WEBHOOK_DELIVERIES: &str = "upl_webhook_deliveries_total";

/// Bucket bounds of both duration histograms, in seconds: from a cached presign (milliseconds) to a
/// CompleteMultipartUpload of thousands of parts (minutes).
const DURATION_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A scrape does not wait longer than this for Postgres.
const QUEUE_SAMPLE_TIMEOUT: Duration = Duration::from_secs(3);

/// The Prometheus text format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs this process's recorder (the first call; later ones return the same handle), describes every metric
/// and registers the label-free ones at zero, so a scrape lists them before anything happened. Inside a Tokio
/// runtime it also starts the upkeep that folds histogram samples in between scrapes.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &DURATION_BUCKETS)
                .expect("the bucket list is not empty");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                Err(err) => {
                    // Only another recorder installed first gets here: this one then counts nothing.
                    tracing::warn!(error = %err, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            describe();
            register_at_zero();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                runtime.spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        upkeep.run_upkeep();
                    }
                });
            }
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route template, method and status");
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response's head (a download's body streams on)"
    );
    describe_counter!(UPLOADS_CREATED, "Uploads created (idempotent replays not counted)");
    describe_counter!(UPLOADS_COMPLETED, "Uploads completed (by the api, or by the worker's recovery)");
    describe_counter!(UPLOADS_ABORTED, "Uploads aborted by their owner");
    describe_counter!(UPLOADS_EXPIRED, "Uploads expired by the worker");
    describe_counter!(CHUNKS_CONFIRMED, "Chunks newly confirmed (the same report again is not counted)");
    describe_counter!(UPLOAD_BYTES_COMPLETED, Unit::Bytes, "Bytes of the uploads completed");
    describe_counter!(DOWNLOAD_BYTES, Unit::Bytes, "Body bytes of file downloads sent to clients");
    describe_gauge!(DOWNLOAD_STREAMS_ACTIVE, "File bodies streaming from S3 right now");
    describe_counter!(S3_REQUESTS, "Requests sent to S3, by operation and outcome");
    describe_histogram!(S3_REQUEST_DURATION, Unit::Seconds, "Time until S3 answered, by operation");
    describe_counter!(JOBS, "Worker jobs run, by kind and outcome");
    describe_gauge!(JOBS_QUEUED, "Jobs due and waiting for a worker, by kind (sampled from Postgres at each scrape)");
    describe_counter!(VERIFICATIONS, "Objects hashed by the worker, by result");
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts, by outcome");
}

fn register_at_zero() {
    let totals = [UPLOADS_CREATED, UPLOADS_COMPLETED, UPLOADS_ABORTED, UPLOADS_EXPIRED, CHUNKS_CONFIRMED];
    for name in totals.into_iter().chain([UPLOAD_BYTES_COMPLETED, DOWNLOAD_BYTES]) {
        counter!(name).absolute(0);
    }
    gauge!(DOWNLOAD_STREAMS_ACTIVE).set(0.0);
    for state in VerificationState::ALL.into_iter().filter(|s| *s != VerificationState::Pending) {
        counter!(VERIFICATIONS, "result" => state.as_str()).absolute(0);
    }
    for outcome in WebhookOutcome::ALL {
        counter!(WEBHOOK_DELIVERIES, "outcome" => outcome.as_str()).absolute(0);
    }
}

/// The text a scrape answers: every metric this process recorded.
pub fn render() -> String {
    install().render()
}

/// A scrape: samples the job queue from Postgres (one grouped count; a failure leaves the last figures and is
/// logged), then renders.
pub async fn scrape(uploads: &Uploads) -> String {
    match tokio::time::timeout(QUEUE_SAMPLE_TIMEOUT, uploads.repository().due_jobs_by_kind()).await {
        Ok(Ok(due)) => {
            // Every kind is listed, at 0 when none is due.
            let zeros = JobKind::ALL.map(|kind| (kind, 0));
            for (kind, count) in zeros.into_iter().chain(due) {
                gauge!(JOBS_QUEUED, "kind" => kind.as_str()).set(count as f64);
            }
        }
        Ok(Err(err)) => tracing::warn!(error = %err, "cannot sample the job queue for metrics"),
        Err(_) => tracing::warn!("cannot sample the job queue for metrics: no answer in time"),
    }
    render()
}

/// One HTTP answer. `route` is the router's template (`/v1/uploads/{id}`), never the path asked for.
pub fn http_request(route: String, method: &'static str, status: u16, elapsed: Duration) {
    histogram!(HTTP_REQUEST_DURATION, "route" => route.clone(), "method" => method).record(elapsed.as_secs_f64());
    counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status.to_string()).increment(1);
}

pub fn upload_created() {
    counter!(UPLOADS_CREATED).increment(1);
}

pub fn upload_completed(size: u64) {
    counter!(UPLOADS_COMPLETED).increment(1);
    counter!(UPLOAD_BYTES_COMPLETED).increment(size);
}

pub fn upload_aborted() {
    counter!(UPLOADS_ABORTED).increment(1);
}

pub fn upload_expired() {
    counter!(UPLOADS_EXPIRED).increment(1);
}

pub fn chunk_confirmed() {
    counter!(CHUNKS_CONFIRMED).increment(1);
}

/// One request to S3: `outcome` is `ok`, `not_found`, `error`, `timeout` or `unreachable`.
pub fn s3_request(operation: &'static str, outcome: &'static str, elapsed: Duration) {
    counter!(S3_REQUESTS, "operation" => operation, "outcome" => outcome).increment(1);
    histogram!(S3_REQUEST_DURATION, "operation" => operation).record(elapsed.as_secs_f64());
}

/// One job the worker ran; `outcome` is the worker's name for what became of it.
pub fn job_finished(kind: JobKind, outcome: &'static str) {
    counter!(JOBS, "kind" => kind.as_str(), "outcome" => outcome).increment(1);
}

/// Registers a job counter at zero, so a worker's first scrape lists every kind and outcome.
pub fn register_job(kind: JobKind, outcome: &'static str) {
    counter!(JOBS, "kind" => kind.as_str(), "outcome" => outcome).absolute(0);
}

/// One object hashed by the worker (`failed`: it gave up).
pub fn verification(result: VerificationState) {
    counter!(VERIFICATIONS, "result" => result.as_str()).increment(1);
}

/// What became of one webhook delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The receiver answered 2xx in time.
    Delivered,
    /// This attempt failed; the delivery is tried again later.
    Retrying,
    /// This attempt failed and was the last: the event is dead.
    Dead,
}

impl WebhookOutcome {
    pub const ALL: [Self; 3] = [Self::Delivered, Self::Retrying, Self::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
        }
    }
}

/// One webhook delivery attempt, for the worker's delivery job to call.
pub fn webhook_delivery(outcome: WebhookOutcome) {
    counter!(WEBHOOK_DELIVERIES, "outcome" => outcome.as_str()).increment(1);
}

/// One file body streaming to a client, for as long as it lives: counted in `upl_download_streams_active`,
/// and its bytes in `upl_download_bytes_total` as they go.
#[derive(Debug)]
pub struct DownloadStream(());

impl DownloadStream {
    pub fn start() -> Self {
        gauge!(DOWNLOAD_STREAMS_ACTIVE).increment(1.0);
        Self(())
    }

    pub fn sent(&self, bytes: u64) {
        counter!(DOWNLOAD_BYTES).increment(bytes);
    }
}

impl Drop for DownloadStream {
    fn drop(&mut self) {
        gauge!(DOWNLOAD_STREAMS_ACTIVE).decrement(1.0);
    }
}

/// The `method` label: the standard methods by name, anything else as `other` (a client can send any token).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_and_durations_are_histograms() {
        install();
        http_request("/v1/uploads/{id}".into(), "GET", 200, Duration::from_millis(3));
        s3_request("ListParts", "ok", Duration::from_millis(30));
        job_finished(JobKind::VerifyObject, "done");
        gauge!(JOBS_QUEUED, "kind" => "sweep").set(1.0);
        drop(DownloadStream::start());
        let text = render();
        for name in [
            HTTP_REQUESTS,
            UPLOADS_CREATED,
            UPLOADS_COMPLETED,
            UPLOADS_ABORTED,
            UPLOADS_EXPIRED,
            CHUNKS_CONFIRMED,
            UPLOAD_BYTES_COMPLETED,
            DOWNLOAD_BYTES,
            DOWNLOAD_STREAMS_ACTIVE,
            S3_REQUESTS,
            JOBS,
            JOBS_QUEUED,
            VERIFICATIONS,
            WEBHOOK_DELIVERIES,
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing from\n{text}");
        }
        // Histograms with buckets (Prometheus can aggregate them across replicas), not summaries.
        for name in [HTTP_REQUEST_DURATION, S3_REQUEST_DURATION] {
            assert!(text.contains(&format!("# TYPE {name} histogram")), "{name} is no histogram:\n{text}");
        }
        assert!(
            text.contains(r#"upl_s3_request_duration_seconds_bucket{operation="ListParts",le="0.05"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"upl_webhook_deliveries_total{outcome="delivered"} 0"#), "{text}");
    }

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        for (method, label) in [("GET", "GET"), ("DELETE", "DELETE"), ("OPTIONS", "OPTIONS"), ("BREW", "other")] {
            assert_eq!(method_label(method), label);
        }
    }
}
