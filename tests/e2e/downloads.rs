//! `GET`/`HEAD /v1/files/{id}` against LocalStack: every status, byte-exact bodies against the uploaded file.

mod browser;
mod failures;
mod memory;
pub(crate) mod process;
mod resume;

use e2e::{TestApp, random_bytes};
use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

const MIB: usize = 1024 * 1024;

/// Two chunks, so ranges cross the seam between S3 parts.
async fn two_chunk_file(app: &TestApp) -> (Uuid, Vec<u8>) {
    let data = random_bytes(5 * MIB + 12_345);
    let id = app.upload_file(&data, 5 * MIB as u64).await;
    (id, data)
}

async fn fetch(app: &TestApp, id: Uuid, headers: &[(&str, &str)]) -> Response {
    let mut request = app.http.get(app.url(&format!("/v1/files/{id}")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("GET file")
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap_or_else(|| panic!("no {name} header in {headers:?}")).to_str().unwrap()
}

async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("JSON error body");
    body["code"].as_str().expect("code").to_string()
}

#[tokio::test]
async fn whole_file_200_and_head_with_the_same_headers() {
    let app = TestApp::spawn().await;
    let (id, data) = two_chunk_file(&app).await;

    let response = fetch(&app, id, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(text(&headers, "content-length"), data.len().to_string());
    assert_eq!(text(&headers, "accept-ranges"), "bytes");
    assert_eq!(text(&headers, "content-type"), "application/octet-stream");
    assert_eq!(text(&headers, "cache-control"), api::config::DEFAULT_CACHE_CONTROL);
    assert_eq!(text(&headers, "content-disposition"), "attachment; filename=\"file.bin\"; filename*=UTF-8''file.bin");
    assert!(text(&headers, "etag").starts_with('"') && text(&headers, "etag").ends_with("-2\""), "{headers:?}");
    httpdate_parse(text(&headers, "last-modified"));
    assert_eq!(response.bytes().await.unwrap(), data);

    let head = app.http.head(app.url(&format!("/v1/files/{id}"))).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    for name in [
        "content-length",
        "accept-ranges",
        "content-type",
        "cache-control",
        "content-disposition",
        "etag",
        "last-modified",
    ] {
        assert_eq!(head.headers().get(name), headers.get(name), "{name}");
    }
    assert!(head.bytes().await.unwrap().is_empty());

    // HEAD ignores Range (range handling is defined for GET only) and describes the whole file.
    let head = app.http.head(app.url(&format!("/v1/files/{id}"))).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(text(head.headers(), "content-length"), data.len().to_string());
    app.finish().await;
}

fn httpdate_parse(value: &str) {
    assert!(value.ends_with(" GMT") && value.len() == 29, "not an IMF-fixdate: {value}");
}

#[tokio::test]
async fn single_ranges_are_206_with_exact_bytes() {
    let app = TestApp::spawn().await;
    let (id, data) = two_chunk_file(&app).await;
    let size = data.len();
    let seam = 5 * MIB;
    let table: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-".into(), 0, size - 1),
        ("bytes=100-199".into(), 100, 199),
        (format!("bytes={}-{}", seam - 10, seam + 10), seam - 10, seam + 10), // across two S3 parts
        ("bytes=-500".into(), size - 500, size - 1),
        (format!("bytes={}-", size - 1), size - 1, size - 1),
        (format!("bytes={}-{}", size - 10, size + 1_000_000), size - 10, size - 1), // clamped
        ("bytes=-99999999999999999999999".into(), 0, size - 1),
        ("bytes=0-1,1-5".into(), 0, 5), // coalesced into one
    ];
    for (range, first, last) in table {
        let response = fetch(&app, id, &[("range", &range)]).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(text(response.headers(), "content-range"), format!("bytes {first}-{last}/{size}"), "{range}");
        assert_eq!(text(response.headers(), "content-length"), (last - first + 1).to_string(), "{range}");
        assert_eq!(response.bytes().await.unwrap(), data[first..=last], "{range}");
    }
    app.finish().await;
}

#[tokio::test]
async fn invalid_or_foreign_ranges_are_ignored_with_200() {
    let app = TestApp::spawn().await;
    let (id, data) = two_chunk_file(&app).await;
    let many: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 10, i * 10 + 1)).collect();
    let many = format!("bytes={}", many.join(","));
    for range in ["bytes=5-1", "items=0-10", "bytes=abc", "bytes=0 - 1", "bytes", many.as_str()] {
        let response = fetch(&app, id, &[("range", range)]).await;
        assert_eq!(response.status(), StatusCode::OK, "{range}");
        assert!(response.headers().get("content-range").is_none());
        assert_eq!(response.bytes().await.unwrap(), data, "{range}");
    }
    app.finish().await;
}

