//! The upload domain: values that can only be valid, the chunk plan and the state machine.

mod byte_range;
mod chunk_plan;
mod idempotency_key;
mod index_ranges;
mod list_cursor;
mod owner;
mod sha256;
mod state;
mod verification;
mod webhook_event;

pub use byte_range::ByteRange;
pub use chunk_plan::{ChunkPlan, ChunkPlanError, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_CHUNKS, MIN_CHUNK_SIZE};
pub use idempotency_key::{IdempotencyKey, IdempotencyKeyError, MAX_IDEMPOTENCY_KEY_LEN};
pub use index_ranges::IndexRanges;
pub use list_cursor::{ListCursor, ListCursorError};
pub use owner::{MAX_OWNER_LEN, Owner, OwnerError};
pub use sha256::{Sha256Digest, Sha256ParseError};
pub use state::UploadState;
pub use verification::VerificationState;
pub use webhook_event::{EventType, EventUpload, EventVerification, WebhookEvent};
