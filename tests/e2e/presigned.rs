//! What S3 itself enforces through our presigned UploadPart URLs: the chunk's SHA-256, the signature, the expiry.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use e2e::{ChunkUrl, TestApp, random_bytes, sha256_hex};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::lifecycle::CHUNK;

fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).expect("url");
    url.query_pairs().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.into_owned())
}

/// A 1,000-byte upload and the URL for its only chunk.
async fn one_chunk_upload(app: &TestApp) -> (uuid::Uuid, Vec<u8>, ChunkUrl) {
    let chunk = random_bytes(1000);
    let id = app.create_upload(1000, None).await;
    let url = app.chunk_url(id, 0, &chunk).await;
    (id, chunk, url)
}

/// Guards aws-sdk-rust #1103 (checksum ignored when presigning): the checksum must be a signed header.
#[tokio::test]
async fn the_chunk_checksum_is_a_signed_header_of_the_url() {
    let app = TestApp::spawn().await;
    let (_, chunk, url) = one_chunk_upload(&app).await;

    let signed = query_param(&url.url, "X-Amz-SignedHeaders").expect("a SigV4 presigned URL");
    assert!(signed.split(';').any(|h| h == "x-amz-checksum-sha256"), "signed headers: {signed}");
    assert!(signed.split(';').any(|h| h == "content-length"), "signed headers: {signed}");
    let expected = BASE64.encode(Sha256::digest(&chunk));
    // Exactly the one checksum the client declared (no CRC32, no x-amz-sdk-checksum-algorithm to send), and
    // the chunk's planned length.
    assert_eq!(
        url.headers.into_iter().collect::<Vec<_>>(),
        [("content-length".to_string(), "1000".to_string()), ("x-amz-checksum-sha256".to_string(), expected)]
    );
    assert_eq!(query_param(&url.url, "partNumber").as_deref(), Some("1"));
    app.finish().await;
}

