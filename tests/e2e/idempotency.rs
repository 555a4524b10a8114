//! `Idempotency-Key` on `POST /v1/uploads`: a retry, even a concurrent one, gets the first answer and creates
//! nothing (no second row, no second S3 multipart upload); a key is per owner, tied to its request, kept for
//! `UPLOAD_TTL` and then forgotten by the sweep.

use std::time::Duration;

use e2e::TestApp;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uploads::service::SweepSettings;
use uploads::storage::S3Operation;

use crate::lifecycle::answer;

/// Status, `Idempotent-Replayed` and body of a create with `key`.
async fn create(client: &reqwest::Client, app: &TestApp, key: &str, body: &Value) -> (StatusCode, bool, Value) {
    let request = client.post(app.url("/v1/uploads")).header("idempotency-key", key).json(body);
    let response = request.send().await.expect("create");
    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    let (status, body) = answer(response).await;
    (status, replayed, body)
}

fn multipart_creates(app: &TestApp) -> u64 {
    app.state.uploads.storage().calls().get(S3Operation::CreateMultipartUpload)
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&app.pool).await.unwrap()
}

fn request() -> Value {
    json!({ "filename": "film.mp4", "size": 12_000_000, "contentType": "video/mp4", "metadata": { "a": 1, "b": 2 } })
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let (status, replayed, first) = create(&app.http, &app, "key-1", &request()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    let (status, replayed, again) = create(&app.http, &app, "key-1", &request()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, first, "the same 201 body");
    // The same request, its metadata written in another order.
    let reordered: Value = serde_json::from_str(
        r#"{"metadata": {"b": 2, "a": 1}, "contentType": "video/mp4", "size": 12000000, "filename": "film.mp4"}"#,
    )
    .unwrap();
    assert_eq!(create(&app.http, &app, "key-1", &reordered).await.2, first);
    assert_eq!((multipart_creates(&app), count(&app, "uploads").await), (1, 1));

    let mut other = request();
    other["size"] = json!(12_000_001);
    let (status, _, body) = create(&app.http, &app, "key-1", &other).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")));

    // Keys are per owner: bob's key-1 is his own upload.
    let (status, replayed, bobs) = create(&app.client_for("bob"), &app, "key-1", &request()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    assert_ne!(bobs["uploadId"], first["uploadId"]);
    // Without a key, each create is a new upload.
    app.post_json("/v1/uploads", &request()).await;
    app.post_json("/v1/uploads", &request()).await;
    assert_eq!((multipart_creates(&app), count(&app, "uploads").await), (4, 4));
    app.finish().await;
}

#[tokio::test]
async fn concurrent_duplicates_make_one_upload_and_one_multipart_upload() {
    let app = TestApp::spawn().await;
    let body = request();
    let answers = join_all((0..16).map(|_| create(&app.http, &app, "same-key", &body))).await;
    let ids: Vec<&Value> = answers.iter().map(|(_, _, body)| &body["uploadId"]).collect();
    assert!(answers.iter().all(|(status, _, _)| *status == StatusCode::CREATED), "{answers:?}");
    assert!(ids.iter().all(|id| *id == ids[0] && id.is_string()), "{ids:?}");
    assert_eq!(answers.iter().filter(|(_, replayed, _)| *replayed).count(), 15);
    assert_eq!(multipart_creates(&app), 1, "one CreateMultipartUpload for 16 racing duplicates");
    assert_eq!(count(&app, "uploads").await, 1);
    assert_eq!(app.s3_multipart_uploads().await.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = TestApp::spawn().await;
    let post = || app.http.post(app.url("/v1/uploads")).json(&request());
    let cases = [
        ("empty", post().header("idempotency-key", "")),
        ("256 characters", post().header("idempotency-key", "k".repeat(256))),
        (
            "not ASCII",
            post().header("idempotency-key", reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()),
        ),
        ("twice", post().header("idempotency-key", "a").header("idempotency-key", "b")),
    ];
    for (name, request) in cases {
        let (status, body) = answer(request.send().await.unwrap()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_idempotency_key")),
            "{name}"
        );
    }
    assert_eq!(count(&app, "uploads").await, 0);
    assert_eq!(create(&app.http, &app, &"k".repeat(255), &request()).await.0, StatusCode::CREATED);
    app.finish().await;
}

#[tokio::test]
async fn a_key_lasts_upload_ttl_then_is_taken_over_and_swept() {
    let app = TestApp::spawn().await;
    let (_, _, first) = create(&app.http, &app, "k", &request()).await;
    let kept: f64 =
        sqlx::query_scalar("SELECT extract(epoch FROM expires_at - created_at)::float8 FROM idempotency_keys")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept, app.config.service.policy.upload_ttl.as_secs_f64());

    let expire_keys = || sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'");
    expire_keys().execute(&app.pool).await.unwrap();
    let (status, replayed, second) = create(&app.http, &app, "k", &request()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "an expired key starts a new upload");
    assert_ne!(second["uploadId"], first["uploadId"]);

    expire_keys().execute(&app.pool).await.unwrap();
    let settings =
        SweepSettings { recovery_threshold: Duration::from_secs(900), job_retention: Duration::from_secs(86_400) };
    let report = app.state.uploads.sweep(settings).await.unwrap();
    assert_eq!(report.idempotency_keys_deleted, 1);
    assert_eq!(count(&app, "idempotency_keys").await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_replay_passes_the_limits_and_a_refused_create_keeps_no_key() {
    let app = TestApp::spawn_with(|c| c.service.policy.max_active_uploads = 1).await;
    let (_, _, first) = create(&app.http, &app, "one", &request()).await;
    let (status, replayed, again) = create(&app.http, &app, "one", &request()).await;
    assert_eq!((status, replayed, &again), (StatusCode::CREATED, true, &first), "the retry is not a new upload");

    let (status, _, body) = create(&app.http, &app, "two", &request()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_active_uploads")));
    assert_eq!(count(&app, "idempotency_keys").await, 1, "the refused create left its key free");
    let id = first["uploadId"].as_str().unwrap();
    assert_eq!(app.http.delete(app.url(&format!("/v1/uploads/{id}"))).send().await.unwrap().status(), 204);
    let (status, replayed, _) = create(&app.http, &app, "two", &request()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_its_client_gave_up_on_still_ends_and_the_retry_gets_it() {
    let env = e2e::TestEnv::from_env();
    let (s3, endpoint) = e2e::ChaosProxy::in_front_of(&env.s3_endpoint).await;
    let app = TestApp::spawn_with(|c| c.service.s3.s3_endpoint = Some(endpoint)).await;
    // S3 slows down; the client gives up while CreateMultipartUpload is under way.
    s3.delay(Duration::from_millis(300));
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    let cut = impatient
        .post(app.url("/v1/uploads"))
        .bearer_auth(&app.token)
        .header("idempotency-key", "cut-1")
        .json(&request())
        .send()
        .await;
    assert!(cut.is_err_and(|e| e.is_timeout()), "the client was meant to time out");

    let (status, replayed, body) = create(&app.http, &app, "cut-1", &request()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(replayed, "the first create ran to its end: the retry gets its answer");
    assert_eq!((multipart_creates(&app), count(&app, "uploads").await), (1, 1));
    s3.restore();
    app.finish().await;
}
