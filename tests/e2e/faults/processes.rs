//! The api binary killed with SIGKILL (no shutdown, no flush), as the OOM killer or a lost node does it:
//! mid-upload under four `upl` clients, and between S3's CompleteMultipartUpload and the database update.

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{ChaosProxy, TestApp, TestEnv, random_bytes};
use reqwest::Method;
use tokio::io::{AsyncBufReadExt, BufReader};
use uploads::domain::UploadState;
use uuid::Uuid;
use worker::Worker;
use worker::config::JobSettings;

use super::load::{Client, Stats};
use crate::cli::{Scratch, json_out, upl};
use crate::downloads::process::ApiProcess;
use crate::lifecycle::{CHUNK, MIB};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What the `upl` clients said on stderr: which upload each started and which chunks it was told are in.
#[derive(Default)]
struct Said {
    upload: HashMap<usize, Uuid>,
    sent: HashMap<usize, BTreeSet<u32>>,
}

impl Said {
    fn sent_in_all(&self) -> usize {
        self.sent.values().map(BTreeSet::len).sum()
    }
}

/// Runs `upl upload` for client `n` against `server`, its verbose lines recorded in `said`; returns the
/// process's output once it ends.
async fn run_client(
    app: &TestApp,
    scratch: &Scratch,
    server: String,
    n: usize,
    said: Arc<Mutex<Said>>,
) -> std::process::Output {
    let file = scratch.path(&format!("file-{n}.bin"));
    let args = ["upload", file.to_str().unwrap(), "--parallel", "2", "--chunk-size", "5MiB", "--verbose", "--json"];
    let mut command = upl(app, scratch, &args);
    command.env("UPL_SERVER", server).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn upl");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let mut said = said.lock().unwrap();
        if let Some(id) = line.strip_prefix("upload ").and_then(|r| r.split_whitespace().next()?.parse().ok()) {
            said.upload.insert(n, id);
        }
        if let Some(index) = line.strip_prefix("chunk ").and_then(|r| r.strip_suffix(" sent")?.parse().ok()) {
            said.sent.entry(n).or_default().insert(index);
        }
        stderr.push_str(&line);
        stderr.push('\n');
    }
    let mut output = child.wait_with_output().await.unwrap();
    output.stderr = stderr.into_bytes();
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_killed_mid_upload_loses_no_confirmed_chunk_and_its_clients_resume_and_complete() {
    let env = TestEnv::from_env();
    let (s3, endpoint) = ChaosProxy::in_front_of(&env.s3_endpoint).await;
    let app = TestApp::spawn().await;
    let port = free_port();
    let api_env = [("S3_ENDPOINT", endpoint.as_str())];
    let mut api = ApiProcess::start(&app, port, "killed-mid-upload", &api_env, false).await;
    // Slow enough that the kill lands with every client mid-file: a 5 MiB chunk takes about a second.
    s3.throttle(5 * MIB as u64);
    let scratch = Scratch::new();
    let files: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(3 * CHUNK + 1000)).collect();
    for (n, data) in files.iter().enumerate() {
        scratch.write(&format!("file-{n}.bin"), data);
    }
    let said = Arc::new(Mutex::new(Said::default()));
    let clients: Vec<_> = (0..files.len())
        .map(|n| {
            let (app, scratch, server, said) = (&app, &scratch, api.base_url.clone(), said.clone());
            async move {
                let mut runs = vec![run_client(app, scratch, server.clone(), n, said.clone()).await];
                // A client that ran out of retries while the API was down is run again: it resumes.
                while !runs.last().unwrap().status.success() {
                    assert!(runs.len() < 5, "client {n} keeps failing: {}", crate::cli::text(&runs[0].stderr));
                    runs.push(run_client(app, scratch, server.clone(), n, said.clone()).await);
                }
                runs
            }
        })
        .collect();

    let fault = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while said.lock().unwrap().sent_in_all() < 4 {
            assert!(Instant::now() < deadline, "the clients confirmed fewer than 4 chunks in 2 minutes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        api.kill();
        let killed = Instant::now();
        let told: Vec<(Uuid, u32)> = {
            let said = said.lock().unwrap();
            said.sent.iter().flat_map(|(n, sent)| sent.iter().map(|i| (said.upload[n], *i))).collect()
        };
        let recorded: Vec<(Uuid, i32)> = sqlx::query_as("SELECT upload_id, index FROM chunks WHERE etag IS NOT NULL")
            .fetch_all(&app.pool)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        api = ApiProcess::start(&app, port, "killed-mid-upload", &api_env, true).await;
        s3.restore();
        (told, recorded, killed, killed.elapsed())
    };
    let (runs, (told, recorded, killed, down)) = tokio::join!(futures::future::join_all(clients), fault);
    let all_done = killed.elapsed();

    let lost: Vec<_> = told.iter().filter(|(id, i)| !recorded.contains(&(*id, *i as i32))).collect();
    assert!(lost.is_empty(), "chunks confirmed to a client but not recorded: {lost:?}");
    let interrupted = runs.iter().filter(|r| r.len() > 1).count();
    let mut identical = 0;
    for (n, (data, runs)) in files.iter().zip(&runs).enumerate() {
        let report = json_out(runs.last().unwrap());
        let id: Uuid = report["uploadId"].as_str().expect("uploadId").parse().unwrap();
        assert_eq!(Some(&id), said.lock().unwrap().upload.get(&n), "client {n} started over instead of resuming");
        assert!(app.object_bytes(id).await == *data, "client {n}'s object differs from its file");
        identical += 1;
    }
    eprintln!(
        "FIGURES api SIGKILL mid-upload: uploads interrupted {}, upl runs that failed and were resumed {interrupted}, \
         chunks confirmed before the kill {} (recorded {}), chunks lost {}, objects byte-identical {identical}/{}, \
         api down {down:?} (kill to healthy), kill to every upload completed {all_done:?}",
        files.len(),
        told.len(),
        recorded.len(),
        lost.len(),
        files.len()
    );
    drop(api);
    app.finish().await;
}

