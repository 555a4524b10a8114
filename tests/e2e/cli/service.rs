//! What `upl` sends the service and how it takes the answers: the bearer token (to the service only, never
//! printed), the idempotency key of a create (kept across retries and runs), 401, and a completion in progress.

use std::process::Stdio;
use std::time::Duration;

use e2e::{TestApp, random_bytes};
use serde_json::{Value, json};
use uuid::Uuid;

use super::proxy::{Fault, Proxy};
use super::{MIB, Scratch, UPLOAD_PART, json_out, run, spawn_behind_s3_proxy, state_files, text, upl};

#[tokio::test]
async fn cli_sends_the_token_to_every_service_call_never_to_s3_and_never_prints_it() {
    let (app, s3) = spawn_behind_s3_proxy(|_| {}).await;
    let service = Proxy::start(&app.base_url).await;
    let token = app.token.as_str();
    let scratch = Scratch::new();
    let data = random_bytes(10 * MIB + 1);
    let file = scratch.write("private.bin", &data);
    // From a file, with the newline an editor or `echo` leaves.
    let token_file = scratch.write("token", format!("  {token}\n").as_bytes());

    let mut command = upl(&app, &scratch, &["upload", file.to_str().unwrap(), "--chunk-size", "5MiB", "--verbose"]);
    command.env("UPL_SERVER", &service.url).env_remove("UPL_TOKEN").env("UPL_TOKEN_FILE", &token_file);
    let output = run(command).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let id: Uuid = text(&output.stdout).split_whitespace().next().unwrap().parse().unwrap();
    let mut command = upl(&app, &scratch, &["download", &id.to_string(), "-o", "copy.bin", "--verbose"]);
    command.env("UPL_SERVER", &service.url).env("UPL_TOKEN", token);
    let download = run(command).await;
    assert!(download.status.success(), "{}", text(&download.stderr));
    assert!(std::fs::read(scratch.path("copy.bin")).unwrap() == data);

    let calls = service.requests();
    assert!(calls.len() >= 8, "create, urls, 3 confirms, complete, status, download: {calls:?}");
    for call in &calls {
        assert_eq!(call.header("authorization"), Some(format!("Bearer {token}").as_str()), "{call:?}");
    }
    let puts = s3.matching("PUT", UPLOAD_PART);
    assert_eq!(puts.len(), 3);
    assert!(s3.requests().iter().all(|r| !r.headers.iter().any(|(_, v)| v.contains(token))), "the token went to S3");

    // Neither a verbose run, nor an error, nor --help shows it.
    let mut failing = upl(&app, &scratch, &["status", &Uuid::new_v4().to_string(), "--verbose", "--json"]);
    failing.env("UPL_TOKEN", token);
    let failed = run(failing).await;
    assert_eq!(failed.status.code(), Some(4));
    let mut help = upl(&app, &scratch, &["--help"]);
    help.env("UPL_TOKEN", token);
    let help = run(help).await;
    assert!(text(&help.stdout).contains("UPL_TOKEN"), "the variable is documented");
    for output in [&output, &download, &failed, &help] {
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(!all.contains(token), "the token was printed: {all}");
    }
    app.finish().await;
}

#[tokio::test]
async fn cli_reads_tokens_from_a_file_and_says_how_to_pass_one_on_401() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let id = Uuid::new_v4().to_string();

    let mut command = upl(&app, &scratch, &["status", &id]);
    command.env_remove("UPL_TOKEN").env("UPL_TOKEN_FILE", scratch.path("no-such-token"));
    let output = run(command).await;
    assert_eq!(output.status.code(), Some(2), "a missing token file is bad usage: {}", text(&output.stderr));
    assert!(text(&output.stderr).contains("cannot read the token file"), "{}", text(&output.stderr));

    // No token at all: the service answers 401, which is not retried and says how to pass one.
    let service = Proxy::start(&app.base_url).await;
    let mut command = upl(&app, &scratch, &["status", &id]);
    command.env("UPL_SERVER", &service.url).env_remove("UPL_TOKEN");
    let output = run(command).await;
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--token") && stderr.contains("UPL_TOKEN_FILE") && stderr.contains(".dev/token"),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "a 401 is not retried: {stderr}");
    assert_eq!(service.requests().len(), 1, "a 401 is not retried");

    let mut command = upl(&app, &scratch, &["status", &id, "--json"]);
    command.env("UPL_SERVER", &service.url).env_remove("UPL_TOKEN");
    let output = run(command).await;
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["error"]["code"], "token_missing");
    assert_eq!(error["error"]["exitCode"], 4);
    app.finish().await;
}

