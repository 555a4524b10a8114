//! How many requests of each kind this process sent to S3, counted inside the real adapter.
//!
//! A figure for operators, and what lets an end-to-end test check a claim such as "two racing completes call
//! CompleteMultipartUpload once" against the real S3 path instead of a mock.

use std::sync::atomic::{AtomicU64, Ordering};

/// The S3 operations whose count matters: the ones that change state or cost a round trip per upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Operation {
    CreateMultipartUpload,
    ListParts,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    PutEmptyObject,
    DeleteObject,
}

impl S3Operation {
    const ALL: [Self; 6] = [
        Self::CreateMultipartUpload,
        Self::ListParts,
        Self::CompleteMultipartUpload,
        Self::AbortMultipartUpload,
        Self::PutEmptyObject,
        Self::DeleteObject,
    ];

    fn slot(self) -> usize {
        Self::ALL.iter().position(|op| *op == self).expect("every operation has a slot")
    }
}

/// Requests sent (attempts, whatever S3 answered), per operation; shared by every clone of a `Storage`.
#[derive(Debug, Default)]
pub struct S3CallCounts([AtomicU64; S3Operation::ALL.len()]);

impl S3CallCounts {
    pub(super) fn record(&self, operation: S3Operation) {
        self.0[operation.slot()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, operation: S3Operation) -> u64 {
        self.0[operation.slot()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_operation_apart() {
        let counts = S3CallCounts::default();
        counts.record(S3Operation::ListParts);
        counts.record(S3Operation::ListParts);
        counts.record(S3Operation::CompleteMultipartUpload);
        assert_eq!(counts.get(S3Operation::ListParts), 2);
        assert_eq!(counts.get(S3Operation::CompleteMultipartUpload), 1);
        assert_eq!(counts.get(S3Operation::AbortMultipartUpload), 0);
    }
}
