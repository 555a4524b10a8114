//! What the page says when the service refuses, and how it waits when the service asks it to.

use e2e::{TestApp, random_bytes};
use reqwest::StatusCode;
use serde_json::Value;

use super::{MIB, node, scratch_dir};

#[tokio::test]
async fn web_page_explains_refusals_and_retries_after_retry_after() {
    let app = TestApp::spawn_with(|c| c.service.policy.max_upload_size = 6 * MIB as u64).await;
    let dir = scratch_dir();
    let aborted = app.create_upload(10, None).await;
    let response = app.http.delete(app.url(&format!("/v1/uploads/{aborted}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    std::fs::write(dir.join("large.bin"), random_bytes(7 * MIB)).unwrap();
    let small = random_bytes(1000);
    std::fs::write(dir.join("small.bin"), &small).unwrap();
    let args = vec![
        app.base_url.clone(),
        app.token.clone(),
        aborted.to_string(),
        dir.join("large.bin").display().to_string(),
        dir.join("small.bin").display().to_string(),
    ];
    let result = node("web-errors.mjs", args).await;

    let text = |key: &str| result[key].as_str().unwrap_or_default().to_string();
    assert!(text("gone").contains("gone.bin") && text("gone").contains("was cancelled"), "410: {result}");
    assert_eq!(result["askedForNonUuid"], false, "an id that is no UUID is never used");
    assert!(text("badName").contains("U+202E") && text("badName").contains("rename"), "{result}");
    assert!(text("tooLarge").contains("larger than the 6.0 MiB"), "{result}");

    assert_eq!(result["refusedCreate"], true);
    let notices: Vec<&str> = result["notices"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(notices.iter().any(|n| n.contains("cannot reach storage") && n.contains("Retrying in 1 s")), "{notices:?}");
    assert!(notices.iter().any(|n| n.contains("being assembled") && n.contains("Retrying in 2 s")), "{notices:?}");
    let gap = result["completeGapMs"].as_u64().expect("complete was retried");
    assert!(gap >= 1900, "the retry came {gap} ms after a Retry-After of 2 s");
    let listed: Value = app.get("/v1/uploads?state=completed").await.json().await.unwrap();
    assert_eq!(listed["uploads"][0]["filename"], "small.bin", "{listed}");
    let completed: uuid::Uuid = listed["uploads"][0]["uploadId"].as_str().unwrap().parse().unwrap();
    assert!(app.object_bytes(completed).await == small, "the retried upload is whole");
    std::fs::remove_dir_all(dir).unwrap();
    app.finish().await;
}
