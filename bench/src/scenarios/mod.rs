//! What one `bench` run measures, and the context every scenario shares: endpoints, processes, settings, results.

pub mod control;
pub mod downloads;
pub mod uploads;

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;

use crate::api_client::Api;
use crate::companion::Companion;
use crate::load::{self, LoadReport, Stop, Template};
use crate::procstat::Server;
use crate::report::{Better, Results};

/// Sizes, durations and counts; `quick` shrinks them all to smoke-test the bench in a couple of minutes.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub rounds: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Connections of the presign cases (each measured at every count); the other loads use the first.
    pub connections: Vec<usize>,
    pub download_mib: u64,
    pub rss_mib: u64,
    pub rss_streams: usize,
    pub upload_mib: u64,
    pub part_mib: u64,
    pub parallel: usize,
    pub status_chunks: u32,
    pub complete_parts: u32,
}

impl Settings {
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                rounds: 1,
                duration_s: 1.0,
                warmup_s: 0.3,
                connections: vec![16],
                download_mib: 32,
                rss_mib: 32,
                rss_streams: 8,
                upload_mib: 32,
                part_mib: 8,
                parallel: 4,
                status_chunks: 1_000,
                complete_parts: 10,
            }
        } else {
            Self {
                quick,
                rounds: 5,
                duration_s: 5.0,
                warmup_s: 1.0,
                connections: vec![16, 64],
                download_mib: 256,
                rss_mib: 1024,
                rss_streams: 8,
                upload_mib: 1024,
                part_mib: 8,
                parallel: 4,
                status_chunks: 10_000,
                complete_parts: 100,
            }
        }
    }
}

/// The processes whose CPU and memory are read.
pub struct Servers {
    pub api: Server,
    pub postgres: Server,
    pub companion: Server,
    pub nginx: Server,
}

pub struct Bench {
    pub settings: Settings,
    pub api: Api,
    pub api_pid: u32,
    pub companion: Companion,
    pub s3: aws_sdk_s3::Client,
    pub s3_endpoint: String,
    pub bucket: String,
    pub nginx_base: String,
    pub servers: Servers,
    pub upl: PathBuf,
    pub work: PathBuf,
    pub token: Option<String>,
    pub results: Results,
}

/// One side of a load case: who answers, the template, whose CPU it costs.
pub struct Side<'a> {
    pub name: &'static str,
    pub template: Template,
    pub servers: Vec<&'a Server>,
}

impl Bench {
    /// Headers of every API request: the bearer token when the api checks one.
    pub fn auth_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.token {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}")).expect("a JWT is ASCII"),
            );
        }
        headers
    }

    pub fn json_headers(&self) -> HeaderMap {
        let mut headers = self.auth_headers();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers
    }

    pub fn duration(&self) -> Stop {
        Stop::After(Duration::from_secs_f64(self.settings.duration_s))
    }
}

/// Runs one load and records throughput, p50, p99 and server CPU per request under `case`.
pub async fn record_load(
    results: &mut Results,
    round: usize,
    case: &str,
    label: &str,
    side: &Side<'_>,
    connections: usize,
    stop: Stop,
) -> anyhow::Result<LoadReport> {
    let cpu_before: Vec<f64> = side.servers.iter().map(|s| s.cpu_seconds()).collect();
    let report = load::run(side.template.clone(), connections, stop).await?;
    let cpu: serde_json::Map<String, serde_json::Value> = side
        .servers
        .iter()
        .zip(cpu_before)
        .map(|(s, before)| (s.name.clone(), serde_json::json!(s.cpu_seconds() - before)))
        .collect();
    let cpu_total: f64 = cpu.values().filter_map(serde_json::Value::as_f64).sum();
    let label = format!("{label}, {connections} conn.");
    results.add(
        &format!("{case}.rps"),
        &format!("{label}: throughput"),
        "req/s",
        Better::Higher,
        side.name,
        report.req_per_s,
    );
    if case.starts_with("status") {
        results.add(
            &format!("{case}.p50"),
            &format!("{label}: p50"),
            "ms",
            Better::Lower,
            side.name,
            report.latency_ms.p50,
        );
    }
    results.add(
        &format!("{case}.p99"),
        &format!("{label}: p99"),
        "ms",
        Better::Lower,
        side.name,
        report.latency_ms.p99,
    );
    // A side without servers of ours to read (S3 itself) has no CPU figure.
    if report.ok > 0 && !side.servers.is_empty() {
        let per_request = cpu_total * 1000.0 / report.ok as f64;
        let cpu_label = format!("{label}: server CPU per request (api + Postgres; Companion)");
        results.add(&format!("{case}.cpu"), &cpu_label, "ms", Better::Lower, side.name, per_request);
    }
    results.raw(case, side.name, round, serde_json::json!({ "load": &report, "cpu_s": cpu }));
    if report.errors > 0 {
        results.warn(format!(
            "{case} {} round {round}: {} errors of {} ({:?}; first: {:?})",
            side.name, report.errors, report.requests, report.statuses, report.first_error
        ));
    }
    Ok(report)
}

/// `sides` in round-robin order, so no side always runs first (on warm or cold caches).
pub fn rotated<T>(mut sides: Vec<T>, round: usize) -> Vec<T> {
    if !sides.is_empty() {
        let n = round % sides.len();
        sides.rotate_left(n);
    }
    sides
}
