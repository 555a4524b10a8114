//! The real `@uppy/core` + `@uppy/aws-s3` (pinned in tests/browser/package.json) in headless Chromium, with
//! the endpoint `POST /v1/uppy-endpoints` hands out: the page runs on an origin of its own, so every call is
//! cross-origin as in an app, and no request is intercepted (tests/browser/uppy-upload.mjs says why).

use std::path::{Path, PathBuf};

use api::config::Origins;
use e2e::{TestApp, random_bytes};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::{MIB, endpoint_for};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scratch_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

async fn download(app: &TestApp, id: Uuid) -> Vec<u8> {
    let response = app.get(&format!("/v1/files/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn uppy_uploads_both_ways_and_resumes_after_a_reload_with_only_the_missing_parts() {
    let page_port = free_port();
    let page = format!("http://127.0.0.1:{page_port}");
    let app = TestApp::spawn_with(|c| c.http.cors_allowed_origins = Origins(vec![page])).await;
    let endpoint = endpoint_for(&app, TestApp::OWNER).await;
    let dir = std::env::temp_dir().join(format!("upl-uppy-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // A space and a plus in both names: the keys come back form-encoded.
    let small = random_bytes(1000);
    let big = random_bytes(3 * 5 * MIB + 12_345); // 4 parts of Uppy's 5 MiB
    let small_path = scratch_file(&dir, "small file+1.txt", &small);
    let big_path = scratch_file(&dir, "big file+1.bin", &big);

    let args = vec![
        endpoint.clone(),
        app.env.s3_endpoint.clone(),
        small_path.display().to_string(),
        big_path.display().to_string(),
        "2".into(), // pause once part 2 is in S3, reload, resume
    ];
    let env = vec![("UPPY_PAGE_PORT".to_string(), page_port.to_string())];
    let result = crate::web::node_with_env("uppy-upload.mjs", args, env).await;

    // The small file: Uppy's default path, a form POST under our policy; the service finds the object.
    let post = &result["post"];
    assert_eq!(post["routes"], serde_json::json!({ "params": 1 }), "{post}");
    assert_eq!(post["s3Posts"], 1);
    let key = post["key"].as_str().unwrap();
    let id = uploads::service::upload_id_of_key(key).expect("the key Uppy reports ends in the upload id");
    assert_eq!(key, format!("uploads/small file+1.txt-{id}"));
    let status = app.status(id, false).await;
    assert_eq!((status["state"].as_str(), status["size"].as_u64()), (Some("completed"), Some(1000)), "{status}");
    assert_eq!(status["contentType"], "text/plain");
    assert!(download(&app, id).await == small, "the small file downloads byte-identical");

    // The large one: multipart, paused after part 2, the page reloaded; Golden Retriever restores it, and
    // Uppy lists the parts and sends only parts 3 and 4.
    let multipart = &result["multipart"];
    let before = &multipart["beforeReload"];
    let after = &multipart["afterReload"];
    assert_eq!(before["s3Puts"], 2, "{before}");
    assert_eq!(after["routes"]["listParts"], 1, "{after}");
    assert_eq!(after["routes"]["create"], Value::Null, "the reload resumed, it did not start again: {after}");
    assert_eq!(after["s3Puts"], 2, "only the missing parts are sent after the reload: {after}");
    assert_eq!(multipart["partsAfterReload"], serde_json::json!([3, 4]), "{multipart}");
    let id: Uuid = multipart["uploadId"].as_str().unwrap().parse().unwrap();
    assert_eq!(multipart["key"], format!("uploads/big file+1.bin-{id}"));
    let location = multipart["location"].as_str().unwrap();
    assert!(location.starts_with(&app.url(&format!("/v1/files/{id}?"))), "Uppy's uploadURL is our link: {location}");
    let linked = app.plain.get(location).send().await.unwrap();
    assert_eq!(linked.status(), StatusCode::OK);
    assert!(linked.bytes().await.unwrap() == big, "the large file downloads byte-identical through its link");
    let status = app.status(id, false).await;
    assert_eq!((status["size"].as_u64(), status["totalChunks"].as_u64()), (Some(big.len() as u64), Some(4)));
    let _ = std::fs::remove_dir_all(&dir);
    app.finish().await;
}
