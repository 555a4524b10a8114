//! What `upl download` was given, and what the service says about it: an upload id (asked about through the
//! status API) or the download link a completed upload printed (`http(s)://host/v1/files/ID[?...]`, used
//! as-is with its query; a signed link is fetched without the token, it is its own permission).

use base64::Engine;
use percent_encoding::percent_decode_str;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use uuid::Uuid;

use crate::api::{Api, ApiError};
use crate::error::CliError;
use crate::retry::retrying;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Id(Uuid),
    Link { url: Url, id: Uuid },
}

impl Source {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if let Ok(id) = value.parse::<Uuid>() {
            return Ok(Self::Id(id));
        }
        let not_a_source = || format!("{value:?} is neither an upload id nor a download link (…/v1/files/ID)");
        let url = Url::parse(value).map_err(|_| not_a_source())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(not_a_source());
        }
        let segments: Vec<&str> = url.path_segments().map(Iterator::collect).unwrap_or_default();
        match segments.as_slice() {
            [.., "v1", "files", id] => Ok(Self::Link { id: id.parse().map_err(|_| not_a_source())?, url }),
            _ => Err(not_a_source()),
        }
    }
}

/// Where the bytes come from, and what is known of them before the first byte.
#[derive(Debug, Clone)]
pub struct Remote {
    pub id: Uuid,
    /// What every GET asks for (a link keeps its query).
    pub url: String,
    pub with_token: bool,
    /// The server the state file is kept under: `--server` for an id, the link's origin for a link.
    pub server: String,
    pub filename: String,
    pub size: u64,
    /// The whole file's SHA-256 (hex), when the service knows it.
    pub sha256: Option<String>,
}

impl Remote {
    pub fn request(&self, api: &Api, method: Method) -> RequestBuilder {
        if self.with_token { api.service_request(method, &self.url) } else { api.http.request(method, &self.url) }
    }
}

/// Asks the service what there is to download: the status for an id, a HEAD of the link for a link.
pub async fn locate(api: &Api, source: &Source) -> Result<Remote, CliError> {
    match source {
        Source::Id(id) => {
            let status = api.status(*id, false).await?;
            if status.state != "completed" {
                return Err(CliError::NotCompleted { id: *id, state: Some(status.state) });
            }
            Ok(Remote {
                id: *id,
                url: api.file_url(*id),
                with_token: true,
                server: api.base().to_string(),
                filename: status.filename,
                size: status.size,
                sha256: status.sha256,
            })
        }
        Source::Link { url, id } => {
            let mut remote = Remote {
                id: *id,
                url: url.to_string(),
                with_token: sends_token(url, api.base()),
                server: url.origin().ascii_serialization(),
                filename: id.to_string(),
                size: 0,
                sha256: None,
            };
            let quiet = api.quiet;
            let warn = |err: &ApiError| {
                if !quiet {
                    eprintln!("upl: {err}; retrying");
                }
            };
            let headers = retrying(api.retry, warn, async || {
                let response =
                    remote.request(api, Method::HEAD).send().await.map_err(ApiError::network(&remote.url))?;
                match response.status() {
                    StatusCode::OK => Ok(response.headers().clone()),
                    _ => Err(ApiError::from_response(response).await),
                }
            })
            .await
            .map_err(|err| match err.status() {
                Some(StatusCode::CONFLICT) => CliError::NotCompleted { id: *id, state: None },
                _ => err.into(),
            })?;
            remote.size = header_number(&headers, &CONTENT_LENGTH)
                .ok_or_else(|| ApiError::Protocol("the link answered without a Content-Length".into()))?;
            remote.filename = disposition_filename(&headers).unwrap_or(remote.filename);
            remote.sha256 = repr_digest_sha256(&headers);
            Ok(remote)
        }
    }
}

/// The token goes only to the service named by `--server`, and never with a signed link (it needs none, and
/// it may be someone else's shared link, which the token's owner could not read).
fn sends_token(link: &Url, server: &str) -> bool {
    let signed = link.query_pairs().any(|(name, _)| name == "sig");
    let same_origin = Url::parse(server).is_ok_and(|server| server.origin() == link.origin());
    !signed && same_origin
}

