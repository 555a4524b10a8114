//! Downloads when things go wrong: the stream limit, a client that leaves, S3 failing before and after the
//! first byte.

use e2e::{ChaosProxy, TestApp, random_bytes};
use reqwest::{Response, StatusCode};
use uuid::Uuid;

use super::{MIB, error_code, fetch, text, two_chunk_file};

#[tokio::test]
async fn the_stream_limit_answers_503_and_a_disconnect_frees_the_slot() {
    let app = TestApp::spawn_with(|c| c.downloads.max_concurrent_downloads = 1).await;
    // Larger than the socket buffers, so the first stream is still running while it is held.
    let data = random_bytes(40 * MIB);
    let id = app.upload_file(&data, 20 * MIB as u64).await;

    let mut held = fetch(&app, id, &[]).await;
    assert_eq!(held.status(), StatusCode::OK);
    assert!(!held.chunk().await.unwrap().unwrap().is_empty());
    assert_eq!(app.state.downloads.idle_slots(), 0);

    let refused = fetch(&app, id, &[("range", "bytes=0-9")]).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(refused.headers(), "retry-after"), "1");
    assert_eq!(error_code(refused).await, "too_many_downloads");
    // HEAD, 304 and 416 stream nothing and need no slot.
    let response = fetch(&app, id, &[("range", "bytes=999999999-")]).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // The client goes away mid-body: the server drops the S3 stream, and with it the slot.
    drop(held);
    let mut freed = false;
    for _ in 0..100 {
        if app.state.downloads.idle_slots() == 1 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(freed, "the slot was not released after the client disconnected");
    let response = fetch(&app, id, &[("range", "bytes=0-9")]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap(), data[..10]);
    app.finish().await;
}

#[tokio::test]
async fn s3_failures_before_the_first_byte_are_502_503_and_504() {
    let app = TestApp::spawn().await;
    let (id, _) = two_chunk_file(&app).await;

    // The object vanished behind the API's back: S3 refuses, nothing was sent yet.
    let (gone, _) = two_chunk_file(&app).await;
    app.delete_object_behind_the_service(gone).await;
    let response = fetch(&app, gone, &[]).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error_code(response).await, "storage_error");

    // The same database served by an API whose S3 cannot be reached: 503.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let response = via_other_s3(&app, id, &format!("http://127.0.0.1:{dead_port}"), 20).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(error_code(response).await, "storage_unavailable");

    // An S3 that accepts the connection and never answers: 504 after S3_FIRST_BYTE_TIMEOUT.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let response = via_other_s3(&app, id, &silent_url, 1).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error_code(response).await, "storage_timeout");
    hold.abort();
    app.finish().await;
}

/// GET `id` through a second API on the same database whose S3 endpoint is `endpoint`. The SDK's retries of a
/// refused connection take a while: a short first-byte timeout would turn that 503 into a 504.
async fn via_other_s3(app: &TestApp, id: Uuid, endpoint: &str, first_byte_timeout_secs: u64) -> Response {
    let mut config = app.config.clone();
    config.service.s3.s3_endpoint = Some(endpoint.to_string());
    config.downloads.s3_first_byte_timeout = std::time::Duration::from_secs(first_byte_timeout_secs);
    let state = api::build_state(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/files/{id}", listener.local_addr().unwrap());
    let server = tokio::spawn(api::serve(listener, api::router(state), std::future::pending()));
    let response = app.http.get(&url).header("range", "bytes=0-9").send().await.unwrap();
    server.abort();
    response
}

#[tokio::test]
async fn an_s3_failure_after_the_first_byte_closes_the_connection() {
    let app = TestApp::spawn().await;
    let data = random_bytes(30 * MIB);
    let id = app.upload_file(&data, 15 * MIB as u64).await;
    // The first part is far larger than the socket buffers, so the answer is still streaming when the object
    // is deleted: LocalStack then breaks the open read (or the second part's GetObject fails).
    let range = format!("bytes=0-{},-100", 25 * MIB);
    let mut response = fetch(&app, id, &[("range", &range)]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let promised: usize = text(response.headers(), "content-length").parse().unwrap();
    app.delete_object_behind_the_service(id).await;

    let mut body = Vec::new();
    let outcome = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    let received = body.len();
    assert!(outcome.is_err(), "the body ended cleanly after {received} of {promised} bytes");
    // What did arrive is the start of the promised answer: the first part header, then the file's first bytes.
    let header_end = body.windows(4).position(|w| w == b"\r\n\r\n").expect("the first part header") + 4;
    assert!(received > header_end && received < promised, "{received} of {promised} bytes before the cut");
    assert!(body[..header_end].starts_with(b"--"));
    assert_eq!(body[header_end..], data[..received - header_end]);
    app.finish().await;
}

/// The read client runs without the SDK's stalled-stream protection: the service's own stall timer must end a
/// body whose S3 read goes silent mid-object, rather than leave the client waiting forever.
#[tokio::test]
async fn s3_going_silent_mid_body_ends_the_download_with_a_closed_connection() {
    let app = TestApp::spawn().await;
    let data = random_bytes(40 * MIB);
    let id = app.upload_file(&data, 20 * MIB as u64).await;
    let (proxy, endpoint) = ChaosProxy::in_front_of(app.config.service.s3.s3_endpoint.as_deref().unwrap()).await;
    let mut config = app.config.clone();
    config.service.s3.s3_endpoint = Some(endpoint);
    config.downloads.s3_first_byte_timeout = std::time::Duration::from_secs(2);
    let state = api::build_state(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/files/{id}", listener.local_addr().unwrap());
    let server = tokio::spawn(api::serve(listener, api::router(state), std::future::pending()));

    let mut response = app.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = response.chunk().await.unwrap().expect("a first chunk").len();
    proxy.stall();
    // A guard against hanging the suite, far beyond the 2 s stall limit; not a measurement.
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(90), async {
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => received += bytes.len(),
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            }
        }
    })
    .await
    .expect("the download was left hanging after S3 went silent");
    assert!(outcome.is_err(), "the body ended cleanly after {received} of {} bytes", data.len());
    assert!(received < data.len(), "{received} bytes");
    server.abort();
    app.finish().await;
}
