//! Where browsers send chunks and form POSTs: the bucket's URL, and the origin of the URLs this storage
//! presigns (the web page's `connect-src`).

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;

use super::{Storage, StorageError};

impl Storage {
    /// The origin (`scheme://host[:port]`) of the URLs this storage presigns (`S3_PUBLIC_ENDPOINT`'s), however
    /// the SDK resolves the endpoint (custom, path style, virtual host).
    pub fn presigned_origin(&self) -> Result<String, StorageError> {
        origin_of(&self.bucket_url).ok_or_else(|| StorageError::Presign(format!("no origin in {}", self.bucket_url)))
    }
}

/// The bucket's URL as browsers reach it (where a form POST goes, and what every UploadPart URL starts with): a
/// presigned UploadPart of a one-character key, by the client that presigns for `S3_PUBLIC_ENDPOINT`, without
/// its query and the key. Presigning is local: no request is sent.
pub(super) async fn bucket_url(presigner: &Client, bucket: &str) -> Result<String, StorageError> {
    let presigning =
        PresigningConfig::expires_in(Duration::from_secs(60)).map_err(|e| StorageError::Presign(e.to_string()))?;
    let request = presigner
        .upload_part()
        .bucket(bucket)
        .key("k")
        .upload_id("origin")
        .part_number(1)
        .presigned(presigning)
        .await
        .map_err(|e| StorageError::Presign(format!("{e:?}")))?;
    let url = request.uri().split('?').next().unwrap_or_default();
    url.strip_suffix("/k")
        .map(str::to_string)
        .ok_or_else(|| StorageError::Presign(format!("cannot find the bucket in {url}")))
}

/// `scheme://authority` of an absolute URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().filter(|a| !a.is_empty())?;
    Some(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_a_presigned_url() {
        for (url, origin) in [
            ("http://127.0.0.1:4566/uploads/uploads/x?partNumber=1", Some("http://127.0.0.1:4566")),
            (
                "https://b.s3.us-east-1.amazonaws.com/uploads/x?X-Amz-Date=1",
                Some("https://b.s3.us-east-1.amazonaws.com"),
            ),
            ("https://s3.example.com?x=1", Some("https://s3.example.com")),
            ("https://s3.example.com", Some("https://s3.example.com")),
            ("not a url", None),
            ("https:///path", None),
        ] {
            assert_eq!(origin_of(url).as_deref(), origin, "{url}");
        }
    }
}
