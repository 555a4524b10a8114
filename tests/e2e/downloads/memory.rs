//! A 1 GiB download through the API running as a real process: its memory stays flat while the bytes
//! stream. The figures are printed, not asserted on time; memory has one generous sanity bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::{ChunkUrl, TestApp, random_bytes};
use reqwest::StatusCode;
use serde_json::json;

use super::process::ApiProcess;

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 64 * MIB;
const CHUNKS: usize = 16; // 1 GiB

/// Chunk `i` is one random block rotated by a chunk-specific offset: distinct chunks from one allocation.
struct Pattern {
    block: Vec<u8>,
}

impl Pattern {
    fn rotation(index: usize) -> usize {
        (index * 7_919_993) % CHUNK
    }

    fn chunk(&self, index: usize) -> Vec<u8> {
        let k = Self::rotation(index);
        [&self.block[k..], &self.block[..k]].concat()
    }

    /// Checks `bytes` against the file at `offset` without building the file.
    fn matches(&self, mut offset: usize, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let (index, within) = (offset / CHUNK, offset % CHUNK);
            let start = (within + Self::rotation(index)) % CHUNK;
            let n = bytes.len().min(CHUNK - within).min(CHUNK - start);
            if bytes[..n] != self.block[start..start + n] {
                return false;
            }
            (offset, bytes) = (offset + n, &bytes[n..]);
        }
        true
    }
}

/// `TestApp::upload_chunk`, with the SHA-256 from openssl: the test profile's unoptimised sha2 would spend most
/// of a minute hashing 1 GiB (twice).
async fn upload_chunk_fast(app: &TestApp, id: uuid::Uuid, index: u32, chunk: Vec<u8>) {
    let (chunk, sha256) = tokio::task::spawn_blocking(move || {
        let sha256 = openssl_sha256_hex(&chunk).unwrap_or_else(|| e2e::sha256_hex(&chunk));
        (chunk, sha256)
    })
    .await
    .unwrap();
    let response = app.post_json(&format!("/v1/uploads/{id}/chunks/{index}/url"), &json!({ "sha256": sha256 })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let url: ChunkUrl = response.json().await.unwrap();
    let put = app.put_to_s3(&url, chunk).await;
    assert_eq!(put.status(), StatusCode::OK, "{}", put.text().await.unwrap_or_default());
    let etag = put.headers()["etag"].to_str().unwrap().to_string();
    let confirm =
        app.put_json(&format!("/v1/uploads/{id}/chunks/{index}"), &json!({ "etag": etag, "sha256": sha256 })).await;
    assert_eq!(confirm.status(), StatusCode::OK);
}

fn openssl_sha256_hex(data: &[u8]) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(data).ok()?;
    let output = child.wait_with_output().ok()?;
    let hex = String::from_utf8(output.stdout).ok()?.split_whitespace().next()?.to_string();
    (output.status.success() && hex.len() == 64).then_some(hex)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_1_gib_download_through_the_api_process_keeps_its_memory_flat() {
    let app = TestApp::spawn().await;
    let pattern = Pattern { block: random_bytes(CHUNK) };
    let size = CHUNK * CHUNKS;

    let started = Instant::now();
    let id = app.create_upload(size as u64, Some(CHUNK as u64)).await;
    for index in 0..CHUNKS {
        upload_chunk_fast(&app, id, index as u32, pattern.chunk(index)).await;
    }
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    let uploaded_in = started.elapsed();

    let api = ApiProcess::spawn(&app, "memory", &[("RUST_LOG", "warn")]).await;
    let (pid, base) = (api.pid(), api.base_url.clone());
    let baseline = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (peak, done) = (peak.clone(), done.clone());
        move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });

    let started = Instant::now();
    let mut response = app.http.get(format!("{base}/v1/files/{id}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.content_length(), Some(size as u64));
    let mut offset = 0;
    while let Some(bytes) = response.chunk().await.expect("body") {
        assert!(pattern.matches(offset, &bytes), "bytes differ at offset {offset}");
        offset += bytes.len();
    }
    let downloaded_in = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(offset, size);

    let peak = peak.load(Ordering::Relaxed);
    println!(
        "1 GiB download through the api process: RSS baseline {:.1} MiB, peak {:.1} MiB (+{:.1} MiB); \
         download {:.1} s ({:.0} MiB/s); upload took {:.1} s",
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak - baseline) as f64 / 1024.0,
        downloaded_in.as_secs_f64(),
        1024.0 / downloaded_in.as_secs_f64(),
        uploaded_in.as_secs_f64(),
    );
    assert!(peak < 200 * 1024, "the api's RSS peaked at {peak} KiB for a streamed download");
    app.finish().await;
}
