//! How a file is cut into chunks, under S3's multipart rules.

pub const MIB: u64 = 1024 * 1024;
/// Every part but the last must be at least this large (S3).
pub const MIN_CHUNK_SIZE: u64 = 5 * MIB;
/// No part may be larger (S3).
pub const MAX_CHUNK_SIZE: u64 = 5 * 1024 * MIB;
/// Part numbers run from 1 to 10,000 (S3).
pub const MAX_CHUNKS: u64 = 10_000;
pub const DEFAULT_CHUNK_SIZE: u64 = 8 * MIB;

/// A validated cut of `size` bytes into `total_chunks` chunks of `chunk_size` (the last may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    size: u64,
    chunk_size: u64,
    total_chunks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkPlanError {
    #[error("size {size} exceeds the largest upload accepted ({max} bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error(
        "chunkSize {chunk_size} is below S3's minimum part size of {MIN_CHUNK_SIZE} bytes (only the last chunk may be smaller)"
    )]
    ChunkTooSmall { chunk_size: u64 },
    #[error("chunkSize {chunk_size} exceeds S3's maximum part size of {MAX_CHUNK_SIZE} bytes")]
    ChunkTooLarge { chunk_size: u64 },
    #[error(
        "chunkSize {chunk_size} would cut the file into more than {MAX_CHUNKS} chunks; the smallest chunk size that fits is {smallest_fitting}"
    )]
    TooManyChunks { chunk_size: u64, smallest_fitting: u64 },
}

impl ChunkPlan {
    /// Plans an upload. Without a requested chunk size, picks the default or, for very large files,
    /// the smallest whole-MiB size that stays within 10,000 chunks.
    pub fn new(size: u64, requested_chunk_size: Option<u64>, max_upload_size: u64) -> Result<Self, ChunkPlanError> {
        if size > max_upload_size {
            return Err(ChunkPlanError::TooLarge { size, max: max_upload_size });
        }
        let smallest_fitting = size.div_ceil(MAX_CHUNKS).max(MIN_CHUNK_SIZE);
        let chunk_size = match requested_chunk_size {
            Some(0) => return Err(ChunkPlanError::ChunkTooSmall { chunk_size: 0 }),
            Some(c) if c > MAX_CHUNK_SIZE => return Err(ChunkPlanError::ChunkTooLarge { chunk_size: c }),
            // A chunk below the minimum is fine only when it is the one and only (hence last) chunk.
            Some(c) if c < MIN_CHUNK_SIZE && c < size => return Err(ChunkPlanError::ChunkTooSmall { chunk_size: c }),
            Some(c) if size.div_ceil(c) > MAX_CHUNKS => {
                return Err(ChunkPlanError::TooManyChunks { chunk_size: c, smallest_fitting });
            }
            Some(c) => c,
            None => DEFAULT_CHUNK_SIZE.max(smallest_fitting.div_ceil(MIB) * MIB),
        };
        let total_chunks = u32::try_from(size.div_ceil(chunk_size)).expect("at most 10,000 chunks");
        Ok(Self { size, chunk_size, total_chunks })
    }

