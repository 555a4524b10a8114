//! The web page at `/`, in headless Chromium (Debian's, driven by playwright-core from `tests/browser/`).

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

mod errors;
mod transfers;

const MIB: usize = 1024 * 1024;

/// A real H.264 MP4 (moov first), padded with a trailing `free` box (which players skip) to `size` bytes,
/// so the page sends it in several chunks.
fn make_video(dir: &Path, size: usize) -> (PathBuf, Vec<u8>) {
    let path = dir.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=duration=4:size=640x360:rate=25",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (scripts/test-prereqs.sh installs it)");
    assert!(status.success(), "ffmpeg failed");
    let mut video = std::fs::read(&path).unwrap();
    let pad = size - video.len();
    video.extend_from_slice(&u32::try_from(pad).unwrap().to_be_bytes());
    video.extend_from_slice(b"free");
    video.resize(size, 0);
    std::fs::write(&path, &video).unwrap();
    (path, video)
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("upl-web-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Absolute, since the browser scripts run in `tests/browser/`.
fn output_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("TEST_OUTPUT_DIR").unwrap_or_else(|_| "test-output".into()));
    std::fs::create_dir_all(&dir).unwrap();
    std::path::absolute(dir).unwrap()
}

/// Runs one script of `tests/browser/` and returns the JSON line it prints.
async fn node(script: &str, args: Vec<String>) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let script = script.to_string();
    let output =
        tokio::task::spawn_blocking(move || Command::new("node").current_dir(dir).arg(script).args(args).output())
            .await
            .unwrap()
            .expect("node runs (scripts/test-prereqs.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("the browser script printed no result: {stdout}\n{stderr}"));
    println!("browser: {result}");
    assert_eq!(result["ok"], true, "{}\n{stderr}", result["error"].as_str().unwrap_or_default());
    result
}

