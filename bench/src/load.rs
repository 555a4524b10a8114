//! The load generator: C keep-alive connections send one request template, rotating over its URLs, for a
//! duration or a count; the answer is throughput, latency percentiles and errors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde::Serialize;
use tokio::sync::Barrier;

use crate::http::{Sender, authority, connect, drain, request};

/// What every request looks like; request `n` goes to `urls[n % urls.len()]`, all on one host.
#[derive(Debug, Clone)]
pub struct Template {
    pub method: Method,
    pub urls: Vec<Uri>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Clone, Copy)]
pub enum Stop {
    After(Duration),
    Requests(u64),
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub connections: usize,
    /// Answers received, any status.
    pub requests: u64,
    /// 2xx answers; `req_per_s` counts only these.
    pub ok: u64,
    /// Non-2xx answers plus requests that got no answer.
    pub errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub io_errors: u64,
    pub first_error: Option<String>,
    pub elapsed_s: f64,
    pub req_per_s: f64,
    /// Milliseconds, over every answered request.
    pub latency_ms: Latency,
}

struct Shared {
    template: Template,
    authority: String,
    stop: Stop,
    issued: AtomicU64,
    barrier: Barrier,
}

impl Shared {
    /// The sequence number of the next request, or None once the run is over.
    fn next(&self, deadline: Instant) -> Option<u64> {
        match self.stop {
            Stop::After(_) if Instant::now() >= deadline => None,
            Stop::After(_) => Some(self.issued.fetch_add(1, Ordering::Relaxed)),
            Stop::Requests(total) => Some(self.issued.fetch_add(1, Ordering::Relaxed)).filter(|n| *n < total),
        }
    }
}

#[derive(Default)]
struct WorkerTally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    io_errors: u64,
    first_error: Option<String>,
}

impl WorkerTally {
    fn failed(&mut self, error: impl std::fmt::Display) {
        self.io_errors += 1;
        self.first_error.get_or_insert_with(|| error.to_string());
    }
}

/// Runs the load; connections are opened before the clock starts.
pub async fn run(template: Template, connections: usize, stop: Stop) -> anyhow::Result<LoadReport> {
    ensure!(connections > 0 && !template.urls.is_empty(), "need at least one connection and one URL");
    let host = authority(&template.urls[0])?;
    if template.urls.iter().any(|u| authority(u).ok().as_deref() != Some(host.as_str())) {
        bail!("every URL of one load must be on one host");
    }
    let shared = Arc::new(Shared {
        template,
        authority: host,
        stop,
        issued: AtomicU64::new(0),
        barrier: Barrier::new(connections + 1),
    });
    let workers: Vec<_> = (0..connections).map(|_| tokio::spawn(worker(shared.clone()))).collect();
    shared.barrier.wait().await;
    let started = Instant::now();
    let mut tallies = Vec::with_capacity(connections);
    for worker in workers {
        tallies.push(worker.await?);
    }
    Ok(summarize(connections, tallies, started.elapsed()))
}

async fn worker(shared: Arc<Shared>) -> WorkerTally {
    let mut tally = WorkerTally::default();
    // A failed connect here is no request yet: the first request connects again and counts the failure.
    let mut sender: Option<Sender> = connect(&shared.authority).await.ok();
    shared.barrier.wait().await;
    let deadline = match shared.stop {
        Stop::After(duration) => Instant::now() + duration,
        Stop::Requests(_) => Instant::now() + Duration::from_secs(24 * 3600),
    };
    while let Some(sequence) = shared.next(deadline) {
        let t = &shared.template;
        let uri = &t.urls[(sequence % t.urls.len() as u64) as usize];
        let started = Instant::now();
        match send_one(&shared.authority, &mut sender, t, uri).await {
            Ok(status) => {
                tally.latencies_us.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                *tally.statuses.entry(status).or_default() += 1;
            }
            Err(error) => {
                sender = None;
                tally.failed(error);
                // A refused connection must not spin the loop.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    tally
}

/// One request on the worker's connection, reopened first when the server closed it.
async fn send_one(authority: &str, sender: &mut Option<Sender>, t: &Template, uri: &Uri) -> anyhow::Result<u16> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(authority).await?);
    }
    let connection = sender.as_mut().expect("connected above");
    if connection.ready().await.is_err() {
        *connection = connect(authority).await?;
        connection.ready().await?;
    }
    let response = connection.send_request(request(&t.method, uri, &t.headers, t.body.clone())?).await?;
    let status = response.status().as_u16();
    drain(response).await?;
    Ok(status)
}

