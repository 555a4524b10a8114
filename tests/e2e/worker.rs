//! The worker against real Postgres and LocalStack: expiry, orphan sweep, verification, completion recovery,
//! exactly-once claiming by concurrent workers, and a killed worker's job taken over after its lease.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use e2e::{TestApp, random_bytes, sha256_hex, workspace_bin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uploads::config::{LogConfig, LogFormat};
use uploads::domain::{Sha256Digest, UploadState, VerificationState};
use uuid::Uuid;
use worker::config::{JobSettings, WorkerConfig};
use worker::{JobReport, Outcome, Worker};

const MIB: usize = 1024 * 1024;

fn worker_config(app: &TestApp) -> WorkerConfig {
    WorkerConfig {
        database: app.config.database.clone(),
        s3: app.config.s3.clone(),
        policy: app.config.policy.clone(),
        log: LogConfig { log_format: LogFormat::Pretty },
        jobs: JobSettings {
            poll_interval: Duration::from_millis(100),
            lease: Duration::from_secs(5),
            backoff: Duration::from_secs(1),
            recovery_threshold: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(1),
            ..JobSettings::default()
        },
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
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
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

#[tokio::test]
async fn an_idle_upload_past_its_ttl_is_aborted_in_s3_and_expired() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 1000);
    let idle = upload_chunks(&app, &data, 5 * MIB, 1).await;
    let live = upload_chunks(&app, &data, 5 * MIB, 1).await;
    assert_eq!(app.s3_multipart_uploads().await.len(), 2);
    // Idle past its deadline, as if UPLOAD_TTL had gone by without a request.
    sqlx::query("UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(idle)
        .execute(&app.pool)
        .await
        .unwrap();

    let reports = worker(&app, |_| {}).await.tick().await.unwrap();

    let kinds: Vec<_> = reports.iter().map(|r| (r.kind, r.outcome)).collect();
    use uploads::repository::JobKind;
    assert_eq!(kinds, [(JobKind::Sweep, Outcome::Done), (JobKind::ExpireUpload, Outcome::Done)]);
    assert_eq!(upload_state(&app, idle).await, UploadState::Expired);
    assert_eq!(upload_state(&app, live).await, UploadState::Uploading);
    assert_eq!(app.s3_multipart_uploads().await, [s3_upload_id(&app, live).await]);
    let response = app.get(&format!("/v1/uploads/{idle}")).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(job_of(&app, "expire_upload", idle).await.attempts, 1);
    assert_nothing_left(&app).await;

    // Once the live one goes idle too, S3 lists no multipart upload at all.
    sqlx::query("UPDATE uploads SET expires_at = now() WHERE id = $1").bind(live).execute(&app.pool).await.unwrap();
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind = 'sweep'").execute(&app.pool).await.unwrap();
    worker(&app, |_| {}).await.tick().await.unwrap();
    assert_eq!(upload_state(&app, live).await, UploadState::Expired);
    assert!(app.s3_multipart_uploads().await.is_empty());
}

#[tokio::test]
async fn the_sweep_aborts_orphan_multipart_uploads_older_than_the_ttl() {
    let app = TestApp::spawn().await;
    let storage = app.storage.clone();
    let data = random_bytes(5 * MIB + 10);
    let live = upload_chunks(&app, &data, 5 * MIB, 1).await;
    // A row whose own S3 abort failed: aborted in the database, still open in S3.
    let dead_row = upload_chunks(&app, &data, 5 * MIB, 1).await;
    sqlx::query("UPDATE uploads SET state = 'aborted' WHERE id = $1").bind(dead_row).execute(&app.pool).await.unwrap();
    let orphan_key = format!("uploads/{}", Uuid::now_v7());
    let orphan = storage.create_multipart_upload(&orphan_key, "application/octet-stream").await.unwrap();
    let foreign = storage.create_multipart_upload("elsewhere/file", "application/octet-stream").await.unwrap();
    // Older than the worker's UPLOAD_TTL (3 s); S3 reports initiation times to the second.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let young_key = format!("uploads/{}", Uuid::now_v7());
    let young = storage.create_multipart_upload(&young_key, "application/octet-stream").await.unwrap();
    let mut before = app.s3_multipart_uploads().await;
    before.sort();
    assert_eq!(before.len(), 5);

    let sweeper = worker(&app, |c| c.policy.upload_ttl = Duration::from_secs(3)).await;
    let reports = sweeper.tick().await.unwrap();

    assert_eq!(reports.len(), 1, "{reports:?}");
    let mut left = app.s3_multipart_uploads().await;
    left.sort();
    let mut expected = vec![s3_upload_id(&app, live).await, foreign.clone(), young.clone()];
    expected.sort();
    assert_eq!(left, expected, "orphan {orphan} and the aborted row's upload must be gone");
    assert_eq!(upload_state(&app, live).await, UploadState::Uploading);
    for (key, id) in [("elsewhere/file", &foreign), (young_key.as_str(), &young)] {
        storage.abort_multipart_upload(key, id).await.unwrap();
    }
    assert_nothing_left(&app).await;
}

#[tokio::test]
async fn listing_multipart_uploads_follows_every_page() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for n in 0..5 {
        // Two uploads of one key too: S3 pages by key and upload id.
        let key = format!("uploads/{}", n % 4);
        created.push(app.storage.create_multipart_upload(&key, "application/octet-stream").await.unwrap());
    }
    app.storage.create_multipart_upload("elsewhere/x", "application/octet-stream").await.unwrap();

    let listed = app.storage.list_multipart_uploads_paged("uploads/", 2).await.unwrap();

    let mut listed: Vec<String> = listed.into_iter().map(|u| u.upload_id).collect();
    listed.sort();
    created.sort();
    assert_eq!(listed, created);
}

