//! Signed links to a file: `/v1/files/{id}?expires=T&sig=S`, which a `<video src>`, an `<a download>` or a
//! shared URL can carry instead of a bearer token. `S` is HMAC-SHA256, under the server's key, over the id,
//! the expiry and the disposition, so none of the three can change without breaking it.
//!
//! What is not signed: `redirect` (a 302 to S3 serves the same bytes with the same headers, and its presigned
//! URL never outlives the link) and the request's Range and conditional headers.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::disposition::Disposition;

/// A signing key shorter than SHA-256's output would be the weakest part of the MAC (RFC 2104 §3).
pub const MIN_KEY_BYTES: usize = 32;

/// Names the format, so a signature made for anything else under the same key never verifies as a link.
const DOMAIN: &str = "uploads-file-link-v1";

/// The server's link key, ready to sign; its bytes never print.
#[derive(Clone)]
pub struct LinkKey(Hmac<Sha256>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(redacted)")
    }
}

impl LinkKey {
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!("must be at least {MIN_KEY_BYTES} bytes, got {}", secret.len()));
        }
        Ok(Self(Hmac::new_from_slice(secret).expect("HMAC takes a key of any length")))
    }

    fn mac(&self, link: &Link) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(format!("{DOMAIN}\n{}\n{}\n{}", link.id, link.expires, link.disposition.as_str()).as_bytes());
        mac
    }

    /// The signature of `message` in the format `domain` names, for values other than links that this key
    /// signs (a Companion endpoint): no signature of one format verifies as another's.
    pub fn sign_message(&self, domain: &str, message: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(format!("{domain}\n{message}").as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is [`LinkKey::sign_message`]'s for `message`, compared in constant time.
    pub fn verifies_message(&self, domain: &str, message: &str, signature: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
        let mut mac = self.0.clone();
        mac.update(format!("{domain}\n{message}").as_bytes());
        mac.verify_slice(&signature).is_ok()
    }

    pub fn sign(&self, link: &Link) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(link).finalize().into_bytes())
    }

    /// Checks the link parameters of a request for file `id` at `now`: `Ok(None)` when it carries none (not a
    /// link), the link when its signature holds and it has not expired. The signature is checked first (in
    /// constant time), so an expired link says "expired" only when it is one this server made.
    pub fn verify(&self, id: Uuid, params: &LinkParams<'_>, now: SystemTime) -> Result<Option<Link>, LinkError> {
        let (expires, sig) = match (params.expires, params.sig) {
            (None, None) => return Ok(None),
            (Some(expires), Some(sig)) => (expires, sig),
            _ => return Err(LinkError::Invalid("a link carries both expires and sig")),
        };
        let expires = parse_unix_seconds(expires).ok_or(LinkError::Invalid("expires is not a unix time in seconds"))?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| LinkError::Invalid("sig is not base64url"))?;
        let link = Link { id, expires, disposition: params.disposition };
        self.mac(&link).verify_slice(&sig).map_err(|_| LinkError::Invalid("the signature does not match the link"))?;
        if unix_seconds(now) >= expires {
            return Err(LinkError::Expired { expires });
        }
        Ok(Some(link))
    }
}

/// What a link grants: file `id`, with `disposition`, until `expires` (unix seconds, exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub id: Uuid,
    pub expires: u64,
    pub disposition: Disposition,
}

impl Link {
    /// A link valid for `lifetime` from `now`, rounded up to the next whole second.
    pub fn new(id: Uuid, disposition: Disposition, now: SystemTime, lifetime: Duration) -> Self {
        let since_epoch = (now + lifetime).duration_since(UNIX_EPOCH).unwrap_or_default();
        let expires = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
        Self { id, expires, disposition }
    }

    /// How long the link still has at `now`; zero once expired.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        Duration::from_secs(self.expires.saturating_sub(unix_seconds(now)))
    }

    /// The link's query string (without `?`). The default disposition (attachment) is left out, as a request
    /// without one gets it anyway.
    pub fn query(&self, key: &LinkKey) -> String {
        let disposition = match self.disposition {
            Disposition::Attachment => String::new(),
            other => format!("disposition={}&", other.as_str()),
        };
        format!("{disposition}expires={}&sig={}", self.expires, key.sign(self))
    }
}

/// The link parameters of a request, as sent.
#[derive(Debug, Clone, Copy)]
pub struct LinkParams<'a> {
    pub expires: Option<&'a str>,
    pub sig: Option<&'a str>,
    pub disposition: Disposition,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link has expired; ask for a new one")]
    Expired { expires: u64 },
    #[error("this link is not valid: {0}")]
    Invalid(&'static str),
    #[error("expiresIn must be 1 to {max_seconds} seconds")]
    LifetimeOutOfRange { max_seconds: u64 },
}