fn summarize(connections: usize, tallies: Vec<WorkerTally>, elapsed: Duration) -> LoadReport {
    let mut latencies = Vec::new();
    let mut statuses = BTreeMap::new();
    let (mut io_errors, mut first_error) = (0, None);
    for tally in tallies {
        latencies.extend(tally.latencies_us);
        for (status, count) in tally.statuses {
            *statuses.entry(status).or_default() += count;
        }
        io_errors += tally.io_errors;
        first_error = first_error.or(tally.first_error);
    }
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let ok: u64 = statuses.iter().filter(|(s, _)| (200..300).contains(*s)).map(|(_, c)| c).sum();
    let elapsed_s = elapsed.as_secs_f64();
    LoadReport {
        connections,
        requests,
        ok,
        errors: requests - ok + io_errors,
        statuses,
        io_errors,
        first_error,
        elapsed_s,
        req_per_s: ok as f64 / elapsed_s,
        latency_ms: latency(&latencies),
    }
}

/// Nearest-rank percentiles of sorted microsecond latencies, in milliseconds.
fn latency(sorted_us: &[u32]) -> Latency {
    if sorted_us.is_empty() {
        return Latency::default();
    }
    let at = |p: f64| {
        let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
        f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
    };
    let mean = sorted_us.iter().map(|&v| f64::from(v)).sum::<f64>() / sorted_us.len() as f64 / 1000.0;
    Latency { p50: at(50.0), p90: at(90.0), p99: at(99.0), max: at(100.0), mean }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A keep-alive HTTP/1.1 server that answers every GET with 200 `ok`, or 500 when the path holds "fail";
    /// it counts the requests per path.
    async fn server() -> (String, Arc<std::sync::Mutex<BTreeMap<String, u64>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let counts = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let counts = counts.clone();
                tokio::spawn(async move {
                    let mut pending = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while let Ok(n @ 1..) = socket.read(&mut buffer).await {
                        pending.extend_from_slice(&buffer[..n]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                            pending.drain(..end + 4);
                            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                            let status = if path.contains("fail") { "500 Internal Server Error" } else { "200 OK" };
                            *counts.lock().unwrap().entry(path).or_default() += 1;
                            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (base, seen)
    }

    fn template(urls: Vec<String>) -> Template {
        let urls = urls.iter().map(|u| u.parse().unwrap()).collect();
        Template { method: Method::GET, urls, headers: HeaderMap::new(), body: Bytes::new() }
    }

    #[tokio::test]
    async fn sends_exactly_the_requests_asked_rotating_over_the_urls() {
        let (base, seen) = server().await;
        let report =
            run(template(vec![format!("{base}/a"), format!("{base}/b")]), 4, Stop::Requests(100)).await.unwrap();
        assert_eq!((report.requests, report.ok, report.errors), (100, 100, 0));
        assert_eq!(seen.lock().unwrap().clone(), BTreeMap::from([("/a".into(), 50), ("/b".into(), 50)]));
        assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 <= report.latency_ms.p99);
    }

    #[tokio::test]
    async fn counts_error_statuses_and_refused_connections() {
        let (base, _) = server().await;
        let report =
            run(template(vec![format!("{base}/ok"), format!("{base}/fail")]), 2, Stop::Requests(10)).await.unwrap();
        assert_eq!((report.ok, report.errors, report.statuses.get(&500).copied()), (5, 5, Some(5)));

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let report = run(template(vec![format!("http://{closed}/")]), 1, Stop::Requests(3)).await.unwrap();
        assert_eq!((report.ok, report.io_errors), (0, 3));
        assert!(report.first_error.is_some());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let l = latency(&sorted);
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(latency(&[7000]).p99, 7.0);
        assert_eq!(latency(&[]).p50, 0.0);
    }
}