#[tokio::test]
async fn verification_records_verified_corrupt_and_computed_digests() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 4321);
    let digest = sha256_hex(&data);
    let wrong = sha256_hex(b"something else");
    let good = upload_declared(&app, &data, 5 * MIB, Some(digest.clone())).await;
    let corrupt = upload_declared(&app, &data, 5 * MIB, Some(wrong.clone())).await;
    let undeclared = upload_declared(&app, &data[..1000], 5 * MIB, None).await;
    assert_eq!(app.status(good, false).await["verification"], json!({ "state": "pending", "declaredSha256": digest }));

    let reports = worker(&app, |_| {}).await.tick().await.unwrap();
    assert!(reports.iter().all(|r| r.outcome == Outcome::Done), "{reports:?}");

    let status = app.status(good, false).await;
    assert_eq!(status["verification"]["state"], "verified");
    assert_eq!(status["verification"]["sha256"], digest.as_str());
    assert_eq!(status["verification"]["declaredSha256"], digest.as_str());
    assert!(status["verification"]["verifiedAt"].is_string(), "{status}");

    let status = app.status(corrupt, false).await;
    assert_eq!(status["verification"]["state"], "corrupt");
    assert_eq!(status["verification"]["sha256"], digest.as_str());
    assert_eq!(status["verification"]["declaredSha256"], wrong.as_str());

    let status = app.status(undeclared, false).await;
    assert_eq!(status["verification"]["state"], "computed");
    assert_eq!(status["verification"]["sha256"], sha256_hex(&data[..1000]).as_str());
    assert!(status["verification"].get("declaredSha256").is_none(), "{status}");

    let record = app.state.uploads.repository().find_upload(good).await.unwrap().unwrap();
    assert_eq!(record.verification_state, Some(VerificationState::Verified));
    let base64 = Sha256Digest::parse_hex(&digest).unwrap().to_base64();
    assert_eq!(record.repr_digest(), Some(format!("sha-256=:{base64}:")));
    for id in [good, corrupt, undeclared] {
        assert_eq!(job_of(&app, "verify_object", id).await.attempts, 1);
    }
    assert_nothing_left(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_at_once_run_every_job_exactly_once() {
    let app = TestApp::spawn().await;
    let mut completed = Vec::new();
    for _ in 0..10 {
        let data = random_bytes(64 * 1024);
        completed.push(upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await);
    }
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(upload_chunks(&app, &random_bytes(1000), 5 * MIB, 1).await);
    }
    sqlx::query("UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = ANY($1)")
        .bind(&idle)
        .execute(&app.pool)
        .await
        .unwrap();
    let (a, b) = (worker(&app, |_| {}).await, worker(&app, |_| {}).await);

    // Each worker claims from several tasks at once, as with WORKER_CONCURRENCY, until a round finds nothing.
    let mut ran: Vec<(String, JobReport)> = Vec::new();
    loop {
        let mut round = tokio::task::JoinSet::new();
        for (name, worker) in [("a", &a), ("b", &b)].into_iter().flat_map(|w| std::iter::repeat_n(w, 4)) {
            let worker = worker.clone();
            round.spawn(async move { (name.to_string(), worker.tick().await.unwrap()) });
        }
        let before = ran.len();
        while let Some(done) = round.join_next().await {
            let (name, reports) = done.unwrap();
            ran.extend(reports.into_iter().map(|r| (name.clone(), r)));
        }
        if ran.len() == before {
            break;
        }
    }

    let mut runs_per_job: HashMap<i64, usize> = HashMap::new();
    for (_, report) in &ran {
        assert_eq!(report.outcome, Outcome::Done, "{report:?}");
        *runs_per_job.entry(report.id).or_default() += 1;
    }
    let rows = jobs(&app).await;
    assert_eq!(rows.len(), 1 + completed.len() + idle.len());
    for row in &rows {
        assert_eq!(runs_per_job.get(&row.id), Some(&1), "{row:?} in {ran:?}");
        assert_eq!(row.attempts, if row.kind == "sweep" { 0 } else { 1 }, "{row:?}");
    }
    let by_a = ran.iter().filter(|(w, _)| w == "a").count();
    println!("worker a ran {by_a} jobs, worker b ran {} of {}", ran.len() - by_a, ran.len());
    for id in &completed {
        assert_eq!(app.status(*id, false).await["verification"]["state"], "verified");
    }
    for id in &idle {
        assert_eq!(upload_state(&app, *id).await, UploadState::Expired);
    }
    assert!(app.s3_multipart_uploads().await.is_empty());
    assert_nothing_left(&app).await;
}

