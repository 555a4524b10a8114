//! The Companion-compatible routes (`{companionEndpoint}/s3/...`) as `@uppy/aws-s3` calls them: statuses, JSON
//! shapes and the rules behind them, against real Postgres and LocalStack; `uppy` drives the real Uppy.

use std::time::{Duration, SystemTime};

use api::companion::capability::Capability;
use api::config::Origins;
use e2e::{TestApp, random_bytes};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uploads::domain::Owner;
use uploads::service::SweepSettings;
use uuid::Uuid;

mod form_post;
mod uppy;

const MIB: usize = 1024 * 1024;
/// The origin of an app page that uses Uppy.
const PAGE: &str = "http://app.example";

/// The Companion endpoint `POST /v1/uppy-endpoints` hands `sub`.
async fn endpoint_for(app: &TestApp, sub: &str) -> String {
    let response = app.client_for(sub).post(app.url("/v1/uppy-endpoints")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["companionEndpoint"].as_str().unwrap().to_string()
}

/// A request as Uppy sends it: no token, no cookie; the status and the JSON answer.
async fn call(app: &TestApp, method: reqwest::Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.plain.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/json"), "{url}: every answer is JSON, not {content_type}");
    (status, response.json().await.unwrap())
}

async fn get(app: &TestApp, url: &str) -> (StatusCode, Value) {
    call(app, reqwest::Method::GET, url, None).await
}

fn sweep_settings() -> SweepSettings {
    SweepSettings { recovery_threshold: Duration::from_secs(900), job_retention: Duration::from_secs(86_400) }
}

/// `key` form-encoded as `URLSearchParams` encodes it (a space is `+`, a `+` is `%2B`).
fn form(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn an_endpoint_is_for_its_owner_only_and_until_it_expires() {
    let app = TestApp::spawn().await;
    let anonymous = app.plain.post(app.url("/v1/uppy-endpoints")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "handing out an endpoint needs the owner's token");

    let response = app.http.post(app.url("/v1/uppy-endpoints")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let endpoint = body["companionEndpoint"].as_str().unwrap();
    assert!(endpoint.starts_with(&app.url("/uppy/")), "{endpoint}");
    let expires_at: chrono::DateTime<chrono::Utc> = body["expiresAt"].as_str().unwrap().parse().unwrap();
    let lifetime = expires_at - chrono::Utc::now();
    assert!(lifetime > chrono::Duration::minutes(59) && lifetime <= chrono::Duration::minutes(61), "{lifetime}");

    let params = |endpoint: &str| format!("{endpoint}/s3/params?filename=a.txt&type=text%2Fplain");
    let (status, _) = get(&app, &params(endpoint)).await;
    assert_eq!(status, StatusCode::OK);

    let segment = endpoint.rsplit('/').next().unwrap();
    let (expires, rest) = segment.split_once('.').unwrap();
    let later = format!("{}.{rest}", expires.parse::<u64>().unwrap() + 86_400);
    let bob = format!("{expires}.{}.{}", base64_url("bob"), rest.split_once('.').unwrap().1);
    let key = app.state.links.key();
    let expired = Capability { owner: Owner::parse("alice").unwrap(), expires: unix_now() - 1 }.encode(key);
    for (case, segment, status, code) in [
        ("expiry pushed later", later, StatusCode::FORBIDDEN, "uppy_endpoint_invalid"),
        ("another owner, same signature", bob, StatusCode::FORBIDDEN, "uppy_endpoint_invalid"),
        ("not a capability", "nope".to_string(), StatusCode::FORBIDDEN, "uppy_endpoint_invalid"),
        ("expired", expired, StatusCode::UNAUTHORIZED, "uppy_endpoint_expired"),
    ] {
        for url in [
            params(&app.url(&format!("/uppy/{segment}"))),
            app.url(&format!("/uppy/{segment}/s3/multipart/{}?key=k", Uuid::now_v7())),
        ] {
            let (answered, body) = get(&app, &url).await;
            assert_eq!((answered, body["code"].as_str()), (status, Some(code)), "{case}: {body}");
        }
    }
    app.finish().await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// PUTs `bytes` to a signed part URL as Uppy does (no header of its own); returns S3's ETag, unquoted.
async fn put_part(app: &TestApp, url: &str, bytes: Vec<u8>) -> String {
    let response = app.plain.put(url).body(bytes).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    response.headers()["etag"].to_str().unwrap().trim_matches('"').to_string()
}

#[tokio::test]
async fn the_multipart_routes_answer_as_companion_does_with_our_rules() {
    let app = TestApp::spawn_with(|c| c.http.cors_allowed_origins = Origins(vec![PAGE.into()])).await;
    let endpoint = endpoint_for(&app, TestApp::OWNER).await;
    let create_url = format!("{endpoint}/s3/multipart");
    let post = |body| call(&app, reqwest::Method::POST, &create_url, Some(body));
    let metadata = json!({ "name": "big file+1.bin", "type": "application/octet-stream" });
    let (status, created) =
        post(json!({ "filename": "big file+1.bin", "type": "application/octet-stream", "metadata": metadata })).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id: Uuid = created["uploadId"].as_str().unwrap().parse().unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(key, format!("uploads/big file+1.bin-{id}"), "the key ends in our upload id");
    let (status, refused) = post(json!({ "filename": "a\u{202E}b", "type": "text/plain" })).await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_filename")));

    let part = |id: &str, number: &str, key: &str| format!("{endpoint}/s3/multipart/{id}/{number}?key={key}");
    let id_text = id.to_string();
    // Bad part numbers, then keys and ids that name no upload of this owner.
    for number in ["0", "10001", "-1", "1.5", "x", "01x", "99999999999"] {
        let (status, body) = get(&app, &part(&id_text, number, &form(&key))).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_part_number")), "{number}");
    }
    let unknown = Uuid::now_v7().to_string();
    let percent_only = key.replace(' ', "%20"); // `+` left as is: form-decoded, it is a space
    for (case, id, key) in [
        ("unknown upload", unknown.as_str(), form(&key)),
        ("not an upload id", "abc", form(&key)),
        ("another key", id_text.as_str(), form("uploads/x")),
        ("`+` read as a space", id_text.as_str(), percent_only),
    ] {
        let (status, body) = get(&app, &part(id, "1", &key)).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("upload_not_found")), "{case}");
    }
    let (status, _) = get(&app, &format!("{endpoint}/s3/multipart/{id}/1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no key");
    let bob = endpoint_for(&app, "bob").await;
    let (status, _) = get(&app, &format!("{bob}/s3/multipart/{id}/1?key={}", form(&key))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another owner's upload is unknown");
    let (status, _) = get(&app, &format!("{bob}/s3/multipart/{id}?key={}", form(&key))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Three parts, signed one at a time as Uppy 6 does, then the batch route of older Uppy versions.
    let data = random_bytes(2 * 5 * MIB + 12_345);
    let chunks: Vec<&[u8]> = data.chunks(5 * MIB).collect();
    let mut etags = Vec::new();
    for (n, chunk) in chunks.iter().enumerate().take(2) {
        let (status, signed) = get(&app, &part(&id_text, &(n + 1).to_string(), &form(&key))).await;
        assert_eq!(status, StatusCode::OK, "{signed}");
        let url = signed["url"].as_str().unwrap();
        assert!(signed["expires"].as_i64().unwrap() > 0, "{signed}");
        assert!(url.contains("X-Amz-SignedHeaders=host&") && !url.to_lowercase().contains("checksum"), "{url}");
        etags.push(put_part(&app, url, chunk.to_vec()).await);
    }
    let (status, batch) =
        get(&app, &format!("{endpoint}/s3/multipart/{id}/batch?key={}&partNumbers=1,3", form(&key))).await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let urls = batch["presignedUrls"].as_object().unwrap();
    assert_eq!(urls.keys().collect::<Vec<_>>(), ["1", "3"]);
    etags.push(put_part(&app, urls["3"].as_str().unwrap(), chunks[2].to_vec()).await);
    for numbers in ["0,1", "1,,2", ""] {
        let (status, _) =
            get(&app, &format!("{endpoint}/s3/multipart/{id}/batch?key={}&partNumbers={numbers}", form(&key))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{numbers:?}");
    }

    // listParts: a bare array, numbers as numbers, recorded so that our status agrees.
    let (status, listed) = get(&app, &format!("{endpoint}/s3/multipart/{id}?key={}", form(&key))).await;
    assert_eq!(status, StatusCode::OK);
    let expected: Vec<Value> = etags
        .iter()
        .zip(&chunks)
        .enumerate()
        .map(|(n, (etag, chunk))| json!({ "PartNumber": n + 1, "ETag": format!("\"{etag}\""), "Size": chunk.len() }))
        .collect();
    assert_eq!(listed, Value::Array(expected));
    let status = app.status(id, false).await;
    assert_eq!(status["receivedChunks"], json!([[0, 2]]), "{status}");
    assert_eq!(status["receivedBytes"], data.len());
    assert_eq!((status["size"].clone(), status["kind"].clone()), (Value::Null, json!("multipart")));
    assert_eq!(status["metadata"], metadata);

    // Complete: a list that is not what S3 holds is refused; ETags quoted or not; then idempotent.
    let complete_url = format!("{endpoint}/s3/multipart/{id}/complete?key={}", form(&key));
    let complete = |parts: Value| call(&app, reqwest::Method::POST, &complete_url, Some(json!({ "parts": parts })));
    let (status, body) =
        complete(json!([{ "PartNumber": 1, "ETag": etags[0] }, { "PartNumber": 2, "ETag": etags[1] }])).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("part_list_mismatch")), "{body}");
    let (status, body) =
        complete(json!([{ "PartNumber": 2, "ETag": etags[1] }, { "PartNumber": 1, "ETag": etags[0] }])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "out of order: {body}");
    let (status, body) = complete(json!([{ "PartNumber": 0, "ETag": etags[0] }])).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_part_number")));
    let parts = json!([
        { "PartNumber": 1, "ETag": format!("\"{}\"", etags[0]) },
        { "PartNumber": 2, "ETag": etags[1] },
        { "PartNumber": 3, "ETag": etags[2] },
    ]);
    let (status, first) = complete(parts.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["key"], key.as_str());
    assert_eq!(first["bucket"], app.storage.bucket());
    let (status, again) = complete(parts).await;
    assert_eq!(
        (status, again["key"].clone()),
        (StatusCode::OK, first["key"].clone()),
        "completing twice is one completion"
    );
    let location = first["location"].as_str().unwrap();
    assert!(location.starts_with(&app.url(&format!("/v1/files/{id}?"))), "{location}");
    let download = app.plain.get(location).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.bytes().await.unwrap() == data, "the download is the file, byte for byte");
    let status = app.status(id, false).await;
    assert_eq!((status["state"].clone(), status["size"].clone()), (json!("completed"), json!(data.len())));
    assert_eq!((status["totalChunks"].clone(), status["chunkSize"].clone()), (json!(3), json!(5 * MIB)));
    assert_eq!(status["receivedChunks"], json!([[0, 2]]));
    app.state.uploads.verify_object(id).await.unwrap();
    let status = app.status(id, false).await;
    assert_eq!(status["verification"]["state"], "computed", "the worker hashes it as any upload: {status}");
    let (status, body) = get(&app, &format!("{endpoint}/s3/multipart/{id}/4?key={}", form(&key))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("upload_completed")));

    // Abort: `{}`, and the upload is gone.
    let (_, created) = post(json!({ "filename": "other.bin", "type": "application/octet-stream" })).await;
    let (other, other_key) = (created["uploadId"].as_str().unwrap(), created["key"].as_str().unwrap());
    let abort_url = format!("{endpoint}/s3/multipart/{other}?key={}", form(other_key));
    let (status, body) = call(&app, reqwest::Method::DELETE, &abort_url, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, body) = get(&app, &format!("{endpoint}/s3/multipart/{other}/1?key={}", form(other_key))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::GONE, Some("upload_aborted")));
    assert!(app.s3_multipart_uploads().await.is_empty(), "nothing left in S3");
    app.finish().await;
}

#[tokio::test]
async fn the_routes_answer_cors_for_the_apps_origins_without_credentials() {
    let app = TestApp::spawn_with(|c| c.http.cors_allowed_origins = Origins(vec![PAGE.into()])).await;
    let endpoint = endpoint_for(&app, TestApp::OWNER).await;
    for (method, path) in [("POST", "/s3/multipart"), ("DELETE", &*format!("/s3/multipart/{}", Uuid::now_v7()))] {
        let preflight = app
            .plain
            .request(reqwest::Method::OPTIONS, format!("{endpoint}{path}"))
            .header("origin", PAGE)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{method} {path}: {}", preflight.status());
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], PAGE);
        assert!(headers["access-control-allow-methods"].to_str().unwrap().contains(method));
        assert!(headers["access-control-allow-headers"].to_str().unwrap().contains("content-type"));
    }
    // An error answer carries the header too: without it Uppy sees a network error, not the status.
    let refused = app
        .plain
        .get(format!("{endpoint}/s3/multipart/{}/0?key=k", Uuid::now_v7()))
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.headers()["access-control-allow-origin"], PAGE);
    let foreign = app.plain.get(format!("{endpoint}/s3/params?filename=a")).header("origin", "http://evil.example");
    let foreign = foreign.send().await.unwrap();
    assert!(foreign.headers().get("access-control-allow-origin").is_none(), "other origins get no CORS");
    app.finish().await;
}

