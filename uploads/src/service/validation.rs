//! Checks of what clients send, each failing with a machine-readable code.

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
    if trimmed.is_empty() || trimmed.len() > 1024 || trimmed.chars().any(char::is_control) {
        return Err(invalid(
            ErrorCode::InvalidFilename,
            "filename must be 1 to 1024 bytes of text without control characters",
        ));
    }
    Ok(trimmed.to_string())
}

pub(super) fn validate_content_type(content_type: Option<String>) -> Result<String, UploadError> {
    let Some(value) = content_type else { return Ok("application/octet-stream".into()) };
    let value = value.trim();
    let valid = value.len() <= 255
        && value.split_once('/').is_some_and(|(t, s)| !t.is_empty() && !s.is_empty())
        && value.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if !valid {
        return Err(invalid(
            ErrorCode::InvalidContentType,
            format!("contentType {value:?} is not a media type like video/mp4"),
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
        assert_eq!(validate_content_type(Some("video/mp4".into())).unwrap(), "video/mp4");
        assert!(validate_content_type(Some("video".into())).is_err());
        assert!(validate_content_type(Some("a/b\n".into())).is_ok()); // trimmed
        assert!(validate_content_type(Some("a/\u{7}b".into())).is_err());
    }

    #[test]
    fn filenames_and_metadata() {
        assert!(validate_filename("  ".into()).is_err());
        assert!(validate_filename("a\nb".into()).is_err());
        assert_eq!(validate_filename(" film.mp4 ".into()).unwrap(), "film.mp4");
        assert!(validate_metadata(Some(serde_json::json!([1]))).is_err());
        assert_eq!(validate_metadata(None).unwrap(), serde_json::json!({}));
        assert!(validate_metadata(Some(serde_json::json!({ "a": ["x\u{0}"] }))).is_err());
        assert!(validate_metadata(Some(serde_json::json!({ "a\u{0}": 1 }))).is_err());
        assert!(validate_metadata(Some(serde_json::json!({ "a": "\\u0000" }))).is_ok());
    }
}