fn header_number(headers: &HeaderMap, name: &reqwest::header::HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The first byte of `Content-Range: bytes a-b/size`.
pub fn range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    value.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// `Repr-Digest: sha-256=:BASE64:` (RFC 9530) as hex.
pub fn repr_digest_sha256(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("repr-digest")?.to_str().ok()?;
    value.split(',').find_map(|member| {
        let (algorithm, rest) = member.trim().split_once('=')?;
        if !algorithm.trim().eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(rest.trim().trim_matches(':')).ok()?;
        (bytes.len() == 32).then(|| hex::encode(bytes))
    })
}

/// The name in `Content-Disposition` (RFC 6266): the exact `filename*=UTF-8''…` (RFC 8187) when present,
/// else the quoted ASCII `filename`.
fn disposition_filename(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_DISPOSITION)?.to_str().ok()?;
    let params: Vec<(String, &str)> = value
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    let extended = params.iter().find(|(name, _)| name == "filename*").and_then(|(_, value)| {
        let encoded = value.strip_prefix("UTF-8''").or_else(|| value.strip_prefix("utf-8''"))?;
        percent_decode_str(encoded).decode_utf8().ok().map(|name| name.into_owned())
    });
    extended.or_else(|| {
        params.iter().find(|(name, _)| name == "filename").map(|(_, value)| value.trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use sha2::{Digest, Sha256};

    use super::*;

    const ID: &str = "01a2088e-f7d1-737b-9b97-67fc3c09d39b";

    #[test]
    fn sources_are_ids_or_links_to_a_file() {
        let id: Uuid = ID.parse().unwrap();
        assert_eq!(Source::parse(ID), Ok(Source::Id(id)));
        let table = [
            format!("http://127.0.0.1:8080/v1/files/{ID}"),
            format!("https://files.example/v1/files/{ID}?expires=1790000000&sig=abc%2Bdef"),
            format!("https://example.org/upload-service/v1/files/{ID}?disposition=inline"),
        ];
        for link in table {
            let Ok(Source::Link { url, id: found }) = Source::parse(&link) else { panic!("{link} is a link") };
            assert_eq!(found, id);
            assert_eq!(url.as_str(), link, "the link is used as given, query and all");
        }
        for bad in ["nope", "ftp://h/v1/files/x", &format!("http://h/v1/uploads/{ID}"), "http://h/v1/files/not-an-id"] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_goes_to_the_service_only_and_never_with_a_signed_link() {
        let server = "http://127.0.0.1:8080";
        let table = [
            (format!("http://127.0.0.1:8080/v1/files/{ID}"), true),
            (format!("http://127.0.0.1:8080/v1/files/{ID}?disposition=inline"), true),
            (format!("http://127.0.0.1:8080/v1/files/{ID}?expires=1&sig=x"), false),
            (format!("http://127.0.0.1:9999/v1/files/{ID}"), false),
            (format!("https://127.0.0.1:8080/v1/files/{ID}"), false),
            (format!("http://elsewhere.example/v1/files/{ID}"), false),
        ];
        for (link, sends) in table {
            assert_eq!(sends_token(&Url::parse(&link).unwrap(), server), sends, "{link}");
        }
    }

    #[test]
    fn reads_content_range_repr_digest_and_disposition() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 100-199/500"));
        assert_eq!(range_start(&headers), Some(100));
        let digest = Sha256::digest(b"hello");
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        headers.insert("repr-digest", HeaderValue::from_str(&format!("sha-512=:AAAA:, sha-256=:{b64}:")).unwrap());
        assert_eq!(repr_digest_sha256(&headers), Some(hex::encode(digest)));

        let table = [
            ("attachment; filename=\"film.mp4\"; filename*=UTF-8''film.mp4", Some("film.mp4")),
            ("attachment; filename=\"_ rates.pdf\"; filename*=UTF-8''%E2%82%AC%20rates.pdf", Some("€ rates.pdf")),
            ("inline; filename=\"plain.txt\"", Some("plain.txt")),
            ("attachment", None),
        ];
        for (value, expected) in table {
            headers.insert(CONTENT_DISPOSITION, HeaderValue::from_str(value).unwrap());
            assert_eq!(disposition_filename(&headers).as_deref(), expected, "{value}");
        }
    }
}
