//! Conditional requests (RFC 9110 §13): `If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since` and `If-Range`, evaluated in the order §13.2.2 prescribes.
//!
//! Pure: the validators come from the completed upload, so 304, 412 and a failed `If-Range` cost no S3 call.

use std::time::SystemTime;

/// The validators of the representation: its strong ETag (quoted, as S3 gives it) and Last-Modified.
#[derive(Debug, Clone)]
pub struct Validators<'a> {
    pub etag: &'a str,
    /// Whole seconds: the resolution of an HTTP-date.
    pub last_modified: SystemTime,
}

/// The request's precondition headers, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// 412.
    Failed,
    /// 304.
    NotModified,
    /// Answer normally; `honor_range` is false when `If-Range` did not match (send the whole object).
    Proceed { honor_range: bool },
}

/// §13.2.2 for GET and HEAD (`If-Range` only matters when a Range header is present).
pub fn evaluate(conditions: &Conditions<'_>, current: &Validators<'_>) -> Precondition {
    // 1. If-Match; 2. else If-Unmodified-Since.
    if let Some(if_match) = conditions.if_match {
        if !etag_list_matches(if_match, current.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = conditions.if_unmodified_since.and_then(parse_date)
        && current.last_modified > date
    {
        return Precondition::Failed;
    }
    // 3. If-None-Match; 4. else If-Modified-Since.
    if let Some(if_none_match) = conditions.if_none_match {
        if etag_list_matches(if_none_match, current.etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let Some(date) = conditions.if_modified_since.and_then(parse_date)
        && current.last_modified <= date
    {
        return Precondition::NotModified;
    }
    // 5. If-Range.
    let honor_range = conditions.if_range.is_none_or(|value| if_range_matches(value, current));
    Precondition::Proceed { honor_range }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// `"*"` or a list of entity-tags (§8.8.3). A malformed list matches nothing.
fn etag_list_matches(list: &str, current: &str, comparison: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let Some(current) = parse_etag(current.trim()) else { return false };
    let Some(tags) = parse_etag_list(list) else { return false };
    tags.iter().any(|tag| match comparison {
        Comparison::Strong => !tag.weak && !current.weak && tag.opaque == current.opaque,
        Comparison::Weak => tag.opaque == current.opaque,
    })
}

/// `If-Range`: an entity-tag compared strongly, or an HTTP-date equal to Last-Modified (§13.1.5).
/// The object at a completed upload never changes, so its Last-Modified is a strong validator.
fn if_range_matches(value: &str, current: &Validators<'_>) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        let current = parse_etag(current.etag.trim());
        return parse_etag(value).is_some_and(|tag| !tag.weak && current.is_some_and(|c| !c.weak && c == tag));
    }
    parse_date(value).is_some_and(|date| date == current.last_modified)
}

#[derive(Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a str,
}

fn parse_etag(value: &str) -> Option<EntityTag<'_>> {
    let (weak, rest) = match value.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let opaque = rest.strip_prefix('"')?.strip_suffix('"')?;
    // etagc = %x21 / %x23-7E / obs-text: no DQUOTE, no whitespace, no controls.
    opaque.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80).then_some(EntityTag { weak, opaque })
}

fn parse_etag_list(list: &str) -> Option<Vec<EntityTag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = list.trim_matches([' ', '\t']);
    while !rest.is_empty() {
        let start = if rest.starts_with("W/") { 2 } else { 0 };
        if !rest[start..].starts_with('"') {
            return None;
        }
        let close = start + 1 + rest[start + 1..].find('"')?;
        tags.push(parse_etag(&rest[..=close])?);
        rest = rest[close + 1..].trim_start_matches([' ', '\t']);
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start_matches([' ', '\t', ',']),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    (!tags.is_empty()).then_some(tags)
}

/// An HTTP-date in any of the three formats §5.6.7 makes recipients accept; anything else is ignored.
fn parse_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value.trim()).ok()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::Precondition::{Failed, NotModified, Proceed};
    use super::*;

    const ETAG: &str = "\"9b2cf535f27731c974343645a3985328-3\"";
    // Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date.
    const LAST_MODIFIED: u64 = 784_111_777;
    const SAME: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const EARLIER: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn run(conditions: Conditions<'_>) -> Precondition {
        let current = Validators { etag: ETAG, last_modified: UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED) };
        evaluate(&conditions, &current)
    }

    const GO: Precondition = Proceed { honor_range: true };
    const WHOLE: Precondition = Proceed { honor_range: false };

    #[test]
    fn if_match_uses_the_strong_comparison() {
        let table: &[(&str, Precondition)] = &[
            ("*", GO),
            (ETAG, GO),
            ("\"other\", \"9b2cf535f27731c974343645a3985328-3\"", GO),
            ("\"other\"", Failed),
            ("W/\"9b2cf535f27731c974343645a3985328-3\"", Failed), // weak never matches strongly
            ("9b2cf535f27731c974343645a3985328-3", Failed),       // unquoted: malformed
            ("", Failed),
        ];
        for (value, expected) in table {
            assert_eq!(run(Conditions { if_match: Some(value), ..Default::default() }), *expected, "{value}");
        }
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let table: &[(&str, Precondition)] = &[
            ("*", NotModified),
            (ETAG, NotModified),
            ("W/\"9b2cf535f27731c974343645a3985328-3\"", NotModified),
            ("\"a\",W/\"9b2cf535f27731c974343645a3985328-3\"", NotModified),
            ("\"a\" , \"b\"", GO),
            ("\"xyzzy\"", GO),
            ("garbage", GO),
        ];
        for (value, expected) in table {
            assert_eq!(run(Conditions { if_none_match: Some(value), ..Default::default() }), *expected, "{value}");
        }
    }

    #[test]
    fn dates_in_all_three_formats_and_invalid_ones_ignored() {
        let ims: &[(&str, Precondition)] = &[
            (SAME, NotModified),
            (LATER, NotModified),
            (EARLIER, GO),
            ("Sunday, 06-Nov-94 08:49:37 GMT", NotModified), // RFC 850
            ("Sun Nov  6 08:49:37 1994", NotModified),       // asctime
            ("yesterday", GO),
        ];
        for (value, expected) in ims {
            assert_eq!(run(Conditions { if_modified_since: Some(value), ..Default::default() }), *expected, "{value}");
        }
        let ius: &[(&str, Precondition)] = &[(SAME, GO), (LATER, GO), (EARLIER, Failed), ("not a date", GO)];
        for (value, expected) in ius {
            assert_eq!(
                run(Conditions { if_unmodified_since: Some(value), ..Default::default() }),
                *expected,
                "{value}"
            );
        }
    }

    #[test]
    fn precedence_of_section_13_2_2() {
        // If-Match present: If-Unmodified-Since is not looked at.
        assert_eq!(
            run(Conditions { if_match: Some(ETAG), if_unmodified_since: Some(EARLIER), ..Default::default() }),
            GO
        );
        // If-None-Match present: If-Modified-Since is not looked at.
        assert_eq!(
            run(Conditions { if_none_match: Some("\"other\""), if_modified_since: Some(LATER), ..Default::default() }),
            GO
        );
        // 412 wins over 304.
        assert_eq!(
            run(Conditions { if_match: Some("\"other\""), if_none_match: Some(ETAG), ..Default::default() }),
            Failed
        );
        assert_eq!(
            run(Conditions { if_unmodified_since: Some(EARLIER), if_none_match: Some(ETAG), ..Default::default() }),
            Failed
        );
    }

    #[test]
    fn if_range_with_etag_or_date() {
        let table: &[(&str, Precondition)] = &[
            (ETAG, GO),
            ("\"other\"", WHOLE),
            ("W/\"9b2cf535f27731c974343645a3985328-3\"", WHOLE), // weak tags never match in If-Range
            (SAME, GO),
            (LATER, WHOLE), // a date must be an exact match
            (EARLIER, WHOLE),
            ("garbage", WHOLE),
            ("\"a\", \"b\"", WHOLE), // a list is not a valid If-Range
        ];
        for (value, expected) in table {
            assert_eq!(run(Conditions { if_range: Some(value), ..Default::default() }), *expected, "{value}");
        }
        assert_eq!(run(Conditions { if_range: Some(&format!("{ETAG}, {ETAG}")), ..Default::default() }), WHOLE);
    }
}
