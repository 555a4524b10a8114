//! A patient client for fault tests: it uploads over the HTTP API as a well-behaved client would, retrying
//! what the service says to retry (503/504 with `Retry-After`, 409 `completion_in_progress`) and connections
//! that fail (an API process killed), and it counts what the faults cost: retries, the slowest refusal, the
//! chunks the service confirmed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::sha256_hex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::lifecycle::{answer, indices};

/// What every client of one test saw.
#[derive(Debug, Default)]
pub struct Stats {
    /// Chunk confirmations answered 200, over all uploads.
    pub confirmed: AtomicU64,
    /// Answers the client retried after (503, 504, 409 `completion_in_progress`), and failed connections.
    pub refusals: AtomicU64,
    pub connection_errors: AtomicU64,
    /// The longest a refused request took to be answered, in milliseconds.
    pub slowest_refusal_ms: AtomicU64,
    /// When a request last succeeded after one was refused: the end of the outage as clients saw it.
    pub recovered_at: Mutex<Option<Instant>>,
    pub refused_since_success: AtomicU64,
}

/// One of the test's clients; `bases` are the API processes it alternates between, request by request.
pub struct Client<'a> {
    pub bases: Vec<String>,
    pub http: reqwest::Client,
    pub plain: reqwest::Client,
    pub stats: &'a Stats,
    turn: AtomicUsize,
}

/// Longest the test waits for one request to be answered; a hung request fails the test.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

impl<'a> Client<'a> {
    pub fn new(bases: Vec<String>, http: reqwest::Client, plain: reqwest::Client, stats: &'a Stats) -> Self {
        Self { bases, http, plain, stats, turn: AtomicUsize::new(0) }
    }

    /// Sends until the answer is one not to retry; returns it.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        for _ in 0..200 {
            let base = &self.bases[self.turn.fetch_add(1, Ordering::Relaxed) % self.bases.len()];
            let mut request = self.http.request(method.clone(), format!("{base}{path}")).timeout(ANSWER_WITHIN);
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) => {
                    assert!(!err.is_timeout(), "{method} {path} hung for {ANSWER_WITHIN:?}");
                    self.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                    self.stats.refused_since_success.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let (status, answer) = answer(response).await;
            let retry = matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
                || answer["code"] == "completion_in_progress";
            if !retry {
                if self.stats.refused_since_success.swap(0, Ordering::Relaxed) > 0 {
                    *self.stats.recovered_at.lock().unwrap() = Some(Instant::now());
                }
                return (status, answer);
            }
            let elapsed = started.elapsed().as_millis() as u64;
            self.stats.refusals.fetch_add(1, Ordering::Relaxed);
            self.stats.refused_since_success.fetch_add(1, Ordering::Relaxed);
            self.stats.slowest_refusal_ms.fetch_max(elapsed, Ordering::Relaxed);
            let seconds: u64 = retry_after
                .unwrap_or_else(|| panic!("{method} {path}: {status} {answer} without Retry-After"))
                .parse()
                .expect("Retry-After in seconds");
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }
        panic!("{method} {path}: still refused after 200 tries");
    }

    async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (status, answer) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        answer
    }

    /// Uploads `data` in chunks of `chunk` bytes, checks the service still holds every chunk it confirmed,
    /// and completes it. Returns the upload's id.
    pub async fn upload(&self, data: &[u8], chunk: usize) -> Uuid {
        let body = json!({ "filename": "load.bin", "size": data.len(), "chunkSize": chunk });
        let created = self.ok(Method::POST, "/v1/uploads", Some(&body)).await;
        let id: Uuid = created["uploadId"].as_str().expect("uploadId").parse().unwrap();
        for (index, bytes) in data.chunks(chunk).enumerate() {
            self.send_chunk(id, index, bytes).await;
        }
        let status = self.ok(Method::GET, &format!("/v1/uploads/{id}"), None).await;
        let expected: Vec<u32> = (0..data.chunks(chunk).len() as u32).collect();
        assert_eq!(indices(&status["receivedChunks"]), expected, "confirmed chunks of {id} were lost");
        let done = self.ok(Method::POST, &format!("/v1/uploads/{id}/complete"), None).await;
        assert_eq!(done["state"], "completed", "{done}");
        id
    }

    async fn send_chunk(&self, id: Uuid, index: usize, bytes: &[u8]) {
        let sha256 = sha256_hex(bytes);
        let url = self
            .ok(Method::POST, &format!("/v1/uploads/{id}/chunks/{index}/url"), Some(&json!({ "sha256": sha256 })))
            .await;
        let mut put = self.plain.put(url["url"].as_str().expect("url")).body(bytes.to_vec());
        for (name, value) in url["headers"].as_object().expect("headers") {
            if !name.eq_ignore_ascii_case("content-length") {
                put = put.header(name, value.as_str().expect("a header value"));
            }
        }
        let put = put.send().await.expect("PUT to S3");
        assert_eq!(put.status(), StatusCode::OK, "S3 refused chunk {index} of {id}");
        let etag = put.headers()["etag"].to_str().unwrap().to_string();
        let confirm = json!({ "etag": etag, "sha256": sha256 });
        self.ok(Method::PUT, &format!("/v1/uploads/{id}/chunks/{index}"), Some(&confirm)).await;
        self.stats.confirmed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits until the clients have had `count` chunks confirmed in all.
pub async fn confirmed_at_least(stats: &Stats, count: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let confirmed = stats.confirmed.load(Ordering::Relaxed);
        if confirmed >= count {
            return confirmed;
        }
        assert!(Instant::now() < deadline, "only {confirmed} chunks confirmed, waiting for {count}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
