//! Every request this process sends to S3 passes through [`Storage::observe`]: counted here per operation (what
//! lets an end-to-end test check a claim such as "two racing completes call CompleteMultipartUpload once"
//! against the real S3 path instead of a mock), and timed with its outcome for `upl_s3_requests_total` and
//! `upl_s3_request_duration_seconds`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{Storage, StorageError};

/// Every S3 request the service sends (presigning is local and sends none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Operation {
    HeadBucket,
    CreateMultipartUpload,
    ListParts,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListMultipartUploads,
    PutEmptyObject,
    HeadObject,
    GetObject,
    DeleteObject,
}

impl S3Operation {
    const ALL: [Self; 10] = [
        Self::HeadBucket,
        Self::CreateMultipartUpload,
        Self::ListParts,
        Self::CompleteMultipartUpload,
        Self::AbortMultipartUpload,
        Self::ListMultipartUploads,
        Self::PutEmptyObject,
        Self::HeadObject,
        Self::GetObject,
        Self::DeleteObject,
    ];

    fn slot(self) -> usize {
        Self::ALL.iter().position(|op| *op == self).expect("every operation has a slot")
    }

    /// The `operation` label: S3's own name for the request.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeadBucket => "HeadBucket",
            Self::CreateMultipartUpload => "CreateMultipartUpload",
            Self::ListParts => "ListParts",
            Self::CompleteMultipartUpload => "CompleteMultipartUpload",
            Self::AbortMultipartUpload => "AbortMultipartUpload",
            Self::ListMultipartUploads => "ListMultipartUploads",
            Self::PutEmptyObject => "PutObject",
            Self::HeadObject => "HeadObject",
            Self::GetObject => "GetObject",
            Self::DeleteObject => "DeleteObject",
        }
    }
}

/// The `outcome` label of a request: a missing key or upload is an answer the callers expect, apart from errors.
fn outcome<T>(result: &Result<T, StorageError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StorageError::NotFound | StorageError::NoSuchUpload) => "not_found",
        Err(StorageError::Timeout(_)) => "timeout",
        Err(StorageError::Unreachable(_)) => "unreachable",
        Err(_) => "error",
    }
}

impl Storage {
    /// Sends one S3 request: counts it, and records its outcome and how long S3 took to answer (for a read, until
    /// the body starts; the body itself may take as long as it takes).
    pub(super) async fn observe<T, E>(
        &self,
        operation: S3Operation,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<T, StorageError>
    where
        StorageError: From<E>,
    {
        self.calls.record(operation);
        let started = Instant::now();
        let result = request.await.map_err(StorageError::from);
        crate::metrics::s3_request(operation.as_str(), outcome(&result), started.elapsed());
        result
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
    fn expected_absences_are_no_errors() {
        let table: [(Result<(), StorageError>, &str); 5] = [
            (Ok(()), "ok"),
            (Err(StorageError::NoSuchUpload), "not_found"),
            (Err(StorageError::Timeout("t".into())), "timeout"),
            (Err(StorageError::Unreachable("u".into())), "unreachable"),
            (Err(StorageError::Service { code: "SlowDown".into(), message: String::new() }), "error"),
        ];
        for (result, label) in table {
            assert_eq!(outcome(&result), label, "{result:?}");
        }
    }

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
