//! Several files in one run, metadata and names, settings from the environment, `pending`/`forget`,
//! `list`, `completions`, plain progress lines, and errors as JSON.

use std::time::Duration;

use e2e::{TestApp, random_bytes};
use serde_json::Value;
use uuid::Uuid;

use super::download::upload;
use super::proxy::Fault;
use super::{
    MIB, Scratch, UPLOAD_PART, json_lines, json_out, run, spawn_behind_s3_proxy, state_files, text, upl,
    upload_then_kill,
};

#[tokio::test]
async fn cli_uploads_several_files_each_its_own_and_reports_the_worst_exit_code() {
    let (app, s3) = spawn_behind_s3_proxy(|_| {}).await;
    let scratch = Scratch::new();
    let (a, b) = (random_bytes(MIB), random_bytes(2 * MIB + 1));
    let a_path = scratch.write("a.bin", &a);
    let b_path = scratch.write("b.mp4", &b);
    // c.bin has an interrupted upload, then changes: resuming it is refused (exit 3).
    let c_path = scratch.write("c.bin", &random_bytes(10 * MIB));
    upload_then_kill(&app, &s3, &scratch, &c_path, 1).await;
    std::fs::write(&c_path, random_bytes(10 * MIB + 1)).unwrap();
    let missing = scratch.path("missing.bin");

    let files = [&a_path, &missing, &b_path, &c_path].map(|p| p.to_str().unwrap().to_string());
    let mut args = vec!["upload", "--json", "--metadata", "team=video", "-m", "batch=7"];
    args.extend(files.iter().map(String::as_str));
    let output = run(upl(&app, &scratch, &args)).await;
    assert_eq!(output.status.code(), Some(3), "the worst of 0, 1, 0, 3: {}", text(&output.stderr));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 4, "one object per file: {lines:?}");
    for (line, file) in lines.iter().zip(&files) {
        assert_eq!(line["file"], file.as_str(), "in the order given");
    }
    assert_eq!(
        (lines[1]["error"]["code"].as_str(), lines[1]["error"]["exitCode"].as_u64()),
        (Some("io_error"), Some(1))
    );
    assert_eq!(lines[3]["error"]["code"], "file_changed");
    for (line, data) in [(&lines[0], &a), (&lines[2], &b)] {
        let id: Uuid = line["uploadId"].as_str().unwrap().parse().unwrap();
        assert!(app.object_bytes(id).await == *data, "a failure of one file does not stop the others");
        let status = app.status(id, false).await;
        assert_eq!(status["metadata"], serde_json::json!({"team": "video", "batch": "7"}));
    }
    let b_status = app.status(lines[2]["uploadId"].as_str().unwrap().parse().unwrap(), false).await;
    assert_eq!(b_status["contentType"], "video/mp4");

    // Human form: one line per file on stdout.
    let output =
        run(upl(&app, &scratch, &["upload", "--quiet", a_path.to_str().unwrap(), b_path.to_str().unwrap()])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].ends_with("  a.bin") || lines[0].ends_with("/a.bin"), "{stdout}");

    // --name renames one file, and only one.
    let output =
        run(upl(&app, &scratch, &["upload", "--json", "--name", "Holiday 2026.bin", a_path.to_str().unwrap()])).await;
    let id: Uuid = json_out(&output)["uploadId"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.status(id, false).await["filename"], "Holiday 2026.bin");
    let output =
        run(upl(&app, &scratch, &["upload", "--name", "x", a_path.to_str().unwrap(), b_path.to_str().unwrap()])).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    app.finish().await;
}

#[tokio::test]
async fn cli_takes_every_setting_from_the_environment() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let file = scratch.write("env.bin", &random_bytes(10 * MIB + 1));
    let mut command = upl(&app, &scratch, &["upload", file.to_str().unwrap()]);
    command
        .env("UPL_CHUNK_SIZE", "5MiB")
        .env("UPL_PARALLEL", "1")
        .env("UPL_JSON", "1")
        .env("UPL_QUIET", "true")
        .env("UPL_RETRIES", "2")
        .env("UPL_CONTENT_TYPE", "application/x-test")
        .env("UPL_NO_FILE_DIGEST", "yes");
    let output = run(command).await;
    let report = json_out(&output);
    assert_eq!(report["totalChunks"], 3, "UPL_CHUNK_SIZE");
    assert!(output.stderr.is_empty(), "UPL_QUIET: {}", text(&output.stderr));
    let status = app.status(report["uploadId"].as_str().unwrap().parse().unwrap(), false).await;
    assert_eq!(status["contentType"], "application/x-test");
    assert!(status.get("sha256").is_none_or(Value::is_null), "UPL_NO_FILE_DIGEST: {status}");

    // A false-looking value turns a flag off.
    let mut command = upl(&app, &scratch, &["status", report["uploadId"].as_str().unwrap()]);
    command.env("UPL_JSON", "false");
    let output = run(command).await;
    assert!(text(&output.stdout).starts_with("upload:"), "{}", text(&output.stdout));
    app.finish().await;
}

#[tokio::test]
async fn cli_plain_progress_lines_when_stderr_is_not_a_terminal() {
    let (app, s3) = spawn_behind_s3_proxy(|_| {}).await;
    let scratch = Scratch::new();
    let file = scratch.write("ci.bin", &random_bytes(10 * MIB));
    // Each PUT held 1.5 s, a line every 0.3 s: lines while the upload is under way, then the last one.
    s3.fault("PUT", UPLOAD_PART, usize::MAX, Fault::Delay(Duration::from_millis(1500)));
    let args =
        ["upload", file.to_str().unwrap(), "--chunk-size", "5MiB", "--parallel", "1", "--progress-interval", "0.3"];
    let output = run(upl(&app, &scratch, &args)).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("upl: uploading ")).collect();
    assert!(lines.len() >= 3, "{stderr}");
    assert!(lines.iter().any(|l| l.contains("(50%)") && l.contains("/s, ETA ")), "{stderr}");
    assert_eq!(*lines.last().unwrap(), "upl: uploading 10.00 MiB of 10.00 MiB (100%)");
    app.finish().await;
}

