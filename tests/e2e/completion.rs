//! Completion under faults: a client that gives up, a completion whose process died, a stale completion, S3
//! having assembled the object behind the service's back, and the worker's recovery of each.

use std::time::{Duration, Instant};

use e2e::{ChaosProxy, TestApp, random_bytes};
use reqwest::StatusCode;
use uploads::domain::UploadState;
use uploads::storage::S3Operation;
use uuid::Uuid;
use worker::Worker;
use worker::config::{JobSettings, WorkerConfig};

use crate::lifecycle::{CHUNK, answer};

fn completes(app: &TestApp) -> u64 {
    app.state.uploads.storage().calls().get(S3Operation::CompleteMultipartUpload)
}

/// An upload of `size` random bytes with every chunk sent and confirmed, not completed.
async fn all_chunks_sent(app: &TestApp, size: usize) -> (Uuid, Vec<u8>) {
    let data = random_bytes(size);
    let id = app.create_upload(size as u64, Some(CHUNK as u64)).await;
    for (index, chunk) in data.chunks(CHUNK).enumerate() {
        app.upload_chunk(id, index as u32, chunk).await;
    }
    (id, data)
}

async fn state_of(app: &TestApp, id: Uuid) -> (UploadState, i64) {
    sqlx::query_as("SELECT state, completion_epoch FROM uploads WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn worker_for(app: &TestApp) -> Worker {
    let config = WorkerConfig {
        service: app.config.service.clone(),
        jobs: JobSettings { lease: Duration::from_secs(5), backoff: Duration::from_secs(1), ..JobSettings::default() },
        metrics_addr: None,
    };
    Worker::connect(&config).await.expect("worker")
}

/// As if an API process began a completion and died at once: completing, under a lease nobody renews.
async fn begin_and_die(app: &TestApp, id: Uuid, lease: Duration) -> i64 {
    let begun = app.state.uploads.repository().begin_completion(id, None, lease).await.unwrap().expect("began");
    begun.completion_epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_its_client_gave_up_on_still_finishes_and_the_retry_returns_it() {
    let env = e2e::TestEnv::from_env();
    let (s3, endpoint) = ChaosProxy::in_front_of(&env.s3_endpoint).await;
    let app = TestApp::spawn_with(|c| c.service.s3.s3_endpoint = Some(endpoint)).await;
    let (id, data) = all_chunks_sent(&app, 2 * CHUNK + 5).await;

    // S3 slows down; the client gives up on complete long before the completion could end.
    s3.delay(Duration::from_millis(300));
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    let cut = impatient.post(app.url(&format!("/v1/uploads/{id}/complete"))).bearer_auth(&app.token).send().await;
    assert!(cut.is_err_and(|e| e.is_timeout()), "the client was meant to time out");

    let started = Instant::now();
    let (status, body) = answer(app.complete(id).await).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "completed");
    println!("the retry answered after {waited:?}");
    assert!(waited < Duration::from_secs(10), "the retry waited {waited:?}: was the first completion abandoned?");
    assert_eq!(completes(&app), 1, "one CompleteMultipartUpload, by the completion the client left");
    s3.restore();
    assert!(app.object_bytes(id).await == data);
    app.finish().await;
}

#[tokio::test]
async fn a_dead_completion_is_taken_over_by_the_next_complete_once_its_lease_lapses() {
    let app = TestApp::spawn().await;
    let (id, data) = all_chunks_sent(&app, CHUNK + 1).await;
    let dead = begin_and_die(&app, id, Duration::from_secs(2)).await;

    // While the lease holds, the next complete waits; once it lapses, it takes over.
    let started = Instant::now();
    let (status, body) = answer(app.complete(id).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(1500), "took over a live completion: {:?}", started.elapsed());
    assert_eq!(state_of(&app, id).await, (UploadState::Completed, dead + 1));
    assert!(app.object_bytes(id).await == data);

    // The dead completion waking up can flip nothing any more.
    let repo = app.state.uploads.repository();
    assert!(repo.finish_completion(id, dead, "\"stale\"", None, None).await.unwrap().is_none());
    assert!(repo.abandon_completion(id, dead).await.unwrap().is_none());
    assert_eq!(app.status(id, false).await["etag"], body["etag"]);
    app.finish().await;
}

#[tokio::test]
async fn the_recovery_queued_with_a_completion_finishes_it_when_its_process_died() {
    let app = TestApp::spawn().await;
    let (id, data) = all_chunks_sent(&app, CHUNK + 1).await;
    begin_and_die(&app, id, Duration::from_millis(500)).await;
    let worker = worker_for(&app).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    let reports = worker.tick().await.unwrap();
    assert!(reports.iter().any(|r| r.upload_id == Some(id)), "{reports:?}");
    assert_eq!(state_of(&app, id).await.0, UploadState::Completed);
    assert!(app.object_bytes(id).await == data);
    assert_eq!(completes(&app), 0, "the worker completed it, not the api");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'recover_completion' AND state <> 'done'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_live_completion_defers_its_recovery_and_a_settled_one_drops_it() {
    let app = TestApp::spawn().await;
    let (live, _) = all_chunks_sent(&app, CHUNK + 1).await;
    begin_and_die(&app, live, Duration::from_secs(3600)).await;
    sqlx::query("UPDATE jobs SET run_at = now() WHERE upload_id = $1").bind(live).execute(&app.pool).await.unwrap();
    worker_for(&app).await.tick().await.unwrap();
    let (state, later): (String, bool) = sqlx::query_as(
        "SELECT state::text, run_at > now() + interval '59 minutes' FROM jobs WHERE upload_id = $1 AND kind = 'recover_completion'",
    )
    .bind(live)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), later), ("queued", true), "deferred to the lease's end");
    assert_eq!(state_of(&app, live).await.0, UploadState::Completing);

    // A completion that ends normally leaves no recovery behind.
    let (done, _) = all_chunks_sent(&app, CHUNK + 1).await;
    assert_eq!(app.complete(done).await.status(), StatusCode::OK);
    let jobs: Vec<String> = sqlx::query_scalar("SELECT kind::text FROM jobs WHERE upload_id = $1")
        .bind(done)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(jobs, ["verify_object"]);
    app.finish().await;
}

