//! Webhooks against real Postgres, LocalStack and a real HTTP receiver in the test process: every event
//! exactly once per id with a signature the Standard Webhooks reference library accepts, retries under the same
//! id, a receiver that is down or hangs never holds up an upload, and an event past its max age is dead.

mod receiver;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode as ReceiverStatus;
use e2e::{TestApp, random_bytes, sha256_hex};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use worker::Worker;
use worker::config::{JobSettings, WorkerConfig};

use receiver::{Answer, Received, Receiver};

/// The secret in the Standard Webhooks form (`whsec_` + base64 of 32 bytes), as a receiver configures it.
const SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWI=";

async fn app_posting_to(url: &str, tweak: impl FnOnce(&mut uploads::config::WebhookConfig)) -> TestApp {
    let url = url.to_string();
    TestApp::spawn_with(|config| {
        let webhooks = &mut config.service.webhooks;
        webhooks.webhook_url = Some(url);
        webhooks.webhook_secret = Some(SECRET.parse().unwrap());
        tweak(webhooks);
    })
    .await
}

/// A worker of `app`'s configuration that retries at once, so each tick is one more attempt.
async fn worker(app: &TestApp) -> Worker {
    let config = WorkerConfig {
        service: app.config.service.clone(),
        jobs: JobSettings { backoff: Duration::ZERO, lease: Duration::from_secs(10), ..JobSettings::default() },
        metrics_addr: None,
    };
    Worker::connect(&config).await.expect("worker")
}

/// Uploads `data` in one chunk, declaring `sha256`, and completes it (200).
async fn completed_upload(app: &TestApp, data: &[u8], sha256: Option<String>) -> Uuid {
    let body = json!({ "filename": "f.bin", "size": data.len(), "sha256": sha256 });
    let response = app.post_json("/v1/uploads", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["uploadId"].as_str().unwrap().parse().unwrap();
    app.upload_chunk(id, 0, data).await;
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    id
}

/// The object schema `name` of openapi.yaml holds `value`'s keys, required ones included, nothing more
/// (`additionalProperties: false`); `value[key]` for the keys whose schema is inline, recursively.
fn assert_documented(schema: &Value, value: &Value, context: &str) {
    let spec: Value = serde_norway::from_str(include_str!("../../openapi.yaml")).unwrap();
    let schema = match schema["$ref"].as_str() {
        Some(reference) => &spec["components"]["schemas"][reference.trim_start_matches("#/components/schemas/")],
        None => schema,
    };
    let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("{context}: no properties"));
    let object = value.as_object().unwrap_or_else(|| panic!("{context}: not an object: {value}"));
    for key in object.keys() {
        assert!(properties.contains_key(key), "{context}.{key} is not in openapi.yaml");
    }
    for required in schema["required"].as_array().unwrap() {
        assert!(object.contains_key(required.as_str().unwrap()), "{context}.{required} is missing");
    }
    for (key, property) in properties {
        if (property.get("properties").is_some() || property["$ref"] == "#/components/schemas/WebhookUpload")
            && let Some(nested) = object.get(key)
        {
            assert_documented(property, nested, &format!("{context}.{key}"));
        }
    }
}

#[test]
fn the_spec_documents_every_event_type() {
    let spec: Value = serde_norway::from_str(include_str!("../../openapi.yaml")).unwrap();
    let documented: BTreeSet<&str> = spec["webhooks"].as_object().unwrap().keys().map(String::as_str).collect();
    let types: Vec<&str> = uploads::domain::EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(documented, types.iter().copied().collect());
    assert_eq!(spec["components"]["schemas"]["WebhookEvent"]["properties"]["type"]["enum"], json!(types));
}

/// Checks the signature with the reference library, as a receiver would.
fn assert_signed(received: &Received) {
    let webhook = standardwebhooks::Webhook::new(SECRET).unwrap();
    webhook.verify(&received.body, &received.headers).unwrap_or_else(|e| panic!("{e}: {received:?}"));
    // And a tampered body does not pass, so the check above is not vacuous.
    let mut tampered = received.body.to_vec();
    tampered.push(b' ');
    assert!(webhook.verify(&tampered, &received.headers).is_err());
}

#[derive(Debug, sqlx::FromRow)]
struct Delivery {
    attempt: i32,
    status_code: Option<i32>,
    error: Option<String>,
}