/// The capability is the credential: like a token, it never reaches the log, valid, expired or changed.
#[tokio::test]
async fn no_capability_reaches_the_log_even_at_trace_level() {
    let app = TestApp::spawn().await;
    let filter = "trace,sqlx=info,aws_smithy_runtime=info,aws_config=info,aws_sdk_s3=info,rustls=info";
    let api = crate::downloads::process::ApiProcess::spawn(
        &app,
        "capability-log",
        &[("RUST_LOG", filter), ("LOG_FORMAT", "json")],
    )
    .await;
    let response = app.plain.post(format!("{}/v1/uppy-endpoints", api.base_url)).bearer_auth(&app.token).send().await;
    let body: Value = response.unwrap().json().await.unwrap();
    let endpoint = body["companionEndpoint"].as_str().unwrap().to_string();
    let segment = endpoint.rsplit('/').next().unwrap().to_string();
    let expired =
        Capability { owner: Owner::parse("alice").unwrap(), expires: unix_now() - 1 }.encode(app.state.links.key());
    let tampered = format!("{}x", segment);
    for capability in [&segment, &expired, &tampered] {
        let base = format!("{}/uppy/{capability}", api.base_url);
        let (status, _) = get(&app, &format!("{base}/s3/params?filename=a.txt")).await;
        assert!([StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status));
        let (status, _) = get(&app, &format!("{base}/s3/multipart/{}/1?key=k", Uuid::now_v7())).await;
        assert!(status.is_client_error());
    }
    let log = api.log();
    assert!(log.contains("/uppy/redacted/s3/params"), "the requests are logged, without their capability");
    for capability in [&segment, &expired] {
        let signature = capability.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a capability is in {}", api.log_path.display());
    }
    app.finish().await;
}