#[tokio::test]
async fn s3_rejects_corrupt_bytes_and_the_chunk_stays_missing() {
    let app = TestApp::spawn().await;
    let chunk = random_bytes(CHUNK);
    let mut corrupt = chunk.clone();
    corrupt[12345] ^= 0xff;
    let id = app.create_upload((CHUNK + 1) as u64, Some(CHUNK as u64)).await;
    let url = app.chunk_url(id, 0, &chunk).await;

    let put = app.put_to_s3(&url, corrupt.clone()).await;
    assert_eq!(put.status(), StatusCode::BAD_REQUEST);
    let text = put.text().await.unwrap();
    assert!(text.contains("BadDigest"), "{text}");

    let status = app.status(id, true).await;
    assert_eq!(status["missingChunks"], json!([[0, 1]]));
    let parts = app.state.uploads.storage().client().list_multipart_uploads().bucket(app.storage.bucket()).send();
    let upload = parts.await.unwrap().uploads()[0].clone();
    let listed = app
        .storage
        .client()
        .list_parts()
        .bucket(app.storage.bucket())
        .key(upload.key().unwrap())
        .upload_id(upload.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    assert!(listed.parts().is_empty(), "S3 kept a corrupt part: {listed:?}");

    // The right bytes still go through the same URL.
    assert_eq!(app.put_to_s3(&url, chunk).await.status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn s3_rejects_a_tampered_url_or_a_missing_checksum_header() {
    let app = TestApp::spawn().await;
    let (id, chunk, url) = one_chunk_upload(&app).await;

    let mut other_part = url.clone();
    other_part.url = url.url.replace("partNumber=1", "partNumber=2");
    assert_ne!(other_part.url, url.url);
    let put = app.put_to_s3(&other_part, chunk.clone()).await;
    assert_eq!(put.status(), StatusCode::FORBIDDEN, "{}", put.text().await.unwrap_or_default());

    let mut bad_signature = url.clone();
    let signature = query_param(&url.url, "X-Amz-Signature").unwrap();
    let flipped: String = signature.chars().rev().collect();
    bad_signature.url = url.url.replace(&signature, &flipped);
    let put = app.put_to_s3(&bad_signature, chunk.clone()).await;
    assert_eq!(put.status(), StatusCode::FORBIDDEN, "{}", put.text().await.unwrap_or_default());

    let mut no_header = url.clone();
    no_header.headers.clear();
    let put = app.put_to_s3(&no_header, chunk.clone()).await;
    assert_eq!(put.status(), StatusCode::FORBIDDEN, "{}", put.text().await.unwrap_or_default());

    assert_eq!(app.status(id, true).await["missingChunks"], json!([[0, 0]]));
    assert_eq!(app.put_to_s3(&url, chunk).await.status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn s3_rejects_an_expired_url() {
    let app = TestApp::spawn_with(|config| config.service.policy.presign_ttl = Duration::from_secs(1)).await;
    let chunk = random_bytes(1000);
    let id = app.create_upload(1000, None).await;
    let response =
        app.post_json(&format!("/v1/uploads/{id}/chunks/0/url"), &json!({ "sha256": sha256_hex(&chunk) })).await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(query_param(body["url"].as_str().unwrap(), "X-Amz-Expires").as_deref(), Some("1"));
    let url: ChunkUrl = serde_json::from_value(body).unwrap();

    tokio::time::sleep(Duration::from_secs(3)).await;
    let put = app.put_to_s3(&url, chunk.clone()).await;
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    let text = put.text().await.unwrap();
    assert!(text.to_lowercase().contains("expired"), "{text}");
    assert_eq!(app.status(id, true).await["missingChunks"], json!([[0, 0]]));
    app.finish().await;
}

/// A client re-sends a received chunk and the bytes get corrupted on the way: S3 says BadDigest. The upload must
/// still never be "completed" with an object other than the file. (Seen with LocalStack 4.13: the refused PUT
/// empties the stored part while ListParts still reports it as it was, so CompleteMultipartUpload assembles a
/// short object; real S3 keeps the earlier part.)
#[tokio::test]
async fn a_refused_re_put_of_a_received_chunk_never_completes_into_a_wrong_object() {
    let app = TestApp::spawn().await;
    let data = random_bytes(CHUNK + 1000);
    let (head, tail) = data.split_at(CHUNK);
    let id = app.create_upload(data.len() as u64, Some(CHUNK as u64)).await;
    let url = app.chunk_url(id, 0, head).await;
    let put = app.put_to_s3(&url, head.to_vec()).await;
    assert_eq!(put.status(), StatusCode::OK);
    let etag = put.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(app.confirm_chunk(id, 0, &etag, head).await.status(), StatusCode::OK);
    let mut corrupt = head.to_vec();
    corrupt[0] ^= 1;
    assert_eq!(app.put_to_s3(&url, corrupt).await.status(), StatusCode::BAD_REQUEST);
    app.upload_chunk(id, 1, tail).await;

    let (status, body) = crate::lifecycle::answer(app.complete(id).await).await;
    if status == StatusCode::OK {
        assert!(app.object_bytes(id).await == data, "completed, but the object is not the file");
    } else {
        // The multipart upload is consumed and the assembled object wrong: the upload is lost, and says so.
        println!("S3 lost the part under the refused PUT; completion refused: {status} {body}");
        assert_eq!((status, body["code"].as_str()), (StatusCode::GONE, Some("upload_lost")), "{body}");
        let (later, state) = crate::lifecycle::answer(app.get(&format!("/v1/uploads/{id}")).await).await;
        assert_eq!((later, state["state"].as_str()), (StatusCode::GONE, Some("aborted")), "{state}");
        let object = app.storage.head_object(&format!("uploads/{id}")).await.unwrap();
        assert!(object.is_none(), "the wrong object outlived its upload");
    }
    app.finish().await;
}

/// The URL signs the chunk's planned length: a body one byte longer or shorter is refused by S3 before its
/// checksum is even looked at, so a part can never be larger than planned.
#[tokio::test]
async fn s3_rejects_a_part_of_another_length_than_planned() {
    let app = TestApp::spawn().await;
    let chunk = random_bytes(CHUNK);
    let id = app.create_upload((CHUNK + 10) as u64, Some(CHUNK as u64)).await;
    let url = app.chunk_url(id, 0, &chunk).await;
    assert_eq!(url.headers.get("content-length").map(String::as_str), Some(CHUNK.to_string().as_str()));

    let mut longer = chunk.clone();
    longer.push(0);
    for (what, body) in [("one byte more", longer), ("one byte less", chunk[..CHUNK - 1].to_vec())] {
        let put = app.put_to_s3(&url, body).await;
        let status = put.status();
        let text = put.text().await.unwrap_or_default();
        println!("{what}: S3 answered {status}: {text}");
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {text}");
        assert!(text.contains("SignatureDoesNotMatch"), "{what}: {text}");
    }
    assert_eq!(app.status(id, true).await["missingChunks"], json!([[0, 1]]));
    assert_eq!(app.put_to_s3(&url, chunk).await.status(), StatusCode::OK);

    // The last, shorter chunk is signed for its own length.
    let tail = random_bytes(10);
    let url = app.chunk_url(id, 1, &tail).await;
    assert_eq!(url.headers.get("content-length").map(String::as_str), Some("10"));
    assert_eq!(app.put_to_s3(&url, tail).await.status(), StatusCode::OK);
    app.finish().await;
}

/// A URL request commits without waiting for the disk, for its own transaction only: the connection it ran
/// on goes back to the pool committing durably, so whatever it serves next (a confirm) stays durable.
#[tokio::test]
async fn a_url_request_relaxes_only_its_own_commit() {
    use sqlx::Executor;
    let app = TestApp::spawn().await;
    let id = app.create_upload(1000, None).await;
    let url = app.config.service.database.database_url.clone().expect("tests set DATABASE_URL");
    // One connection, durable as a production Postgres is (the test cluster runs with it off).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|connection, _| {
            Box::pin(async move {
                connection.execute("SET synchronous_commit = on").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    let repository = uploads::repository::Repository::new(pool.clone());
    let owner = uploads::domain::Owner::parse(TestApp::OWNER).unwrap();
    let digest = uploads::domain::Sha256Digest::of(b"chunk");
    let declared = repository.declare_chunks(id, &owner, &[(0, digest)], Duration::from_secs(3600)).await.unwrap();
    assert!(declared.is_some(), "the chunk was declared");
    let after: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&pool).await.unwrap();
    assert_eq!(after, "on");
    app.finish().await;
}
