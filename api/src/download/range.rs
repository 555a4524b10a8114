//! The `Range` request header (RFC 9110 §14.1–14.2) resolved against a representation of known size.
//!
//! Pure: no I/O, so every rule is a row in the tables below.

/// Most range-specs one request may carry; past it the header is ignored (RFC 9110 §14.2 allows it) and the
/// whole object is sent, so a client cannot make us open hundreds of S3 reads for one request.
pub const MAX_RANGES: usize = 16;

pub use uploads::domain::ByteRange;

/// What the response should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable Range header: 200 with the whole representation.
    Full,
    /// One range: 206 with `Content-Range`.
    Single(ByteRange),
    /// Several disjoint ranges, ascending: 206 `multipart/byteranges`.
    Multiple(Vec<ByteRange>),
    /// A valid header none of whose ranges overlaps the representation: 416 with `bytes */size`.
    Unsatisfiable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `first-` or `first-last`.
    Int { first: u64, last: Option<u64> },
    /// `-length`: the last `length` bytes.
    Suffix { length: u64 },
}

/// Resolves a `Range` header value against a representation of `size` bytes.
pub fn resolve(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(specs) = header.and_then(parse) else { return RangeOutcome::Full };
    if specs.len() > MAX_RANGES {
        return RangeOutcome::Full;
    }
    let mut ranges: Vec<ByteRange> = specs.into_iter().filter_map(|spec| satisfiable(spec, size)).collect();
    match ranges.len() {
        0 => RangeOutcome::Unsatisfiable,
        1 => RangeOutcome::Single(ranges[0]),
        _ => {
            ranges = coalesce(ranges);
            if ranges.len() == 1 { RangeOutcome::Single(ranges[0]) } else { RangeOutcome::Multiple(ranges) }
        }
    }
}

/// `None` for anything that is not a valid `bytes` ranges-specifier: such a header is ignored.
fn parse(header: &str) -> Option<Vec<RangeSpec>> {
    let (unit, set) = header.trim_matches(is_ows).split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    // `1#range-spec`: elements separated by OWS "," OWS; empty elements are allowed and skipped (§5.6.1).
    let mut specs = Vec::new();
    for element in set.split(',').map(|e| e.trim_matches(is_ows)).filter(|e| !e.is_empty()) {
        specs.push(parse_spec(element)?);
    }
    (!specs.is_empty()).then_some(specs)
}

fn parse_spec(spec: &str) -> Option<RangeSpec> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(RangeSpec::Suffix { length: parse_digits(last)? });
    }
    let first = parse_digits(first)?;
    let last = if last.is_empty() { None } else { Some(parse_digits(last)?) };
    // An int-range whose last-pos is below its first-pos is invalid, which invalidates the whole header.
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(RangeSpec::Int { first, last })
}

