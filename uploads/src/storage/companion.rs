//! What the Companion-compatible routes ask of S3: a presigned POST policy for a browser form upload, and
//! multipart uploads whose parts the client cuts itself, so carry no checksum (Uppy sends none, and S3 refuses
//! a part without one on an upload created with a checksum algorithm).

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::Credentials;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{PresignedRequest, Storage, StorageError};

/// A presigned POST policy: the browser posts `fields` in this order, then the file, to `url`.
#[derive(Debug, Clone)]
pub struct PresignedPost {
    pub url: String,
    pub fields: Vec<(String, String)>,
    pub expires_at: DateTime<Utc>,
}

/// What a POST policy pins: the key, the content type, the size range.
#[derive(Debug, Clone, Copy)]
pub struct PostPolicy<'a> {
    pub key: &'a str,
    pub content_type: &'a str,
    pub max_size: u64,
    pub ttl: Duration,
}

impl Storage {
    /// A multipart upload without a checksum algorithm: its parts are PUT as the client cut them.
    pub async fn create_unchecked_multipart_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        self.create_multipart(key, content_type, None).await
    }

    /// A presigned UploadPart that signs `host` only: the body is whatever the client cut. The client is
    /// configured to add checksums only when an operation requires one, so no CRC of an empty body is signed in
    /// (a URL carrying one is refused by AWS for any real part).
    pub async fn presign_unchecked_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        self.presign_part(key, upload_id, part_number, None, ttl).await
    }

    /// A presigned POST policy for one object. aws-sdk-s3 has no POST presigner (awslabs/aws-sdk-rust#863), so
    /// the policy is built here and signed with aws-sigv4's own SigV4 primitives (the signing key and the
    /// HMAC), the same code that signs the SDK's requests: the signature is over the base64 policy as sent.
    pub async fn presign_post(&self, policy: PostPolicy<'_>) -> Result<PresignedPost, StorageError> {
        let credentials = self.credentials.current().await?;
        let now = SystemTime::now();
        // A form POST makes the object as PutObject would: with the configured encryption and storage class.
        let mut settings = Vec::new();
        if let Some(sse) = &self.new_objects.sse {
            settings.push(("x-amz-server-side-encryption".to_string(), sse.as_str().to_string()));
        }
        if let Some(key_id) = &self.new_objects.sse_kms_key_id {
            settings.push(("x-amz-server-side-encryption-aws-kms-key-id".to_string(), key_id.clone()));
        }
        if let Some(class) = &self.new_objects.storage_class {
            settings.push(("x-amz-storage-class".to_string(), class.as_str().to_string()));
        }
        let fields = post_fields(&credentials, &self.region, &self.bucket, policy, &settings, now);
        Ok(PresignedPost { url: self.bucket_url.clone(), fields, expires_at: DateTime::<Utc>::from(now + policy.ttl) })
    }
}

/// The form fields of a POST policy signed at `now`: every field but `policy` and `x-amz-signature` is a
/// condition of the policy (AWS refuses fields it does not cover), and the size range starts at 0 (an empty
/// file takes this path too).
fn post_fields(
    credentials: &Credentials,
    region: &str,
    bucket: &str,
    policy: PostPolicy<'_>,
    settings: &[(String, String)],
    now: SystemTime,
) -> Vec<(String, String)> {
    let at = DateTime::<Utc>::from(now);
    let date = at.format("%Y%m%dT%H%M%SZ").to_string();
    let credential = format!("{}/{}/{region}/s3/aws4_request", credentials.access_key_id(), at.format("%Y%m%d"));
    let mut fields = vec![
        ("key".to_string(), policy.key.to_string()),
        // `Content-Type`, not `content-type`: LocalStack takes the stored type from this exact field name.
        ("Content-Type".to_string(), policy.content_type.to_string()),
    ];
    fields.extend_from_slice(settings);
    fields.extend([
        ("x-amz-algorithm".to_string(), "AWS4-HMAC-SHA256".to_string()),
        ("x-amz-credential".to_string(), credential),
        ("x-amz-date".to_string(), date),
    ]);
    if let Some(token) = credentials.session_token() {
        fields.push(("x-amz-security-token".to_string(), token.to_string()));
    }
    let expiration = DateTime::<Utc>::from(now + policy.ttl).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut conditions = vec![json!({ "bucket": bucket })];
    conditions.extend(fields.iter().map(|(name, value)| json!({ name: value })));
    conditions.push(json!(["content-length-range", 0, policy.max_size]));
    let document = json!({ "expiration": expiration, "conditions": conditions });
    let encoded = STANDARD.encode(document.to_string());
    let signature = sign_policy(credentials.secret_access_key(), now, region, &encoded);
    fields.push(("policy".to_string(), encoded));
    fields.push(("x-amz-signature".to_string(), signature));
    fields
}

