//! The upload lifecycle end to end: create, presigned URLs, real PUTs to S3, confirm, status, complete, abort.

use e2e::{ChunkUrl, TestApp, random_bytes, sha256_hex};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use uploads::storage::S3Operation;
use uuid::Uuid;

pub const MIB: usize = 1024 * 1024;
pub const CHUNK: usize = 5 * MIB;

/// Status and JSON body of an answer.
pub async fn answer(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text })))
}

/// Every index in `[[first, last], ...]` ranges.
pub fn indices(ranges: &Value) -> Vec<u32> {
    let ranges = ranges.as_array().expect("ranges");
    ranges.iter().flat_map(|r| r[0].as_u64().unwrap() as u32..=r[1].as_u64().unwrap() as u32).collect()
}

fn completes(app: &TestApp) -> u64 {
    app.state.uploads.storage().calls().get(S3Operation::CompleteMultipartUpload)
}

async fn batch_urls(app: &TestApp, id: Uuid, chunks: &[(u32, &[u8])]) -> Vec<ChunkUrl> {
    let body = json!({ "chunks": chunks.iter().map(|(i, c)| json!({ "index": i, "sha256": sha256_hex(c) })).collect::<Vec<_>>() });
    let response = app.post_json(&format!("/v1/uploads/{id}/urls"), &body).await;
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body["urls"].clone()).expect("urls")
}

/// A random file of `size` bytes and a new upload for it in 5 MiB chunks.
async fn new_upload(app: &TestApp, size: usize) -> (Uuid, Vec<u8>) {
    let data = random_bytes(size);
    (app.create_upload(size as u64, Some(CHUNK as u64)).await, data)
}

/// URL and PUT, but no confirmation: the client died right after S3's 200.
async fn put_unconfirmed(app: &TestApp, id: Uuid, index: u32, chunk: &[u8]) {
    let url = app.chunk_url(id, index, chunk).await;
    let put = app.put_to_s3(&url, chunk.to_vec()).await;
    assert_eq!(put.status(), StatusCode::OK, "{}", put.text().await.unwrap_or_default());
}

#[tokio::test]
async fn three_chunks_from_create_to_completed_object() {
    let app = TestApp::spawn().await;
    let data = random_bytes(2 * CHUNK + 1);
    let response = app
        .post_json(
            "/v1/uploads",
            &json!({ "filename": "film.bin", "size": data.len(), "chunkSize": CHUNK, "sha256": sha256_hex(&data),
                     "contentType": "video/mp4", "metadata": { "album": "summer" } }),
        )
        .await;
    let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    let (status, created) = answer(response).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id: Uuid = created["uploadId"].as_str().unwrap().parse().unwrap();
    assert_eq!(location, Some(format!("/v1/uploads/{id}")));
    assert_eq!(created["state"], "uploading");
    assert_eq!(
        (created["size"].as_u64(), created["chunkSize"].as_u64()),
        (Some(data.len() as u64), Some(CHUNK as u64))
    );
    assert_eq!(created["totalChunks"], 3);
    assert!(created["expiresAt"].is_string());

    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [CHUNK, CHUNK, 1]);
    let urls = batch_urls(&app, id, &[(0, chunks[0]), (1, chunks[1]), (2, chunks[2])]).await;
    assert_eq!(urls.iter().map(|u| (u.index, u.part_number)).collect::<Vec<_>>(), [(0, 1), (1, 2), (2, 3)]);
    for (url, chunk) in urls.iter().zip(&chunks) {
        assert_eq!(url.method, "PUT");
        let put = app.put_to_s3(url, chunk.to_vec()).await;
        assert_eq!(put.status(), StatusCode::OK);
        let etag = put.headers()["etag"].to_str().unwrap().to_string();
        let (status, confirmed) = answer(app.confirm_chunk(id, url.index, &etag, chunk).await).await;
        assert_eq!(status, StatusCode::OK, "{confirmed}");
        assert_eq!((confirmed["index"].as_u64(), confirmed["etag"].as_str()), (Some(url.index as u64), Some(&*etag)));
        assert_eq!(confirmed["sha256"], sha256_hex(chunk));
        assert!(confirmed["receivedAt"].is_string());
    }

    let status = app.status(id, false).await;
    assert_eq!(status["receivedChunks"], json!([[0, 2]]));
    assert_eq!(status["missingChunks"], json!([]));
    assert_eq!(status["nextExpectedChunk"], Value::Null);
    assert_eq!(status["receivedBytes"], data.len());
    assert_eq!(status["sha256"], sha256_hex(&data));

    let (code, completed) = answer(app.complete(id).await).await;
    assert_eq!(code, StatusCode::OK, "{completed}");
    assert_eq!(completed["state"], "completed");
    assert_eq!(completed["size"], data.len());
    assert!(completed["etag"].as_str().unwrap().ends_with("-3\""), "{completed}");
    let download_url = completed["downloadUrl"].as_str().unwrap();
    assert!(download_url.starts_with(&app.url(&format!("/v1/files/{id}?expires="))), "{download_url}");
    assert!(app.object_bytes(id).await == data, "the object in S3 differs from the file");
    let head = app.storage.client().head_object().bucket(app.storage.bucket()).key(format!("uploads/{id}")).send();
    assert_eq!(head.await.unwrap().content_type(), Some("video/mp4"));
    assert!(app.s3_multipart_uploads().await.is_empty());

    let status = app.status(id, false).await;
    assert_eq!((status["state"].as_str(), status["etag"].clone()), (Some("completed"), completed["etag"].clone()));
    assert_eq!(status["receivedChunks"], json!([[0, 2]]));
    assert_eq!(status["metadata"], json!({ "album": "summer" }));
    app.finish().await;
}

