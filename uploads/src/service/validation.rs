//! Checks of what clients send, each failing with a machine-readable code.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::UploadError;
use crate::domain::Sha256Digest;
use crate::error_code::ErrorCode;

const MAX_METADATA_BYTES: usize = 16 * 1024;
const MAX_FILENAME_CHARS: usize = 1024;

pub(super) fn invalid(code: ErrorCode, message: impl Into<String>) -> UploadError {
    UploadError::Invalid { code, message: message.into() }
}

pub(super) fn parse_sha256(value: &str) -> Result<Sha256Digest, UploadError> {
    Sha256Digest::parse_hex(value).map_err(|e| invalid(ErrorCode::InvalidSha256, format!("sha256 {value:?}: {e}")))
}

pub(super) fn validate_filename(filename: String) -> Result<String, UploadError> {
    let trimmed = filename.trim();
    // Characters as sent, as openapi.yaml's maxLength counts them (JSON Schema counts code points).
    if trimmed.is_empty() || filename.chars().count() > MAX_FILENAME_CHARS {
        return Err(invalid(ErrorCode::InvalidFilename, "filename must be 1 to 1024 characters of text"));
    }
    if let Some((character, kind)) = trimmed.chars().find_map(|c| hidden_character(c).map(|kind| (c, kind))) {
        return Err(UploadError::FilenameCharacter { character, kind });
    }
    Ok(trimmed.to_string())
}

/// Whether a filename may not hold `c` anywhere (openapi.yaml's filename pattern lists the same ranges).
pub fn refused_in_filename(c: char) -> bool {
    hidden_character(c).is_some()
}

/// What makes `c` unfit for a filename a person reads: control characters, and the invisible "format"
/// characters (general category Cf: bidi overrides such as U+202E that make `exe.mp4` of `4pm.exe`, zero-width
/// spaces and joiners, the BOM) and line or paragraph separators, which show nothing or rearrange the rest.
fn hidden_character(c: char) -> Option<&'static str> {
    match c.general_category() {
        GeneralCategory::Control => Some("a control character"),
        GeneralCategory::Format => Some("an invisible formatting or bidi control character"),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => Some("a line or paragraph separator"),
        _ => None,
    }
}

/// A real media type (RFC 9110 §8.3.1, see [`is_media_type`]), not a wildcard, at most 255 bytes; not trimmed.
pub(super) fn validate_content_type(content_type: Option<String>) -> Result<String, UploadError> {
    let Some(value) = content_type else { return Ok("application/octet-stream".into()) };
    let value = value.as_str();
    if value.len() > 255 || !is_media_type(value) {
        return Err(invalid(
            ErrorCode::InvalidContentType,
            format!("contentType {value:?} is not a media type like video/mp4 or text/plain; charset=utf-8"),
        ));
    }
    Ok(value.to_string())
}

/// RFC 9110's `type "/" subtype *( OWS ";" OWS parameter )`, spaces only for OWS, no wildcard type or
/// subtype: exactly openapi.yaml's pattern for `contentType`, so a client that checks against it is never
/// refused (a general parser such as the `mime` crate's admits and refuses at its own edges).
fn is_media_type(value: &str) -> bool {
    fn tchar(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
    }
    fn token(s: &[u8]) -> usize {
        s.iter().take_while(|b| tchar(**b)).count()
    }
    let s = value.as_bytes();
    let t = token(s);
    if t == 0 || &s[..t] == b"*" || s.get(t) != Some(&b'/') {
        return false;
    }
    let rest = &s[t + 1..];
    let st = token(rest);
    if st == 0 || &rest[..st] == b"*" {
        return false;
    }
    let mut rest = &rest[st..];
    while !rest.is_empty() {
        rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
        let Some(after) = rest.strip_prefix(b";") else { return false };
        rest = &after[after.iter().take_while(|b| **b == b' ').count()..];
        let name = token(rest);
        if name == 0 || rest.get(name) != Some(&b'=') {
            return false;
        }
        rest = &rest[name + 1..];
        if let Some(quoted) = rest.strip_prefix(b"\"") {
            // qdtext: printable ASCII and space but `"` and `\`; quoted-pair: `\` and any of those or `"`/`\`.
            let mut i = 0;
            loop {
                match quoted.get(i) {
                    Some(b'"') => break,
                    Some(b'\\') if quoted.get(i + 1).is_some_and(|b| (b' '..=b'~').contains(b)) => i += 2,
                    Some(b) if (b' '..=b'~').contains(b) && *b != b'\\' => i += 1,
                    _ => return false,
                }
            }
            rest = &quoted[i + 1..];
        } else {
            let value = token(rest);
            if value == 0 {
                return false;
            }
            rest = &rest[value..];
        }
    }
    true
}

