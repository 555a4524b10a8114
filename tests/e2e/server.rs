//! The HTTP server around the routes: CORS for configured origins only, deadlines on slow or stalled clients
//! and slow requests, and a panic answered as a 500 envelope.

use std::time::Duration;

use api::config::Origins;
use axum::routing::get;
use e2e::{TestApp, random_bytes};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use uploads::service::Uploads;
use uploads::storage::Storage;

use crate::lifecycle::answer;

const PAGE: &str = "https://app.example.com";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, app.url("/v1/uploads"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, idempotency-key")
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let app = TestApp::spawn_with(|c| c.http.cors_allowed_origins = Origins(vec![PAGE.into()])).await;

    let allowed = preflight(&app, PAGE).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(PAGE));
    let methods = header(&allowed, "access-control-allow-methods").unwrap().to_ascii_lowercase();
    assert!(["get", "head", "post", "put", "delete"].iter().all(|m| methods.contains(m)), "{methods}");
    let headers = header(&allowed, "access-control-allow-headers").unwrap().to_ascii_lowercase();
    for name in ["authorization", "content-type", "idempotency-key", "range", "if-match", "if-none-match", "if-range"] {
        assert!(headers.contains(name), "{name} not allowed: {headers}");
    }
    assert!(header(&allowed, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("origin")));

    let other = preflight(&app, "https://evil.example.com").await;
    assert_eq!(header(&other, "access-control-allow-origin"), None, "{:?}", other.headers());

    // An actual answer exposes what clients read.
    let response = app.http.get(app.url("/healthz")).header("origin", PAGE).send().await.unwrap();
    assert_eq!(header(&response, "access-control-allow-origin"), Some(PAGE));
    let exposed = header(&response, "access-control-expose-headers").unwrap().to_ascii_lowercase();
    for name in
        ["etag", "content-range", "content-disposition", "location", "retry-after", "x-request-id", "repr-digest"]
    {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
    app.finish().await;
}

#[tokio::test]
async fn without_configured_origins_there_is_no_cors_at_all() {
    let app = TestApp::spawn().await;
    let response = preflight(&app, PAGE).await;
    assert_eq!(header(&response, "access-control-allow-origin"), None, "{:?}", response.headers());
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = app.http.get(app.url("/healthz")).header("origin", PAGE).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().keys().all(|name| !name.as_str().starts_with("access-control-")));
    app.finish().await;
}

/// Reads what the server sends until it closes the connection (or `limit` passes: a failure).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server kept the connection open for {limit:?}"));
    received
}

#[tokio::test]
async fn a_client_that_sends_headers_too_slowly_is_disconnected() {
    let app = TestApp::spawn_with(|c| c.http.header_read_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(app.config.bind_addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    println!("headers unfinished after 1 s: {:?}", answer.lines().next());

    // A connection that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(app.config.bind_addr).await.unwrap();
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    println!("silent connection closed after {:?}: {:?}", started.elapsed(), String::from_utf8_lossy(&answer));

    // The server itself is fine.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn a_json_request_past_its_deadline_is_408_or_504_in_the_envelope() {
    let app = TestApp::spawn_with(|c| c.http.request_timeout = Duration::from_secs(1)).await;

    // The client announces a body and never sends it.
    let mut slow = TcpStream::connect(app.config.bind_addr).await.unwrap();
    let request = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{",
        app.token
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut received = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut received)).await.expect("an answer").unwrap();
    let received = String::from_utf8_lossy(&received[..n]);
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains("\"code\":\"request_timeout\""), "{received}");

    // The service is the slow one: its S3 accepts connections and never answers.
    let black_hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s3 = format!("http://{}", black_hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = black_hole.accept().await {
            held.push(connection);
        }
    });
    let mut s3_config = app.config.service.s3.clone();
    s3_config.s3_endpoint = Some(s3);
    let uploads = Uploads::new(
        app.state.uploads.repository().clone(),
        Storage::connect(&s3_config).await.unwrap(),
        app.state.uploads.policy().clone(),
    );
    let base = serve(api::router(api::state::AppState { uploads, ..app.state.clone() })).await;
    let started = std::time::Instant::now();
    let body = json!({ "filename": "a.bin", "size": 10 });
    let (status, body) = answer(app.http.post(format!("{base}/v1/uploads")).json(&body).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("request_timeout")), "{body}");
    println!("504 after {:?}", started.elapsed());
    app.finish().await;
}

/// Serves `app` on a port of its own until the test ends; returns its base URL.
async fn serve(app: impl Into<api::App> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(listener, app, std::future::pending()));
    base
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_envelope_not_a_dropped_connection() {
    let app = TestApp::spawn().await;
    async fn panics() -> &'static str {
        panic!("a bug")
    }
    let routes = api::routes(app.state.clone()).route("/panic", get(panics));
    let base = serve(api::with_middleware(routes, &app.config.http)).await;
    let response = app.http.get(format!("{base}/panic")).header("x-request-id", "r-1").send().await.unwrap();
    assert_eq!(header(&response, "x-request-id"), Some("r-1"));
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({ "code": "internal_error", "message": "internal error" }));
    assert_eq!(app.http.get(format!("{base}/healthz")).send().await.unwrap().status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn a_download_whose_client_stops_reading_is_closed_and_frees_its_slot() {
    let idle = Duration::from_secs(2);
    let app = TestApp::spawn_with(|c| {
        c.downloads.max_concurrent_downloads = 1;
        c.downloads.download_idle_timeout = idle;
    })
    .await;
    // Larger than every buffer on the way (the server's socket sends at most 4 MiB ahead here).
    let data = random_bytes(16 * 1024 * 1024);
    let id = app.upload_file(&data, 8 * 1024 * 1024).await;

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(app.config.bind_addr).await.unwrap();
    let request = format!("GET /v1/files/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", app.token);
    stalled.write_all(request.as_bytes()).await.unwrap();
    let mut one = [0u8; 1];
    stalled.read_exact(&mut one).await.unwrap();
    assert_eq!(&one, b"H");
    // It reads nothing more. Meanwhile its slot is taken.
    let (status, body) = answer(app.get(&format!("/v1/files/{id}")).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("too_many_downloads")));

    let started = std::time::Instant::now();
    while app.state.downloads.idle_slots() == 0 {
        assert!(
            started.elapsed() < idle + Duration::from_secs(15),
            "the slot is still held after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("slot free {:?} after the client stopped (DOWNLOAD_IDLE_TIMEOUT {idle:?})", started.elapsed());
    let response = app.get(&format!("/v1/files/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap() == data);

    // The stalled client's connection was closed with the file unfinished.
    let rest = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert!(rest.len() + 1 < data.len(), "the stalled client got {} bytes of {}", rest.len() + 1, data.len());
    app.finish().await;
}
