//! `upl download` against `GET /v1/files/{id}` (issue 4's contract: Range, If-Match -> 412, ETag,
//! Content-Range), by id and by link, into files and directories.

use std::process::Stdio;
use std::time::Duration;

use e2e::{TestApp, random_bytes};
use serde_json::{Value, json};
use uuid::Uuid;
use worker::Worker;
use worker::config::{JobSettings, WorkerConfig};

use super::proxy::{Fault, Proxy};
use super::{MIB, Scratch, json_out, run, state_files, text, upl};

/// Uploads `data` with `upl` (which declares the whole file's SHA-256); returns the id.
pub(crate) async fn upload(app: &TestApp, scratch: &Scratch, name: &str, data: &[u8]) -> Uuid {
    let file = scratch.write(name, data);
    let report = json_out(&run(upl(app, scratch, &["upload", file.to_str().unwrap(), "--json"])).await);
    std::fs::remove_file(file).unwrap();
    report["uploadId"].as_str().unwrap().parse().unwrap()
}

/// Runs the worker until it has hashed the object, so downloads carry `Repr-Digest`.
async fn verify_with_the_worker(app: &TestApp, id: Uuid) {
    let config = WorkerConfig { service: app.config.service.clone(), jobs: JobSettings::default() };
    let worker = Worker::connect(&config).await.expect("worker");
    for _ in 0..20 {
        worker.tick().await.unwrap();
        if app.status(id, false).await["verification"]["state"] == "verified" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker did not verify {id}: {}", app.status(id, false).await);
}

/// Starts a download through `proxy`, its body throttled to 4 MiB/s, and SIGKILLs it once the `.part` file
/// holds at least `bytes`. `source` is the id or a link.
async fn download_then_kill(
    app: &TestApp,
    proxy: &Proxy,
    scratch: &Scratch,
    source: &str,
    output: &str,
    bytes: u64,
) -> u64 {
    proxy.fault("GET", "/v1/files/", 1, Fault::Throttle(4 * MIB as u64));
    let mut command = upl(app, scratch, &["download", source, "-o", output]);
    command.env("UPL_SERVER", &proxy.url).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn upl");
    let part = scratch.path(&format!("{output}.part"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let len = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if len >= bytes {
            child.start_kill().unwrap();
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "upl download ended before it was cut");
        assert!(tokio::time::Instant::now() < deadline, "the download did not progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.wait().await.unwrap();
    std::fs::metadata(&part).unwrap().len()
}

#[tokio::test]
async fn cli_downloads_byte_identical_and_verified() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(10 * MIB + 3);
    let id = upload(&app, &scratch, "movie.bin", &data).await;

    let report = json_out(&run(upl(&app, &scratch, &["download", &id.to_string(), "--json"])).await);
    assert_eq!(report["verified"], true, "the declared SHA-256 was checked");
    assert_eq!(report["resumedFrom"], 0);
    // Without -o: the uploaded file's name, in the current directory.
    assert!(std::fs::read(scratch.path("movie.bin")).unwrap() == data);
    assert!(!scratch.path("movie.bin.part").exists());
    app.finish().await;
}

#[tokio::test]
async fn cli_resumes_a_download_cut_halfway() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(12 * MIB);
    let id = upload(&app, &scratch, "big.bin", &data).await;

    let proxy = Proxy::start(&app.base_url).await;
    let kept = download_then_kill(&app, &proxy, &scratch, &id.to_string(), "out.bin", 4 * MIB as u64).await;
    assert!(kept > 0 && kept < data.len() as u64, "cut halfway: {kept}");
    assert!(!scratch.path("out.bin").exists(), "no final file before the download is complete");

    let mut command = upl(&app, &scratch, &["download", &id.to_string(), "-o", "out.bin", "--json"]);
    command.env("UPL_SERVER", &proxy.url);
    let output = run(command).await;
    let report = json_out(&output);
    let resumed = proxy.matching("GET", "/v1/files/").pop().unwrap();
    assert_eq!(resumed.header("range"), Some(format!("bytes={kept}-").as_str()));
    assert!(resumed.header("if-match").is_some_and(|etag| etag.starts_with('"')), "{resumed:?}");
    assert_eq!(report["resumedFrom"], kept, "continued from the .part file");
    assert_eq!(report["verified"], true);
    assert!(std::fs::read(scratch.path("out.bin")).unwrap() == data);
    assert!(!scratch.path("out.bin.part").exists());
    println!("download resumed from byte {kept} of {}", data.len());
    app.finish().await;
}

#[tokio::test]
async fn cli_download_starts_over_when_the_etag_no_longer_matches() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(12 * MIB);
    let id = upload(&app, &scratch, "changed.bin", &data).await;
    let proxy = Proxy::start(&app.base_url).await;
    download_then_kill(&app, &proxy, &scratch, &id.to_string(), "out.bin", 2 * MIB as u64).await;

    // As if the object had changed since the .part file was begun: the ETag the client saw is not the
    // current one, so If-Match fails (412) and the client must not append other bytes to its .part file.
    let state = std::fs::read_dir(scratch.path("state"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.file_name().unwrap().to_string_lossy().starts_with("download-"))
        .expect("a download state file");
    assert_eq!(state_files(&scratch, "download").len(), 1);
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    saved["etag"] = json!("\"not-the-current-etag\"");
    std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();

    let mut command = upl(&app, &scratch, &["download", &id.to_string(), "-o", "out.bin", "--json"]);
    command.env("UPL_SERVER", &proxy.url);
    let output = run(command).await;
    let report = json_out(&output);
    assert_eq!(report["restarted"], true, "{}", text(&output.stderr));
    assert_eq!(report["resumedFrom"], 0);
    assert_eq!(report["verified"], true);
    assert!(text(&output.stderr).contains("changed on the server"), "{}", text(&output.stderr));
    assert!(std::fs::read(scratch.path("out.bin")).unwrap() == data);
    app.finish().await;
}

#[tokio::test]
async fn cli_downloads_into_a_directory_and_never_over_an_existing_file() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(MIB + 7);
    let id = upload(&app, &scratch, "report.pdf", &data).await;
    std::fs::create_dir(scratch.path("inbox")).unwrap();

    let report = json_out(&run(upl(&app, &scratch, &["download", &id.to_string(), "-o", "inbox", "--json"])).await);
    assert_eq!(report["path"], "inbox/report.pdf", "a directory gets the uploaded name inside it");
    assert!(std::fs::read(scratch.path("inbox/report.pdf")).unwrap() == data);

    // Again: the file is there, so it is kept and nothing is fetched.
    std::fs::write(scratch.path("inbox/report.pdf"), b"mine").unwrap();
    let output = run(upl(&app, &scratch, &["download", &id.to_string(), "-o", "inbox"])).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("exists; pass --force"), "{}", text(&output.stderr));
    assert_eq!(std::fs::read(scratch.path("inbox/report.pdf")).unwrap(), b"mine");
    let output = run(upl(&app, &scratch, &["download", &id.to_string(), "-o", "inbox/report.pdf", "--json"])).await;
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["error"]["code"], "output_exists");

    let output = run(upl(&app, &scratch, &["download", &id.to_string(), "-o", "inbox", "--force"])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(std::fs::read(scratch.path("inbox/report.pdf")).unwrap() == data, "--force overwrites");
    app.finish().await;
}