#[tokio::test]
async fn cli_pending_lists_interrupted_transfers_and_forget_drops_them() {
    let (app, s3) = spawn_behind_s3_proxy(|_| {}).await;
    let scratch = Scratch::new();
    let file = scratch.write("half.bin", &random_bytes(10 * MIB + 1));
    let id = upload_then_kill(&app, &s3, &scratch, &file, 1).await;

    let output = run(upl(&app, &scratch, &["pending", "--json"])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let entries = json_lines(&output);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!((entry["kind"].as_str(), entry["uploadId"].as_str()), (Some("upload"), Some(id.to_string().as_str())));
    assert_eq!(entry["state"], "uploading");
    assert_eq!(entry["receivedBytes"], 5 * MIB as u64, "from the service: one chunk confirmed");
    assert_eq!(entry["size"], 10 * MIB as u64 + 1);
    assert_eq!(entry["server"], app.base_url);
    assert!(entry["file"].as_str().unwrap().ends_with("half.bin"));

    let output = run(upl(&app, &scratch, &["pending"])).await;
    let table = text(&output.stdout);
    assert!(table.starts_with("KIND") && table.contains(&id.to_string()) && table.contains("49% of"), "{table}");

    let output = run(upl(&app, &scratch, &["forget", &id.to_string(), "--abort"])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(state_files(&scratch, "upload").is_empty());
    assert_eq!(app.get(&format!("/v1/uploads/{id}")).await.status(), 410, "--abort aborted it on the service");
    let output = run(upl(&app, &scratch, &["forget", &id.to_string()])).await;
    assert_eq!(output.status.code(), Some(1), "nothing left to forget");
    let output = run(upl(&app, &scratch, &["pending", "--json"])).await;
    assert!(output.stdout.is_empty());

    // A download is forgotten with its .part file.
    let done = upload(&app, &scratch, "whole.bin", &random_bytes(MIB)).await;
    let part = scratch.path("whole.bin.part");
    let saved =
        serde_json::json!({"server": app.base_url, "uploadId": done, "part": part, "etag": "\"x\"", "size": MIB});
    std::fs::write(&part, b"partial").unwrap();
    std::fs::write(scratch.path("state/download-test.json"), saved.to_string()).unwrap();
    let entries = json_lines(&run(upl(&app, &scratch, &["pending", "--json"])).await);
    assert_eq!((entries[0]["kind"].as_str(), entries[0]["receivedBytes"].as_u64()), (Some("download"), Some(7)));
    let output = run(upl(&app, &scratch, &["forget", &done.to_string()])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!part.exists() && state_files(&scratch, "download").is_empty());
    app.finish().await;
}

#[tokio::test]
async fn cli_lists_the_callers_uploads_newest_first() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let first = upload(&app, &scratch, "first.bin", &random_bytes(1000)).await;
    let second = upload(&app, &scratch, "second.bin", &random_bytes(2000)).await;
    let unfinished = app.create_upload(10, None).await;

    let lines = json_lines(&run(upl(&app, &scratch, &["list", "--json"])).await);
    let ids: Vec<&str> = lines.iter().map(|l| l["uploadId"].as_str().unwrap()).collect();
    assert_eq!(ids, [unfinished.to_string(), second.to_string(), first.to_string()], "newest first");
    assert_eq!(lines[1]["filename"], "second.bin");

    let lines = json_lines(&run(upl(&app, &scratch, &["list", "--json", "--state", "completed"])).await);
    assert_eq!(lines.len(), 2);
    let output = run(upl(&app, &scratch, &["list", "--json", "--limit", "1"])).await;
    assert_eq!(json_lines(&output).len(), 1, "one page only");
    assert!(text(&output.stderr).contains("--all"), "{}", text(&output.stderr));
    let lines = json_lines(&run(upl(&app, &scratch, &["list", "--json", "--limit", "1", "--all"])).await);
    assert_eq!(lines.len(), 3, "--all follows the cursor");

    let table = text(&run(upl(&app, &scratch, &["list"])).await.stdout);
    assert!(table.starts_with("ID") && table.contains("second.bin") && table.contains("100%"), "{table}");
    app.finish().await;
}

#[tokio::test]
async fn cli_prints_completions_and_json_errors() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    for shell in ["bash", "zsh", "fish"] {
        let output = run(upl(&app, &scratch, &["completions", shell])).await;
        assert!(output.status.success(), "{shell}: {}", text(&output.stderr));
        let script = text(&output.stdout);
        assert!(script.contains("upl") && script.contains("pending") && script.contains("chunk-size"), "{shell}");
    }

    let output = run(upl(&app, &scratch, &["status", &Uuid::new_v4().to_string(), "--json"])).await;
    assert_eq!(output.status.code(), Some(4));
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["error"]["code"], "upload_not_found");
    assert_eq!(error["error"]["exitCode"], 4);
    assert!(error["error"]["message"].as_str().unwrap().contains("no upload has this id"), "{error}");

    let output = run(upl(&app, &scratch, &["upload", "--json"])).await;
    assert_eq!(output.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((error["error"]["code"].as_str(), error["error"]["exitCode"].as_u64()), (Some("usage"), Some(2)));
    app.finish().await;
}
