//! `upl download` against `GET /v1/files/{id}` (issue 4's contract: Range, If-Match -> 412, ETag,
//! Content-Range). These need the downloads endpoint.

use std::process::Stdio;
use std::time::Duration;

use e2e::{TestApp, random_bytes};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{MIB, Scratch, json_out, run, text, upl};

/// Uploads `data` with `upl` (which declares the whole file's SHA-256); returns the id.
async fn upload(app: &TestApp, scratch: &Scratch, name: &str, data: &[u8]) -> Uuid {
    let file = scratch.write(name, data);
    let report = json_out(&run(upl(app, scratch, &["upload", file.to_str().unwrap(), "--json"])).await);
    std::fs::remove_file(file).unwrap();
    report["uploadId"].as_str().unwrap().parse().unwrap()
}

/// Starts a slowed-down download and SIGKILLs it once the `.part` file holds at least `bytes`.
async fn download_then_kill(app: &TestApp, scratch: &Scratch, id: Uuid, output: &str, bytes: u64) -> u64 {
    let mut command = upl(app, scratch, &["download", &id.to_string(), "-o", output]);
    command.env("UPL_TEST_CHUNK_DELAY_MS", "250").stdout(Stdio::null()).stderr(Stdio::null());
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
}

#[tokio::test]
async fn cli_resumes_a_download_cut_halfway() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(12 * MIB);
    let id = upload(&app, &scratch, "big.bin", &data).await;

    let kept = download_then_kill(&app, &scratch, id, "out.bin", 4 * MIB as u64).await;
    assert!(kept > 0 && kept < data.len() as u64, "cut halfway: {kept}");
    assert!(!scratch.path("out.bin").exists(), "no final file before the download is complete");

    let output = run(upl(&app, &scratch, &["download", &id.to_string(), "-o", "out.bin", "--json"])).await;
    let report = json_out(&output);
    assert_eq!(report["resumedFrom"], kept, "continued from the .part file");
    assert_eq!(report["verified"], true);
    assert!(std::fs::read(scratch.path("out.bin")).unwrap() == data);
    assert!(!scratch.path("out.bin.part").exists());
    println!("download resumed from byte {kept} of {}", data.len());
}

#[tokio::test]
async fn cli_download_starts_over_when_the_etag_no_longer_matches() {
    let app = TestApp::spawn().await;
    let scratch = Scratch::new();
    let data = random_bytes(12 * MIB);
    let id = upload(&app, &scratch, "changed.bin", &data).await;
    download_then_kill(&app, &scratch, id, "out.bin", 2 * MIB as u64).await;

    // As if the object had changed since the .part file was begun: the ETag the client saw is not the
    // current one, so If-Match fails (412) and the client must not append other bytes to its .part file.
    let state = std::fs::read_dir(scratch.path("state"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.file_name().unwrap().to_string_lossy().starts_with("download-"))
        .expect("a download state file");
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    saved["etag"] = json!("\"not-the-current-etag\"");
    std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();

    let output = run(upl(&app, &scratch, &["download", &id.to_string(), "-o", "out.bin", "--json"])).await;
    let report = json_out(&output);
    assert_eq!(report["restarted"], true, "{}", text(&output.stderr));
    assert_eq!(report["resumedFrom"], 0);
    assert_eq!(report["verified"], true);
    assert!(text(&output.stderr).contains("changed on the server"), "{}", text(&output.stderr));
    assert!(std::fs::read(scratch.path("out.bin")).unwrap() == data);
}
