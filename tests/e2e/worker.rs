//! The worker against real Postgres and LocalStack: expiry, orphan sweep, verification, completion recovery,
//! exactly-once claiming by concurrent workers, and a killed worker's job taken over after its lease.

mod processes;
mod queue;

use std::time::Duration;

use e2e::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uploads::domain::UploadState;
use uuid::Uuid;
use worker::Worker;
use worker::config::{JobSettings, WorkerConfig};

const MIB: usize = 1024 * 1024;

fn worker_config(app: &TestApp) -> WorkerConfig {
    WorkerConfig {
        service: app.config.service.clone(),
        jobs: JobSettings {
            poll_interval: Duration::from_millis(100),
            lease: Duration::from_secs(5),
            backoff: Duration::from_secs(1),
            recovery_threshold: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(1),
            ..JobSettings::default()
        },
        metrics_addr: None,
    }
}

async fn worker(app: &TestApp, tweak: impl FnOnce(&mut WorkerConfig)) -> Worker {
    let mut config = worker_config(app);
    tweak(&mut config);
    Worker::connect(&config).await.expect("worker")
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    upload_id: Option<Uuid>,
    state: String,
    attempts: i32,
    lease_owner: Option<String>,
    last_error: Option<String>,
}

async fn jobs(app: &TestApp) -> Vec<JobRow> {
    sqlx::query_as(
        "SELECT id, kind::text, upload_id, state::text, attempts, lease_owner, last_error FROM jobs ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn job_of(app: &TestApp, kind: &str, upload_id: Uuid) -> JobRow {
    let all = jobs(app).await;
    all.into_iter().find(|j| j.kind == kind && j.upload_id == Some(upload_id)).expect("job row")
}

/// Nothing is left to do: every job done, only the recurring sweep queued for later.
async fn assert_nothing_left(app: &TestApp) {
    for job in jobs(app).await {
        match job.kind.as_str() {
            "sweep" => assert_eq!(job.state, "queued", "{job:?}"),
            _ => assert_eq!(job.state, "done", "{job:?}"),
        }
    }
    let due: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE run_at <= now() AND state = 'queued'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(due, 0);
}

async fn upload_state(app: &TestApp, id: Uuid) -> UploadState {
    sqlx::query_scalar("SELECT state FROM uploads WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap()
}

/// Creates an upload declaring `sha256`, sends every chunk and completes it.
async fn upload_declared(app: &TestApp, data: &[u8], chunk_size: usize, sha256: Option<String>) -> Uuid {
    let id = upload_declared_sent(app, data, chunk_size, sha256).await;
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    id
}

/// Created with `sha256` (or none) and every chunk sent, not completed.
async fn upload_declared_sent(app: &TestApp, data: &[u8], chunk_size: usize, sha256: Option<String>) -> Uuid {
    let response = app
        .post_json(
            "/v1/uploads",
            &json!({ "filename": "f.bin", "size": data.len(), "chunkSize": chunk_size, "sha256": sha256 }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id: Uuid = response.json::<Value>().await.unwrap()["uploadId"].as_str().unwrap().parse().unwrap();
    for (index, chunk) in data.chunks(chunk_size).enumerate() {
        app.upload_chunk(id, index as u32, chunk).await;
    }
    id
}

/// Sends the chunks of an upload without completing it.
async fn upload_chunks(app: &TestApp, data: &[u8], chunk_size: usize, count: usize) -> Uuid {
    let id = app.create_upload(data.len() as u64, Some(chunk_size as u64)).await;
    for (index, chunk) in data.chunks(chunk_size).enumerate().take(count) {
        app.upload_chunk(id, index as u32, chunk).await;
    }
    id
}

async fn s3_upload_id(app: &TestApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT s3_upload_id FROM uploads WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap()
}
