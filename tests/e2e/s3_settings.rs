//! The S3 settings a deployment outside LocalStack needs: presigned URLs for the address clients reach
//! (`S3_PUBLIC_ENDPOINT`), services sharing a bucket under their own `S3_KEY_PREFIX`, and encryption and storage
//! class on every new object, as S3 (LocalStack) reports them back.

use std::time::Duration;

use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use e2e::{TestApp, random_bytes, workspace_bin};
use reqwest::StatusCode;
use uploads::config::Sse;
use uploads::storage::{PartToPresign, Storage};
use worker::Worker;
use worker::config::{JobSettings, WorkerConfig};

const MIB: usize = 1024 * 1024;

/// The same LocalStack under its other name: `127.0.0.1` <-> `localhost`.
fn other_name_of(endpoint: &str) -> String {
    let mut url = reqwest::Url::parse(endpoint).expect("TEST_S3_ENDPOINT is a URL");
    let other = match url.host_str() {
        Some("127.0.0.1") => "localhost",
        Some("localhost") => "127.0.0.1",
        host => panic!("TEST_S3_ENDPOINT's host {host:?} has no second name known to this test"),
    };
    url.set_host(Some(other)).unwrap();
    url.as_str().trim_end_matches('/').to_string()
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url).unwrap().host_str().unwrap().to_string()
}

#[tokio::test]
async fn presigned_urls_are_signed_for_the_public_endpoint_and_work_there() {
    let env_endpoint = e2e::TestEnv::from_env().s3_endpoint;
    let public = other_name_of(&env_endpoint);
    let app = TestApp::spawn_with(|c| c.service.s3.s3_public_endpoint = Some(public.clone())).await;
    let data = random_bytes(5 * MIB + 100);
    let id = app.create_upload(data.len() as u64, Some(5 * MIB as u64)).await;

    for (index, chunk) in data.chunks(5 * MIB).enumerate() {
        let url = app.chunk_url(id, index as u32, chunk).await;
        assert_eq!(host_of(&url.url), host_of(&public), "{}", url.url);
        assert_ne!(host_of(&url.url), host_of(&env_endpoint));
        // S3 checks the signature against the Host the client sent: the public name, not the service's.
        let put = app.put_to_s3(&url, chunk.to_vec()).await;
        assert_eq!(put.status(), StatusCode::OK, "{}", put.text().await.unwrap_or_default());
        let etag = put.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(app.confirm_chunk(id, index as u32, &etag, chunk).await.status(), StatusCode::OK);
    }
    // The service's own calls (ListParts, Complete) still go to S3_ENDPOINT.
    assert_eq!(app.status(id, true).await["missingChunks"], serde_json::json!([]));
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);

    let response = app.unfollowed(reqwest::Method::GET, &format!("/v1/files/{id}?redirect=true")).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(host_of(&location), host_of(&public), "{location}");
    let direct = app.plain.get(&location).send().await.unwrap();
    assert_eq!(direct.status(), StatusCode::OK);
    assert_eq!(direct.bytes().await.unwrap(), data);
    assert_eq!(app.state.uploads.storage().presigned_origin().unwrap(), public);
    app.finish().await;
}

fn sweeper_config(app: &TestApp, upload_ttl: Duration) -> WorkerConfig {
    let mut service = app.config.service.clone();
    service.policy.upload_ttl = upload_ttl;
    WorkerConfig {
        service,
        jobs: JobSettings { poll_interval: Duration::from_millis(100), ..JobSettings::default() },
        metrics_addr: None,
    }
}

