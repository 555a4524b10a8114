//! How a file is cut into chunks, and hashing them as they are read (never the whole file in memory).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::CliError;

const MIB: u64 = 1024 * 1024;
pub const DEFAULT_CHUNK_SIZE: u64 = 8 * MIB;
/// S3 allows at most 10,000 parts.
const MAX_CHUNKS: u64 = 10_000;
const READ_BUFFER: usize = 1024 * 1024;

/// The chunk size to ask for: the user's (or 8 MiB), raised to the smallest whole MiB that stays
/// within S3's 10,000 parts. The service validates the rest and says why when it refuses.
pub fn chunk_size_for(size: u64, requested: Option<u64>) -> u64 {
    let wanted = requested.unwrap_or(DEFAULT_CHUNK_SIZE).max(1);
    if size.div_ceil(wanted) <= MAX_CHUNKS { wanted } else { size.div_ceil(MAX_CHUNKS).div_ceil(MIB) * MIB }
}

/// Parses `8MiB`, `16M`, `5242880`...
pub fn parse_size(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{value:?} is not a size (e.g. 8MiB, 16M, 5242880)"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => MIB,
        "g" | "gib" | "gb" => 1024 * MIB,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("{value:?} is too large"))
}

/// Byte range `[start, start + len)` of chunk `index`.
pub fn chunk_span(index: u32, chunk_size: u64, size: u64) -> (u64, u64) {
    let start = u64::from(index) * chunk_size;
    (start, chunk_size.min(size.saturating_sub(start)))
}

pub fn total_chunks(size: u64, chunk_size: u64) -> u32 {
    u32::try_from(size.div_ceil(chunk_size)).expect("at most 10,000 chunks")
}

/// Hashes the chunks in `indices` (ascending), handing each digest to `on_chunk` as soon as it is known so
/// their upload can start while the rest is read; with `whole_file`, every chunk is read (those not asked for
/// only feed the file's digest) and the file's SHA-256 is returned. Stops early, with `None`, when
/// `on_chunk` returns false (nobody is waiting any more).
pub fn hash_chunks(
    path: &Path,
    chunk_size: u64,
    size: u64,
    indices: &[u32],
    whole_file: bool,
    mut on_chunk: impl FnMut(u32, [u8; 32]) -> bool,
) -> Result<Option<[u8; 32]>, CliError> {
    let context = || format!("cannot read {}", path.display());
    let mut file = File::open(path).map_err(CliError::io(context()))?;
    let mut whole = whole_file.then(Sha256::new);
    let mut buffer = vec![0u8; READ_BUFFER];
    let reads: Vec<(u32, bool)> = if whole_file {
        let mut wanted = indices.iter().peekable();
        (0..total_chunks(size, chunk_size)).map(|index| (index, wanted.next_if_eq(&&index).is_some())).collect()
    } else {
        indices.iter().map(|&index| (index, true)).collect()
    };
    for (index, wanted) in reads {
        let (start, len) = chunk_span(index, chunk_size, size);
        file.seek(SeekFrom::Start(start)).map_err(CliError::io(context()))?;
        let mut chunk = wanted.then(Sha256::new);
        let mut left = len;
        while left > 0 {
            let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let read = file.read(&mut buffer[..want]).map_err(CliError::io(context()))?;
            if read == 0 {
                return Err(CliError::Other(format!("{} shrank while it was being read", path.display())));
            }
            if let Some(chunk) = chunk.as_mut() {
                chunk.update(&buffer[..read]);
            }
            if let Some(whole) = whole.as_mut() {
                whole.update(&buffer[..read]);
            }
            left -= read as u64;
        }
        if let Some(chunk) = chunk
            && !on_chunk(index, chunk.finalize().into())
        {
            return Ok(None);
        }
    }
    Ok(whole.map(|w| w.finalize().into()))
}

/// Expands `[[first, last], ...]` ranges into indices.
pub fn expand_ranges(ranges: &[(u32, u32)]) -> Vec<u32> {
    ranges.iter().flat_map(|&(first, last)| first..=last).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_respect_s3_part_count() {
        assert_eq!(chunk_size_for(100, None), DEFAULT_CHUNK_SIZE);
        assert_eq!(chunk_size_for(100 * MIB, Some(5 * MIB)), 5 * MIB);
        // 100 GiB at 8 MiB would be 12,800 parts: the smallest whole MiB within 10,000 is 11 MiB.
        assert_eq!(chunk_size_for(100 * 1024 * MIB, None), 11 * MIB);
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("5242880"), Ok(5 * MIB));
        assert_eq!(parse_size("8MiB"), Ok(8 * MIB));
        assert_eq!(parse_size("16m"), Ok(16 * MIB));
        assert_eq!(parse_size("1GiB"), Ok(1024 * MIB));
        assert!(parse_size("8 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn spans_and_ranges() {
        assert_eq!(chunk_span(0, 10, 25), (0, 10));
        assert_eq!(chunk_span(2, 10, 25), (20, 5));
        assert_eq!(total_chunks(25, 10), 3);
        assert_eq!(total_chunks(0, 10), 0);
        assert_eq!(expand_ranges(&[(0, 2), (5, 5)]), vec![0, 1, 2, 5]);
    }

    #[test]
    fn hashes_chunks_and_the_whole_file_in_one_read() {
        let path = std::env::temp_dir().join(format!("upl-hash-{}", uuid::Uuid::new_v4()));
        let data: Vec<u8> = (0..25u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut chunks = Vec::new();
        let file = hash_chunks(&path, 10, 25, &[0, 1, 2], true, |index, digest| {
            chunks.push((index, digest));
            true
        })
        .unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[2], (2, Sha256::digest(&data[20..]).into()));
        assert_eq!(file, Some(Sha256::digest(&data).into()));

        // A resume: only the missing chunk is handed on, yet the file's digest covers every byte.
        let mut missing = Vec::new();
        let file = hash_chunks(&path, 10, 25, &[1], true, |index, digest| {
            missing.push((index, digest));
            true
        })
        .unwrap();
        assert_eq!(missing, vec![(1, Sha256::digest(&data[10..20]).into())]);
        assert_eq!(file, Some(Sha256::digest(&data).into()));

        let mut only = Vec::new();
        let file = hash_chunks(&path, 10, 25, &[1, 2], false, |index, _| {
            only.push(index);
            true
        })
        .unwrap();
        assert_eq!((only, file), (vec![1, 2], None));

        // Nobody waiting: it stops after the first chunk.
        let mut seen = 0;
        let stopped = hash_chunks(&path, 10, 25, &[0, 1, 2], true, |_, _| {
            seen += 1;
            false
        })
        .unwrap();
        assert_eq!((seen, stopped), (1, None));
        std::fs::remove_file(path).unwrap();
    }
}
