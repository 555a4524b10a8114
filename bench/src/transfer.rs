//! Download throughput: a whole GET, one range, or a file read as N ranges at once, each on its own connection.

use std::time::Instant;

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures::future::try_join_all;
use http::{HeaderMap, HeaderValue, Method, Uri, header};

use crate::http::{authority, connect, drain, request};

const MIB: f64 = 1024.0 * 1024.0;

/// Which bytes of a `size`-byte file one measurement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Whole,
    /// `bytes=1-(size-2)`: all but the first and last byte, so the server must honour the range.
    OneRange,
    /// The file split into this many ranges, fetched at once.
    ParallelRanges(u64),
}

impl Read {
    pub fn label(self) -> String {
        match self {
            Read::Whole => "whole GET".into(),
            Read::OneRange => "one range".into(),
            Read::ParallelRanges(n) => format!("{n} parallel ranges"),
        }
    }
}

/// One timed read; MiB/s over the wall time of every request it makes.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub bytes: u64,
    pub seconds: f64,
}

impl Transfer {
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / MIB / self.seconds
    }
}

/// The requests of one read: `None` for a whole GET, else inclusive byte ranges covering what it reads.
fn requests(size: u64, read: Read) -> Vec<Option<(u64, u64)>> {
    match read {
        Read::Whole => vec![None],
        Read::OneRange => vec![Some((1, size.saturating_sub(2)))],
        Read::ParallelRanges(n) => {
            let step = size.div_ceil(n.max(1));
            (0..n)
                .map(|i| (i * step, ((i + 1) * step).min(size)))
                .filter(|(a, b)| a < b)
                .map(|(a, b)| Some((a, b - 1)))
                .collect()
        }
    }
}

pub async fn measure(url: &Uri, headers: &HeaderMap, size: u64, read: Read) -> anyhow::Result<Transfer> {
    let started = Instant::now();
    let fetches = requests(size, read).into_iter().map(|range| fetch(url, headers, range));
    let bytes = try_join_all(fetches).await?.into_iter().sum();
    Ok(Transfer { bytes, seconds: started.elapsed().as_secs_f64() })
}

/// One GET on a fresh connection, checked for the status and length it must have.
pub async fn fetch(url: &Uri, headers: &HeaderMap, range: Option<(u64, u64)>) -> anyhow::Result<u64> {
    let mut sender = connect(&authority(url)?).await?;
    let mut headers = headers.clone();
    if let Some((first, last)) = range {
        headers.insert(header::RANGE, HeaderValue::from_str(&format!("bytes={first}-{last}"))?);
    }
    let response = sender.send_request(request(&Method::GET, url, &headers, Bytes::new())?).await?;
    let status = response.status();
    let declared: Option<u64> =
        response.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let expected_status = if range.is_some() { 206 } else { 200 };
    ensure!(status.as_u16() == expected_status, "GET {url} answered {status}, not {expected_status}");
    let length = drain(response).await.with_context(|| format!("reading {url}"))?;
    if let Some((first, last)) = range {
        ensure!(length == last - first + 1, "range {first}-{last} of {url} gave {length} bytes");
    }
    ensure!(declared.is_none_or(|d| d == length), "{url}: Content-Length {declared:?} but {length} bytes");
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cover_the_bytes_they_say() {
        type Ranges = &'static [Option<(u64, u64)>];
        let cases: &[(u64, Read, Ranges)] = &[
            (100, Read::Whole, &[None]),
            (100, Read::OneRange, &[Some((1, 98))]),
            (100, Read::ParallelRanges(4), &[Some((0, 24)), Some((25, 49)), Some((50, 74)), Some((75, 99))]),
            (10, Read::ParallelRanges(4), &[Some((0, 2)), Some((3, 5)), Some((6, 8)), Some((9, 9))]),
            (2, Read::ParallelRanges(8), &[Some((0, 0)), Some((1, 1))]),
        ];
        for (size, read, expected) in cases {
            assert_eq!(requests(*size, *read), *expected, "{size} bytes, {read:?}");
        }
    }
}
