//! The opaque cursor of `GET /v1/uploads`: the (created_at, id) of the last upload a page showed.
//!
//! Pages are keyset pages (`(created_at, id) < cursor`, newest first), so an upload created while a client
//! pages through can never shift later pages: nothing is shown twice and nothing is skipped.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

/// 8 bytes of microseconds since the epoch (Postgres' precision, so the value survives the round trip
/// exactly) and the 16 bytes of the id.
const ENCODED_BYTES: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not a nextCursor (32 base64url characters): pass the nextCursor of a previous page as it is")]
pub struct ListCursorError;

impl ListCursor {
    /// The cursor after the upload created at `created_at` with `id`; sub-microsecond precision is dropped,
    /// as Postgres drops it.
    pub fn after(created_at: DateTime<Utc>, id: Uuid) -> Self {
        let created_at = DateTime::from_timestamp_micros(created_at.timestamp_micros()).expect("a stored timestamp");
        Self { created_at, id }
    }

    pub fn encode(&self) -> String {
        let mut bytes = [0u8; ENCODED_BYTES];
        bytes[..8].copy_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        bytes[8..].copy_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn parse(value: &str) -> Result<Self, ListCursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| ListCursorError)?;
        let bytes: [u8; ENCODED_BYTES] = bytes.try_into().map_err(|_| ListCursorError)?;
        let micros = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        // Every 24 bytes name a position in (created_at, id) order, so every 32 characters of base64url are
        // a cursor (openapi.yaml's pattern): one past any date an upload can have is clamped to the years
        // 1..=9999, which keeps its place in the order and stays inside what Postgres and chrono hold.
        let (first, last) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let bounds = |year| first.with_year(year).unwrap_or(first).timestamp_micros();
        let micros = micros.clamp(bounds(1), last.with_year(9999).unwrap_or(last).timestamp_micros());
        let created_at = DateTime::from_timestamp_micros(micros).ok_or(ListCursorError)?;
        let id = Uuid::from_slice(&bytes[8..]).map_err(|_| ListCursorError)?;
        Ok(Self { created_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_round_trip_at_postgres_precision() {
        let created_at = DateTime::parse_from_rfc3339("2026-11-23T13:18:37.049101789Z").unwrap().to_utc();
        let id: Uuid = "01a2088e-f7d1-737b-9b97-67fc3c09d39b".parse().unwrap();
        let cursor = ListCursor::after(created_at, id);
        assert_eq!(cursor.created_at.to_rfc3339(), "2026-11-23T13:18:37.049101+00:00");
        let encoded = cursor.encode();
        assert_eq!(encoded.len(), 32);
        assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{encoded}");
        assert_eq!(ListCursor::parse(&encoded), Ok(cursor));
    }

    #[test]
    fn anything_else_is_refused() {
        let valid = ListCursor::after(Utc::now(), Uuid::now_v7()).encode();
        for value in [
            "",
            "not a cursor",
            &valid[..31],
            &format!("{valid}AA"),
            &format!("{valid}="),
            &valid.replace(|c: char| c.is_ascii_alphanumeric(), "+"),
        ] {
            assert_eq!(ListCursor::parse(value), Err(ListCursorError), "{value:?}");
        }
    }

    #[test]
    fn a_position_past_any_date_is_clamped_into_years_1_to_9999() {
        let id = [7; 16];
        for (micros, year) in [(i64::MAX, 9999), (i64::MIN, 1)] {
            let value = URL_SAFE_NO_PAD.encode([micros.to_be_bytes().as_slice(), &id].concat());
            let cursor = ListCursor::parse(&value).unwrap();
            assert_eq!((cursor.created_at.year(), cursor.id), (year, Uuid::from_bytes(id)), "{value}");
        }
    }
}
