//! Per-owner limits on uploads in progress (`MAX_ACTIVE_UPLOADS`, `MAX_ACTIVE_BYTES`): 429 past them, room
//! again once an upload ends, other owners unaffected, and exact under concurrent creates.

use e2e::TestApp;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uploads::storage::S3Operation;

use crate::lifecycle::{MIB, answer};

async fn create(app: &TestApp, client: &reqwest::Client, size: u64) -> (StatusCode, Value, Option<String>) {
    let response = client.post(app.url("/v1/uploads")).json(&json!({ "filename": "f.bin", "size": size }));
    let response = response.send().await.expect("create");
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let (status, body) = answer(response).await;
    (status, body, retry_after)
}

fn multipart_creates(app: &TestApp) -> u64 {
    app.state.uploads.storage().calls().get(S3Operation::CreateMultipartUpload)
}

#[tokio::test]
async fn past_the_active_uploads_limit_creates_are_429_until_an_upload_ends() {
    let app = TestApp::spawn_with(|c| c.service.policy.max_active_uploads = 3).await;
    let first = app.create_upload(10, None).await;
    let zero_bytes = app.create_upload(0, None).await;
    let expiring = app.create_upload(10, None).await;
    let creates = multipart_creates(&app);

    let (status, body, retry_after) = create(&app, &app.http, 10).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_active_uploads")));
    assert_eq!((body["maxActiveUploads"].clone(), body["activeUploads"].clone()), (json!(3), json!(3)));
    assert_eq!(retry_after.as_deref(), Some("30"));
    assert_eq!(multipart_creates(&app), creates, "a refused create asks S3 for nothing");
    // Limits are per owner.
    assert_eq!(create(&app, &app.client_for("bob"), 10).await.0, StatusCode::CREATED);

    // Each way an upload stops being in progress makes room: abort, complete, expiry.
    assert_eq!(app.http.delete(app.url(&format!("/v1/uploads/{first}"))).send().await.unwrap().status(), 204);
    assert_eq!(create(&app, &app.http, 10).await.0, StatusCode::CREATED);
    assert_eq!(create(&app, &app.http, 10).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.complete(zero_bytes).await.status(), StatusCode::OK);
    assert_eq!(create(&app, &app.http, 10).await.0, StatusCode::CREATED);
    assert_eq!(create(&app, &app.http, 10).await.0, StatusCode::TOO_MANY_REQUESTS);
    app.lapse_deadline(expiring).await;
    assert_eq!(create(&app, &app.http, 10).await.0, StatusCode::CREATED, "a past-deadline upload is not in progress");
    app.finish().await;
}

#[tokio::test]
async fn bytes_in_progress_are_capped_per_owner_and_cap_one_upload_too() {
    let max = 100 * MIB as u64;
    let app = TestApp::spawn_with(|c| c.service.policy.max_active_bytes = max).await;
    assert_eq!(create(&app, &app.http, 60 * MIB as u64).await.0, StatusCode::CREATED);
    let (status, body, retry_after) = create(&app, &app.http, 41 * MIB as u64).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_active_bytes")));
    assert_eq!((body["maxActiveBytes"].clone(), body["activeBytes"].clone()), (json!(max), json!(60 * MIB)));
    assert!(retry_after.is_some());
    assert_eq!(create(&app, &app.http, 40 * MIB as u64).await.0, StatusCode::CREATED, "exactly up to the limit");
    assert_eq!(create(&app, &app.client_for("bob"), 100 * MIB as u64).await.0, StatusCode::CREATED);
    // An upload that could never fit is too large, not "later".
    let (status, body, _) = create(&app, &app.client_for("carol"), max + 1).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("upload_too_large")));
    assert_eq!(body["maxUploadSize"], json!(max));
    app.finish().await;
}

/// `n` creates of `size` bytes sent at once; returns how many were created and how many refused with 429.
async fn race(app: &TestApp, n: usize, size: u64) -> (usize, usize) {
    let statuses: Vec<StatusCode> = join_all((0..n).map(|_| async { create(app, &app.http, size).await.0 })).await;
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    assert_eq!(count(StatusCode::CREATED) + count(StatusCode::TOO_MANY_REQUESTS), n, "{statuses:?}");
    (count(StatusCode::CREATED), count(StatusCode::TOO_MANY_REQUESTS))
}

async fn uploading(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM uploads WHERE state = 'uploading'").fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn concurrent_creates_at_the_limit_admit_exactly_the_limit() {
    let app = TestApp::spawn_with(|c| c.service.policy.max_active_uploads = 5).await;
    assert_eq!(race(&app, 20, 10).await, (5, 15));
    assert_eq!(uploading(&app).await, 5);
    // The losers' multipart uploads, created before the limit refused them, were aborted at once.
    assert_eq!(app.s3_multipart_uploads().await.len(), 5);
    app.finish().await;

    let app = TestApp::spawn_with(|c| c.service.policy.max_active_bytes = 50).await;
    assert_eq!(race(&app, 20, 10).await, (5, 15));
    assert_eq!(uploading(&app).await, 5);
    assert_eq!(app.s3_multipart_uploads().await.len(), 5);
    app.finish().await;
}
