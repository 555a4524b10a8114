//! Checks of what clients send, each failing with a machine-readable code.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::UploadError;
use crate::domain::Sha256Digest;
use crate::error_code::ErrorCode;

const MAX_METADATA_BYTES: usize = 16 * 1024;

pub(super) fn invalid(code: ErrorCode, message: impl Into<String>) -> UploadError {
    UploadError::Invalid { code, message: message.into() }
}

pub(super) fn parse_sha256(value: &str) -> Result<Sha256Digest, UploadError> {
    Sha256Digest::parse_hex(value).map_err(|e| invalid(ErrorCode::InvalidSha256, format!("sha256 {value:?}: {e}")))
}

pub(super) fn validate_filename(filename: String) -> Result<String, UploadError> {
    let trimmed = filename.trim();
    if trimmed.is_empty() || trimmed.len() > 1024 {
        return Err(invalid(ErrorCode::InvalidFilename, "filename must be 1 to 1024 bytes of text"));
    }
    if let Some((character, kind)) = trimmed.chars().find_map(|c| hidden_character(c).map(|kind| (c, kind))) {
        return Err(UploadError::FilenameCharacter { character, kind });
    }
    Ok(trimmed.to_string())
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

/// A real media type (RFC 9110 §8.3.1, as the `mime` crate parses it), not a wildcard, at most 255 bytes.
pub(super) fn validate_content_type(content_type: Option<String>) -> Result<String, UploadError> {
    let Some(value) = content_type else { return Ok("application/octet-stream".into()) };
    let value = value.trim();
    let parsed = value.parse::<mime::Mime>().ok().filter(|m| m.type_() != mime::STAR && m.subtype() != mime::STAR);
    let valid = value.len() <= 255 && parsed.is_some() && value.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if !valid {
        return Err(invalid(
            ErrorCode::InvalidContentType,
            format!("contentType {value:?} is not a media type like video/mp4 or text/plain; charset=utf-8"),
        ));
    }
    Ok(value.to_string())
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
    let etag = etag.trim();
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
    }

    #[test]
    fn content_type_defaults_and_validates() {
        assert_eq!(validate_content_type(None).unwrap(), "application/octet-stream");
        let table = [
            ("video/mp4", Some("video/mp4")),
            ("a/b\n", Some("a/b")), // trimmed
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
