//! Two api processes and two worker processes on one Postgres and one bucket, as behind a load balancer:
//! clients alternate processes request by request; completes sent to both at once reach S3 once; each job
//! runs once; one api process killed mid-run costs the clients only retries.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use e2e::{TestApp, TestEnv, random_bytes, workspace_bin};
use futures::future::join_all;
use reqwest::Method;
use uuid::Uuid;

use super::load::{Client, Stats, confirmed_at_least};
use super::processes::free_port;
use crate::cli::proxy::Proxy;
use crate::downloads::process::ApiProcess;
use crate::lifecycle::CHUNK;

/// The worker binary on the app's database and bucket; stopped with SIGTERM by [`stop`].
fn spawn_worker(app: &TestApp, name: &str) -> tokio::process::Child {
    let dir = std::env::var("TEST_OUTPUT_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}-worker.log"))).unwrap();
    let s3 = &app.config.service.s3;
    tokio::process::Command::new(workspace_bin("worker"))
        .env("DATABASE_URL", app.database_url())
        .env("S3_ENDPOINT", &app.env.s3_endpoint)
        .env("S3_BUCKET", &s3.s3_bucket)
        .env("S3_FORCE_PATH_STYLE", "true")
        .env("WORKER_POLL_INTERVAL", "100ms")
        .env("WORKER_LEASE", "5s")
        .env("WORKER_SHUTDOWN_GRACE", "2s")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn worker")
}

/// SIGTERM, as an orchestrator stops a replica: the worker finishes or releases what it holds, then exits.
async fn stop(mut worker: tokio::process::Child) {
    let pid = worker.id().expect("a running worker").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait()).await.expect("worker exits").unwrap();
    assert!(status.success(), "worker exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_two_workers_share_one_database_and_bucket_and_do_each_thing_once() {
    let env = TestEnv::from_env();
    // Records every S3 request the api processes make (and the clients' presigned PUTs).
    let s3 = Proxy::start(&env.s3_endpoint).await;
    let app = TestApp::spawn().await;
    let api_env = [("S3_ENDPOINT", s3.url.as_str()), ("COMPLETION_LEASE", "3s")];
    let a = ApiProcess::start(&app, free_port(), "replica-a", &api_env, false).await;
    let mut b = ApiProcess::start(&app, free_port(), "replica-b", &api_env, false).await;
    let workers = [spawn_worker(&app, "replica-a"), spawn_worker(&app, "replica-b")];
    let stats = Stats::default();
    let both = Client::new(vec![a.base_url.clone(), b.base_url.clone()], app.http.clone(), app.plain.clone(), &stats);

    // Completes sent to both processes at once: both answer the completed upload, S3 assembles it once.
    let mut raced = Vec::new();
    for _ in 0..3 {
        let data = random_bytes(2 * CHUNK + 1000);
        let id = app.create_upload(data.len() as u64, Some(CHUNK as u64)).await;
        for (index, chunk) in data.chunks(CHUNK).enumerate() {
            app.upload_chunk(id, index as u32, chunk).await;
        }
        raced.push((id, data));
    }
    let (only_a, only_b) = (
        Client::new(vec![a.base_url.clone()], app.http.clone(), app.plain.clone(), &stats),
        Client::new(vec![b.base_url.clone()], app.http.clone(), app.plain.clone(), &stats),
    );
    for (id, data) in &raced {
        let path = format!("/v1/uploads/{id}/complete");
        let (via_a, via_b) =
            tokio::join!(only_a.call(Method::POST, &path, None), only_b.call(Method::POST, &path, None));
        for (status, body) in [via_a, via_b] {
            assert!(status.is_success(), "{status} {body}");
            assert_eq!(body["state"], "completed");
        }
        assert!(app.object_bytes(*id).await == *data);
    }
    let assembled = s3.matching("POST", "uploadId=").len();
    assert_eq!(assembled, raced.len(), "CompleteMultipartUpload calls for {} uploads", raced.len());

    // Clients alternating between the processes; one of them is killed mid-run.
    let files: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(3 * CHUNK + 1000)).collect();
    let kill = async {
        let before = confirmed_at_least(&stats, 5).await;
        b.kill();
        (before, Instant::now())
    };
    let (ids, (before_kill, killed)): (Vec<Uuid>, _) =
        tokio::join!(join_all(files.iter().map(|file| both.upload(file, CHUNK))), kill);
    let all_done = killed.elapsed();
    let mut identical = 0;
    for (id, data) in ids.iter().zip(&files) {
        assert!(app.object_bytes(*id).await == *data, "upload {id} differs");
        identical += 1;
    }
    assert!(stats.connection_errors.load(Ordering::Relaxed) > 0, "no request met the killed process");

    // Each completion queued one verification; the two workers ran each exactly once.
    let completed: Vec<Uuid> = raced.iter().map(|(id, _)| *id).chain(ids.iter().copied()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let runs: Vec<(String, i32)> = sqlx::query_as(
            "SELECT state::text, attempts FROM jobs WHERE kind = 'verify_object' AND upload_id = ANY($1)",
        )
        .bind(&completed)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if runs.len() == completed.len() && runs.iter().all(|(state, _)| state == "done") {
            break runs;
        }
        assert!(Instant::now() < deadline, "verifications not done: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(runs.iter().all(|(_, attempts)| *attempts == 1), "a job ran more than once: {runs:?}");
    for id in &completed {
        let verification = &app.status(*id, false).await["verification"]["state"];
        assert!(verification == "computed", "upload {id}: verification {verification}");
    }
    eprintln!(
        "FIGURES replicas (2 api, 2 workers): uploads in flight when one api was killed {}, chunks confirmed \
         before the kill {before_kill}, chunks lost 0, objects byte-identical {identical}/{}, requests retried \
         {} (connections refused {}), kill to every upload completed {all_done:?}; concurrent completes of {} \
         uploads through both apis: {assembled} CompleteMultipartUpload; {} verifications, each run once",
        files.len(),
        files.len(),
        stats.refusals.load(Ordering::Relaxed) + stats.connection_errors.load(Ordering::Relaxed),
        stats.connection_errors.load(Ordering::Relaxed),
        raced.len(),
        runs.len(),
    );
    for worker in workers {
        stop(worker).await;
    }
    drop((a, b));
    app.finish().await;
}
