//! Headless Chromium plays and seeks a `<video>` whose src is `/v1/files/{id}`: the browser's own Range
//! requests (`bytes=0-`, then from the seek point) are answered 206, as the API's log shows.

use std::path::Path;
use std::process::Command;

use e2e::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::process::ApiProcess;

const SECONDS: u32 = 60;

/// A real H.264 MP4 (moov first, as web video is published), large enough that the browser does not hold
/// all of it after the first request, so a seek needs a new range.
fn make_video(dir: &Path) -> Vec<u8> {
    let path = dir.join("test.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", &format!("testsrc2=duration={SECONDS}:size=640x360:rate=25")])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3M", "-maxrate", "3M", "-bufsize", "1M"])
        .args(["-pix_fmt", "yuv420p", "-movflags", "+faststart"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (scripts/test-prereqs.sh installs it)");
    assert!(status.success(), "ffmpeg failed");
    std::fs::read(&path).unwrap()
}

async fn upload_video(app: &TestApp, video: &[u8]) -> uuid::Uuid {
    let chunk_size = 5 * 1024 * 1024;
    let body =
        json!({ "filename": "test.mp4", "size": video.len(), "contentType": "video/mp4", "chunkSize": chunk_size });
    let response = app.post_json("/v1/uploads", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["uploadId"].as_str().unwrap().parse().unwrap();
    for (index, chunk) in video.chunks(chunk_size).enumerate() {
        app.upload_chunk(id, index as u32, chunk).await;
    }
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    id
}

/// (Range header, status) of every `file answered` line of the api's JSON log.
fn answered_ranges(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["message"] == "file answered")
        .map(|entry| (entry["range"].as_str().unwrap_or("").to_string(), entry["status"].as_u64().unwrap_or(0)))
        .collect()
}

#[tokio::test]
async fn chromium_plays_and_seeks_a_video_served_with_ranges() {
    let app = TestApp::spawn().await;
    let dir = std::env::temp_dir().join(format!("browser-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let video = make_video(&dir);
    let id = upload_video(&app, &video).await;
    let api = ApiProcess::spawn(&app, "browser", &[("RUST_LOG", "info"), ("LOG_FORMAT", "json")]).await;
    let video_url = format!("{}/v1/files/{id}?disposition=inline", api.base_url);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let seek_to = (SECONDS - 10).to_string();
    let token = app.token.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").current_dir(&script).args(["video-seek.mjs", &video_url, &seek_to, &token]).output()
    })
    .await
    .unwrap()
    .expect("node runs (scripts/test-prereqs.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("the browser script printed no result: {stdout}\n{stderr}"));
    println!("browser: {result}");
    assert_eq!(result["ok"], true, "{result}\n{stderr}");

    let answered = answered_ranges(&api.log());
    println!("api log, range -> status: {answered:?}");
    assert!(answered.contains(&("bytes=0-".to_string(), 206)), "no `bytes=0-` answered 206: {answered:?}");
    // The seek to 5/6 of the duration must have been a new request starting far into the file.
    let seek_request = answered.iter().any(|(range, status)| {
        let start =
            range.strip_prefix("bytes=").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<usize>().ok());
        *status == 206 && start.is_some_and(|start| start > video.len() / 2)
    });
    assert!(seek_request, "the seek caused no range request answered 206: {answered:?}");
    assert!(answered.iter().all(|(_, status)| *status == 206), "{answered:?}");
    std::fs::remove_dir_all(&dir).unwrap();
    app.finish().await;
}