#[tokio::test]
async fn unsatisfiable_ranges_are_416_with_the_size() {
    let app = TestApp::spawn().await;
    let (id, data) = two_chunk_file(&app).await;
    let size = data.len();
    for range in [format!("bytes={size}-"), format!("bytes={}-{}", size + 5, size + 10), "bytes=-0".into()] {
        let response = fetch(&app, id, &[("range", &range)]).await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(text(response.headers(), "content-range"), format!("bytes */{size}"));
        assert!(response.headers().get("cache-control").is_none(), "{range}: {:?}", response.headers());
        assert_eq!(error_code(response).await, "range_not_satisfiable");
    }

    // Any range of a zero-byte file is unsatisfiable; without one it is an empty 200.
    let response =
        app.post_json("/v1/uploads", &json!({ "filename": "empty.txt", "size": 0, "contentType": "text/plain" })).await;
    let empty: Uuid = response.json::<Value>().await.unwrap()["uploadId"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.complete(empty).await.status(), StatusCode::OK);
    let response = fetch(&app, empty, &[("range", "bytes=0-")]).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(text(response.headers(), "content-range"), "bytes */0");
    let response = fetch(&app, empty, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response.headers(), "content-length"), "0");
    assert_eq!(text(response.headers(), "content-type"), "text/plain");
    assert!(response.bytes().await.unwrap().is_empty());
    app.finish().await;
}

