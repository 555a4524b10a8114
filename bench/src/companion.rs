//! The peer's control plane: Uppy Companion's S3 multipart routes (`/s3/multipart...`).

use anyhow::anyhow;
use http::Method;
use serde_json::json;

use crate::http::Http;

/// Characters left as they are in a query value: RFC 3986 unreserved.
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A multipart upload Companion created: the S3 key and upload id its routes take.
#[derive(Debug, Clone)]
pub struct Multipart {
    pub key: String,
    pub upload_id: String,
}

#[derive(Clone)]
pub struct Companion {
    pub base: String,
    pub http: Http,
}

impl Companion {
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: Http::new(Default::default()) }
    }

    pub fn create_url(&self) -> String {
        format!("{}/s3/multipart", self.base)
    }

    /// The body Uppy's AwsS3 plugin sends to create a multipart upload.
    pub fn create_body() -> serde_json::Value {
        json!({ "filename": "bench.bin", "type": "application/octet-stream", "metadata": {} })
    }

    pub async fn create(&self) -> anyhow::Result<Multipart> {
        let created = self.http.call(Method::POST, &self.create_url(), Some(&Self::create_body())).await?;
        let field =
            |name: &str| created[name].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no {name} in {created}"));
        Ok(Multipart { key: field("key")?, upload_id: field("uploadId")? })
    }

    /// `GET /s3/multipart/{uploadId}/{partNumber}?key=`: one presigned UploadPart.
    pub fn sign_part_url(&self, m: &Multipart, part_number: u32) -> String {
        format!("{}/s3/multipart/{}/{part_number}?key={}", self.base, query_escape(&m.upload_id), query_escape(&m.key))
    }

    /// `GET /s3/multipart/{uploadId}/batch?key=&partNumbers=1,2,...`: many at once.
    pub fn batch_url(&self, m: &Multipart, parts: impl Iterator<Item = u32>) -> String {
        let parts: Vec<String> = parts.map(|p| p.to_string()).collect();
        format!(
            "{}/s3/multipart/{}/batch?key={}&partNumbers={}",
            self.base,
            query_escape(&m.upload_id),
            query_escape(&m.key),
            parts.join(",")
        )
    }

    /// `POST /s3/multipart/{uploadId}/complete?key=` with every part's ETag.
    pub async fn complete(&self, m: &Multipart, parts: &[(i32, String)]) -> anyhow::Result<serde_json::Value> {
        let url =
            format!("{}/s3/multipart/{}/complete?key={}", self.base, query_escape(&m.upload_id), query_escape(&m.key));
        let parts: Vec<_> = parts.iter().map(|(n, etag)| json!({ "PartNumber": n, "ETag": etag })).collect();
        self.http.call(Method::POST, &url, Some(&json!({ "parts": parts }))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a b/c~d.e"), "a%20b%2Fc~d.e");
    }
}
