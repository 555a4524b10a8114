//! The `upl` binary as a user runs it, against the in-process API, real Postgres and LocalStack.

mod download;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use e2e::{TestApp, random_bytes, sha256_hex, workspace_bin};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

pub(crate) const MIB: usize = 1024 * 1024;

/// A scratch directory (files, state dir, downloads) removed when the test ends well.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("upl-e2e-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub(crate) fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, data).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `upl` aimed at one app, with its own state directory.
pub(crate) fn upl(app: &TestApp, scratch: &Scratch, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(workspace_bin("upl"));
    command
        .args(args)
        .current_dir(&scratch.0)
        .env("UPL_SERVER", &app.base_url)
        .env("UPL_TOKEN", &app.token)
        .env("UPL_STATE_DIR", scratch.path("state"))
        .env_remove("UPL_TEST_CHUNK_DELAY_MS")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

pub(crate) async fn run(mut command: tokio::process::Command) -> Output {
    command.output().await.expect("run upl")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn json_out(output: &Output) -> Value {
    assert!(output.status.success(), "upl failed: {:?}\n{}", output.status, text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output.stdout)))
}

/// Starts `upl upload` slowed down (one chunk at a time, a pause before each) and SIGKILLs it once
/// `chunks` chunks are confirmed: it dies while pausing before the next one. Returns the upload id.
async fn upload_then_kill(app: &TestApp, scratch: &Scratch, file: &Path, chunks: usize) -> Uuid {
    let file = file.to_str().unwrap();
    let mut command = upl(app, scratch, &["upload", file, "--parallel", "1", "--chunk-size", "5MiB", "--verbose"]);
    command.env("UPL_TEST_CHUNK_DELAY_MS", "1500").stderr(Stdio::piped()).stdout(Stdio::null());
    let mut child = command.spawn().expect("spawn upl");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut id, mut sent) = (None, 0);
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap() {
        if let Some(rest) = line.strip_prefix("upload ") {
            id = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        }
        if line.starts_with("chunk ") && line.ends_with(" sent") {
            sent += 1;
            if sent == chunks {
                child.start_kill().unwrap();
                break;
            }
        }
    }
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "upl should have been killed");
    assert_eq!(sent, chunks, "upl ended before {chunks} chunks were sent");
    id.expect("upl --verbose names the upload it started")
}

async fn received_chunks(app: &TestApp, id: Uuid) -> Vec<i32> {
    sqlx::query_scalar("SELECT index FROM chunks WHERE upload_id = $1 AND received_at IS NOT NULL ORDER BY index")
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn cli_uploads_a_multi_chunk_file_byte_identical() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(10 * MIB + 1);
    let file = scratch.write("three-chunks.bin", &data);

    let output = run(upl(&app, &scratch, &["upload", file.to_str().unwrap(), "--chunk-size", "5MiB", "--json"])).await;
    let report = json_out(&output);
    assert_eq!(report["totalChunks"], 3);
    assert_eq!(report["chunksSent"], 3);
    assert_eq!(report["resumed"], false);
    let id: Uuid = report["uploadId"].as_str().unwrap().parse().unwrap();
    assert_eq!(report["downloadUrl"], format!("{}/v1/files/{id}", app.base_url));
    assert!(app.object_bytes(id).await == data, "S3 holds other bytes than the file");

    // The whole file's digest was declared, so downloads can verify it.
    let status = app.status(id, false).await;
    assert_eq!(status["state"], "completed");
    assert_eq!(status["sha256"], sha256_hex(&data));
    // Nothing is left to resume.
    let state_files = std::fs::read_dir(scratch.path("state")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(state_files, 0);

    // The human form prints the id and the download URL on stdout.
    let small = scratch.write("small.txt", b"hello");
    let output = run(upl(&app, &scratch, &["upload", small.to_str().unwrap(), "--quiet"])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("upload id:") && stdout.contains("/v1/files/"), "{stdout}");

    // A zero-byte file is one empty object.
    let empty = scratch.write("empty.bin", b"");
    let report = json_out(&run(upl(&app, &scratch, &["upload", empty.to_str().unwrap(), "--json"])).await);
    assert_eq!(report["totalChunks"], 0);
    assert!(app.object_bytes(report["uploadId"].as_str().unwrap().parse().unwrap()).await.is_empty());
}

#[tokio::test]
async fn cli_resumes_a_killed_upload_sending_only_the_missing_chunks() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(20 * MIB + 1000);
    let file = scratch.write("five-chunks.bin", &data);

    let id = upload_then_kill(&app, &scratch, &file, 2).await;
    assert_eq!(received_chunks(&app, id).await, vec![0, 1], "the killed run left chunks 0 and 1");

    let resumed_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&app.pool).await.unwrap();
    let output = run(upl(&app, &scratch, &["upload", file.to_str().unwrap(), "--json"])).await;
    let report = json_out(&output);
    assert_eq!(report["uploadId"], id.to_string(), "the same upload continues");
    assert_eq!(report["resumed"], true);
    assert_eq!(report["totalChunks"], 5);
    assert_eq!(report["chunksSent"], 3, "only the 3 missing chunks are sent again");
    // Independently of what the client says: only chunks 2..4 got new URLs after the resume began.
    let redeclared: Vec<i32> =
        sqlx::query_scalar("SELECT index FROM chunks WHERE upload_id = $1 AND declared_at >= $2 ORDER BY index")
            .bind(id)
            .bind(resumed_at)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(redeclared, vec![2, 3, 4]);
    assert!(app.object_bytes(id).await == data, "S3 holds other bytes than the file");
    println!("resume after SIGKILL: 2 of 5 chunks kept, {} sent again", report["chunksSent"]);
}