pub(super) fn validate_metadata(metadata: Option<serde_json::Value>) -> Result<serde_json::Value, UploadError> {
    match metadata {
        None | Some(serde_json::Value::Null) => Ok(serde_json::json!({})),
        Some(value @ serde_json::Value::Object(_)) if value.to_string().len() > MAX_METADATA_BYTES => Err(invalid(
            ErrorCode::InvalidMetadata,
            format!("metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"),
        )),
        // Postgres jsonb cannot hold U+0000: refuse it here rather than fail the insert.
        Some(value @ serde_json::Value::Object(_)) if holds_nul(&value) => {
            Err(invalid(ErrorCode::InvalidMetadata, "metadata must not contain the character U+0000"))
        }
        Some(value @ serde_json::Value::Object(_)) => Ok(value),
        Some(_) => Err(invalid(ErrorCode::InvalidMetadata, "metadata must be a JSON object")),
    }
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(key, item)| key.contains('\0') || holds_nul(item)),
        _ => false,
    }
}

pub(super) fn validate_etag(etag: &str) -> Result<String, UploadError> {
    // As S3 sends it: printable ASCII, no spaces (openapi.yaml's pattern says the same, so nothing is trimmed).
    if etag.is_empty() || etag.len() > 256 || !etag.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(ErrorCode::InvalidEtag, "etag must be the ETag header S3 answered to the chunk's PUT"));
    }
    // S3 quotes ETags; browsers and clients may pass them with or without. Store S3's form.
    Ok(format!("\"{}\"", etag.trim_matches('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_stored_quoted() {
        assert_eq!(validate_etag("abc").unwrap(), "\"abc\"");
        assert_eq!(validate_etag("\"abc\"").unwrap(), "\"abc\"");
        assert!(validate_etag("").is_err());
        assert!(validate_etag("a b").is_err());
        assert!(validate_etag(" abc").is_err());
    }

    #[test]
    fn content_type_defaults_and_validates() {
        assert_eq!(validate_content_type(None).unwrap(), "application/octet-stream");
        let table = [
            ("video/mp4", Some("video/mp4")),
            // Not trimmed: openapi.yaml's pattern admits no space at either end.
            ("a/b\n", None),
            (" a/b", None),
            ("a/b ", None),
            ("text/plain;charset=\"a \\\"b\\\\\"", Some("text/plain;charset=\"a \\\"b\\\\\"")),
            ("text/plain;", None),
            ("text/plain; a=\"b", None),
            ("text/plain; charset=utf-8", Some("text/plain; charset=utf-8")),
            ("video/webm; codecs=\"vp8, vorbis\"", Some("video/webm; codecs=\"vp8, vorbis\"")),
            ("image/svg+xml", Some("image/svg+xml")),
            ("video", None),
            ("a/\u{7}b", None),
            ("a/b/c", None),
            ("text/html, video/mp4", None),
            ("text /html", None),
            ("text/html; charset", None),
            ("*/*", None),
            ("video/*", None),
            ("/mp4", None),
            ("vidéo/mp4", None),
        ];
        for (given, expected) in table {
            assert_eq!(validate_content_type(Some(given.into())).ok().as_deref(), expected, "{given:?}");
        }
    }

    #[test]
    fn filenames_refuse_hidden_characters_naming_them() {
        let refused = |name: &str| match validate_filename(name.into()) {
            Err(UploadError::FilenameCharacter { character, .. }) => Some(format!("U+{:04X}", character as u32)),
            Err(other) => panic!("{name:?}: {other}"),
            Ok(_) => None,
        };
        let table = [
            ("film.mp4", None),
            ("ünï € 日本語 🎬.mp4", None),
            ("a\nb", Some("U+000A")),
            ("a\u{7f}b", Some("U+007F")),
            ("a\u{85}b", Some("U+0085")),
            ("invoice\u{202E}4pm.exe", Some("U+202E")),
            ("a\u{202A}b", Some("U+202A")),
            ("a\u{2066}b", Some("U+2066")),
            ("a\u{2069}b", Some("U+2069")),
            ("a\u{200E}b", Some("U+200E")),
            ("a\u{200F}b", Some("U+200F")),
            ("a\u{061C}b", Some("U+061C")),
            ("a\u{200B}b", Some("U+200B")),
            ("a\u{200D}b", Some("U+200D")),
            ("a\u{2060}b", Some("U+2060")),
            ("\u{FEFF}film.mp4", Some("U+FEFF")),
            ("a\u{AD}b", Some("U+00AD")),
            ("a\u{E0041}b", Some("U+E0041")),
            ("a\u{2028}b", Some("U+2028")),
            ("a\u{2029}b", Some("U+2029")),
        ];
        for (name, expected) in table {
            assert_eq!(refused(name).as_deref(), expected, "{name:?}");
        }
    }

    #[test]
    fn filenames_and_metadata() {
        assert!(validate_filename("  ".into()).is_err());
        assert!(validate_filename("x".repeat(1025)).is_err());
        assert_eq!(validate_filename(" film.mp4 ".into()).unwrap(), "film.mp4");
        assert!(validate_metadata(Some(serde_json::json!([1]))).is_err());
        assert_eq!(validate_metadata(None).unwrap(), serde_json::json!({}));
        assert!(validate_metadata(Some(serde_json::json!({ "a": ["x\u{0}"] }))).is_err());
        assert!(validate_metadata(Some(serde_json::json!({ "a\u{0}": 1 }))).is_err());
        assert!(validate_metadata(Some(serde_json::json!({ "a": "\\u0000" }))).is_ok());
    }
}