/// Links with the server's key, to the API where clients reach it.
#[derive(Debug, Clone)]
pub struct Links {
    key: LinkKey,
    base_url: Arc<str>,
    /// Lifetime of the `downloadUrl` of a completed upload, and of a link asked for without one.
    pub default_ttl: Duration,
    pub max_ttl: Duration,
}

impl Links {
    pub fn new(key: LinkKey, base_url: &str, default_ttl: Duration, max_ttl: Duration) -> Self {
        Self { key, base_url: Arc::from(base_url), default_ttl, max_ttl }
    }

    /// The absolute URL of `link`.
    pub fn url(&self, link: &Link) -> String {
        format!("{}/v1/files/{}?{}", self.base_url, link.id, link.query(&self.key))
    }

    pub fn verify(&self, id: Uuid, params: &LinkParams<'_>, now: SystemTime) -> Result<Option<Link>, LinkError> {
        self.key.verify(id, params, now)
    }

    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The lifetime a client asks for, or the default, within the maximum.
    pub fn lifetime(&self, requested_seconds: Option<u64>) -> Result<Duration, LinkError> {
        lifetime(requested_seconds, self.default_ttl, self.max_ttl)
    }
}

/// The lifetime a client asks for, in seconds, or `default`; refused when zero or longer than `max`.
pub fn lifetime(requested_seconds: Option<u64>, default: Duration, max: Duration) -> Result<Duration, LinkError> {
    let lifetime = requested_seconds.map_or(default, Duration::from_secs);
    if lifetime.is_zero() || lifetime > max {
        return Err(LinkError::LifetimeOutOfRange { max_seconds: max.as_secs() });
    }
    Ok(lifetime)
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Only plain ASCII digits: `+5`, ` 5` or `05x` never name the same expiry as the signed text.
fn parse_unix_seconds(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::Disposition::{Attachment, Inline};
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const T0: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn id() -> Uuid {
        "01a2088e-f7d1-737b-9b97-67fc3c09d39b".parse().unwrap()
    }

    #[test]
    fn keys_shorter_than_32_bytes_are_refused() {
        assert!(LinkKey::new(&KEY[..31]).unwrap_err().contains("at least 32 bytes, got 31"));
        assert!(LinkKey::new(KEY).is_ok());
        assert_eq!(format!("{:?}", LinkKey::new(KEY).unwrap()), "LinkKey(redacted)");
    }

    #[test]
    fn the_query_carries_expiry_signature_and_a_non_default_disposition() {
        let key = LinkKey::new(KEY).unwrap();
        let attachment = Link { id: id(), expires: T0, disposition: Attachment };
        let inline = Link { disposition: Inline, ..attachment };
        assert_eq!(attachment.query(&key), format!("expires={T0}&sig={}", key.sign(&attachment)));
        assert_eq!(inline.query(&key), format!("disposition=inline&expires={T0}&sig={}", key.sign(&inline)));
        assert_ne!(key.sign(&attachment), key.sign(&inline));
        // 32 bytes of HMAC-SHA256, base64url without padding.
        assert_eq!(key.sign(&attachment).len(), 43);
        assert!(!key.sign(&attachment).contains(['+', '/', '=']));
    }

    #[test]
    fn verification_table() {
        let key = LinkKey::new(KEY).unwrap();
        let link = Link { id: id(), expires: T0, disposition: Attachment };
        let sig = key.sign(&link);
        let inline_sig = key.sign(&Link { disposition: Inline, ..link });
        let other_key_sig = LinkKey::new(&[7u8; 32]).unwrap().sign(&link);
        let expires = T0.to_string();
        // A character in the middle: the last one also carries padding bits, which base64 refuses outright.
        let flipped = format!("{}{}{}", &sig[..10], if &sig[10..11] == "A" { 'B' } else { 'A' }, &sig[11..]);
        let invalid = |why| Err(LinkError::Invalid(why));
        let mismatch = invalid("the signature does not match the link");
        let other_id: Uuid = "01a2088e-f7d1-737b-9b97-67fc3c09d39c".parse().unwrap();
        #[rustfmt::skip]
        let table = vec![
            ("no link parameters", id(), None::<&str>, None::<&str>, Attachment, T0, Ok::<_, LinkError>(None)),
            ("valid until the last second", id(), Some(&expires), Some(&sig), Attachment, T0 - 1, Ok(Some(link))),
            ("expired at its second", id(), Some(&expires), Some(&sig), Attachment, T0, Err(LinkError::Expired { expires: T0 })),
            ("expired long ago", id(), Some(&expires), Some(&sig), Attachment, T0 + 86_400, Err(LinkError::Expired { expires: T0 })),
            ("inline signed, inline asked", id(), Some(&expires), Some(&inline_sig), Inline, T0 - 1, Ok(Some(Link { disposition: Inline, ..link }))),
            ("attachment link turned inline", id(), Some(&expires), Some(&sig), Inline, T0 - 1, mismatch.clone()),
            ("inline link turned attachment", id(), Some(&expires), Some(&inline_sig), Attachment, T0 - 1, mismatch.clone()),
            ("another file's id", other_id, Some(&expires), Some(&sig), Attachment, T0 - 1, mismatch.clone()),
            ("expiry pushed later", id(), Some("1800000001"), Some(&sig), Attachment, T0 - 1, mismatch.clone()),
            ("one signature bit flipped", id(), Some(&expires), Some(&flipped), Attachment, T0 - 1, mismatch.clone()),
            ("signed with another key", id(), Some(&expires), Some(&other_key_sig), Attachment, T0 - 1, mismatch.clone()),
            ("tampered and expired says tampered", id(), Some("1"), Some(&sig), Attachment, T0, mismatch.clone()),
            ("truncated signature", id(), Some(&expires), Some(&sig[..20]), Attachment, T0 - 1, mismatch.clone()),
            ("empty signature", id(), Some(&expires), Some(""), Attachment, T0 - 1, mismatch),
            ("signature in standard base64", id(), Some(&expires), Some("ab+/"), Attachment, T0 - 1, invalid("sig is not base64url")),
            ("expires without sig", id(), Some(&expires), None, Attachment, T0 - 1, invalid("a link carries both expires and sig")),
            ("sig without expires", id(), None, Some(&sig), Attachment, T0 - 1, invalid("a link carries both expires and sig")),
            ("expiry with a sign", id(), Some("+1800000000"), Some(&sig), Attachment, T0 - 1, invalid("expires is not a unix time in seconds")),
            ("expiry not a number", id(), Some("soon"), Some(&sig), Attachment, T0 - 1, invalid("expires is not a unix time in seconds")),
            ("expiry past u64", id(), Some("99999999999999999999"), Some(&sig), Attachment, T0 - 1, invalid("expires is not a unix time in seconds")),
        ];
        for (case, id, expires, sig, disposition, now, expected) in table {
            let params = LinkParams { expires, sig, disposition };
            assert_eq!(key.verify(id, &params, at(now)), expected, "{case}");
        }
    }

    #[test]
    fn a_link_url_is_the_file_url_with_the_query() {
        let links = Links::new(LinkKey::new(KEY).unwrap(), "https://files.example.com", Duration::ZERO, Duration::ZERO);
        let link = Link { id: id(), expires: T0, disposition: Inline };
        let url = links.url(&link);
        let prefix = format!("https://files.example.com/v1/files/{}?disposition=inline&expires={T0}&sig=", id());
        assert!(url.starts_with(&prefix), "{url}");
        let sig = &url[prefix.len()..];
        let params = LinkParams { expires: Some("1800000000"), sig: Some(sig), disposition: Inline };
        assert_eq!(links.verify(id(), &params, at(T0 - 1)), Ok(Some(link)));
    }

    #[test]
    fn a_new_link_expires_after_its_lifetime_in_whole_seconds() {
        let now = at(T0) + Duration::from_millis(300);
        let link = Link::new(id(), Inline, now, Duration::from_secs(3600));
        assert_eq!(link.expires, T0 + 3601);
        assert_eq!(link.remaining(at(T0 + 3600)), Duration::from_secs(1));
        assert_eq!(link.remaining(at(T0 + 4000)), Duration::ZERO);
    }

    #[test]
    fn lifetimes_are_one_second_to_the_maximum() {
        let (default, max) = (Duration::from_secs(3600), Duration::from_secs(7 * 86_400));
        let out_of_range = Err(LinkError::LifetimeOutOfRange { max_seconds: 604_800 });
        let table = [
            (None, Ok(default)),
            (Some(1), Ok(Duration::from_secs(1))),
            (Some(604_800), Ok(max)),
            (Some(0), out_of_range.clone()),
            (Some(604_801), out_of_range.clone()),
            (Some(u64::MAX), out_of_range),
        ];
        for (requested, expected) in table {
            assert_eq!(lifetime(requested, default, max), expected, "{requested:?}");
        }
    }
}
