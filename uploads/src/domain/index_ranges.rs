use serde::Serialize;

/// Sorted, disjoint, inclusive ranges of chunk indices: `[[0, 41], [43, 43]]`.
/// Compact for the status answer of a 10,000-chunk upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct IndexRanges(Vec<(u32, u32)>);

impl IndexRanges {
    /// From sorted, disjoint ranges (as the repository's query yields them).
    pub fn from_sorted(ranges: Vec<(u32, u32)>) -> Self {
        debug_assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0));
        Self(ranges)
    }

    /// From sorted, distinct indices.
    pub fn from_indices(indices: impl IntoIterator<Item = u32>) -> Self {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for index in indices {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == index => *last = index,
                _ => ranges.push((index, index)),
            }
        }
        Self(ranges)
    }

    /// What `0..total` holds that these ranges do not.
    pub fn complement(&self, total: u32) -> Self {
        let mut missing = Vec::new();
        let mut next = 0u32;
        for &(first, last) in &self.0 {
            if first > next {
                missing.push((next, first - 1));
            }
            next = last + 1;
        }
        if next < total {
            missing.push((next, total - 1));
        }
        Self(missing)
    }

    pub fn first(&self) -> Option<u32> {
        self.0.first().map(|&(first, _)| first)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }

    pub fn as_slice(&self) -> &[(u32, u32)] {
        &self.0
    }

    pub fn contains(&self, index: u32) -> bool {
        self.0.iter().any(|&(a, b)| a <= index && index <= b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_runs_and_finds_the_gaps() {
        let received = IndexRanges::from_indices((0..=41).chain([43]));
        assert_eq!(received.as_slice(), &[(0, 41), (43, 43)]);
        let missing = received.complement(46);
        assert_eq!(missing.as_slice(), &[(42, 42), (44, 45)]);
        assert_eq!(missing.first(), Some(42));
        assert_eq!(missing.count(), 3);
        assert_eq!(serde_json::to_string(&received).unwrap(), "[[0,41],[43,43]]");
    }

    #[test]
    fn nothing_received_means_everything_missing() {
        let missing = IndexRanges::default().complement(3);
        assert_eq!(missing.as_slice(), &[(0, 2)]);
        assert!(IndexRanges::default().complement(0).is_empty());
    }

    #[test]
    fn everything_received_means_nothing_missing() {
        let all = IndexRanges::from_indices(0..10_000);
        assert_eq!(all.as_slice(), &[(0, 9_999)]);
        assert!(all.complement(10_000).is_empty());
        assert_eq!(all.complement(10_000).first(), None);
    }
}
