//! Presigned UploadPart URLs signed with `aws-sigv4` directly, and the credentials that sign them.
//!
//! The SDK's `presigned()` runs a whole operation pipeline per URL (interceptors, runtime-component merging,
//! endpoint resolution) that cost 1.6x the signature itself in the presign profile (bench/PROFILE.md, (b)). An
//! UploadPart URL is always the bucket's URL, the key, three query parameters and the signature, so the
//! bucket's URL is resolved once, by the SDK itself ([`super::origin`]), and every URL after that is one SigV4
//! signature over a request built here. A unit test holds the result to the SDK's own presigned URL, byte for
//! byte.

use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4::SigningParams;
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{PartToPresign, PresignedRequest, StorageError};

/// RFC 3986's unreserved characters stay, everything else is percent-encoded: SigV4's canonical form.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// An object key in the path: as a query value, but its `/` separate segments.
const KEY_PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Credentials are refreshed this long before they expire, so no URL is signed with a key about to lapse.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// The credentials provider of the SDK's shared config, with a cache of its own: the SDK's identity cache
/// serves only the SDK's operations, and a provider such as IMDS or STS must not be asked once per URL.
pub(super) struct SigningCredentials {
    provider: Option<SharedCredentialsProvider>,
    cached: RwLock<Option<Credentials>>,
    refresh: tokio::sync::Mutex<()>,
}

impl SigningCredentials {
    pub(super) fn new(provider: Option<SharedCredentialsProvider>) -> Self {
        Self { provider, cached: RwLock::default(), refresh: tokio::sync::Mutex::default() }
    }

    /// Credentials good for at least [`REFRESH_BEFORE_EXPIRY`]; one caller refreshes while the others wait.
    pub(super) async fn current(&self) -> Result<Credentials, StorageError> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _refreshing = self.refresh.lock().await;
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let provider =
            self.provider.as_ref().ok_or_else(|| StorageError::Presign("no credentials to sign with".into()))?;
        let credentials = provider.provide_credentials().await.map_err(|e| StorageError::Presign(e.to_string()))?;
        *self.cached.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(credentials.clone());
        Ok(credentials)
    }

    fn fresh(&self) -> Option<Credentials> {
        let cached = self.cached.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let good_until = SystemTime::now() + REFRESH_BEFORE_EXPIRY;
        cached.as_ref().filter(|c| c.expiry().is_none_or(|expiry| expiry > good_until)).cloned()
    }
}

/// Where and for what an UploadPart URL is signed.
pub(super) struct PartUrl<'a> {
    /// The bucket's URL as clients reach it, without a trailing `/` (`Storage::bucket_url`).
    pub bucket_url: &'a str,
    pub region: &'a str,
    pub key: &'a str,
    pub upload_id: &'a str,
    pub part_number: u32,
    /// The length and SHA-256 the signature binds; `None` signs `host` only.
    pub bound: Option<PartToPresign<'a>>,
    pub ttl: Duration,
}

/// Signs `part` at `now`: the same URL, query order and signed headers as the SDK's presigned UploadPart.
pub(super) fn presign_part_url(
    part: &PartUrl<'_>,
    credentials: Credentials,
    now: SystemTime,
) -> Result<PresignedRequest, StorageError> {
    let url = format!(
        "{}/{}?x-id=UploadPart&partNumber={}&uploadId={}",
        part.bucket_url,
        utf8_percent_encode(part.key, KEY_PATH),
        part.part_number,
        utf8_percent_encode(part.upload_id, QUERY_VALUE),
    );
    let (length, sha256) = match part.bound {
        Some(bound) => (Some(bound.length.to_string()), Some(bound.sha256.to_base64())),
        None => (None, None),
    };
    let mut headers = Vec::with_capacity(2);
    if let Some(length) = &length {
        headers.push(("content-length", length.as_str()));
    }
    if let Some(sha256) = &sha256 {
        headers.push(("x-amz-checksum-sha256", sha256.as_str()));
    }
    let url = presign_query_url("PUT", url, &headers, credentials, part.region, part.ttl, now)?;
    Ok(PresignedRequest {
        url,
        method: "PUT".into(),
        headers: headers.into_iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        expires_at: DateTime::<Utc>::from(now + part.ttl),
    })
}

