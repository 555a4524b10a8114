//! The page's transfers in Chromium: several files dropped at once, pause and resume, cancel, and the list
//! of the user's uploads with its states and links.

use e2e::{TestApp, random_bytes, sha256_hex};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::{MIB, node, output_dir, scratch_dir};
use crate::lifecycle::answer;

fn id_of(value: &Value) -> Uuid {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn web_page_uploads_two_dropped_files_at_once_and_lists_them_with_working_links() {
    let app = TestApp::spawn().await;
    let dir = scratch_dir();
    // 2 chunks and 1 chunk of the service's 8 MiB.
    let files = [("first.bin", random_bytes(9 * MIB + 17)), ("second.bin", random_bytes(3 * MIB))];
    let mut args =
        vec![app.base_url.clone(), app.token.clone(), output_dir().join("web-drop.png").display().to_string()];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
        args.push(dir.join(name).display().to_string());
    }
    let result = node("web-drop.mjs", args).await;

    assert_eq!(result["mostSending"], 2, "both files were sent at the same time: {result}");
    let transfers = result["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 2);
    for ((name, bytes), transfer) in files.iter().zip(transfers) {
        assert_eq!((transfer["name"].as_str(), transfer["state"].as_str()), (Some(*name), Some("done")));
        let id = id_of(&transfer["uploadId"]);
        assert!(app.object_bytes(id).await == *bytes, "{name}: S3 holds other bytes");
        assert_eq!(app.status(id, false).await["state"], "completed");
    }
    let listed = result["listed"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{result}");
    let downloads = result["downloads"].as_array().unwrap();
    for (row, download) in listed.iter().zip(downloads) {
        let (name, bytes) = files.iter().find(|(name, _)| row["name"] == *name).expect("a dropped file");
        assert_eq!((row["state"].as_str(), row["stateText"].as_str()), (Some("completed"), Some("completed")));
        assert_eq!(download["status"], 200, "{name}: the link works without a token");
        assert_eq!(download["sha256"], sha256_hex(bytes), "{name}: the link serves the file");
    }
    std::fs::remove_dir_all(dir).unwrap();
    app.finish().await;
}

#[tokio::test]
async fn web_page_pauses_resumes_and_cancels() {
    let app = TestApp::spawn().await;
    let dir = scratch_dir();
    let (paused, cancelled) = (random_bytes(40 * MIB), random_bytes(32 * MIB));
    std::fs::write(dir.join("paused.bin"), &paused).unwrap();
    std::fs::write(dir.join("cancelled.bin"), &cancelled).unwrap();
    let args = vec![
        app.base_url.clone(),
        app.token.clone(),
        app.env.s3_endpoint.clone(),
        output_dir().join("web-pause.png").display().to_string(),
        dir.join("paused.bin").display().to_string(),
        dir.join("cancelled.bin").display().to_string(),
    ];
    let result = node("web-pause.mjs", args).await;

    assert!(result["inFlightBeforePause"].as_u64().unwrap() >= 1, "{result}");
    assert_eq!(result["inFlightWhilePaused"], 0, "pause stops the chunks in flight: {result}");
    assert_eq!(result["startedWhilePaused"], 0, "and starts none: {result}");
    assert_eq!(result["doneWhilePaused"], 0, "{result}");
    assert!(result["pausedText"].as_str().unwrap().contains("paused"), "{result}");
    let paused_id = id_of(&result["pausedId"]);
    assert_eq!(app.status(paused_id, false).await["state"], "completed", "resumed to the end");
    assert!(app.object_bytes(paused_id).await == paused, "S3 holds other bytes than the paused file");

    assert!(result["inFlightBeforeCancel"].as_u64().unwrap() >= 1, "{result}");
    assert_eq!(result["startedAfterCancel"], 0, "{result}");
    let cancelled_id = id_of(&result["cancelledId"]);
    let (status, body) = answer(app.get(&format!("/v1/uploads/{cancelled_id}")).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::GONE, Some("upload_aborted")));
    let states: Vec<(Uuid, String)> = result["listedStates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (id_of(&row[0]), row[1].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(states, [(cancelled_id, "aborted".into()), (paused_id, "completed".into())]);
    assert_eq!(result["stored"], "[]", "neither is left to resume");
    std::fs::remove_dir_all(dir).unwrap();
    app.finish().await;
}