#[tokio::test]
async fn a_new_client_resumes_by_sending_only_the_missing_chunks() {
    let mut app = TestApp::spawn().await;
    let (id, data) = new_upload(&app, 3 * CHUNK + 7).await;
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    app.upload_chunk(id, 0, chunks[0]).await;
    app.upload_chunk(id, 2, chunks[2]).await;

    // "Crash": the old client and its connections are gone; a new one knows only the upload id and the file.
    app.http = app.client_for(TestApp::OWNER);
    let status = app.status(id, false).await;
    assert_eq!(status["receivedChunks"], json!([[0, 0], [2, 2]]));
    assert_eq!(status["nextExpectedChunk"], 1);
    assert_eq!(status["receivedBytes"], 2 * CHUNK);
    let to_send = indices(&status["missingChunks"]);
    assert_eq!(to_send, [1, 3]);
    for index in &to_send {
        app.upload_chunk(id, *index, chunks[*index as usize]).await;
    }
    let response = app.complete(id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(app.object_bytes(id).await == data);
    app.finish().await;
}

#[tokio::test]
async fn a_lost_confirmation_is_found_by_reconcile_and_by_complete() {
    let app = TestApp::spawn().await;
    let (id, data) = new_upload(&app, 2 * CHUNK + 1).await;
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    app.upload_chunk(id, 0, chunks[0]).await;
    put_unconfirmed(&app, id, 1, chunks[1]).await;

    assert_eq!(app.status(id, false).await["missingChunks"], json!([[1, 2]]));
    let reconciled = app.status(id, true).await;
    assert_eq!(reconciled["receivedChunks"], json!([[0, 1]]));
    assert_eq!(reconciled["missingChunks"], json!([[2, 2]]));
    // Recorded, not only reported: a plain status agrees afterwards.
    assert_eq!(app.status(id, false).await["receivedChunks"], json!([[0, 1]]));

    put_unconfirmed(&app, id, 2, chunks[2]).await;
    let (status, body) = answer(app.complete(id).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(app.object_bytes(id).await == data);
    app.finish().await;
}

#[tokio::test]
async fn completing_with_a_missing_chunk_is_409_listing_it_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (id, data) = new_upload(&app, 2 * CHUNK + 1).await;
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    app.upload_chunk(id, 0, chunks[0]).await;
    app.upload_chunk(id, 2, chunks[2]).await;

    let (status, body) = answer(app.complete(id).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "chunks_missing");
    assert_eq!(body["missingChunks"], json!([[1, 1]]));
    assert_eq!(completes(&app), 0);
    assert_eq!(app.status(id, false).await["state"], "uploading");

    app.upload_chunk(id, 1, chunks[1]).await;
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    assert!(app.object_bytes(id).await == data);
    app.finish().await;
}

#[tokio::test]
async fn completing_twice_answers_the_same_and_calls_s3_once() {
    let app = TestApp::spawn().await;
    let (id, data) = new_upload(&app, CHUNK + 10).await;
    for (index, chunk) in data.chunks(CHUNK).enumerate() {
        app.upload_chunk(id, index as u32, chunk).await;
    }
    let (first_status, first) = answer(app.complete(id).await).await;
    let (again_status, again) = answer(app.complete(id).await).await;
    assert_eq!((first_status, again_status), (StatusCode::OK, StatusCode::OK), "{first} {again}");
    assert_eq!(unsigned(first), unsigned(again.clone()));
    assert_eq!(again["state"], "completed");
    assert_eq!(completes(&app), 1);
    app.finish().await;
}

/// A completion's answer without its link's expiry and signature, which depend on the second it was made.
fn unsigned(mut completed: Value) -> Value {
    let url = completed["downloadUrl"].as_str().expect("downloadUrl").to_string();
    let (file, query) = url.split_once('?').expect("a signed link");
    assert!(query.starts_with("expires=") && query.contains("&sig="), "{url}");
    completed["downloadUrl"] = json!(file);
    completed
}

#[tokio::test]
async fn concurrent_completes_call_complete_multipart_upload_once() {
    let app = TestApp::spawn().await;
    let (id, data) = new_upload(&app, 2 * CHUNK + 3).await;
    for (index, chunk) in data.chunks(CHUNK).enumerate() {
        app.upload_chunk(id, index as u32, chunk).await;
    }
    assert_eq!(completes(&app), 0);
    // Eight at once, not two, so that the race is real on a busy machine too.
    let answers = futures::future::join_all((0..8).map(|_| async { answer(app.complete(id).await).await })).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(unsigned(body.clone()), unsigned(answers[0].1.clone()));
    }
    assert_eq!(completes(&app), 1, "racing completes must call CompleteMultipartUpload exactly once");
    assert!(app.object_bytes(id).await == data);
    app.finish().await;
}

