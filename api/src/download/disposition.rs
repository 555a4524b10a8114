//! `Content-Disposition` (RFC 6266) with the filename in both forms: an ASCII `filename` fallback and the
//! exact name as `filename*=UTF-8''...` (RFC 8187), so no client sees a header it could misparse; and which
//! files a browser may render in place rather than save.
//!
//! The API's own web page shares the files' origin: a file rendered inline that runs script (HTML, SVG, XML,
//! ...) would run it as the page. So `inline` is honoured only for types a browser renders passively, and
//! every other file is an attachment whatever the request asks.

use mime::Mime;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 8187 `attr-char`: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~".
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Raster formats browsers decode as pictures. SVG is not one: it is a document that runs script.
const RASTER_IMAGES: &[&str] = &[
    "apng",
    "avif",
    "bmp",
    "gif",
    "heic",
    "heif",
    "jpeg",
    "jxl",
    "png",
    "tiff",
    "vnd.microsoft.icon",
    "webp",
    "x-icon",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    #[default]
    Attachment,
    Inline,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Attachment => "attachment",
            Disposition::Inline => "inline",
        }
    }

    /// What a file of `media_type` is served as when the request asks for `self`.
    pub fn allowed_for(self, media_type: &Mime) -> Self {
        if self == Disposition::Inline && renders_passively(media_type) { self } else { Disposition::Attachment }
    }

    pub fn header_value(self, filename: &str) -> String {
        // The fallback keeps printable ASCII except what would end or escape the quoted string, or name a path.
        let fallback: String = filename
            .chars()
            .map(|c| if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | '%') || c == ' ' { c } else { '_' })
            .collect();
        let encoded = utf8_percent_encode(filename, ATTR_CHAR_ESCAPES);
        format!("{}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}", self.as_str())
    }
}

/// Video, audio, raster images and PDF: what a browser shows without running anything of the file's.
pub fn renders_passively(media_type: &Mime) -> bool {
    let (top, sub) = (media_type.type_(), media_type.subtype());
    if top == mime::VIDEO || top == mime::AUDIO {
        return true;
    }
    if top == mime::IMAGE {
        return media_type.suffix().is_none()
            && RASTER_IMAGES.iter().any(|raster| sub.as_str().eq_ignore_ascii_case(raster));
    }
    top == mime::APPLICATION && sub == mime::PDF
}

/// The media type a stored `Content-Type` is served as. Types are checked when an upload is created; one
/// that does not parse (stored before that check) is served as opaque bytes.
pub fn served_media_type(stored: &str) -> Mime {
    stored.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM)
}

#[cfg(test)]
mod tests {
    use super::Disposition::{Attachment, Inline};
    use super::*;

    #[test]
    fn inline_only_for_what_renders_passively() {
        let table: &[(&str, super::Disposition, super::Disposition)] = &[
            ("video/mp4", Inline, Inline),
            ("video/webm; codecs=\"vp9\"", Inline, Inline),
            ("audio/mpeg", Inline, Inline),
            ("image/png", Inline, Inline),
            ("IMAGE/JPEG", Inline, Inline),
            ("image/webp", Inline, Inline),
            ("application/pdf", Inline, Inline),
            ("video/mp4", Attachment, Attachment),
            ("image/svg+xml", Inline, Attachment),
            ("image/svg", Inline, Attachment),
            ("image/x-unknown", Inline, Attachment),
            ("text/html", Inline, Attachment),
            ("text/html; charset=utf-8", Inline, Attachment),
            ("application/xhtml+xml", Inline, Attachment),
            ("text/xml", Inline, Attachment),
            ("application/xml", Inline, Attachment),
            ("text/javascript", Inline, Attachment),
            ("application/javascript", Inline, Attachment),
            ("text/plain", Inline, Attachment),
            ("application/octet-stream", Inline, Attachment),
            ("multipart/x-mixed-replace; boundary=x", Inline, Attachment),
        ];
        for (content_type, asked, served) in table {
            let media_type: Mime = content_type.parse().unwrap();
            assert_eq!(asked.allowed_for(&media_type), *served, "{content_type} asked {asked:?}");
        }
    }

    #[test]
    fn stored_types_that_do_not_parse_are_opaque_bytes() {
        assert_eq!(served_media_type("video/mp4").essence_str(), "video/mp4");
        assert_eq!(served_media_type("text/html; charset=utf-8").essence_str(), "text/html");
        for stored in ["video", "text/html, video/mp4", "a b/c", ""] {
            assert_eq!(served_media_type(stored), mime::APPLICATION_OCTET_STREAM, "{stored}");
        }
    }

    #[test]
    fn filenames_are_encoded_twice_safely() {
        let table: &[(super::Disposition, &str, &str)] = &[
            (Attachment, "film.mp4", "attachment; filename=\"film.mp4\"; filename*=UTF-8''film.mp4"),
            (Inline, "my film.mp4", "inline; filename=\"my film.mp4\"; filename*=UTF-8''my%20film.mp4"),
            (
                Attachment,
                "€ rates \"q\".pdf",
                "attachment; filename=\"_ rates _q_.pdf\"; filename*=UTF-8''%E2%82%AC%20rates%20%22q%22.pdf",
            ),
            (Attachment, "a/b\\c;d%e", "attachment; filename=\"a_b_c;d_e\"; filename*=UTF-8''a%2Fb%5Cc%3Bd%25e"),
            (Attachment, "ünï.txt", "attachment; filename=\"_n_.txt\"; filename*=UTF-8''%C3%BCn%C3%AF.txt"),
        ];
        for (disposition, name, expected) in table {
            let value = disposition.header_value(name);
            assert_eq!(value, *expected);
            assert!(axum::http::HeaderValue::from_str(&value).is_ok());
        }
    }
}