/// `1*DIGIT`. Values past u64 saturate: still valid syntax, and past any size we could hold, which gives the
/// answers RFC 9110 asks for (a huge last-pos is clamped, a huge first-pos is unsatisfiable).
fn parse_digits(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

fn satisfiable(spec: RangeSpec, size: u64) -> Option<ByteRange> {
    match spec {
        RangeSpec::Int { first, last } if first < size => {
            Some(ByteRange { start: first, end: last.map_or(size - 1, |last| last.min(size - 1)) })
        }
        RangeSpec::Suffix { length } if length > 0 && size > 0 => {
            Some(ByteRange { start: size.saturating_sub(length), end: size - 1 })
        }
        _ => None,
    }
}

/// Sorts and merges overlapping or adjacent ranges (RFC 9110 §14.2 lets a server coalesce them).
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end.saturating_add(1) => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::{Full, Multiple, Single, Unsatisfiable};
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn rfc_9110_examples_on_a_10000_byte_representation() {
        let table: &[(&str, RangeOutcome)] = &[
            // §14.1.2
            ("bytes=0-499", Single(r(0, 499))),
            ("bytes=500-999", Single(r(500, 999))),
            ("bytes=-500", Single(r(9500, 9999))),
            ("bytes=9500-", Single(r(9500, 9999))),
            ("bytes=0-0,-1", Multiple(vec![r(0, 0), r(9999, 9999)])),
            // coalesced: the two overlap
            ("bytes=500-600,601-999", Single(r(500, 999))),
            ("bytes=500-700,601-999", Single(r(500, 999))),
        ];
        for (header, expected) in table {
            assert_eq!(resolve(Some(header), 10_000), *expected, "{header}");
        }
    }

    #[test]
    fn edge_cases() {
        let size = 1000;
        let table: &[(Option<&str>, RangeOutcome)] = &[
            (None, Full),
            (Some("bytes=0-0"), Single(r(0, 0))),
            (Some("bytes=0-"), Single(r(0, 999))),
            (Some("bytes=999-"), Single(r(999, 999))),
            (Some("bytes=-1"), Single(r(999, 999))),
            (Some("bytes=-5000"), Single(r(0, 999))), // suffix longer than the object: all of it
            (Some("bytes=900-5000"), Single(r(900, 999))), // end past the size: clamped
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=1000-"), Unsatisfiable),
            (Some("bytes=1000-2000"), Unsatisfiable),
            (Some("bytes=1000-2000,-0"), Unsatisfiable),
            (Some("bytes=5000-,0-1"), Single(r(0, 1))), // one satisfiable spec is enough
            (Some("bytes=5-1"), Full),                  // last < first: invalid, ignored
            (Some("bytes=0-1,5-1"), Full),
            (Some("bytes=0-99999999999999999999999"), Single(r(0, 999))), // overflow clamps
            (Some("bytes=99999999999999999999999-"), Unsatisfiable),
            (Some("bytes=-99999999999999999999999"), Single(r(0, 999))),
            (Some("bytes=0-1, 4-5"), Multiple(vec![r(0, 1), r(4, 5)])), // OWS around commas
            (Some("bytes=0-1 ,\t4-5"), Multiple(vec![r(0, 1), r(4, 5)])),
            (Some(" bytes=0-1 "), Single(r(0, 1))),
            (Some("bytes=0-1,,4-5,"), Multiple(vec![r(0, 1), r(4, 5)])), // empty list elements
            (Some("bytes=0 - 1"), Full),                                 // whitespace inside a range-spec
            (Some("bytes =0-1"), Full),
            (Some("BYTES=0-1"), Single(r(0, 1))), // the unit is case-insensitive
            (Some("items=0-1"), Full),            // other units are ignored
            (Some("bytes"), Full),
            (Some("bytes="), Full),
            (Some("bytes=,"), Full),
            (Some("bytes=-"), Full),
            (Some("bytes=a-b"), Full),
            (Some("bytes=+1-2"), Full),
            (Some("bytes=1-2-3"), Full),
            (Some("bytes=0-0x10"), Full),
            (Some("bytes=10-20,0-5,21-30,100-200"), Multiple(vec![r(0, 5), r(10, 30), r(100, 200)])),
            (Some("bytes=0-9,5-14"), Single(r(0, 14))),
        ];
        for (header, expected) in table {
            assert_eq!(resolve(*header, size), *expected, "{header:?}");
        }
    }

    #[test]
    fn a_zero_byte_object_satisfies_no_range() {
        for header in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0"] {
            assert_eq!(resolve(Some(header), 0), Unsatisfiable, "{header}");
        }
        assert_eq!(resolve(Some("bytes=5-1"), 0), Full);
    }

    #[test]
    fn too_many_ranges_are_ignored() {
        let within: Vec<String> = (0..MAX_RANGES).map(|i| format!("{}-{}", i * 10, i * 10 + 1)).collect();
        assert!(
            matches!(resolve(Some(&format!("bytes={}", within.join(","))), 1000), Multiple(v) if v.len() == MAX_RANGES)
        );
        let past: Vec<String> = (0..=MAX_RANGES).map(|i| format!("{}-{}", i * 10, i * 10 + 1)).collect();
        assert_eq!(resolve(Some(&format!("bytes={}", past.join(","))), 1000), Full);
    }
}
