//! The capability in a Companion endpoint (`/uppy/<capability>`): Uppy sends no header (no token, and no
//! cookie cross-origin), so the URL itself proves who the caller is. It names one owner and an expiry, signed
//! with the link key under a format of its own: `<expires>.<owner, base64url>.<HMAC-SHA256, base64url>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uploads::domain::Owner;

use crate::download::link::LinkKey;

/// Names the format, so no link signature (or any other) verifies as a capability.
const DOMAIN: &str = "uploads-companion-endpoint-v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    #[error("this Uppy endpoint has expired; ask POST /v1/uppy-endpoints for a new one")]
    Expired { expires: u64 },
    #[error("this Uppy endpoint is not valid: {0}")]
    Invalid(&'static str),
}

/// What a capability grants: `owner`'s Companion routes until `expires` (unix seconds, exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub owner: Owner,
    pub expires: u64,
}

impl Capability {
    /// One valid for `lifetime` from `now`, rounded up to a whole second.
    pub fn new(owner: Owner, now: SystemTime, lifetime: Duration) -> Self {
        let since_epoch = (now + lifetime).duration_since(UNIX_EPOCH).unwrap_or_default();
        Self { owner, expires: since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0) }
    }

    /// The path segment: only `[0-9A-Za-z_.-]`, so it needs no escaping in a URL.
    pub fn encode(&self, key: &LinkKey) -> String {
        let owner = URL_SAFE_NO_PAD.encode(self.owner.as_str());
        let signature = key.sign_message(DOMAIN, &message(self.expires, &owner));
        format!("{}.{owner}.{signature}", self.expires)
    }

    /// The capability `segment` carries at `now`. The signature is checked first (in constant time), so an
    /// expired capability says "expired" only when this server made it.
    pub fn decode(key: &LinkKey, segment: &str, now: SystemTime) -> Result<Self, CapabilityError> {
        let mut parts = segment.split('.');
        let (Some(expires), Some(owner), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CapabilityError::Invalid("it is not <expires>.<owner>.<signature>"));
        };
        if !key.verifies_message(DOMAIN, &message_of(expires, owner), signature) {
            return Err(CapabilityError::Invalid("the signature does not match"));
        }
        // Signed, so these parse: they are what this server wrote.
        let expires: u64 = expires.parse().map_err(|_| CapabilityError::Invalid("expires is not a number"))?;
        let owner = URL_SAFE_NO_PAD
            .decode(owner)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|owner| Owner::parse(&owner).ok())
            .ok_or(CapabilityError::Invalid("the owner is not readable"))?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now >= expires {
            return Err(CapabilityError::Expired { expires });
        }
        Ok(Self { owner, expires })
    }
}

fn message(expires: u64, owner: &str) -> String {
    message_of(&expires.to_string(), owner)
}

fn message_of(expires: &str, owner: &str) -> String {
    format!("{expires}\n{owner}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn capabilities_verify_until_they_expire_and_never_once_changed() {
        let key = LinkKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let other_key = LinkKey::new(&[7u8; 32]).unwrap();
        let alice = Capability { owner: Owner::parse("alice").unwrap(), expires: T0 };
        let segment = alice.encode(&key);
        assert!(segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)), "{segment}");
        let (expires, rest) = segment.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let bob = URL_SAFE_NO_PAD.encode("bob");
        let invalid = |why| Err(CapabilityError::Invalid(why));
        let mismatch = invalid("the signature does not match");
        let flipped =
            format!("{}{}{}", &signature[..10], if &signature[10..11] == "A" { "B" } else { "A" }, &signature[11..]);
        let table = vec![
            ("valid until its last second", segment.clone(), T0 - 1, Ok(alice.clone())),
            ("expired at its second", segment.clone(), T0, Err(CapabilityError::Expired { expires: T0 })),
            ("another owner", format!("{expires}.{bob}.{signature}"), T0 - 1, mismatch.clone()),
            ("expiry pushed later", format!("{}.{}", T0 + 3600, rest), T0 - 1, mismatch.clone()),
            ("tampered and expired says tampered", format!("1.{rest}"), T0, mismatch.clone()),
            ("one signature character changed", segment.replace(signature, &flipped), T0 - 1, mismatch.clone()),
            ("signed with another key", alice.encode(&other_key), T0 - 1, mismatch.clone()),
            (
                "no signature",
                format!("{expires}.{}", rest.split_once('.').unwrap().0),
                T0 - 1,
                invalid("it is not <expires>.<owner>.<signature>"),
            ),
            ("an extra part", format!("{segment}.x"), T0 - 1, invalid("it is not <expires>.<owner>.<signature>")),
            ("empty", String::new(), T0 - 1, invalid("it is not <expires>.<owner>.<signature>")),
        ];
        for (case, segment, now, expected) in table {
            assert_eq!(Capability::decode(&key, &segment, at(now)), expected, "{case}");
        }
    }

    #[test]
    fn a_new_capability_expires_after_its_lifetime_in_whole_seconds() {
        let owner = Owner::parse("alice").unwrap();
        let capability = Capability::new(owner, at(T0) + Duration::from_millis(1), Duration::from_secs(60));
        assert_eq!(capability.expires, T0 + 61);
    }
}