#[tokio::test]
async fn abort_removes_the_multipart_upload_and_later_calls_get_410() {
    let app = TestApp::spawn().await;
    let (id, data) = new_upload(&app, CHUNK + 1).await;
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    app.upload_chunk(id, 0, chunks[0]).await;
    let pending_url = app.chunk_url(id, 1, chunks[1]).await;
    assert_eq!(app.s3_multipart_uploads().await.len(), 1);

    let response = app.http.delete(app.url(&format!("/v1/uploads/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(app.s3_multipart_uploads().await.is_empty(), "S3 still holds the multipart upload");
    assert_eq!(app.state.uploads.storage().calls().get(S3Operation::AbortMultipartUpload), 1);
    // A URL handed out before the abort no longer leads anywhere.
    let put = app.put_to_s3(&pending_url, chunks[1].to_vec()).await;
    assert_eq!(put.status(), StatusCode::NOT_FOUND, "{}", put.text().await.unwrap_or_default());

    let sha = sha256_hex(chunks[1]);
    let later = [
        app.get(&format!("/v1/uploads/{id}")).await,
        app.post_json(&format!("/v1/uploads/{id}/chunks/1/url"), &json!({ "sha256": sha })).await,
        app.post_json(&format!("/v1/uploads/{id}/urls"), &json!({ "chunks": [{ "index": 1, "sha256": sha }] })).await,
        app.confirm_chunk(id, 0, "\"abc\"", chunks[0]).await,
        app.complete(id).await,
        app.http.delete(app.url(&format!("/v1/uploads/{id}"))).send().await.unwrap(),
    ];
    for response in later {
        let url = response.url().path().to_string();
        let (status, body) = answer(response).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::GONE, Some("upload_aborted")), "{url}: {body}");
        assert_eq!(body["state"], "aborted");
    }
    app.finish().await;
}

#[tokio::test]
async fn a_zero_byte_upload_is_one_empty_object() {
    let app = TestApp::spawn().await;
    let response = app.post_json("/v1/uploads", &json!({ "filename": "empty.txt", "size": 0 })).await;
    let (status, created) = answer(response).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["totalChunks"], 0);
    let id: Uuid = created["uploadId"].as_str().unwrap().parse().unwrap();
    assert!(app.s3_multipart_uploads().await.is_empty(), "no multipart upload for zero bytes");

    let status = app.status(id, true).await;
    assert_eq!((status["receivedChunks"].clone(), status["missingChunks"].clone()), (json!([]), json!([])));
    assert_eq!(status["nextExpectedChunk"], Value::Null);
    let (code, body) =
        answer(app.post_json(&format!("/v1/uploads/{id}/chunks/0/url"), &json!({ "sha256": sha256_hex(b"") })).await)
            .await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::CONFLICT, Some("chunk_index_out_of_range")));

    let (code, completed) = answer(app.complete(id).await).await;
    assert_eq!(code, StatusCode::OK, "{completed}");
    assert_eq!((completed["state"].as_str(), completed["size"].as_u64()), (Some("completed"), Some(0)));
    assert!(app.object_bytes(id).await.is_empty());
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn re_uploading_a_chunk_with_other_bytes_needs_a_new_url_first() {
    let app = TestApp::spawn().await;
    let head = random_bytes(CHUNK);
    let (old_tail, new_tail) = (random_bytes(1000), random_bytes(1000));
    let id = app.create_upload((CHUNK + 1000) as u64, Some(CHUNK as u64)).await;
    app.upload_chunk(id, 0, &head).await;
    let old_etag = app.upload_chunk(id, 1, &old_tail).await;

    // Other bytes reported under the old URL's checksum: refused, naming the checksum on record.
    let (status, body) = answer(app.confirm_chunk(id, 1, &old_etag, &new_tail).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("checksum_conflict")), "{body}");
    assert_eq!(body["declaredSha256"], sha256_hex(&old_tail));

    // A new URL with the new checksum makes the chunk missing until the new bytes arrive.
    let url = app.chunk_url(id, 1, &new_tail).await;
    assert_eq!(app.status(id, false).await["missingChunks"], json!([[1, 1]]));
    // S3 still holds the old bytes: completing now must not stitch them in.
    let (status, body) = answer(app.complete(id).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("part_mismatch")), "{body}");
    assert_eq!(body["mismatches"][0]["index"], 1);
    assert_eq!(body["mismatches"][0]["storedSha256"], sha256_hex(&old_tail));

    let put = app.put_to_s3(&url, new_tail.clone()).await;
    assert_eq!(put.status(), StatusCode::OK);
    let etag = put.headers()["etag"].to_str().unwrap().to_string();
    let (status, body) = answer(app.confirm_chunk(id, 1, &etag, &new_tail).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    assert!(app.object_bytes(id).await == [head, new_tail].concat());
    app.finish().await;
}