#[tokio::test]
async fn cli_retries_a_create_with_the_same_idempotency_key_even_across_runs() {
    let app = TestApp::spawn().await;
    let service = Proxy::start(&app.base_url).await;
    let scratch = Scratch::new();
    let data = random_bytes(MIB);
    let file = scratch.write("once.bin", &data);

    // Within a run: the first answer is lost, the retry carries the same key.
    service.fault("POST", "/v1/uploads", 1, Fault::LoseAnswer);
    let mut command = upl(&app, &scratch, &["upload", file.to_str().unwrap(), "--json"]);
    command.env("UPL_SERVER", &service.url);
    let report = json_out(&run(command).await);
    let creates = service.matching("POST", "/v1/uploads");
    let creates: Vec<_> = creates.iter().filter(|r| r.target == "/v1/uploads").collect();
    assert_eq!(creates.len(), 2, "{creates:?}");
    let key = creates[0].header("idempotency-key").expect("an Idempotency-Key");
    assert!(key.parse::<Uuid>().is_ok(), "{key}");
    assert_eq!(creates[1].header("idempotency-key"), Some(key), "the retry reuses the key");
    assert!(report["uploadId"].is_string());

    // Across runs: the answer never arrives and upl gives up; the key is already on disk, and the next run
    // asks with it again.
    let other = scratch.write("twice.bin", &data);
    service.fault("POST", "/v1/uploads", usize::MAX, Fault::LoseAnswer);
    let mut command = upl(&app, &scratch, &["upload", other.to_str().unwrap(), "--retries", "0"]);
    command.env("UPL_SERVER", &service.url).stderr(Stdio::piped());
    let output = run(command).await;
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    let saved = state_files(&scratch, "upload");
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(saved[0]["uploadId"], Value::Null, "no answer, no id");
    let saved_key = saved[0]["idempotencyKey"].as_str().unwrap().to_string();
    let lost = service.matching("POST", "/v1/uploads").pop().unwrap();
    assert_eq!(lost.target, "/v1/uploads");
    assert_eq!(lost.header("idempotency-key"), Some(saved_key.as_str()), "saved before it was sent");

    service.clear_faults();
    let mut command = upl(&app, &scratch, &["upload", other.to_str().unwrap(), "--json"]);
    command.env("UPL_SERVER", &service.url);
    let output = run(command).await;
    json_out(&output);
    assert!(text(&output.stderr).contains("same key"), "{}", text(&output.stderr));
    let creates = service.matching("POST", "/v1/uploads");
    let again = creates.iter().rfind(|r| r.target == "/v1/uploads").unwrap();
    assert_eq!(again.header("idempotency-key"), Some(saved_key.as_str()), "the next run reuses the key");
    assert!(state_files(&scratch, "upload").is_empty());
    app.finish().await;
}

#[tokio::test]
async fn cli_waits_out_a_completion_in_progress() {
    let app = TestApp::spawn().await;
    let service = Proxy::start(&app.base_url).await;
    let scratch = Scratch::new();
    let data = random_bytes(MIB + 3);
    let file = scratch.write("busy.bin", &data);
    // As the service answers while another `complete` of the same upload is still assembling it.
    let busy = Fault::Answer {
        status: 409,
        headers: vec![("retry-after", "2".into())],
        body: json!({"code": "completion_in_progress", "message": "another completion is in progress"}).to_string(),
    };
    service.fault("POST", "/complete", 1, busy);

    let mut command = upl(&app, &scratch, &["upload", file.to_str().unwrap(), "--json"]);
    command.env("UPL_SERVER", &service.url);
    let output = run(command).await;
    let report = json_out(&output);
    assert!(text(&output.stderr).contains("retrying"), "{}", text(&output.stderr));
    let completes = service.matching("POST", "/complete");
    assert_eq!(completes.len(), 2);
    let waited = completes[1].at - completes[0].at;
    assert!(waited >= Duration::from_secs(2), "Retry-After: 2 was honoured; waited {waited:?}");
    let id: Uuid = report["uploadId"].as_str().unwrap().parse().unwrap();
    assert!(app.object_bytes(id).await == data);
    app.finish().await;
}