/// An upload with every chunk in, then `complete` sent to an api process whose S3 answers are held back;
/// the process is killed with SIGKILL once S3 holds the object, before the answer could reach it. Returns
/// the upload, its bytes and when the kill happened.
async fn killed_between_assembly_and_record(app: &TestApp, name: &str) -> (Uuid, Vec<u8>, Instant) {
    let env = TestEnv::from_env();
    let (s3, endpoint) = ChaosProxy::in_front_of(&env.s3_endpoint).await;
    let data = random_bytes(2 * CHUNK + 1000);
    let id = app.create_upload(data.len() as u64, Some(CHUNK as u64)).await;
    for (index, chunk) in data.chunks(CHUNK).enumerate() {
        app.upload_chunk(id, index as u32, chunk).await;
    }
    let api_env = [("S3_ENDPOINT", endpoint.as_str()), ("COMPLETION_LEASE", "3s")];
    let mut api = ApiProcess::start(app, free_port(), name, &api_env, false).await;

    // Every read through the proxy waits: S3 gets CompleteMultipartUpload, and its answer is held long enough
    // to see the object appear (straight from LocalStack) and kill the process before the answer arrives.
    s3.delay(Duration::from_secs(2));
    let complete = app.http.post(format!("{}/v1/uploads/{id}/complete", api.base_url)).send();
    let complete = tokio::spawn(complete);
    let deadline = Instant::now() + Duration::from_secs(90);
    let key = format!("uploads/{id}");
    while app.storage.client().head_object().bucket(app.storage.bucket()).key(&key).send().await.is_err() {
        assert!(Instant::now() < deadline, "S3 never assembled the object");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    api.kill();
    let killed = Instant::now();
    assert!(complete.await.unwrap().is_err(), "the killed process answered complete");
    let state: UploadState =
        sqlx::query_scalar("SELECT state FROM uploads WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap();
    assert_eq!(state, UploadState::Completing, "the kill did not land between S3's assembly and the update");
    (id, data, killed)
}

async fn state_of(app: &TestApp, id: Uuid) -> UploadState {
    sqlx::query_scalar("SELECT state FROM uploads WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_killed_after_s3_assembled_the_object_is_finished_by_the_next_complete() {
    let app = TestApp::spawn().await;
    let (id, data, killed) = killed_between_assembly_and_record(&app, "killed-in-complete").await;
    let stats = Stats::default();
    let client = Client::new(vec![app.base_url.clone()], app.http.clone(), app.plain.clone(), &stats);
    // The retry waits out the dead completion's lease (409 completion_in_progress), then takes it over.
    let (status, body) = client.call(Method::POST, &format!("/v1/uploads/{id}/complete"), None).await;
    let recovered = killed.elapsed();
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(body["state"], "completed");
    assert!(app.object_bytes(id).await == data);
    eprintln!(
        "FIGURES api SIGKILL between CompleteMultipartUpload and the update: uploads interrupted 1, chunks lost 0, \
         objects byte-identical 1/1, completed by the next complete {recovered:?} after the kill (lease 3 s, {} \
         retries)",
        stats.refusals.load(std::sync::atomic::Ordering::Relaxed)
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_killed_after_s3_assembled_the_object_is_finished_by_the_worker_within_the_lease() {
    let app = TestApp::spawn().await;
    let (id, data, killed) = killed_between_assembly_and_record(&app, "killed-in-complete-worker").await;
    let settings = JobSettings { lease: Duration::from_secs(5), backoff: Duration::from_secs(1), ..Default::default() };
    let worker = Worker::new(app.state.uploads.clone(), settings);
    let deadline = Instant::now() + Duration::from_secs(60);
    while state_of(&app, id).await != UploadState::Completed {
        assert!(Instant::now() < deadline, "the worker never finished the completion");
        // Never completed without the object, and never back to uploading once S3 may have assembled it.
        assert_eq!(state_of(&app, id).await, UploadState::Completing);
        worker.tick().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = killed.elapsed();
    assert!(app.object_bytes(id).await == data);
    eprintln!(
        "FIGURES api SIGKILL between CompleteMultipartUpload and the update: uploads interrupted 1, chunks lost 0, \
         objects byte-identical 1/1, completed by the worker {recovered:?} after the kill (lease 3 s)"
    );
    app.finish().await;
}