/// Signs `url` (its path and query already encoded as S3 reads them) for `method` and `headers`, in the query
/// (SigV4 presigning, unsigned payload): `url` with the signature's parameters appended.
pub fn presign_query_url(
    method: &str,
    mut url: String,
    headers: &[(&str, &str)],
    credentials: Credentials,
    region: &str,
    ttl: Duration,
    now: SystemTime,
) -> Result<String, StorageError> {
    let failed = |e: &dyn std::fmt::Display| StorageError::Presign(e.to_string());
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(ttl);
    // S3 checks the path as sent: encoded once, never normalized.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let identity = credentials.into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let request = SignableRequest::new(method, url.as_str(), headers.iter().copied(), SignableBody::UnsignedPayload)
        .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    for (name, value) in instructions.params() {
        url.push('&');
        url.push_str(name);
        url.push('=');
        url.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::config::{BehaviorVersion, Region};
    use aws_sdk_s3::presigning::PresigningConfig;

    use super::*;
    use crate::domain::Sha256Digest;

    fn presigner(endpoint: Option<&str>, path_style: bool) -> aws_sdk_s3::Client {
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .force_path_style(path_style)
            .credentials_provider(credentials());
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        aws_sdk_s3::Client::from_conf(config.build())
    }

    fn credentials() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("tok/en+=".into()),
            None,
            "test",
        )
    }

    async fn sdk_url(
        client: &aws_sdk_s3::Client,
        part: &PartUrl<'_>,
        now: SystemTime,
    ) -> (String, Vec<(String, String)>) {
        let presigning = PresigningConfig::builder().start_time(now).expires_in(part.ttl).build().unwrap();
        let request = client
            .upload_part()
            .bucket("my-bucket")
            .key(part.key)
            .upload_id(part.upload_id)
            .part_number(part.part_number as i32)
            .set_content_length(part.bound.map(|b| b.length as i64))
            .set_checksum_sha256(part.bound.map(|b| b.sha256.to_base64()))
            .presigned(presigning)
            .await
            .unwrap();
        let headers = request
            .headers()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
            .collect();
        (request.uri().to_string(), headers)
    }

    /// The signature is checked for real by LocalStack in the e2e tests; this holds every byte of the URL to
    /// what the SDK would have presigned, for keys and upload ids that need encoding, on both URL styles.
    #[tokio::test]
    async fn the_url_is_the_one_the_sdk_presigns() {
        let sha256 = Sha256Digest::of(b"chunk");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_400);
        for (endpoint, path_style, bucket_url) in [
            (Some("http://127.0.0.1:4566"), true, "http://127.0.0.1:4566/my-bucket"),
            (None, false, "https://my-bucket.s3.eu-west-1.amazonaws.com"),
        ] {
            let client = presigner(endpoint, path_style);
            for (key, upload_id, bound) in [
                ("uploads/0193c8a2-1f1e-7c3a-9d2e-5b6f7a8b9c0d", "3GAPr3f.x_y-z~", true),
                ("pre fix/ä+b=c&d", "a/b+c=d", true),
                ("k", "origin", false),
            ] {
                let part = PartUrl {
                    bucket_url,
                    region: "eu-west-1",
                    key,
                    upload_id,
                    part_number: 7,
                    bound: bound.then_some(PartToPresign { part_number: 7, length: 5 << 20, sha256: &sha256 }),
                    ttl: Duration::from_secs(900),
                };
                let ours = presign_part_url(&part, credentials(), now).unwrap();
                let (url, headers) = sdk_url(&client, &part, now).await;
                assert_eq!(ours.url, url, "{key} {upload_id}");
                let mut ours_headers = ours.headers.clone();
                ours_headers.sort();
                let mut sdk_headers = headers;
                sdk_headers.sort();
                assert_eq!(ours_headers, sdk_headers);
            }
        }
    }

    #[tokio::test]
    async fn credentials_are_asked_for_once_while_fresh_and_again_near_expiry() {
        let expiring = Credentials::new("AKID", "secret", None, Some(SystemTime::now() + Duration::from_secs(60)), "t");
        let signing = SigningCredentials::new(Some(SharedCredentialsProvider::new(expiring)));
        signing.current().await.unwrap();
        assert!(signing.fresh().is_none(), "credentials 60 s from expiry are refreshed, not reused");
        let lasting = SigningCredentials::new(Some(SharedCredentialsProvider::new(credentials())));
        lasting.current().await.unwrap();
        assert_eq!(lasting.fresh().map(|c| c.access_key_id().to_string()).as_deref(), Some("AKIDEXAMPLE"));
        let none = SigningCredentials::new(None);
        assert!(matches!(none.current().await, Err(StorageError::Presign(_))));
    }
}