#[tokio::test]
async fn a_confirmation_without_a_put_is_caught_by_reconcile_and_complete() {
    let app = TestApp::spawn().await;
    let (id, data) = new_upload(&app, CHUNK + 1).await;
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    app.upload_chunk(id, 0, chunks[0]).await;
    app.chunk_url(id, 1, chunks[1]).await;
    let lie = app.confirm_chunk(id, 1, "\"0123456789abcdef0123456789abcdef\"", chunks[1]).await;
    assert_eq!(lie.status(), StatusCode::OK);
    assert_eq!(app.status(id, false).await["missingChunks"], json!([]));

    assert_eq!(app.status(id, true).await["missingChunks"], json!([[1, 1]]));
    // The client insists; completion checks S3 itself.
    assert_eq!(app.confirm_chunk(id, 1, "\"0123456789abcdef0123456789abcdef\"", chunks[1]).await.status(), 200);
    let (status, body) = answer(app.complete(id).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("chunks_missing")), "{body}");
    assert_eq!(body["missingChunks"], json!([[1, 1]]));
    assert_eq!(completes(&app), 0);
    app.finish().await;
}

#[tokio::test]
async fn status_of_a_10000_chunk_upload_stays_a_few_ranges() {
    let app = TestApp::spawn().await;
    let id = app.create_upload(10_000 * CHUNK as u64, Some(CHUNK as u64)).await;
    // Declaring and receiving 10,000 chunks through S3 would take minutes: write the rows directly.
    sqlx::query(
        "INSERT INTO chunks (upload_id, index, sha256, size, etag, received_at) \
         SELECT $1, i, sha256(i::text::bytea), $2, '\"e\"', now() FROM generate_series(0, 9999) AS i \
         WHERE i NOT IN (42, 5000, 9999)",
    )
    .bind(id)
    .bind(CHUNK as i64)
    .execute(&app.pool)
    .await
    .unwrap();

    let response = app.get(&format!("/v1/uploads/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["totalChunks"], 10_000);
    assert_eq!(status["receivedChunks"], json!([[0, 41], [43, 4999], [5001, 9998]]));
    assert_eq!(status["missingChunks"], json!([[42, 42], [5000, 5000], [9999, 9999]]));
    assert_eq!(status["nextExpectedChunk"], 42);
    assert_eq!(status["receivedBytes"], 9_997 * CHUNK as u64);
    assert!(text.len() < 2048, "status of 10,000 chunks is {} bytes: {text}", text.len());
    println!("status of a 10,000-chunk upload: {} bytes", text.len());

    // The last index is addressable, the one past it is not.
    let url = app.post_json(&format!("/v1/uploads/{id}/chunks/9999/url"), &json!({ "sha256": sha256_hex(b"x") })).await;
    assert_eq!(url.status(), StatusCode::OK);
    app.finish().await;
}