/// SigV4 for a POST policy: HMAC-SHA256 under the day's signing key over the base64 policy itself.
fn sign_policy(secret: &str, now: SystemTime, region: &str, encoded_policy: &str) -> String {
    let key = aws_sigv4::sign::v4::generate_signing_key(secret, now, region, "s3");
    aws_sigv4::sign::v4::calculate_signature(key, encoded_policy.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LocalStack does not check POST signatures at all (docs/uppy.md §8), so the signature is checked against
    /// botocore's own `S3SigV4PostAuth` for the same policy and clock (docs/uppy.md, appendix C).
    #[test]
    fn the_policy_signature_is_the_one_botocore_computes() {
        let policy = "eyJleHBpcmF0aW9uIjogIjIwMjYtMTItMDFUMTM6MDA6MDBaIiwgImNvbmRpdGlvbnMiOiBbeyJidWNrZXQiOiAidXBsb2FkcyJ9LCB7ImtleSI6ICJ1LzAxOTNjOGEyLTFmMWUtN2MzYS05ZDJlLTViNmY3YThiOWMwZCJ9LCB7IkNvbnRlbnQtVHlwZSI6ICJ0ZXh0L3BsYWluIn0sIFsiY29udGVudC1sZW5ndGgtcmFuZ2UiLCAwLCA1MzY4NzA5MTIwXSwgeyJ4LWFtei1hbGdvcml0aG0iOiAiQVdTNC1ITUFDLVNIQTI1NiJ9LCB7IngtYW16LWNyZWRlbnRpYWwiOiAidGVzdC8yMDI2MTIwMS91cy1lYXN0LTEvczMvYXdzNF9yZXF1ZXN0In0sIHsieC1hbXotZGF0ZSI6ICIyMDI2MTIwMVQxMjAwMDBaIn1dfQ==";
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_400); // 2026-12-01T12:00:00Z
        assert_eq!(
            sign_policy("test", now, "us-east-1", policy),
            "970ce7a2c5cb5809919ba16a33ab4894dc0c418e0ad95029c41b883e1049d683"
        );
    }

    #[test]
    fn every_field_but_the_signature_and_policy_is_a_condition() {
        let credentials = Credentials::new("AKID", "secret", Some("token".into()), None, "test");
        let policy = PostPolicy {
            key: "uploads/a b+c-id",
            content_type: "text/plain",
            max_size: 5 << 30,
            ttl: Duration::from_secs(600),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_400);
        let settings = [("x-amz-storage-class".to_string(), "STANDARD_IA".to_string())];
        let fields = post_fields(&credentials, "eu-west-1", "bucket", policy, &settings, now);
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "key",
                "Content-Type",
                "x-amz-storage-class",
                "x-amz-algorithm",
                "x-amz-credential",
                "x-amz-date",
                "x-amz-security-token",
                "policy",
                "x-amz-signature"
            ]
        );
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(field("x-amz-credential"), "AKID/20261201/eu-west-1/s3/aws4_request");
        assert_eq!(field("x-amz-date"), "20261201T120000Z");
        let document: serde_json::Value = serde_json::from_slice(&STANDARD.decode(field("policy")).unwrap()).unwrap();
        assert_eq!(document["expiration"], "2026-12-01T12:10:00.000Z");
        let conditions = document["conditions"].as_array().unwrap();
        assert!(conditions.contains(&json!({"bucket": "bucket"})));
        assert!(conditions.contains(&json!(["content-length-range", 0, 5u64 << 30])));
        for (name, value) in &fields[..7] {
            assert!(conditions.contains(&json!({ name: value })), "{name}");
        }
        assert_eq!(field("x-amz-signature"), sign_policy("secret", now, "eu-west-1", &field("policy")));
    }
}