#[tokio::test]
async fn several_ranges_are_multipart_byteranges() {
    let app = TestApp::spawn().await;
    let (id, data) = two_chunk_file(&app).await;
    let size = data.len();
    let seam = 5 * MIB;
    // Out of order and overlapping: answered ascending, the overlap merged.
    let range = format!("bytes=-100,{}-{},0-99,50-199", seam - 5, seam + 5);
    let response = fetch(&app, id, &[("range", &range)]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let content_type = text(response.headers(), "content-type").to_string();
    let boundary = content_type.strip_prefix("multipart/byteranges; boundary=").expect(&content_type).to_string();
    let length: usize = text(response.headers(), "content-length").parse().unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    let parts = parse_multipart(&body, &boundary);
    let expected = [(0, 199), (seam - 5, seam + 5), (size - 100, size - 1)];
    assert_eq!(parts.len(), expected.len());
    for ((headers, bytes), (first, last)) in parts.iter().zip(expected) {
        assert!(headers.contains(&"content-type: application/octet-stream".to_string()), "{headers:?}");
        assert!(headers.contains(&format!("content-range: bytes {first}-{last}/{size}")), "{headers:?}");
        assert_eq!(bytes.as_slice(), &data[first..=last]);
    }
    app.finish().await;
}

/// Splits a multipart/byteranges body into (lower-cased header lines, bytes) per part, checking the framing.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(Vec<String>, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    let mut rest = body.strip_prefix(b"\r\n".as_slice()).unwrap_or(body);
    let mut parts = Vec::new();
    loop {
        rest = rest.strip_prefix(delimiter.as_bytes()).expect("a delimiter");
        if rest == b"--\r\n" {
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n".as_slice()).expect("CRLF after the delimiter");
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").expect("end of part headers");
        let headers: Vec<String> =
            String::from_utf8_lossy(&rest[..end]).split("\r\n").map(str::to_ascii_lowercase).collect();
        rest = &rest[end + 4..];
        let range = headers.iter().find_map(|h| h.strip_prefix("content-range: bytes ")).expect("content-range");
        let (span, _) = range.split_once('/').unwrap();
        let (first, last) = span.split_once('-').unwrap();
        let len = last.parse::<usize>().unwrap() - first.parse::<usize>().unwrap() + 1;
        parts.push((headers.clone(), rest[..len].to_vec()));
        rest = rest[len..].strip_prefix(b"\r\n".as_slice()).expect("CRLF before the next delimiter");
    }
}

#[tokio::test]
async fn conditional_requests_304_412_and_if_range() {
    let app = TestApp::spawn().await;
    let (id, data) = two_chunk_file(&app).await;
    let first = fetch(&app, id, &[]).await;
    let etag = text(first.headers(), "etag").to_string();
    let last_modified = text(first.headers(), "last-modified").to_string();
    let weak = format!("W/{etag}");
    let long_ago = "Sat, 01 Jan 2000 00:00:00 GMT";
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";

    let table: Vec<(Vec<(&str, &str)>, StatusCode)> = vec![
        (vec![("if-match", "\"nope\"")], StatusCode::PRECONDITION_FAILED),
        (vec![("if-match", &weak)], StatusCode::PRECONDITION_FAILED),
        (vec![("if-match", &etag)], StatusCode::OK),
        (vec![("if-match", "*")], StatusCode::OK),
        (vec![("if-unmodified-since", long_ago)], StatusCode::PRECONDITION_FAILED),
        (vec![("if-unmodified-since", &last_modified)], StatusCode::OK),
        (vec![("if-none-match", &etag)], StatusCode::NOT_MODIFIED),
        (vec![("if-none-match", &weak)], StatusCode::NOT_MODIFIED),
        (vec![("if-none-match", "\"nope\"")], StatusCode::OK),
        (vec![("if-modified-since", &last_modified)], StatusCode::NOT_MODIFIED),
        (vec![("if-modified-since", future)], StatusCode::NOT_MODIFIED),
        (vec![("if-modified-since", long_ago)], StatusCode::OK),
        // If-None-Match takes precedence over If-Modified-Since.
        (vec![("if-none-match", "\"nope\""), ("if-modified-since", future)], StatusCode::OK),
        (vec![("range", "bytes=0-9"), ("if-range", &etag)], StatusCode::PARTIAL_CONTENT),
        (vec![("range", "bytes=0-9"), ("if-range", &last_modified)], StatusCode::PARTIAL_CONTENT),
        (vec![("range", "bytes=0-9"), ("if-range", "\"old\"")], StatusCode::OK),
        (vec![("range", "bytes=0-9"), ("if-range", &weak)], StatusCode::OK),
        (vec![("range", "bytes=0-9"), ("if-range", long_ago)], StatusCode::OK),
        (vec![("range", "bytes=0-9"), ("if-match", &etag)], StatusCode::PARTIAL_CONTENT),
        (vec![("range", "bytes=0-9"), ("if-none-match", &etag)], StatusCode::NOT_MODIFIED),
    ];
    for (headers, expected) in table {
        let response = fetch(&app, id, &headers).await;
        assert_eq!(response.status(), expected, "{headers:?}");
        let status = response.status();
        let response_headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        match status {
            StatusCode::OK => assert_eq!(body, data, "{headers:?}"),
            StatusCode::PARTIAL_CONTENT => assert_eq!(body, data[..10], "{headers:?}"),
            StatusCode::NOT_MODIFIED => {
                assert!(body.is_empty());
                assert_eq!(text(&response_headers, "etag"), etag);
                assert_eq!(text(&response_headers, "cache-control"), api::config::DEFAULT_CACHE_CONTROL);
            }
            _ => {
                let error: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(error["code"], "precondition_failed");
                // An error is not the file: a cache must not keep it for the file's year.
                assert!(response_headers.get("cache-control").is_none(), "{headers:?}: {response_headers:?}");
                assert_eq!(text(&response_headers, "etag"), etag);
            }
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn unknown_unfinished_aborted_and_expired_uploads() {
    let app = TestApp::spawn_with(|c| c.service.policy.upload_ttl = std::time::Duration::from_secs(2)).await;
    let unknown = fetch(&app, Uuid::now_v7(), &[]).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown).await, "upload_not_found");

    let unfinished = app.create_upload(6 * MIB as u64, Some(5 * MIB as u64)).await;
    let response = fetch(&app, unfinished, &[]).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["code"].as_str(), body["state"].as_str()), (Some("upload_not_completed"), Some("uploading")));

    let aborted = app.create_upload(6 * MIB as u64, Some(5 * MIB as u64)).await;
    let response = app.http.delete(app.url(&format!("/v1/uploads/{aborted}"))).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let response = fetch(&app, aborted, &[]).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(error_code(response).await, "upload_aborted");

    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let response = fetch(&app, unfinished, &[]).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(error_code(response).await, "upload_expired");

    let response = app.get(&format!("/v1/files/{unfinished}?disposition=sideways")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "invalid_query");
    app.finish().await;
}