#[tokio::test]
async fn services_with_their_own_prefix_share_a_bucket_without_touching_each_other() {
    let a = TestApp::spawn().await;
    let bucket = a.config.service.s3.s3_bucket.clone();
    let b = TestApp::spawn_with(|c| {
        c.service.s3.s3_bucket = bucket.clone();
        c.service.s3.s3_key_prefix = "team-b/uploads/".into();
    })
    .await;
    let data = random_bytes(5 * MIB + 10);
    let mut open = Vec::new();
    for app in [&a, &b] {
        let file = app.upload_file(&data[..1000], 5 * MIB as u64).await;
        let unfinished = app.create_upload(data.len() as u64, Some(5 * MIB as u64)).await;
        app.upload_chunk(unfinished, 0, &data[..5 * MIB]).await;
        let row = app.state.uploads.repository().find_upload(unfinished).await.unwrap().unwrap();
        assert!(row.object_key.starts_with(&app.config.service.s3.s3_key_prefix), "{}", row.object_key);
        open.push((file, unfinished));
    }
    // An orphan under each prefix, which only that prefix's sweep may abort.
    let orphan_a = a.storage.create_multipart_upload("uploads/orphan", "text/plain").await.unwrap();
    let orphan_b = a.storage.create_multipart_upload("team-b/uploads/orphan", "text/plain").await.unwrap();
    // Everything is older than the sweepers' UPLOAD_TTL (1 s); S3 reports initiation times to the second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut before = a.s3_multipart_uploads().await;
    before.sort();
    assert_eq!(before.len(), 4, "{before:?}");

    let sweep_a = Worker::connect(&sweeper_config(&a, Duration::from_secs(1))).await.unwrap();
    sweep_a.tick().await.unwrap();
    let left = a.s3_multipart_uploads().await;
    assert!(!left.contains(&orphan_a), "A's sweep left its own orphan");
    assert!(left.contains(&orphan_b), "A's sweep aborted a multipart upload under B's prefix");
    assert_eq!(left.len(), 3, "A's sweep aborted a live upload: {left:?}");

    let sweep_b = Worker::connect(&sweeper_config(&b, Duration::from_secs(1))).await.unwrap();
    sweep_b.tick().await.unwrap();
    let left = a.s3_multipart_uploads().await;
    assert!(!left.contains(&orphan_b), "B's sweep left its own orphan");
    assert_eq!(left.len(), 2, "a sweep aborted the other service's live upload: {left:?}");

    for (app, (file, unfinished)) in [(&a, open[0]), (&b, open[1])] {
        assert_eq!(app.status(unfinished, true).await["receivedChunks"], serde_json::json!([[0, 0]]));
        let download = app.get(&format!("/v1/files/{file}")).await;
        assert_eq!(download.status(), StatusCode::OK);
        assert_eq!(download.bytes().await.unwrap(), data[..1000]);
    }
    let keys = a.storage.client().list_objects_v2().bucket(&bucket).send().await.unwrap();
    let mut keys: Vec<&str> = keys.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort();
    assert_eq!(keys, [format!("team-b/uploads/{}", open[1].0), format!("uploads/{}", open[0].0)]);
    // B first: the bucket is A's, and goes with A.
    b.finish().await;
    a.finish().await;
}

#[tokio::test]
async fn new_objects_are_encrypted_and_stored_in_the_class_configured() {
    let app = TestApp::spawn_with(|c| {
        c.service.s3.s3_sse = Some(Sse::Aes256);
        c.service.s3.s3_storage_class = Some("STANDARD_IA".into());
    })
    .await;
    let data = random_bytes(5 * MIB + 10);
    let multipart = app.upload_file(&data, 5 * MIB as u64).await;
    let empty = app.upload_file(&[], 5 * MIB as u64).await;
    for id in [multipart, empty] {
        let head = app.storage.client().head_object().bucket(app.storage.bucket()).key(format!("uploads/{id}"));
        let head = head.send().await.unwrap();
        assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{id}");
        assert_eq!(head.storage_class(), Some(&StorageClass::StandardIa), "{id}");
    }
    assert_eq!(app.object_bytes(multipart).await, data);
    app.finish().await;
}

#[tokio::test]
async fn without_settings_new_objects_are_plain_standard() {
    let app = TestApp::spawn().await;
    let id = app.upload_file(&random_bytes(100), 5 * MIB as u64).await;
    let head = app.storage.client().head_object().bucket(app.storage.bucket()).key(format!("uploads/{id}"));
    let head = head.send().await.unwrap();
    // S3 leaves the header out for STANDARD; the control that makes the test above able to fail.
    assert_ne!(head.storage_class(), Some(&StorageClass::StandardIa));
    app.finish().await;
}

/// The region in a presigned URL's credential scope (`.../20261202/us-east-1/s3/aws4_request`).
async fn signed_region(config: &uploads::config::S3Config) -> String {
    let storage = Storage::connect(config).await.expect("storage");
    let sha256 = uploads::domain::Sha256Digest::of(b"x");
    let part = PartToPresign { part_number: 1, length: 1, sha256: &sha256 };
    let url = storage.presign_upload_part("uploads/x", "id", part, Duration::from_secs(60)).await.unwrap().url;
    let credential = url.split("X-Amz-Credential=").nth(1).unwrap().split('&').next().unwrap().replace("%2F", "/");
    credential.split('/').nth(2).unwrap().to_string()
}

#[tokio::test]
async fn without_s3_region_the_region_is_aws_chains_and_without_any_startup_says_so() {
    let env = e2e::TestEnv::from_env();
    let mut config = env.s3_config("any".into());
    assert_eq!(signed_region(&config).await, "us-east-1");
    config.s3_region = Some("eu-west-3".into());
    assert_eq!(signed_region(&config).await, "eu-west-3");
    config.s3_region = None;
    let chain = std::env::var("AWS_REGION").expect("the suite runs with AWS_REGION set, as make test does");
    assert_eq!(signed_region(&config).await, chain);

    // No S3_REGION and nothing in AWS's chain either: one line at startup, not a request failing later.
    let app = TestApp::spawn().await;
    let nowhere = std::env::temp_dir().join("no-such-aws-config");
    let output = tokio::process::Command::new(workspace_bin("api"))
        .env("DATABASE_URL", app.database_url())
        .env("S3_ENDPOINT", &app.env.s3_endpoint)
        .env("S3_BUCKET", &app.config.service.s3.s3_bucket)
        .env("LINK_SIGNING_KEY", "k".repeat(32))
        .env("AUTH", "none")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env_remove("S3_REGION")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("startup failed: S3_REGION is not set and AWS found no region"), "{stderr}");
    app.finish().await;
}