async fn deliveries(app: &TestApp, event_id: &str) -> Vec<Delivery> {
    sqlx::query_as(
        "SELECT attempt, status_code, error FROM webhook_deliveries WHERE event_id = $1::uuid ORDER BY attempt",
    )
    .bind(event_id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// (event state, delivery job state) of every event, by type.
async fn events(app: &TestApp) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT e.type, e.state::text, j.state::text FROM webhook_events e \
         JOIN jobs j ON j.webhook_event_id = e.id ORDER BY e.created_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_event_reaches_the_receiver_once_with_a_valid_signature() {
    let receiver = Receiver::start([]).await;
    let app = app_posting_to(&receiver.url(), |_| {}).await;
    let data = random_bytes(4096);
    let good = completed_upload(&app, &data, Some(sha256_hex(&data))).await;
    let corrupt = completed_upload(&app, &data, Some(sha256_hex(b"other bytes"))).await;
    let aborted = app.create_upload(10, None).await;
    let response = app.http.delete(app.url(&format!("/v1/uploads/{aborted}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let expired = app.create_upload(10, None).await;
    app.lapse_deadline(expired).await;
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind = 'sweep'").execute(&app.pool).await.unwrap();

    let worker = worker(&app).await;
    worker.tick().await.unwrap();
    worker.tick().await.unwrap();

    let received = receiver.received();
    let mut seen: Vec<(String, Uuid, String)> = received
        .iter()
        .map(|r| {
            assert_signed(r);
            let body = r.json();
            assert_documented(&json!({ "$ref": "#/components/schemas/WebhookEvent" }), &body, "event");
            assert_eq!(body["id"], r.id(), "the body names the Webhook-Id");
            assert!(body["createdAt"].is_string());
            assert_eq!(body["upload"]["owner"], TestApp::OWNER);
            let upload = body["upload"]["uploadId"].as_str().unwrap().parse().unwrap();
            (body["type"].as_str().unwrap().to_string(), upload, body["upload"]["state"].as_str().unwrap().into())
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        ("upload.aborted".to_string(), aborted, "aborted".to_string()),
        ("upload.completed".into(), corrupt, "completed".into()),
        ("upload.completed".into(), good, "completed".into()),
        ("upload.corrupt".into(), corrupt, "completed".into()),
        ("upload.expired".into(), expired, "expired".into()),
        ("upload.verified".into(), good, "completed".into()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    let ids: BTreeSet<&str> = received.iter().map(Received::id).collect();
    assert_eq!(ids.len(), received.len(), "one id per event");
    let verified = received.iter().find(|r| r.json()["type"] == "upload.verified").unwrap().json();
    assert_eq!(verified["upload"]["verification"]["state"], "verified");
    assert_eq!(verified["upload"]["verification"]["sha256"], sha256_hex(&data));
    for r in &received {
        let log = deliveries(&app, r.id()).await;
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!((log[0].attempt, log[0].status_code, log[0].error.as_deref()), (1, Some(204), None));
    }
    assert!(events(&app).await.iter().all(|(_, event, job)| event == "delivered" && job == "done"));

    // Exactly once: more ticks send nothing more.
    worker.tick().await.unwrap();
    assert_eq!(receiver.received().len(), received.len());
    app.finish().await;
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_on_the_third_try_with_the_same_id() {
    let receiver = Receiver::start([
        Answer::Status(ReceiverStatus::INTERNAL_SERVER_ERROR),
        Answer::Status(ReceiverStatus::SERVICE_UNAVAILABLE),
    ])
    .await;
    let app = app_posting_to(&receiver.url(), |_| {}).await;
    // No declared digest: the verification computes one and reports nothing, so one event only.
    let id = completed_upload(&app, &random_bytes(1000), None).await;
    let worker = worker(&app).await;
    for _ in 0..3 {
        worker.tick().await.unwrap();
    }

    let received = receiver.received();
    assert_eq!(received.len(), 3, "{received:?}");
    for r in &received {
        assert_signed(r);
        assert_eq!(r.id(), received[0].id(), "the same id on every attempt");
        assert_eq!(r.body, received[0].body, "the same body on every attempt");
        assert_eq!(r.json()["upload"]["uploadId"], id.to_string());
    }
    let log = deliveries(&app, received[0].id()).await;
    let statuses: Vec<_> = log.iter().map(|d| (d.attempt, d.status_code)).collect();
    assert_eq!(statuses, [(1, Some(500)), (2, Some(503)), (3, Some(204))]);
    assert!(log[0].error.as_deref().unwrap().contains("500"), "{log:?}");
    assert!(log[2].error.is_none());
    assert_eq!(events(&app).await, [("upload.completed".into(), "delivered".into(), "done".into())]);
    worker.tick().await.unwrap();
    assert_eq!(receiver.received().len(), 3);

    // Past the job retention (7 days) the sweep forgets the delivered event, its attempts and its job.
    sqlx::query("UPDATE webhook_events SET finished_at = now() - interval '8 days'").execute(&app.pool).await.unwrap();
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind = 'sweep'").execute(&app.pool).await.unwrap();
    worker.tick().await.unwrap();
    assert_eq!(events(&app).await, []);
    assert!(deliveries(&app, received[0].id()).await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_does_not_block_uploads_and_gets_the_event_once_up() {
    // A port nothing listens on, until the receiver starts there.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let url = format!("http://{addr}/hooks");
    let app = app_posting_to(&url, |_| {}).await;
    let id = completed_upload(&app, &random_bytes(1000), None).await;
    assert_eq!(app.status(id, false).await["state"], "completed");

    let worker = worker(&app).await;
    worker.tick().await.unwrap();
    let (event_id,): (Uuid,) = sqlx::query_as("SELECT id FROM webhook_events").fetch_one(&app.pool).await.unwrap();
    let log = deliveries(&app, &event_id.to_string()).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status_code, None);
    let error = log[0].error.as_deref().unwrap();
    assert!(!error.contains(&addr.port().to_string()), "no URL in the log: {error}");
    assert_eq!(events(&app).await, [("upload.completed".into(), "pending".into(), "queued".into())]);

    let listener = tokio::net::TcpListener::bind(addr).await.expect("the reserved port is still free");
    let receiver = Receiver::start_on(listener, []);
    worker.tick().await.unwrap();
    worker.tick().await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].id(), event_id.to_string());
    assert_signed(&received[0]);
    assert_eq!(events(&app).await, [("upload.completed".into(), "delivered".into(), "done".into())]);
    app.finish().await;
}

#[tokio::test]
async fn a_receiver_that_hangs_is_an_attempt_that_timed_out() {
    let receiver = Receiver::start([Answer::Hang(Duration::from_secs(30))]).await;
    let app = app_posting_to(&receiver.url(), |w| w.webhook_timeout = Duration::from_millis(500)).await;
    completed_upload(&app, &random_bytes(1000), None).await;
    let worker = worker(&app).await;
    worker.tick().await.unwrap();
    worker.tick().await.unwrap();

    let received = receiver.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let log = deliveries(&app, received[0].id()).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].status_code, None);
    assert!(log[0].error.as_deref().unwrap().contains("WEBHOOK_TIMEOUT"), "{log:?}");
    assert_eq!(log[1].status_code, Some(204));
    app.finish().await;
}

#[tokio::test]
async fn an_event_undelivered_past_its_max_age_is_dead_and_tried_no_more() {
    let receiver = Receiver::start(vec![Answer::Status(ReceiverStatus::BAD_GATEWAY); 2]).await;
    let app = app_posting_to(&receiver.url(), |_| {}).await;
    completed_upload(&app, &random_bytes(1000), None).await;
    let worker = worker(&app).await;
    worker.tick().await.unwrap();
    assert_eq!(events(&app).await, [("upload.completed".into(), "pending".into(), "queued".into())]);

    // Older than WEBHOOK_MAX_AGE (3 days by default): the next failure is the last.
    sqlx::query("UPDATE webhook_events SET created_at = now() - interval '4 days'").execute(&app.pool).await.unwrap();
    worker.tick().await.unwrap();
    worker.tick().await.unwrap();
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(events(&app).await, [("upload.completed".into(), "dead".into(), "failed".into())]);
    let last_error: String = sqlx::query_scalar("SELECT last_error FROM jobs WHERE kind = 'deliver_webhook'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(last_error.starts_with("dead after 2 attempts"), "{last_error}");

    // A dead event stays for an operator, whatever the retention.
    sqlx::query("UPDATE webhook_events SET finished_at = now() - interval '30 days'").execute(&app.pool).await.unwrap();
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind = 'sweep'").execute(&app.pool).await.unwrap();
    worker.tick().await.unwrap();
    assert_eq!(events(&app).await, [("upload.completed".into(), "dead".into(), "failed".into())]);

    // The README's replay: the same id again, now delivered.
    let id = receiver.received()[0].id().to_string();
    sqlx::query(
        "UPDATE webhook_events SET state = 'pending', created_at = now(), finished_at = NULL WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE jobs SET state = 'queued', run_at = now(), attempts = 0 WHERE webhook_event_id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    worker.tick().await.unwrap();
    let received = receiver.received();
    assert_eq!((received.len(), received[2].id()), (3, id.as_str()));
    assert_eq!(events(&app).await, [("upload.completed".into(), "delivered".into(), "done".into())]);
    app.finish().await;
}

#[tokio::test]
async fn without_a_webhook_url_no_event_is_recorded() {
    let app = TestApp::spawn().await;
    let data = random_bytes(1000);
    completed_upload(&app, &data, Some(sha256_hex(&data))).await;
    let aborted = app.create_upload(10, None).await;
    app.http.delete(app.url(&format!("/v1/uploads/{aborted}"))).send().await.unwrap();
    let worker = worker(&app).await;
    worker.tick().await.unwrap();
    let verified: String = sqlx::query_scalar("SELECT verification_state::text FROM uploads WHERE state = 'completed'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(verified, "verified", "the transitions that would be reported did happen");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM webhook_events) + (SELECT count(*) FROM jobs WHERE kind = 'deliver_webhook')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 0);
    app.finish().await;
}

#[tokio::test]
async fn an_upload_lost_in_s3_is_reported_aborted() {
    let receiver = Receiver::start([]).await;
    let app = app_posting_to(&receiver.url(), |_| {}).await;
    let data = random_bytes(1000);
    let id = app.create_upload(data.len() as u64, None).await;
    app.upload_chunk(id, 0, &data).await;
    let upload = app.state.uploads.repository().find_upload(id).await.unwrap().unwrap();
    app.storage.abort_multipart_upload(&upload.object_key, upload.s3_upload_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(app.complete(id).await.status(), StatusCode::GONE);

    worker(&app).await.tick().await.unwrap();
    let received = receiver.received();
    let types: Vec<_> =
        received.iter().map(|r| (r.json()["type"].clone(), r.json()["upload"]["state"].clone())).collect();
    assert_eq!(types, [(json!("upload.aborted"), json!("aborted"))]);
    assert_signed(&received[0]);
    app.finish().await;
}

/// The real `worker` binary, configured by its environment as deployed (the secret from a file), delivers a
/// retried event, and its log carries neither the secret nor the URL's credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_process_delivers_and_logs_no_secret() {
    let receiver = Receiver::start([Answer::Status(ReceiverStatus::INTERNAL_SERVER_ERROR)]).await;
    let url = format!("{}?token=url-credential-42", receiver.url());
    let app = app_posting_to(&url, |_| {}).await;
    let secret_file = std::env::temp_dir().join(format!("webhook-secret-{}", Uuid::new_v4()));
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let id = completed_upload(&app, &random_bytes(1000), None).await;

    let s3 = &app.config.service.s3;
    // To a file: a debug log fills a pipe nobody reads yet, and the worker would block writing to it.
    let log_file = std::env::temp_dir().join(format!("webhook-worker-{}.log", Uuid::new_v4()));
    let log_out = std::fs::File::create(&log_file).unwrap();
    let mut process = tokio::process::Command::new(e2e::workspace_bin("worker"))
        .env("DATABASE_URL", app.database_url())
        .env("S3_ENDPOINT", s3.s3_endpoint.as_deref().unwrap())
        .env("S3_REGION", s3.s3_region.as_deref().unwrap())
        .env("S3_BUCKET", &s3.s3_bucket)
        .env("S3_FORCE_PATH_STYLE", "true")
        .env("WEBHOOK_URL", &url)
        .env("WEBHOOK_SECRET_FILE", &secret_file)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("WORKER_POLL_INTERVAL", "100ms")
        .env("WORKER_BACKOFF", "100ms")
        .stdin(std::process::Stdio::null())
        .stdout(log_out.try_clone().unwrap())
        .stderr(log_out)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn worker");
    for _ in 0..300 {
        if receiver.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let it record the second attempt, then stop it as on SIGTERM.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = process.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(process.wait().await.unwrap().success());
    std::fs::remove_file(&secret_file).unwrap();
    let log = std::fs::read_to_string(&log_file).unwrap();
    std::fs::remove_file(&log_file).unwrap();

    let received = receiver.received();
    assert_eq!(received.len(), 2, "{log}");
    assert_eq!(received[0].id(), received[1].id());
    received.iter().for_each(assert_signed);
    assert_eq!(received[1].json()["upload"]["uploadId"], id.to_string());
    assert_eq!(events(&app).await, [("upload.completed".into(), "delivered".into(), "done".into())]);
    assert!(log.contains("webhook delivered"), "{log}");
    for secret in [SECRET, SECRET.trim_start_matches("whsec_"), "url-credential-42"] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
    app.finish().await;
}