#[tokio::test]
async fn web_page_is_served_from_the_binary_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    for (path, content_type, marker) in [
        ("/", "text/html", "<script type=\"module\" src=\"/app.js\">"),
        ("/app.js", "text/javascript", "from './transfer.js'"),
        ("/api.js", "text/javascript", "Retry-After"),
        ("/dom.js", "text/javascript", "textContent"),
        ("/library.js", "text/javascript", "/v1/uploads?"),
        ("/messages.js", "text/javascript", "completion_in_progress"),
        ("/transfer.js", "text/javascript", "crypto.subtle.digest"),
        ("/style.css", "text/css", "progress"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(header.starts_with(content_type), "{path}: {header}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(response.text().await.unwrap().contains(marker), "{path}");
    }
    let page = app.get("/").await;
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    let chunk_origin = {
        let id = app.create_upload(10, None).await;
        let url = app.chunk_url(id, 0, b"0123456789").await.url;
        let after_scheme = url.split_once("://").unwrap().1;
        format!("{}://{}", url.split_once("://").unwrap().0, after_scheme.split('/').next().unwrap())
    };
    let directive = |name: &str| policy.split("; ").find(|d| d.starts_with(name)).unwrap_or_default().to_string();
    assert_eq!(directive("script-src"), "script-src 'self'", "{policy}");
    assert_eq!(directive("default-src"), "default-src 'none'", "{policy}");
    assert!(directive("connect-src").split(' ').any(|s| s == chunk_origin), "{chunk_origin} in {policy}");
    assert!(policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe"), "{policy}");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    app.finish().await;
}

/// Every code the service can answer has its sentence on the page (`api/web/messages.js`), and no other.
#[test]
fn web_page_has_a_message_for_every_error_code() {
    let source = include_str!("../../api/web/messages.js");
    let table = source.split("const MESSAGES = {").nth(1).unwrap().split("\n};").next().unwrap();
    let described: std::collections::BTreeSet<&str> = table
        .lines()
        .filter_map(|line| line.strip_prefix("  ")?.split_once(':').map(|(key, _)| key))
        .filter(|key| key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        .collect();
    let codes: std::collections::BTreeSet<&str> = uploads::error_code::ErrorCode::all().map(|c| c.as_str()).collect();
    assert!(described.len() > 50, "{described:?}");
    assert_eq!(described, codes, "messages.js (left) against ErrorCode (right)");
}

#[tokio::test]
async fn web_page_uploads_survives_a_reload_and_resumes_only_the_missing_chunks() {
    let app = TestApp::spawn().await;
    let dir = scratch_dir();
    // The service's default chunk is 8 MiB: 4 chunks.
    let (file, video) = make_video(&dir, 28 * MIB);
    let screenshot = output_dir().join("web-upload.png");
    let _ = std::fs::remove_file(&screenshot);

    let args = vec![
        app.base_url.clone(),
        file.display().to_string(),
        app.env.s3_endpoint.clone(),
        screenshot.display().to_string(),
        "2".into(),
        app.token.clone(),
    ];
    let result = node("web-upload.mjs", args).await;
    assert_eq!(result["chunksBeforeReload"], 2);
    assert_eq!(result["putsAfterReload"], 2, "after the reload only the 2 missing chunks are sent");
    assert!(result["resumeText"].as_str().unwrap().contains("16.0 MiB of 28.0 MiB already received"), "{result}");
    assert_eq!(result["storedAfter"], "[]", "a finished upload is forgotten");
    assert!(result["askedFor"].as_str().unwrap().contains("The service needs a token"), "{result}");
    assert_eq!(result["tokenKept"], true, "the pasted token lasts through the reload");
    assert_eq!(result["authorizedPuts"], json!([]), "S3 must never see the service's token");
    let id: Uuid = result["uploadId"].as_str().unwrap().parse().unwrap();
    let status = app.status(id, false).await;
    assert_eq!(status["state"], "completed");
    assert_eq!(status["contentType"], "video/mp4");
    assert_eq!(status["totalChunks"], 4);
    assert!(app.object_bytes(id).await == video, "S3 holds other bytes than the file");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "screenshot {}", screenshot.display());
    println!("screenshot: {}", screenshot.display());
    std::fs::remove_dir_all(dir).unwrap();
    app.finish().await;
}

/// Needs `GET /v1/files/{id}` (the downloads issue).
#[tokio::test]
async fn web_page_plays_seeks_and_downloads_a_finished_video() {
    let app = TestApp::spawn().await;
    let dir = scratch_dir();
    let (_, video) = make_video(&dir, 6 * MIB);
    let chunk_size = 5 * MIB;
    let body =
        json!({ "filename": "clip.mp4", "size": video.len(), "contentType": "video/mp4", "chunkSize": chunk_size });
    let response = app.post_json("/v1/uploads", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id: Uuid = response.json::<Value>().await.unwrap()["uploadId"].as_str().unwrap().parse().unwrap();
    for (index, chunk) in video.chunks(chunk_size).enumerate() {
        app.upload_chunk(id, index as u32, chunk).await;
    }
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);

    let screenshot = output_dir().join("web-playback.png");
    let args = vec![app.base_url.clone(), id.to_string(), screenshot.display().to_string(), app.token.clone()];
    let result = node("web-playback.mjs", args).await;
    assert_eq!(result["addressAfterLoad"], app.url(&format!("/?upload={id}")), "the token leaves the address bar");
    assert_eq!(result["tokenKept"], true);
    let played = &result["video"];
    assert!(played["duration"].as_f64().unwrap() > 3.5, "{result}");
    assert!((played["currentTime"].as_f64().unwrap() - played["target"].as_f64().unwrap()).abs() < 0.5, "{result}");
    assert!(played["readyState"].as_u64().unwrap() >= 2, "{result}");
    assert_eq!(result["downloadedBytes"], video.len());
    std::fs::remove_dir_all(dir).unwrap();
    app.finish().await;
}