#[tokio::test]
async fn status_with_reconcile_finishes_an_upload_s3_already_assembled() {
    let app = TestApp::spawn().await;
    let (id, data) = all_chunks_sent(&app, 2 * CHUNK + 1).await;
    // A completion cut off after CompleteMultipartUpload, recorded by an older release as uploading again.
    app.assemble_in_s3_behind_the_service(id).await;

    let status = app.status(id, true).await;
    assert_eq!(status["state"], "completed", "{status}");
    assert!(app.object_bytes(id).await == data);
    app.finish().await;
}

#[tokio::test]
async fn an_upload_whose_parts_vanished_from_s3_is_lost_and_says_so() {
    let app = TestApp::spawn().await;
    let (id, _) = all_chunks_sent(&app, CHUNK + 1).await;
    let upload = app.state.uploads.repository().find_upload(id).await.unwrap().unwrap();
    app.storage.abort_multipart_upload(&upload.object_key, upload.s3_upload_id.as_deref().unwrap()).await.unwrap();

    let (status, body) = answer(app.get(&format!("/v1/uploads/{id}?reconcile=true")).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::GONE, Some("upload_lost")), "{body}");
    let (status, body) = answer(app.complete(id).await).await;
    assert_eq!((status, body["state"].as_str()), (StatusCode::GONE, Some("aborted")), "{body}");
    app.finish().await;
}

#[tokio::test]
async fn the_same_chunk_report_after_completion_answers_200_and_another_409() {
    let app = TestApp::spawn().await;
    let data = random_bytes(CHUNK + 1);
    let id = app.create_upload(data.len() as u64, Some(CHUNK as u64)).await;
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    let etag = app.upload_chunk(id, 0, chunks[0]).await;
    app.upload_chunk(id, 1, chunks[1]).await;
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);

    let (status, again) = answer(app.confirm_chunk(id, 0, &etag, chunks[0]).await).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["etag"], etag.as_str());
    let (status, other) = answer(app.confirm_chunk(id, 0, "\"0123\"", chunks[0]).await).await;
    assert_eq!((status, other["code"].as_str()), (StatusCode::CONFLICT, Some("upload_completed")), "{other}");
    app.finish().await;
}

#[tokio::test]
async fn an_expired_upload_whose_object_s3_assembled_leaves_no_object() {
    let app = TestApp::spawn().await;
    let (id, _) = all_chunks_sent(&app, CHUNK + 1).await;
    app.assemble_in_s3_behind_the_service(id).await;
    app.lapse_deadline(id).await;

    worker_for(&app).await.tick().await.unwrap();

    assert_eq!(state_of(&app, id).await.0, UploadState::Expired);
    assert!(app.storage.head_object(&format!("uploads/{id}")).await.unwrap().is_none(), "the object outlived its row");
    let (status, body) = answer(app.get(&format!("/v1/files/{id}")).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::GONE, Some("upload_expired")), "{body}");
    app.finish().await;
}