#[tokio::test]
async fn cli_refuses_to_resume_a_changed_file_until_restart() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(10 * MIB + 10);
    let file = scratch.write("changing.bin", &data);
    let old_id = upload_then_kill(&app, &scratch, &file, 1).await;

    // Same size, other bytes, later mtime.
    let mut changed = data.clone();
    changed[0] ^= 0xff;
    std::fs::write(&file, &changed).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(later).unwrap();
    let output = run(upl(&app, &scratch, &["upload", file.to_str().unwrap()])).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("changed since upload") && stderr.contains("--restart"), "{stderr}");

    // Another size: refused too.
    changed.push(1);
    std::fs::write(&file, &changed).unwrap();
    let output = run(upl(&app, &scratch, &["upload", file.to_str().unwrap()])).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("is now"), "{}", text(&output.stderr));

    let output = run(upl(&app, &scratch, &["upload", file.to_str().unwrap(), "--restart", "--json"])).await;
    let report = json_out(&output);
    let new_id: Uuid = report["uploadId"].as_str().unwrap().parse().unwrap();
    assert_ne!(new_id, old_id);
    assert!(app.object_bytes(new_id).await == changed);
    let old = app.get(&format!("/v1/uploads/{old_id}")).await;
    assert_eq!(old.status(), 410, "the abandoned upload was aborted");
}

#[tokio::test]
async fn cli_renews_presigned_urls_that_expired() {
    let app = TestApp::spawn_with(|config| config.service.policy.presign_ttl = Duration::from_secs(1)).await;
    let scratch = Scratch::new();
    let data = random_bytes(5 * MIB + 1);
    let file = scratch.write("slow.bin", &data);
    // Each chunk waits past its URL's lifetime before its first PUT: S3 answers 403 and the URL is renewed.
    let mut command = upl(&app, &scratch, &["upload", file.to_str().unwrap(), "--chunk-size", "5MiB", "--json"]);
    command.env("UPL_TEST_CHUNK_DELAY_MS", "2500");
    let output = run(command).await;
    let report = json_out(&output);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("renewing its URL"), "no renewal reported: {stderr}");
    let id: Uuid = report["uploadId"].as_str().unwrap().parse().unwrap();
    assert!(app.object_bytes(id).await == data);
}

#[tokio::test]
async fn cli_status_abort_and_exit_codes() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let file = scratch.write("partial.bin", &random_bytes(10 * MIB + 5));
    let id = upload_then_kill(&app, &scratch, &file, 1).await;

    let output = run(upl(&app, &scratch, &["status", &id.to_string()])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("state:    uploading") && stdout.contains("missing:  1-2"), "{stdout}");

    let output = run(upl(&app, &scratch, &["abort", &id.to_string()])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(app.s3_multipart_uploads().await.is_empty(), "S3 still holds the aborted upload");
    let output = run(upl(&app, &scratch, &["status", &id.to_string()])).await;
    assert_eq!(output.status.code(), Some(4), "aborted: refused; {}", text(&output.stderr));
    assert!(text(&output.stderr).contains("aborted"), "{}", text(&output.stderr));

    let output = run(upl(&app, &scratch, &["status", &Uuid::new_v4().to_string()])).await;
    assert_eq!(output.status.code(), Some(4), "unknown: refused");

    // Nothing listens there: retried, then exit 5.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut command = upl(&app, &scratch, &["status", &id.to_string(), "--retries", "1"]);
    command.env("UPL_SERVER", dead);
    let output = run(command).await;
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("retrying"), "{}", text(&output.stderr));
}