#[tokio::test]
async fn inline_disposition_encodes_any_filename() {
    let app = TestApp::spawn().await;
    let data = random_bytes(1000);
    let body =
        json!({ "filename": "Größe \"draft\" €.ogg", "size": data.len(), "contentType": "audio/ogg; codecs=opus" });
    let response = app.post_json("/v1/uploads", &body).await;
    let id: Uuid = response.json::<Value>().await.unwrap()["uploadId"].as_str().unwrap().parse().unwrap();
    app.upload_chunk(id, 0, &data).await;
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);

    let response = app.get(&format!("/v1/files/{id}?disposition=inline")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response.headers(), "content-disposition"),
        "inline; filename=\"Gr__e _draft_ _.ogg\"; filename*=UTF-8''Gr%C3%B6%C3%9Fe%20%22draft%22%20%E2%82%AC.ogg"
    );
    assert_eq!(text(response.headers(), "content-type"), "audio/ogg; codecs=opus");
    assert_eq!(response.bytes().await.unwrap(), data);
    app.finish().await;
}

#[tokio::test]
async fn redirect_answers_a_presigned_url_that_serves_ranges() {
    let app = TestApp::spawn().await;
    let (id, data) = two_chunk_file(&app).await;
    let response = app.unfollowed(reqwest::Method::GET, &format!("/v1/files/{id}?redirect=true")).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(text(response.headers(), "cache-control"), "no-store");
    let location = text(response.headers(), "location").to_string();
    assert!(location.starts_with(&app.env.s3_endpoint) && location.contains("X-Amz-Signature"), "{location}");

    let direct = app.plain.get(&location).send().await.unwrap();
    assert_eq!(direct.status(), StatusCode::OK);
    assert!(text(direct.headers(), "content-disposition").contains("filename*=UTF-8''file.bin"));
    assert_eq!(direct.bytes().await.unwrap(), data);
    let ranged = app.plain.get(&location).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), data[10..20]);
    app.finish().await;
}

#[tokio::test]
async fn head_with_redirect_goes_to_a_url_presigned_for_head() {
    let app = TestApp::spawn().await;
    let (id, data) = two_chunk_file(&app).await;
    let response = app.unfollowed(reqwest::Method::HEAD, &format!("/v1/files/{id}?redirect=true")).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = text(response.headers(), "location").to_string();

    let head = app.plain.head(&location).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK, "S3 refused the HEAD of {location}");
    assert_eq!(text(head.headers(), "content-length"), data.len().to_string());
    // The answer's headers are signed into the URL as for GET (LocalStack 4.13 does not echo them on HEAD).
    let url = reqwest::Url::parse(&location).unwrap();
    let disposition = url.query_pairs().find(|(k, _)| k == "response-content-disposition").map(|(_, v)| v.into_owned());
    assert!(disposition.is_some_and(|d| d.starts_with("attachment;") && d.contains("file.bin")), "{location}");
    // Signed for HEAD, not for GET: the methods are not interchangeable.
    assert_eq!(app.http.get(&location).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    app.finish().await;
}
