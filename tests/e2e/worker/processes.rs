//! Workers running: the in-process loop, two side by side claiming exactly once, a SIGKILLed worker's job
//! taken over after its lease, and SIGTERM releasing the job at hand.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use e2e::{ChaosProxy, TestApp, random_bytes, sha256_hex, workspace_bin};
use uploads::domain::UploadState;
use uuid::Uuid;
use worker::{JobReport, Outcome};

use super::*;

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
    app.finish().await;
}

/// The real `worker` binary on this test's database and bucket, its S3 behind a stalled chaos proxy: every job it
/// claims hangs on S3 (as on a real hung dependency), holding its lease, until the proxy is dropped.
async fn spawn_stuck_worker_process(app: &TestApp, lease: &str) -> (tokio::process::Child, ChaosProxy) {
    let s3 = &app.config.service.s3;
    let (proxy, endpoint) = ChaosProxy::in_front_of(s3.s3_endpoint.as_deref().unwrap()).await;
    proxy.stall();
    let child = tokio::process::Command::new(workspace_bin("worker"))
        .env("DATABASE_URL", app.database_url())
        .env("S3_ENDPOINT", endpoint)
        .env("S3_REGION", s3.s3_region.as_deref().unwrap())
        .env("S3_BUCKET", &s3.s3_bucket)
        .env("S3_FORCE_PATH_STYLE", "true")
        .env("S3_OPERATION_TIMEOUT", "1h")
        .env("LOG_FORMAT", "pretty")
        .env("WORKER_POLL_INTERVAL", "100ms")
        .env("WORKER_LEASE", lease)
        .env("WORKER_SHUTDOWN_GRACE", "1s")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn worker");
    (child, proxy)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_is_finished_by_another_once_its_lease_runs_out() {
    let app = TestApp::spawn().await;
    let data = random_bytes(100_000);
    let id = upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await;
    let (mut process, _stalled) = spawn_stuck_worker_process(&app, "4s").await;
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
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_job_at_hand_and_exits_0() {
    let app = TestApp::spawn().await;
    let data = random_bytes(10_000);
    let id = upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await;
    let (mut process, _stalled) = spawn_stuck_worker_process(&app, "1m").await;
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
    app.finish().await;
}

#[tokio::test]
async fn run_works_through_the_queue_until_shutdown() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let data = random_bytes(10_000);
        ids.push(upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker(&app, |_| {}).await.run(async move {
        let _ = stopped.await;
    }));

    for _ in 0..300 {
        if jobs(&app).await.iter().filter(|j| j.kind == "verify_object").all(|j| j.state == "done") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), running).await.expect("stops").unwrap();

    for id in ids {
        assert_eq!(app.status(id, false).await["verification"]["state"], "verified");
    }
    assert_nothing_left(&app).await;
    app.finish().await;
}