/// The real `worker` binary on this test's database and bucket, holding every job it claims for an hour.
fn spawn_worker_process(app: &TestApp, lease: &str) -> tokio::process::Child {
    let s3 = &app.config.s3;
    tokio::process::Command::new(workspace_bin("worker"))
        .env("DATABASE_URL", &app.config.database.database_url)
        .env("S3_ENDPOINT", s3.s3_endpoint.as_deref().unwrap())
        .env("S3_REGION", &s3.s3_region)
        .env("S3_BUCKET", &s3.s3_bucket)
        .env("S3_FORCE_PATH_STYLE", "true")
        .env("LOG_FORMAT", "pretty")
        .env("WORKER_POLL_INTERVAL", "100ms")
        .env("WORKER_LEASE", lease)
        .env("WORKER_SHUTDOWN_GRACE", "1s")
        .env("WORKER_DEBUG_JOB_DELAY", "1h")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn worker")
}

/// Waits until the process holds the lease on the upload's verification job; returns the lease owner.
async fn wait_until_leased(app: &TestApp, upload_id: Uuid, pid: u32) -> String {
    let prefix = format!("worker-{pid}-");
    for _ in 0..300 {
        let job = job_of(app, "verify_object", upload_id).await;
        if job.state == "running" && job.lease_owner.as_deref().is_some_and(|o| o.starts_with(&prefix)) {
            return job.lease_owner.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker process never claimed the verification job: {:?}", jobs(app).await);
}

#[tokio::test]
async fn a_killed_workers_job_is_finished_by_another_once_its_lease_runs_out() {
    let app = TestApp::spawn().await;
    let data = random_bytes(100_000);
    let id = upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await;
    let mut process = spawn_worker_process(&app, "4s");
    let owner = wait_until_leased(&app, id, process.id().unwrap()).await;

    process.kill().await.expect("SIGKILL");

    let job = job_of(&app, "verify_object", id).await;
    assert_eq!((job.state.as_str(), job.lease_owner.as_deref(), job.attempts), ("running", Some(owner.as_str()), 1));
    let survivor = worker(&app, |_| {}).await;
    let mut taken_over = Vec::new();
    for _ in 0..200 {
        taken_over.extend(survivor.tick().await.unwrap());
        if job_of(&app, "verify_object", id).await.state == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(taken_over.iter().any(|r| r.upload_id == Some(id) && r.outcome == Outcome::Done), "{taken_over:?}");
    let job = job_of(&app, "verify_object", id).await;
    assert_eq!((job.state.as_str(), job.attempts), ("done", 2), "{job:?}");
    assert_eq!(app.status(id, false).await["verification"]["state"], "verified");
    assert_nothing_left(&app).await;
}

#[tokio::test]
async fn sigterm_releases_the_job_at_hand_and_exits_0() {
    let app = TestApp::spawn().await;
    let data = random_bytes(10_000);
    let id = upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await;
    let mut process = spawn_worker_process(&app, "1m");
    let pid = process.id().unwrap();
    wait_until_leased(&app, id, pid).await;

    let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(sent.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), process.wait()).await.expect("exits").unwrap();

    assert!(exit.success(), "{exit:?}");
    let job = job_of(&app, "verify_object", id).await;
    assert_eq!((job.state.as_str(), job.lease_owner.as_deref(), job.attempts), ("queued", None, 0), "{job:?}");
    // Released, not left to a lease that runs out in a minute: the next worker takes it at once.
    let reports = worker(&app, |_| {}).await.tick().await.unwrap();
    assert!(reports.iter().any(|r| r.upload_id == Some(id) && r.outcome == Outcome::Done), "{reports:?}");
    assert_eq!(app.status(id, false).await["verification"]["state"], "verified");
    assert_nothing_left(&app).await;
}

/// As if the API died between S3 and the database: `completing`, untouched for longer than the threshold.
async fn strand_in_completing(app: &TestApp, id: Uuid) {
    sqlx::query("UPDATE uploads SET state = 'completing', updated_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn uploads_stuck_in_completing_are_recovered() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 777);
    // S3 never heard of the completion.
    let not_stitched = upload_chunks(&app, &data, 5 * MIB, 2).await;
    strand_in_completing(&app, not_stitched).await;
    // S3 assembled the object, the database never heard of it.
    let stitched = upload_chunks(&app, &data, 5 * MIB, 2).await;
    strand_in_completing(&app, stitched).await;
    let record = app.state.uploads.repository().find_upload(stitched).await.unwrap().unwrap();
    app.state.uploads.stitch(&record).await.unwrap();
    assert!(!app.s3_multipart_uploads().await.contains(&s3_upload_id(&app, stitched).await));
    // A chunk never arrived: cannot complete, back to uploading so the client can send it.
    let incomplete = upload_chunks(&app, &data, 5 * MIB, 1).await;
    strand_in_completing(&app, incomplete).await;
    // Completing right now (a live API is on it): not the worker's business yet.
    let in_progress = upload_chunks(&app, &data, 5 * MIB, 2).await;
    sqlx::query("UPDATE uploads SET state = 'completing' WHERE id = $1")
        .bind(in_progress)
        .execute(&app.pool)
        .await
        .unwrap();

    let reports = worker(&app, |_| {}).await.tick().await.unwrap();
    assert!(reports.iter().all(|r| r.outcome == Outcome::Done), "{reports:?}");

    for id in [not_stitched, stitched] {
        let status = app.status(id, false).await;
        assert_eq!(status["state"], "completed", "{status}");
        assert_eq!(status["verification"]["state"], "computed", "{status}");
        assert_eq!(status["verification"]["sha256"], sha256_hex(&data).as_str());
        assert_eq!(app.object_bytes(id).await, data);
    }
    assert_eq!(upload_state(&app, incomplete).await, UploadState::Uploading);
    assert_eq!(app.status(incomplete, false).await["missingChunks"], json!([[1, 1]]));
    assert_eq!(upload_state(&app, in_progress).await, UploadState::Completing);
    let recovered: Vec<_> = jobs(&app).await.into_iter().filter(|j| j.kind == "recover_completion").collect();
    assert_eq!(recovered.len(), 3, "{recovered:?}");
    assert!(recovered.iter().all(|j| j.attempts == 1 && j.last_error.is_none()), "{recovered:?}");
    assert_nothing_left(&app).await;
}

#[tokio::test]
async fn a_failing_job_records_its_error_backs_off_and_finally_fails() {
    let app = TestApp::spawn().await;
    let data = random_bytes(1000);
    let id = upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await;
    // The object vanished: hashing it cannot succeed.
    let s3 = app.storage.client();
    s3.delete_object().bucket(app.storage.bucket()).key(format!("uploads/{id}")).send().await.unwrap();
    let worker = worker(&app, |c| {
        c.jobs.max_attempts = 2;
        c.jobs.backoff = Duration::from_secs(3600);
    })
    .await;

    let outcomes = |reports: Vec<JobReport>| -> Vec<Outcome> {
        reports.into_iter().filter(|r| r.upload_id == Some(id)).map(|r| r.outcome).collect()
    };
    assert_eq!(outcomes(worker.tick().await.unwrap()), [Outcome::Retrying]);
    let job = job_of(&app, "verify_object", id).await;
    assert_eq!((job.state.as_str(), job.attempts), ("queued", 1));
    assert!(job.last_error.as_deref().unwrap_or_default().contains("no such object"), "{job:?}");
    let backed_off: bool = sqlx::query_scalar("SELECT run_at > now() + interval '59 minutes' FROM jobs WHERE id = $1")
        .bind(job.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(backed_off);
    assert_eq!(outcomes(worker.tick().await.unwrap()), [], "not due before its backoff");

    sqlx::query("UPDATE jobs SET run_at = now() WHERE id = $1").bind(job.id).execute(&app.pool).await.unwrap();
    assert_eq!(outcomes(worker.tick().await.unwrap()), [Outcome::Failed]);
    let job = job_of(&app, "verify_object", id).await;
    assert_eq!((job.state.as_str(), job.attempts, job.lease_owner), ("failed", 2, None));
    let record = app.state.uploads.repository().find_upload(id).await.unwrap().unwrap();
    assert_eq!(record.verification_state, Some(VerificationState::Failed));
    assert!(record.verification_error.unwrap_or_default().contains("no such object"));
    assert_eq!(app.status(id, false).await["verification"]["state"], "failed");
}
