//! Where the bytes live: the bucket, the endpoints (one for the service's own calls, one for the URLs clients
//! are handed), the key prefix and what S3 is asked to do with every new object.

use std::time::Duration;

use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use clap::{Args, ValueEnum};

use super::parse_positive_duration;

#[derive(Debug, Clone, Args)]
pub struct S3Config {
    /// S3 endpoint URL the service calls; unset means AWS's default resolution.
    #[arg(long, env = "S3_ENDPOINT", value_name = "S3_ENDPOINT", value_parser = parse_endpoint)]
    pub s3_endpoint: Option<String>,

    /// Endpoint URL that presigned URLs are signed for: the address clients reach S3 at, when it differs from
    /// the one the service uses (`http://minio:9000` inside compose is not what a browser reaches). Unset: the
    /// same as `S3_ENDPOINT`.
    #[arg(long, env = "S3_PUBLIC_ENDPOINT", value_name = "S3_PUBLIC_ENDPOINT", value_parser = parse_endpoint)]
    pub s3_public_endpoint: Option<String>,

    /// Unset: AWS's own chain decides (`AWS_REGION`, the profile, IMDS).
    #[arg(long, env = "S3_REGION", value_name = "S3_REGION")]
    pub s3_region: Option<String>,

    #[arg(long, env = "S3_BUCKET", value_name = "S3_BUCKET")]
    pub s3_bucket: String,

    /// Every key the service writes or lists starts with this, so several services (or other data) can share
    /// one bucket: the sweep never looks outside it.
    #[arg(long, env = "S3_KEY_PREFIX", value_name = "S3_KEY_PREFIX", default_value = "uploads/", value_parser = parse_key_prefix)]
    pub s3_key_prefix: String,

    /// Server-side encryption of every new object: `AES256` (S3-managed keys) or `aws:kms`.
    #[arg(long, env = "S3_SSE", value_name = "S3_SSE", value_enum)]
    pub s3_sse: Option<Sse>,

    /// The KMS key of `S3_SSE=aws:kms` (id, ARN or alias); unset means the bucket's AWS-managed key.
    #[arg(long, env = "S3_SSE_KMS_KEY_ID", value_name = "S3_SSE_KMS_KEY_ID")]
    pub s3_sse_kms_key_id: Option<String>,

    /// Storage class of every new object (`STANDARD_IA`, `INTELLIGENT_TIERING`, ...); unset: the bucket's default.
    #[arg(long, env = "S3_STORAGE_CLASS", value_name = "S3_STORAGE_CLASS", value_parser = parse_storage_class)]
    pub s3_storage_class: Option<String>,

    /// Path-style addressing (`endpoint/bucket/key`), needed by LocalStack and most S3-compatible stores.
    #[arg(long, env = "S3_FORCE_PATH_STYLE", value_name = "S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,

    /// Longest an S3 request may take, retries included, until S3 starts answering (ListParts, Head, Abort,
    /// Create, a read's first byte...): a hung S3 becomes a 504 instead of a hung request.
    #[arg(long, env = "S3_OPERATION_TIMEOUT", value_name = "S3_OPERATION_TIMEOUT", default_value = "20s", value_parser = parse_positive_duration)]
    pub s3_operation_timeout: Duration,

    /// Longest a CompleteMultipartUpload may take: S3 may need minutes to assemble 10,000 parts.
    #[arg(long, env = "S3_COMPLETE_TIMEOUT", value_name = "S3_COMPLETE_TIMEOUT", default_value = "10m", value_parser = parse_positive_duration)]
    pub s3_complete_timeout: Duration,
}

/// `S3_SSE`'s values, spelled as S3's `x-amz-server-side-encryption` header spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sse {
    #[value(name = "AES256")]
    Aes256,
    #[value(name = "aws:kms")]
    AwsKms,
}

impl Sse {
    pub fn header_value(self) -> ServerSideEncryption {
        match self {
            Self::Aes256 => ServerSideEncryption::Aes256,
            Self::AwsKms => ServerSideEncryption::AwsKms,
        }
    }
}

impl S3Config {
    /// A config for `bucket` at `endpoint` with every other setting at its default (tests, tools).
    pub fn local(endpoint: &str, bucket: &str) -> Self {
        Self {
            s3_endpoint: Some(endpoint.to_string()),
            s3_public_endpoint: None,
            s3_region: Some("us-east-1".into()),
            s3_bucket: bucket.to_string(),
            s3_key_prefix: "uploads/".into(),
            s3_sse: None,
            s3_sse_kms_key_id: None,
            s3_storage_class: None,
            s3_force_path_style: true,
            s3_operation_timeout: Duration::from_secs(20),
            s3_complete_timeout: Duration::from_secs(600),
        }
    }

