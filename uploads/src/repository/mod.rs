//! Every SQL statement of the service lives here, one file per concern: creating uploads, uploads and their
//! transitions, an owner's list, chunks, the job queue, webhook events, and the upkeep scans the sweep makes. State changes are single guarded
//! statements (`... WHERE state = 'uploading' RETURNING ...`), never read-then-write. What a client asks for
//! is guarded by its owner too (`... AND owner = $2`): another owner's upload matches nothing, as an unknown
//! id does.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::domain::{ChunkPlan, Sha256Digest, UploadState, VerificationState};

#[derive(Debug, Clone, FromRow)]
pub struct UploadRecord {
    pub id: Uuid,
    pub owner: String,
    pub state: UploadState,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub chunk_size: i64,
    pub total_chunks: i32,
    pub metadata: serde_json::Value,
    pub declared_sha256: Option<Vec<u8>>,
    pub object_key: String,
    pub s3_upload_id: Option<String>,
    pub etag: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// `None` until completed; then set by the worker's verification job.
    pub verification_state: Option<VerificationState>,
    pub object_sha256: Option<Vec<u8>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub verification_error: Option<String>,
    /// Completions begun so far; the current one's finish and abandon are guarded by it.
    pub completion_epoch: i64,
    /// While `completing`: the completion's lease, refreshed while it runs.
    pub completing_until: Option<DateTime<Utc>>,
    /// When a completion first asked S3 to assemble the object: from then on S3 may hold it.
    pub assembly_requested_at: Option<DateTime<Utc>>,
}

impl UploadRecord {
    pub fn plan(&self) -> ChunkPlan {
        ChunkPlan::from_stored(self.size as u64, self.chunk_size as u64)
    }

    pub fn declared_sha256(&self) -> Option<Sha256Digest> {
        self.declared_sha256.as_deref().and_then(Sha256Digest::from_slice)
    }

    /// The object's SHA-256 as the worker computed it from S3's bytes.
    pub fn object_sha256(&self) -> Option<Sha256Digest> {
        self.object_sha256.as_deref().and_then(Sha256Digest::from_slice)
    }

    /// The `Repr-Digest` header value (RFC 9530) for a download, once the object's digest is known and agrees
    /// with what was declared: a corrupt object's digest would attest bytes the uploader never sent.
    pub fn repr_digest(&self) -> Option<String> {
        let vouched =
            matches!(self.verification_state, Some(VerificationState::Verified | VerificationState::Computed));
        vouched.then(|| self.object_sha256()).flatten().map(|digest| format!("sha-256=:{}:", digest.to_base64()))
    }

    /// Past its deadline, whether or not the worker has marked it yet.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.state == UploadState::Expired || (self.state == UploadState::Uploading && self.expires_at <= now)
    }
}

#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub plan: ChunkPlan,
    pub metadata: serde_json::Value,
    pub declared_sha256: Option<Sha256Digest>,
    pub object_key: String,
    pub s3_upload_id: Option<String>,
    pub ttl: Duration,
}

#[derive(Debug, Clone, FromRow)]
pub struct ChunkRecord {
    pub index: i32,
    pub sha256: Vec<u8>,
    pub size: i64,
    pub etag: Option<String>,
    pub declared_at: DateTime<Utc>,
    pub received_at: Option<DateTime<Utc>>,
}

/// A chunk whose bytes S3 holds as declared (index, ETag from ListParts).
#[derive(Debug, Clone)]
pub struct VerifiedChunk {
    pub index: u32,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub etag: String,
}

/// The columns of [`UploadRecord`], as a literal so that statements stay `&'static str` (sqlx audits dynamic SQL).
macro_rules! upload_columns {
    () => {
        "id, owner, state, filename, content_type, size, chunk_size, total_chunks, metadata, \
         declared_sha256, object_key, s3_upload_id, etag, created_at, updated_at, expires_at, completed_at, \
         verification_state, object_sha256, verified_at, verification_error, completion_epoch, completing_until, \
         assembly_requested_at"
    };
}

/// `UPDATE uploads` with a state guard, returning the row when the guard held.
macro_rules! transition_sql {
    ($set:literal, $guard:literal) => {
        concat!(
            "UPDATE uploads SET ",
            $set,
            ", updated_at = now() WHERE id = $1 AND ",
            $guard,
            " RETURNING ",
            upload_columns!()
        )
    };
}

mod chunks;
mod creation;
mod listing;
mod queue;
mod upkeep;
mod uploads;
mod webhooks;

pub use creation::{ActiveLimits, ActiveUsage, Creation, FirstCreate, Insertion};
pub use listing::ListedUpload;
pub use queue::{ClaimedJob, JobKind, JobState, Lease, RetryPolicy};
pub use uploads::find_upload;
pub use webhooks::{PendingEvent, WebhookEventState};

fn ttl_seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

#[derive(Clone)]
pub struct Repository {
    pool: PgPool,
}

impl Repository {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }
}