    /// Rebuilds a plan that was validated when the upload was created.
    pub fn from_stored(size: u64, chunk_size: u64) -> Self {
        let total_chunks = u32::try_from(size.div_ceil(chunk_size.max(1))).unwrap_or(u32::MAX);
        Self { size, chunk_size, total_chunks }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    pub fn total_chunks(&self) -> u32 {
        self.total_chunks
    }

    pub fn contains(&self, index: u32) -> bool {
        index < self.total_chunks
    }

    /// Length of chunk `index`; `None` past the end.
    pub fn chunk_len(&self, index: u32) -> Option<u64> {
        if !self.contains(index) {
            return None;
        }
        let start = u64::from(index) * self.chunk_size;
        Some(self.chunk_size.min(self.size - start))
    }

    /// Bytes held by the chunks in `ranges` (inclusive index ranges within the plan).
    pub fn bytes_in(&self, ranges: &[(u32, u32)]) -> u64 {
        ranges
            .iter()
            .map(|&(first, last)| {
                let start = u64::from(first) * self.chunk_size;
                let end = (u64::from(last) + 1).saturating_mul(self.chunk_size).min(self.size);
                end.saturating_sub(start)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIB: u64 = 1024 * 1024 * MIB;
    const MAX: u64 = 5 * TIB;

    #[test]
    fn default_chunk_size_and_a_short_last_chunk() {
        let plan = ChunkPlan::new(10 * MIB + 1, None, MAX).unwrap();
        assert_eq!((plan.chunk_size(), plan.total_chunks()), (DEFAULT_CHUNK_SIZE, 2));
        assert_eq!(plan.chunk_len(0), Some(DEFAULT_CHUNK_SIZE));
        assert_eq!(plan.chunk_len(1), Some(2 * MIB + 1));
        assert_eq!(plan.chunk_len(2), None);
    }

    #[test]
    fn zero_bytes_is_zero_chunks() {
        let plan = ChunkPlan::new(0, None, MAX).unwrap();
        assert_eq!(plan.total_chunks(), 0);
        assert_eq!(plan.chunk_len(0), None);
    }

    #[test]
    fn small_file_may_use_a_small_single_chunk() {
        assert_eq!(ChunkPlan::new(100, Some(1000), MAX).unwrap().total_chunks(), 1);
        assert_eq!(ChunkPlan::new(1000, Some(1000), MAX).unwrap().total_chunks(), 1);
        assert_eq!(ChunkPlan::new(1001, Some(1000), MAX), Err(ChunkPlanError::ChunkTooSmall { chunk_size: 1000 }));
    }

    #[test]
    fn s3_limits_are_enforced() {
        assert!(matches!(ChunkPlan::new(MAX + 1, None, MAX), Err(ChunkPlanError::TooLarge { .. })));
        assert!(matches!(ChunkPlan::new(10, Some(0), MAX), Err(ChunkPlanError::ChunkTooSmall { .. })));
        assert!(matches!(
            ChunkPlan::new(MAX, Some(MAX_CHUNK_SIZE + 1), MAX),
            Err(ChunkPlanError::ChunkTooLarge { .. })
        ));
    }

    #[test]
    fn too_many_chunks_names_the_smallest_size_that_fits() {
        let size = 100 * 1024 * MIB; // 100 GiB at 5 MiB would be 20,480 chunks
        let err = ChunkPlan::new(size, Some(5 * MIB), MAX).unwrap_err();
        let ChunkPlanError::TooManyChunks { smallest_fitting, .. } = err else { panic!("{err:?}") };
        assert_eq!(smallest_fitting, size.div_ceil(10_000));
        let plan = ChunkPlan::new(size, Some(smallest_fitting), MAX).unwrap();
        assert_eq!(plan.total_chunks(), 10_000);
        assert!(ChunkPlan::new(size, Some(smallest_fitting - 1), MAX).is_err());
    }

    #[test]
    fn picks_a_fitting_chunk_size_when_none_is_given() {
        let plan = ChunkPlan::new(MAX, None, MAX).unwrap();
        assert!(plan.total_chunks() <= 10_000);
        assert_eq!(plan.chunk_size() % MIB, 0);
        assert!(plan.chunk_size() <= MAX_CHUNK_SIZE);
    }

    #[test]
    fn bytes_in_counts_a_short_last_chunk() {
        let plan = ChunkPlan::new(10 * MIB + 1, Some(5 * MIB), MAX).unwrap();
        assert_eq!(plan.bytes_in(&[(0, 0), (2, 2)]), 5 * MIB + 1);
        assert_eq!(plan.bytes_in(&[(0, 2)]), 10 * MIB + 1);
    }
}
