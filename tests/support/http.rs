//! Typed request helpers over the public HTTP API, and real PUTs to presigned URLs.

use std::collections::BTreeMap;

use rand::RngCore;
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uploads::storage::PartToComplete;
use uuid::Uuid;

use crate::TestApp;

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkUrl {
    pub index: u32,
    pub part_number: u32,
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.http.put(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    /// `method path` with the owner's token, a redirect answered as it is rather than followed.
    pub async fn unfollowed(&self, method: reqwest::Method, path: &str) -> Response {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        client.request(method, self.url(path)).bearer_auth(&self.token).send().await.expect("request")
    }

    /// Starts an upload of `size` bytes; returns its id. Panics unless 201.
    pub async fn create_upload(&self, size: u64, chunk_size: Option<u64>) -> Uuid {
        let mut body = json!({ "filename": "file.bin", "size": size, "contentType": "application/octet-stream" });
        if let Some(chunk_size) = chunk_size {
            body["chunkSize"] = json!(chunk_size);
        }
        let response = self.post_json("/v1/uploads", &body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap_or_default());
        let body: Value = response.json().await.expect("json");
        body["uploadId"].as_str().expect("uploadId").parse().expect("uuid")
    }

    /// Asks for a presigned URL for one chunk. Panics unless 200.
    pub async fn chunk_url(&self, id: Uuid, index: u32, chunk: &[u8]) -> ChunkUrl {
        let response = self
            .post_json(&format!("/v1/uploads/{id}/chunks/{index}/url"), &json!({ "sha256": sha256_hex(chunk) }))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap_or_default());
        response.json().await.expect("json")
    }

    /// PUTs bytes to a presigned URL with its signed headers, as a client would; returns S3's response.
    /// `Content-Length` is the body's own (reqwest sets it), which the URL signs as the chunk's planned length.
    pub async fn put_to_s3(&self, url: &ChunkUrl, bytes: Vec<u8>) -> Response {
        let mut request = self.plain.put(&url.url).body(bytes);
        for (name, value) in url.headers.iter().filter(|(name, _)| !name.eq_ignore_ascii_case("content-length")) {
            request = request.header(name, value);
        }
        request.send().await.expect("PUT to S3")
    }

    /// Reports a chunk S3 accepted.
    pub async fn confirm_chunk(&self, id: Uuid, index: u32, etag: &str, chunk: &[u8]) -> Response {
        self.put_json(
            &format!("/v1/uploads/{id}/chunks/{index}"),
            &json!({ "etag": etag, "sha256": sha256_hex(chunk) }),
        )
        .await
    }

    /// URL, PUT to S3, confirm: one chunk the way a well-behaved client sends it. Returns the ETag.
    pub async fn upload_chunk(&self, id: Uuid, index: u32, chunk: &[u8]) -> String {
        let url = self.chunk_url(id, index, chunk).await;
        let put = self.put_to_s3(&url, chunk.to_vec()).await;
        assert_eq!(put.status(), StatusCode::OK, "S3 refused chunk {index}: {}", put.text().await.unwrap_or_default());
        let etag = put.headers()["etag"].to_str().expect("etag").to_string();
        let confirm = self.confirm_chunk(id, index, &etag, chunk).await;
        assert_eq!(confirm.status(), StatusCode::OK, "{}", confirm.text().await.unwrap_or_default());
        etag
    }

    pub async fn status(&self, id: Uuid, reconcile: bool) -> Value {
        let response = self.get(&format!("/v1/uploads/{id}?reconcile={reconcile}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap_or_default());
        response.json().await.expect("json")
    }

    pub async fn complete(&self, id: Uuid) -> Response {
        self.http.post(self.url(&format!("/v1/uploads/{id}/complete"))).send().await.expect("request")
    }

    /// Uploads `data` in chunks of `chunk_size` and completes it; returns the upload id.
    pub async fn upload_file(&self, data: &[u8], chunk_size: u64) -> Uuid {
        let id = self.create_upload(data.len() as u64, Some(chunk_size)).await;
        for (index, chunk) in data.chunks(chunk_size as usize).enumerate() {
            self.upload_chunk(id, index as u32, chunk).await;
        }
        let response = self.complete(id).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap_or_default());
        id
    }

    /// The object's bytes as S3 holds them.
    pub async fn object_bytes(&self, id: Uuid) -> Vec<u8> {
        let out =
            self.storage.client().get_object().bucket(self.storage.bucket()).key(format!("uploads/{id}")).send().await;
        out.expect("get object").body.collect().await.expect("body").into_bytes().to_vec()
    }

    /// Assembles the upload's object in S3 from every part S3 holds, behind the service's back: what an API
    /// process that died between CompleteMultipartUpload and the database update leaves behind.
    pub async fn assemble_in_s3_behind_the_service(&self, id: Uuid) {
        let upload = self.state.uploads.repository().find_upload(id).await.expect("find").expect("upload");
        let s3_upload_id = upload.s3_upload_id.expect("a multipart upload");
        let parts = self.storage.list_parts(&upload.object_key, &s3_upload_id).await.expect("list parts");
        let parts: Vec<PartToComplete> = parts
            .into_iter()
            .map(|p| PartToComplete { part_number: p.part_number, etag: p.etag, sha256: p.sha256.expect("checksum") })
            .collect();
        self.storage.complete_multipart_upload(&upload.object_key, &s3_upload_id, &parts).await.expect("complete");
    }

    /// Multipart uploads S3 still holds in this test's bucket.
    pub async fn s3_multipart_uploads(&self) -> Vec<String> {
        let out = self.storage.client().list_multipart_uploads().bucket(self.storage.bucket()).send().await;
        out.expect("list multipart uploads").uploads().iter().filter_map(|u| u.upload_id().map(String::from)).collect()
    }
}
