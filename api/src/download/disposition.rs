//! `Content-Disposition` (RFC 6266) with the filename in both forms: an ASCII `filename` fallback and the
//! exact name as `filename*=UTF-8''...` (RFC 8187), so no client sees a header it could misparse.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    #[default]
    Attachment,
    Inline,
}

impl Disposition {
    pub fn header_value(self, filename: &str) -> String {
        let kind = match self {
            Disposition::Attachment => "attachment",
            Disposition::Inline => "inline",
        };
        // The fallback keeps printable ASCII except what would end or escape the quoted string, or name a path.
        let fallback: String = filename
            .chars()
            .map(|c| if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | '%') || c == ' ' { c } else { '_' })
            .collect();
        let encoded = utf8_percent_encode(filename, ATTR_CHAR_ESCAPES);
        format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

#[cfg(test)]
mod tests {
    use super::Disposition::{Attachment, Inline};

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