#[tokio::test]
async fn cli_downloads_by_link_keeping_its_query_and_resumes() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(12 * MIB);
    let id = upload(&app, &scratch, "linked film.bin", &data).await;
    verify_with_the_worker(&app, id).await;
    // The signed link a completed upload prints, through the proxy, so every request can be seen.
    let proxy = Proxy::start(&app.base_url).await;
    let signed = app.status(id, false).await["downloadUrl"].as_str().unwrap().to_string();
    let target = signed.strip_prefix(&app.base_url).unwrap().to_string();
    assert!(target.contains("&sig="), "{signed}");
    let link = format!("{}{target}", proxy.url);

    let kept = download_then_kill(&app, &proxy, &scratch, &link, "copy.bin", 3 * MIB as u64).await;
    let mut command = upl(&app, &scratch, &["download", &link, "-o", "copy.bin", "--json"]);
    command.env("UPL_SERVER", &proxy.url);
    let report = json_out(&run(command).await);
    assert_eq!(report["uploadId"], id.to_string());
    assert_eq!(report["resumedFrom"], kept);
    assert_eq!(report["verified"], true, "checked against the Repr-Digest the link answered with");
    assert!(std::fs::read(scratch.path("copy.bin")).unwrap() == data);

    let requests = proxy.requests();
    assert!(requests.iter().all(|r| r.target == target), "{requests:?}");
    let last = requests.last().unwrap();
    assert_eq!((last.method.as_str(), last.header("range")), ("GET", Some(format!("bytes={kept}-").as_str())));
    assert!(last.header("if-match").is_some());
    assert!(requests.iter().all(|r| r.header("authorization").is_none()), "a signed link needs no token");

    // Without -o, the name comes from the link's Content-Disposition.
    let mut command = upl(&app, &scratch, &["download", &link]);
    command.env("UPL_SERVER", &proxy.url);
    let output = run(command).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(std::fs::read(scratch.path("linked film.bin")).unwrap() == data);

    // An unsigned link on --server is fetched with the token, its query kept.
    let unsigned = format!("{}/v1/files/{id}?disposition=attachment", proxy.url);
    let mut command = upl(&app, &scratch, &["download", &unsigned, "-o", "again.bin", "--token", &app.token]);
    command.env("UPL_SERVER", &proxy.url).env_remove("UPL_TOKEN");
    let output = run(command).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let last = proxy.requests().last().cloned().unwrap();
    assert_eq!(last.target, format!("/v1/files/{id}?disposition=attachment"));
    assert_eq!(last.header("authorization"), Some(format!("Bearer {}", app.token).as_str()));
    app.finish().await;
}

#[tokio::test]
async fn cli_download_of_an_unfinished_upload_is_refused_with_exit_4() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let id = app.create_upload(10, None).await;

    let output = run(upl(&app, &scratch, &["download", &id.to_string()])).await;
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("not completed (it is uploading)"), "{}", text(&output.stderr));

    let link = app.url(&format!("/v1/files/{id}"));
    let output = run(upl(&app, &scratch, &["download", &link, "--json"])).await;
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["error"]["code"], "upload_not_completed");
    assert_eq!(error["error"]["exitCode"], 4);

    let output = run(upl(&app, &scratch, &["download", "not-a-link"])).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(state_files(&scratch, "download").is_empty());
    app.finish().await;
}