    /// What one value cannot say alone: a KMS key without KMS encryption would be silently ignored.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.s3_sse_kms_key_id.is_none() || self.s3_sse == Some(Sse::AwsKms),
            "S3_SSE_KMS_KEY_ID is set but S3_SSE is not aws:kms"
        );
        Ok(())
    }

    pub fn storage_class(&self) -> Option<StorageClass> {
        self.s3_storage_class.as_deref().map(StorageClass::from)
    }
}

/// An absolute http(s) URL without a path: the SDK takes anything and fails at the first request otherwise.
fn parse_endpoint(value: &str) -> Result<String, String> {
    let value = value.trim_end_matches('/');
    let authority = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    match authority {
        Some(host)
            if !host.is_empty() && !host.contains(['/', '?', '#', '@']) && !host.contains(char::is_whitespace) =>
        {
            Ok(value.to_string())
        }
        _ => Err("expected a URL like https://s3.example.com or http://127.0.0.1:9000 (no path)".into()),
    }
}

/// A prefix ends with `/`, so `uploads/` never matches the keys of a neighbour's `uploads-old/`, and does not
/// start with one (S3 would make it an empty first path segment).
fn parse_key_prefix(value: &str) -> Result<String, String> {
    if value.is_empty() || !value.ends_with('/') || value.starts_with('/') || value.contains("//") {
        return Err("expected a key prefix ending with / such as uploads/ or team-a/uploads/".into());
    }
    if value.len() > 512 || value.chars().any(char::is_control) {
        return Err("at most 512 bytes, no control characters".into());
    }
    Ok(value.to_string())
}

/// One of the classes S3 knows, so a typo is a startup error rather than every create answering 400.
fn parse_storage_class(value: &str) -> Result<String, String> {
    if StorageClass::values().contains(&value) {
        Ok(value.to_string())
    } else {
        Err(format!("expected one of {}", StorageClass::values().join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Example {
        #[command(flatten)]
        s3: S3Config,
    }

    fn parse(args: &[&str]) -> Result<S3Config, String> {
        let args = ["x", "--s3-bucket", "b"].iter().chain(args);
        super::super::parse_args_alone::<Example>(args).map(|e| e.s3).map_err(|e| super::super::one_line(&e))
    }

    #[test]
    fn the_region_is_left_to_aws_unless_given() {
        assert_eq!(parse(&[]).unwrap().s3_region, None);
        assert_eq!(parse(&["--s3-region", "eu-west-3"]).unwrap().s3_region.as_deref(), Some("eu-west-3"));
    }

    #[test]
    fn endpoints_are_http_urls() {
        let config = parse(&["--s3-endpoint", "http://minio:9000/", "--s3-public-endpoint", "https://s3.example.com"]);
        let config = config.unwrap();
        assert_eq!(config.s3_endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(config.s3_public_endpoint.as_deref(), Some("https://s3.example.com"));
        for bad in ["minio:9000", "ftp://minio", "http://", "http://minio:9000/bucket"] {
            let line = parse(&["--s3-public-endpoint", bad]).unwrap_err();
            assert!(line.starts_with("S3_PUBLIC_ENDPOINT has an invalid value"), "{bad}: {line}");
        }
    }

    #[test]
    fn key_prefixes_are_directories() {
        assert_eq!(parse(&[]).unwrap().s3_key_prefix, "uploads/");
        assert_eq!(parse(&["--s3-key-prefix", "team-a/uploads/"]).unwrap().s3_key_prefix, "team-a/uploads/");
        for bad in ["", "uploads", "/uploads/", "a//b/"] {
            let line = parse(&["--s3-key-prefix", bad]).unwrap_err();
            assert!(line.starts_with("S3_KEY_PREFIX has an invalid value"), "{bad}: {line}");
        }
    }

    #[test]
    fn encryption_and_storage_class_are_s3s_own_words() {
        let config = parse(&["--s3-sse", "aws:kms", "--s3-sse-kms-key-id", "alias/uploads"]).unwrap();
        assert_eq!(config.s3_sse, Some(Sse::AwsKms));
        config.check().unwrap();
        assert_eq!(
            parse(&["--s3-sse", "AES256"]).unwrap().s3_sse.unwrap().header_value(),
            ServerSideEncryption::Aes256
        );
        assert!(parse(&["--s3-sse", "aes"]).unwrap_err().starts_with("S3_SSE has an invalid value"));
        let stray_key = parse(&["--s3-sse", "AES256", "--s3-sse-kms-key-id", "k"]).unwrap();
        assert_eq!(stray_key.check().unwrap_err().to_string(), "S3_SSE_KMS_KEY_ID is set but S3_SSE is not aws:kms");

        let class = parse(&["--s3-storage-class", "STANDARD_IA"]).unwrap();
        assert_eq!(class.storage_class(), Some(StorageClass::StandardIa));
        let line = parse(&["--s3-storage-class", "standard"]).unwrap_err();
        assert!(line.starts_with("S3_STORAGE_CLASS has an invalid value \"standard\": expected one of"), "{line}");
        assert!(!line.contains('\n'));
    }
}