/// Uppy retries nothing itself, but a page can complete twice (a retry button, two tabs): racing completes of a
/// Companion upload are our completion's, one assembly whoever wins, the same answer for all.
#[tokio::test]
async fn racing_companion_completes_assemble_once_and_agree() {
    let app = TestApp::spawn().await;
    let endpoint = endpoint_for(&app, TestApp::OWNER).await;
    let (_, created) =
        call(&app, reqwest::Method::POST, &format!("{endpoint}/s3/multipart"), Some(json!({ "filename": "race.bin" })))
            .await;
    let (id, key) = (created["uploadId"].as_str().unwrap().to_string(), created["key"].as_str().unwrap().to_string());
    let data = random_bytes(5 * MIB + 1);
    let mut parts = Vec::new();
    for (n, chunk) in data.chunks(5 * MIB).enumerate() {
        let (_, signed) = get(&app, &format!("{endpoint}/s3/multipart/{id}/{}?key={}", n + 1, form(&key))).await;
        let etag = put_part(&app, signed["url"].as_str().unwrap(), chunk.to_vec()).await;
        parts.push(json!({ "PartNumber": n + 1, "ETag": etag }));
    }
    let url = format!("{endpoint}/s3/multipart/{id}/complete?key={}", form(&key));
    let before = app.state.uploads.storage().calls().get(uploads::storage::S3Operation::CompleteMultipartUpload);
    let racers = (0..8).map(|_| call(&app, reqwest::Method::POST, &url, Some(json!({ "parts": parts }))));
    let answers = futures::future::join_all(racers).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["key"], key.as_str());
    }
    let after = app.state.uploads.storage().calls().get(uploads::storage::S3Operation::CompleteMultipartUpload);
    assert_eq!(after - before, 1, "one CompleteMultipartUpload for 8 racing completes");
    let response = app.get(&format!("/v1/files/{id}")).await;
    assert!(response.bytes().await.unwrap() == data);
    app.finish().await;
}
