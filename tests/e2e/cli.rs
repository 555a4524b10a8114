//! The `upl` binary as a user runs it, against the in-process API, real Postgres and LocalStack; a
//! recording proxy (`proxy.rs`) shows what it sends and slows, loses or answers chosen requests.

mod commands;
mod download;
pub(crate) mod proxy;
mod service;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use api::config::ApiConfig;
use chrono::{DateTime, Utc};
use e2e::{TestApp, TestEnv, random_bytes, sha256_hex, workspace_bin};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use self::proxy::{Fault, Proxy};

pub(crate) const MIB: usize = 1024 * 1024;
/// What the target of a presigned UploadPart PUT contains.
pub(crate) const UPLOAD_PART: &str = "x-id=UploadPart";

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

/// `upl` aimed at one app, with its own state directory and none of the caller's `UPL_*` settings.
pub(crate) fn upl(app: &TestApp, scratch: &Scratch, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(workspace_bin("upl"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("UPL_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .current_dir(&scratch.0)
        .env("UPL_SERVER", &app.base_url)
        .env("UPL_TOKEN", &app.token)
        .env("UPL_STATE_DIR", scratch.path("state"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// An app whose S3 traffic (the API's and the presigned PUTs `upl` makes) goes through a proxy.
pub(crate) async fn spawn_behind_s3_proxy(tweak: impl FnOnce(&mut ApiConfig)) -> (TestApp, Proxy) {
    let s3 = Proxy::start(&TestEnv::from_env().s3_endpoint).await;
    let endpoint = s3.url.clone();
    let app = TestApp::spawn_with(move |config| {
        config.service.s3.s3_endpoint = Some(endpoint);
        tweak(config);
    })
    .await;
    (app, s3)
}

/// The state files `upl` left, parsed.
pub(crate) fn state_files(scratch: &Scratch, kind: &str) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(scratch.path("state")) else { return Vec::new() };
    entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with(&format!("{kind}-")))
        .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
        .collect()
}

/// stdout as one JSON object per line.
pub(crate) fn json_lines(output: &Output) -> Vec<Value> {
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
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

/// Starts `upl upload` one chunk at a time, each PUT held a second by the S3 proxy, and SIGKILLs it once
/// `chunks` chunks are confirmed: it dies while its next PUT is held (which then never reaches S3).
/// Returns the upload id; the proxy lets PUTs through at once again afterwards.
pub(crate) async fn upload_then_kill(app: &TestApp, s3: &Proxy, scratch: &Scratch, file: &Path, chunks: usize) -> Uuid {
    s3.fault("PUT", UPLOAD_PART, usize::MAX, Fault::Delay(Duration::from_secs(1)));
    let file = file.to_str().unwrap();
    let mut command = upl(app, scratch, &["upload", file, "--parallel", "1", "--chunk-size", "5MiB", "--verbose"]);
    command.stderr(Stdio::piped()).stdout(Stdio::null());
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
    s3.clear_faults();
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
    assert_eq!(report["file"], file.to_str().unwrap());
    assert_eq!(report["totalChunks"], 3);
    assert_eq!(report["chunksSent"], 3);
    assert_eq!(report["resumed"], false);
    let id: Uuid = report["uploadId"].as_str().unwrap().parse().unwrap();
    // A signed link, so it can be opened without a token.
    let download_url = report["downloadUrl"].as_str().unwrap();
    assert!(download_url.starts_with(&format!("{}/v1/files/{id}?expires=", app.base_url)), "{download_url}");
    assert!(download_url.contains("&sig="), "{download_url}");
    assert!(app.object_bytes(id).await == data, "S3 holds other bytes than the file");

    // The whole file's digest was declared, so downloads can verify it.
    let status = app.status(id, false).await;
    assert_eq!(status["state"], "completed");
    assert_eq!(status["sha256"], sha256_hex(&data));
    // Nothing is left to resume.
    let state_files = std::fs::read_dir(scratch.path("state")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(state_files, 0);

    // stderr is not a terminal here: plain progress lines instead of a bar, the last one at 100 %.
    let stderr = text(&output.stderr);
    assert!(stderr.contains("upl: uploading 10.00 MiB of 10.00 MiB (100%)"), "{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "no terminal control in a log: {stderr:?}");

    // The human form prints `ID  DOWNLOAD-URL  FILE` on stdout.
    let small = scratch.write("small.txt", b"hello");
    let output = run(upl(&app, &scratch, &["upload", small.to_str().unwrap(), "--quiet"])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let fields: Vec<&str> = stdout.trim_end().splitn(3, "  ").collect();
    let small_id: Uuid = fields[0].parse().unwrap_or_else(|_| panic!("{stdout}"));
    assert!(fields[1].starts_with(&format!("{}/v1/files/{small_id}?expires=", app.base_url)), "{stdout}");
    assert_eq!(fields[2], small.to_str().unwrap());
    assert!(output.stderr.is_empty(), "--quiet: {}", text(&output.stderr));
    assert_eq!(app.status(small_id, false).await["contentType"], "text/plain", "guessed from the extension");

    // A zero-byte file is one empty object.
    let empty = scratch.write("empty.bin", b"");
    let report = json_out(&run(upl(&app, &scratch, &["upload", empty.to_str().unwrap(), "--json"])).await);
    assert_eq!(report["totalChunks"], 0);
    assert!(app.object_bytes(report["uploadId"].as_str().unwrap().parse().unwrap()).await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn cli_resumes_a_killed_upload_sending_only_the_missing_chunks() {
    let (app, s3) = spawn_behind_s3_proxy(|_| {}).await;
    let scratch = Scratch::new();
    let data = random_bytes(20 * MIB + 1000);
    let file = scratch.write("five-chunks.bin", &data);

    let id = upload_then_kill(&app, &s3, &scratch, &file, 2).await;
    let puts_before = s3.matching("PUT", UPLOAD_PART).len();
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
    let resumed_puts = s3.matching("PUT", UPLOAD_PART).len() - puts_before;
    assert_eq!(resumed_puts, 3, "the resume PUT chunks 2, 3 and 4 only");
    assert!(app.object_bytes(id).await == data, "S3 holds other bytes than the file");
    // The resume read every byte once more for the file's digest, sending only the missing chunks.
    assert_eq!(app.status(id, false).await["sha256"], sha256_hex(&data));
    println!("resume after SIGKILL: 2 of 5 chunks kept, {} sent again", report["chunksSent"]);
    app.finish().await;
}

#[tokio::test]
async fn cli_refuses_to_resume_a_changed_file_until_restart() {
    let (app, s3) = spawn_behind_s3_proxy(|_| {}).await;
    let scratch = Scratch::new();
    let data = random_bytes(10 * MIB + 10);
    let file = scratch.write("changing.bin", &data);
    let old_id = upload_then_kill(&app, &s3, &scratch, &file, 1).await;

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
    app.finish().await;
}

#[tokio::test]
async fn cli_renews_presigned_urls_that_expired() {
    let (app, s3) = spawn_behind_s3_proxy(|config| config.service.policy.presign_ttl = Duration::from_secs(1)).await;
    let scratch = Scratch::new();
    let data = random_bytes(5 * MIB + 1);
    let file = scratch.write("slow.bin", &data);
    // The first PUT reaches S3 past its URL's lifetime: S3 answers 403 and the URL is renewed.
    s3.fault("PUT", UPLOAD_PART, 1, Fault::Delay(Duration::from_millis(2500)));
    let command = upl(&app, &scratch, &["upload", file.to_str().unwrap(), "--chunk-size", "5MiB", "--json"]);
    let output = run(command).await;
    let report = json_out(&output);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("renewing its URL"), "no renewal reported: {stderr}");
    let id: Uuid = report["uploadId"].as_str().unwrap().parse().unwrap();
    assert!(app.object_bytes(id).await == data);
    // With a 1 s lifetime (whole seconds, as signed), a renewed URL can expire on its way too: at least two.
    let puts = s3.matching("PUT", UPLOAD_PART);
    assert!(puts.len() >= 2, "one refused PUT, then the renewed URL: {puts:?}");
    assert_ne!(puts[0].target, puts.last().unwrap().target, "the last PUT used a new URL");
    app.finish().await;
}

#[tokio::test]
async fn cli_status_abort_and_exit_codes() {
    let (app, s3) = spawn_behind_s3_proxy(|_| {}).await;
    let scratch = Scratch::new();
    let file = scratch.write("partial.bin", &random_bytes(10 * MIB + 5));
    let id = upload_then_kill(&app, &s3, &scratch, &file, 1).await;

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
    app.finish().await;
}
