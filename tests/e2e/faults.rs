//! S3 failing under a running API, through the chaos proxy: stalled (accepts, never answers) and refusing.
//! Presigning needs no S3 round trip and keeps working; every call to S3 answers 503/504 within its timeout
//! and succeeds on retry; a download in flight ends with a closed connection and resumes with Range.
//! Postgres, API processes and replicas failing are in the submodules.

mod load;
mod postgres;
mod processes;
mod replicas;

use std::time::{Duration, Instant};

use e2e::{ChaosProxy, TestApp, random_bytes, sha256_hex};
use reqwest::StatusCode;
use serde_json::json;

use crate::lifecycle::{CHUNK, MIB, answer};

/// An API whose S3 goes through a chaos proxy, with a short operation timeout.
async fn app_behind_chaos() -> (TestApp, ChaosProxy) {
    let env = e2e::TestEnv::from_env();
    let (s3, endpoint) = ChaosProxy::in_front_of(&env.s3_endpoint).await;
    let app = TestApp::spawn_with(|c| {
        c.service.s3.s3_endpoint = Some(endpoint);
        c.service.s3.s3_operation_timeout = Duration::from_secs(2);
        c.downloads.s3_first_byte_timeout = Duration::from_secs(2);
    })
    .await;
    (app, s3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_s3_costs_a_504_within_the_timeout_and_a_retry_after_it() {
    let (app, s3) = app_behind_chaos().await;
    let data = random_bytes(CHUNK + 10);
    let id = app.create_upload(data.len() as u64, Some(CHUNK as u64)).await;
    app.upload_chunk(id, 0, &data[..CHUNK]).await;
    let done = app.upload_file(&random_bytes(1000), CHUNK as u64).await;

    s3.stall();
    // A URL is a signature: no S3 round trip, so it is handed out as usual.
    let (status, url) = answer(
        app.post_json(&format!("/v1/uploads/{id}/chunks/1/url"), &json!({ "sha256": sha256_hex(&data[CHUNK..]) }))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{url}");
    for path in [format!("/v1/uploads/{id}?reconcile=true"), format!("/v1/files/{done}")] {
        let started = Instant::now();
        let response = app.get(&path).await;
        let elapsed = started.elapsed();
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let (status, body) = answer(response).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("storage_timeout")), "{path}");
        println!("{path}: 504 after {elapsed:?} (timeout 2 s)");
        assert!(elapsed < Duration::from_secs(15), "{path} hung for {elapsed:?}");
    }
    let (status, body) = answer(app.complete(id).await).await;
    assert!(status.is_server_error(), "{status} {body}");

    s3.restore();
    app.upload_chunk(id, 1, &data[CHUNK..]).await;
    let (status, body) = answer(app.complete(id).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(app.object_bytes(id).await == data);
    assert_eq!(app.get(&format!("/v1/files/{done}")).await.status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_that_refuses_connections_costs_a_503_and_a_retry_after_it() {
    let (app, s3) = app_behind_chaos().await;
    let data = random_bytes(1000);
    let id = app.create_upload(data.len() as u64, Some(CHUNK as u64)).await;
    app.upload_chunk(id, 0, &data).await;

    s3.refuse();
    let (status, body) = answer(app.post_json("/v1/uploads", &json!({ "filename": "a", "size": 10 })).await).await;
    assert!(
        matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT),
        "create with S3 down: {status} {body}"
    );
    let (status, body) = answer(app.get(&format!("/v1/uploads/{id}?reconcile=true")).await).await;
    assert!(matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT), "{status} {body}");
    // Plain status reads only Postgres.
    assert_eq!(app.status(id, false).await["receivedChunks"], json!([[0, 0]]));

    s3.restore();
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    assert!(app.object_bytes(id).await == data);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_by_s3_closes_the_connection_and_resumes_with_range() {
    let (app, s3) = app_behind_chaos().await;
    let data = random_bytes(24 * MIB);
    let id = app.upload_file(&data, 12 * MIB as u64).await;
    s3.throttle(4 * MIB as u64);

    let mut response = app.get(&format!("/v1/files/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = Vec::new();
    while body.len() < 2 * MIB {
        body.extend_from_slice(&response.chunk().await.unwrap().expect("more bytes"));
    }
    s3.cut();
    let ended = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    assert!(ended.is_err(), "a truncated body must end with a broken connection, not a clean end");
    assert!(body.len() < data.len());
    assert_eq!(body, data[..body.len()]);

    s3.restore();
    let rest = app
        .http
        .get(app.url(&format!("/v1/files/{id}")))
        .header("range", format!("bytes={}-", body.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    body.extend_from_slice(&rest.bytes().await.unwrap());
    assert!(body == data, "the resumed download differs from the file");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_never_wipes_a_confirmation_that_committed_after_its_listing() {
    let (app, s3) = app_behind_chaos().await;
    let data = random_bytes(CHUNK + 10);
    let (head, tail) = data.split_at(CHUNK);
    let id = app.create_upload(data.len() as u64, Some(CHUNK as u64)).await;
    app.upload_chunk(id, 0, head).await;
    app.chunk_url(id, 1, tail).await;

    // The reconcile reads the chunks, then waits on ListParts; meanwhile a report of chunk 1 commits.
    s3.stall();
    let listings = || app.state.uploads.storage().calls().get(uploads::storage::S3Operation::ListParts);
    let before = listings();
    let reconcile = {
        let (http, url) = (app.http.clone(), app.url(&format!("/v1/uploads/{id}?reconcile=true")));
        tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
    };
    while listings() == before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let etag = "\"0123456789abcdef0123456789abcdef\"";
    assert_eq!(app.confirm_chunk(id, 1, etag, tail).await.status(), StatusCode::OK);
    s3.restore();
    assert_eq!(reconcile.await.unwrap(), StatusCode::OK);
    assert_eq!(app.status(id, false).await["receivedChunks"], json!([[0, 1]]), "a later confirmation was wiped");

    // The next reconcile judges it: S3 does not hold chunk 1.
    assert_eq!(app.status(id, true).await["receivedChunks"], json!([[0, 0]]));
    app.finish().await;
}
