//! Where browsers send chunks: the origin of the URLs this storage presigns (the web page's `connect-src`).

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

use super::{Storage, StorageError};

impl Storage {
    /// The origin (`scheme://host[:port]`) of the URLs this storage presigns (`S3_PUBLIC_ENDPOINT`'s), however the SDK resolves the
    /// endpoint (custom, path style, virtual host). Presigning is local: no request is sent.
    pub async fn presigned_origin(&self) -> Result<String, StorageError> {
        let presigning =
            PresigningConfig::expires_in(Duration::from_secs(60)).map_err(|e| StorageError::Presign(e.to_string()))?;
        let request = self
            .presigner
            .upload_part()
            .bucket(&self.bucket)
            .key(format!("{}origin", self.key_prefix))
            .upload_id("origin")
            .part_number(1)
            .presigned(presigning)
            .await
            .map_err(|e| StorageError::Presign(format!("{e:?}")))?;
        origin_of(request.uri()).ok_or_else(|| StorageError::Presign(format!("no origin in {}", request.uri())))
    }
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
