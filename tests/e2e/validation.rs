//! Every way a request can be wrong, as one table: each answers its own 4xx status and `code`, never a 500.

use e2e::{TestApp, sha256_hex};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::lifecycle::{CHUNK, MIB, answer};

const GIB: u64 = 1024 * MIB as u64;
const TIB: u64 = 1024 * GIB;

#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    /// Bytes sent as they are, with this content type (or none).
    Raw(Option<&'static str>, Vec<u8>),
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    body: Body,
    status: u16,
    code: &'static str,
    /// A field the error body must carry, with its value.
    field: Option<(&'static str, Value)>,
}

fn case(
    name: &'static str,
    method: Method,
    path: impl Into<String>,
    body: Body,
    status: u16,
    code: &'static str,
) -> Case {
    Case { name, method, path: path.into(), body, status, code, field: None }
}

impl Case {
    fn with(mut self, key: &'static str, value: Value) -> Self {
        self.field = Some((key, value));
        self
    }
}

fn json_body(value: Value) -> Body {
    Body::Json(value)
}

/// The six routes of one upload, each with a well-formed request.
fn every_route(id: Uuid, name: &'static str, status: u16, code: &'static str) -> Vec<Case> {
    let sha = sha256_hex(b"chunk");
    vec![
        case(name, Method::GET, format!("/v1/uploads/{id}"), Body::None, status, code),
        case(
            name,
            Method::POST,
            format!("/v1/uploads/{id}/chunks/0/url"),
            json_body(json!({ "sha256": sha })),
            status,
            code,
        ),
        case(
            name,
            Method::POST,
            format!("/v1/uploads/{id}/urls"),
            json_body(json!({ "chunks": [{ "index": 0, "sha256": sha }] })),
            status,
            code,
        ),
        case(
            name,
            Method::PUT,
            format!("/v1/uploads/{id}/chunks/0"),
            json_body(json!({ "etag": "\"e\"", "sha256": sha })),
            status,
            code,
        ),
        case(name, Method::POST, format!("/v1/uploads/{id}/complete"), Body::None, status, code),
        case(name, Method::DELETE, format!("/v1/uploads/{id}"), Body::None, status, code),
    ]
}

/// Live: 3 chunks, chunk 0 declared. Plus an unknown, an aborted, an expired and a completed upload.
async fn cases(app: &TestApp) -> Vec<Case> {
    let live = app.create_upload((2 * CHUNK + 1) as u64, Some(CHUNK as u64)).await;
    app.chunk_url(live, 0, b"declared").await;
    let aborted = app.create_upload(10, None).await;
    assert_eq!(app.http.delete(app.url(&format!("/v1/uploads/{aborted}"))).send().await.unwrap().status(), 204);
    let expired = app.create_upload(10, None).await;
    app.lapse_deadline(expired).await;
    let completed = app.create_upload(0, None).await;
    assert_eq!(app.complete(completed).await.status(), 200);
    let unknown = Uuid::now_v7();

    let sha = sha256_hex(b"chunk");
    let create = |name, body, status, code| case(name, Method::POST, "/v1/uploads", body, status, code);
    let file = |extra: Value| {
        let mut body = json!({ "filename": "a.bin", "size": 100 });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json_body(body)
    };
    let url = |name, index: &str, body, status, code| {
        case(name, Method::POST, format!("/v1/uploads/{live}/chunks/{index}/url"), body, status, code)
    };
    let urls = |name, chunks: Value, status, code| {
        case(
            name,
            Method::POST,
            format!("/v1/uploads/{live}/urls"),
            json_body(json!({ "chunks": chunks })),
            status,
            code,
        )
    };
    let confirm = |name, index: u32, body: Value, status, code| {
        case(name, Method::PUT, format!("/v1/uploads/{live}/chunks/{index}"), json_body(body), status, code)
    };
    let with_sha = json_body(json!({ "sha256": sha }));

    let mut all = vec![
        // Bodies the JSON extractor refuses.
        create("bad JSON", Body::Raw(Some("application/json"), b"{\"filename\":".to_vec()), 400, "malformed_json"),
        create("missing field", json_body(json!({ "size": 1 })), 422, "invalid_body"),
        create("unknown field", file(json!({ "colour": "red" })), 422, "invalid_body"),
        create("wrong type", file(json!({ "size": "big" })), 422, "invalid_body"),
        create("negative size", file(json!({ "size": -1 })), 422, "invalid_body"),
        create("wrong content type", Body::Raw(Some("text/plain"), b"{}".to_vec()), 415, "json_required"),
        create("no content type", Body::Raw(None, b"{}".to_vec()), 415, "json_required"),
        create("body too large", file(json!({ "metadata": { "x": "a".repeat(100_000) } })), 413, "body_too_large"),
        // Values the service refuses.
        create("empty filename", file(json!({ "filename": " " })), 422, "invalid_filename"),
        create("bidi override in filename", file(json!({ "filename": "a\u{202E}4pm.exe" })), 422, "invalid_filename")
            .with("character", json!("U+202E")),
        create("bad content type", file(json!({ "contentType": "video" })), 422, "invalid_content_type"),
        create(
            "content type list",
            file(json!({ "contentType": "text/html, video/mp4" })),
            422,
            "invalid_content_type",
        ),
        create("metadata not an object", file(json!({ "metadata": [1] })), 422, "invalid_metadata"),
        create("metadata too large", file(json!({ "metadata": { "x": "a".repeat(20_000) } })), 422, "invalid_metadata"),
        create("metadata with NUL", file(json!({ "metadata": { "x": "a\u{0}b" } })), 422, "invalid_metadata"),
        create("size past u64", file(json!({ "size": 1e30 })), 422, "invalid_body"),
        create("bad file hex", file(json!({ "sha256": "xyz" })), 422, "invalid_sha256"),
        create("chunk size 0", file(json!({ "chunkSize": 0 })), 422, "chunk_size_too_small"),
        create(
            "chunk size too small",
            file(json!({ "size": 20 * MIB, "chunkSize": MIB })),
            422,
            "chunk_size_too_small",
        )
        .with("minChunkSize", json!(5 * MIB)),
        create(
            "chunk size too large",
            file(json!({ "size": 10 * GIB, "chunkSize": 5 * GIB + 1 })),
            422,
            "chunk_size_too_large",
        )
        .with("maxChunkSize", json!(5 * GIB)),
        create("too many chunks", file(json!({ "size": 100 * GIB, "chunkSize": CHUNK })), 422, "too_many_chunks")
            .with("smallestChunkSize", json!((100 * GIB).div_ceil(10_000))),
        create("over MAX_UPLOAD_SIZE", file(json!({ "size": 5 * TIB + 1 })), 422, "upload_too_large")
            .with("maxUploadSize", json!(5 * TIB)),
        // Chunk URLs.
        url("bad chunk hex", "0", json_body(json!({ "sha256": "12" })), 422, "invalid_sha256"),
        url("missing sha256", "0", json_body(json!({})), 422, "invalid_body"),
        url("index not a number", "x", with_sha.clone(), 400, "invalid_path"),
        url("negative index", "-1", with_sha.clone(), 400, "invalid_path"),
        url("index past u32", "4294967296", with_sha.clone(), 400, "invalid_path"),
        url("index out of range", "3", with_sha.clone(), 409, "chunk_index_out_of_range").with("totalChunks", json!(3)),
        url("index past i32", "4294967295", with_sha.clone(), 422, "chunk_index_out_of_range"),
        case("malformed id", Method::POST, "/v1/uploads/not-a-uuid/chunks/0/url", with_sha, 400, "invalid_path"),
        // Batches.
        urls("empty batch", json!([]), 422, "empty_batch"),
        urls(
            "batch over 100",
            (0..101).map(|i| json!({ "index": i, "sha256": sha })).collect(),
            422,
            "batch_too_large",
        ),
        urls(
            "batch index out of range",
            json!([{ "index": 0, "sha256": sha }, { "index": 7, "sha256": sha }]),
            409,
            "chunk_index_out_of_range",
        ),
        urls("batch bad hex", json!([{ "index": 0, "sha256": "no" }]), 422, "invalid_sha256"),
        urls("chunks not a list", json!("all"), 422, "invalid_body"),
        // Confirmations.
        confirm("missing etag", 0, json!({ "sha256": sha }), 422, "invalid_body"),
        confirm("bad etag", 0, json!({ "etag": "a b", "sha256": sha }), 422, "invalid_etag"),
        confirm("bad confirm hex", 0, json!({ "etag": "e", "sha256": "zz" }), 422, "invalid_sha256"),
        confirm("chunk never declared", 1, json!({ "etag": "e", "sha256": sha }), 409, "chunk_not_declared"),
        confirm("confirm out of range", 9, json!({ "etag": "e", "sha256": sha }), 409, "chunk_index_out_of_range"),
        confirm(
            "confirm index past i32",
            u32::MAX,
            json!({ "etag": "e", "sha256": sha }),
            422,
            "chunk_index_out_of_range",
        ),
        confirm("checksum other than declared", 0, json!({ "etag": "e", "sha256": sha }), 409, "checksum_conflict")
            .with("declaredSha256", json!(sha256_hex(b"declared"))),
        // Status, routes.
        case(
            "bad reconcile flag",
            Method::GET,
            format!("/v1/uploads/{live}?reconcile=maybe"),
            Body::None,
            400,
            "invalid_query",
        ),
        case("malformed id", Method::GET, "/v1/uploads/123", Body::None, 400, "invalid_path"),
        case("unknown route", Method::GET, "/v1/nothing", Body::None, 404, "route_not_found"),
        case("wrong method", Method::PATCH, format!("/v1/uploads/{live}"), Body::None, 405, "method_not_allowed"),
    ];
    all.extend(every_route(unknown, "unknown upload", 404, "upload_not_found"));
    all.extend(every_route(aborted, "aborted upload", 410, "upload_aborted"));
    all.extend(every_route(expired, "expired upload", 410, "upload_expired"));
    let mut after_completion = every_route(completed, "completed upload", 409, "upload_completed");
    after_completion.retain(|c| c.method != Method::GET && !c.path.ends_with("/complete"));
    all.extend(after_completion);
    all
}

#[tokio::test]
async fn every_validation_error_has_its_status_and_code() {
    let app = TestApp::spawn().await;
    let cases = cases(&app).await;
    let mut failures = Vec::new();
    for case in &cases {
        let mut request = app.http.request(case.method.clone(), app.url(&case.path));
        request = match &case.body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Raw(content_type, bytes) => {
                let request = request.body(bytes.clone());
                match content_type {
                    Some(value) => request.header("content-type", *value),
                    None => request,
                }
            }
        };
        let (status, body) = answer(request.send().await.expect("request")).await;
        let message_ok = body["message"].as_str().is_some_and(|m| !m.is_empty());
        let field_ok = case.field.as_ref().is_none_or(|(key, value)| &body[*key] == value);
        // No case expects a 5xx: bad input must never look like a server fault.
        if status.is_server_error()
            || status.as_u16() != case.status
            || body["code"] != case.code
            || !message_ok
            || !field_ok
        {
            failures.push(format!(
                "{} ({} {}): expected {} {}{}, got {status} {body}",
                case.name,
                case.method,
                case.path,
                case.status,
                case.code,
                case.field.as_ref().map(|(k, v)| format!(" with {k}={v}")).unwrap_or_default()
            ));
        }
    }
    println!("{} validation cases checked", cases.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    app.finish().await;
}
