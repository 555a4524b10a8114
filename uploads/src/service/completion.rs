//! Completion: `uploading -> completing -> completed`, with S3's ListParts as the truth, whether a client's
//! `complete` or the worker's recovery of a completion an API process left half done drives it.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::validation::parse_sha256;
use super::{PartMismatch, UploadError, Uploads, gone_check};
use crate::domain::{EventType, IndexRanges, Owner, Sha256Digest, UploadKind, UploadState};
use crate::repository::{ObjectShape, UploadRecord, VerifiedChunk};
use crate::storage::{ObjectInfo, PartToComplete, StorageError};

/// How long a `complete` waits for a concurrent completion before answering 409 (the client retries after
/// `Retry-After`): shorter than the read timeout of most clients.
const COMPLETION_WAIT: Duration = Duration::from_secs(20);
/// The first and the longest pause between two looks at a concurrent completion.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// What a failed completion does with its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFailure {
    /// S3 lacks or refuses parts: back to `uploading`, the client resends them.
    Resend,
    /// S3 holds neither the parts nor the right object: the upload can never complete.
    Lost,
    /// A transient fault: back to `uploading` if nothing was asked of S3 yet; once S3 may have assembled the
    /// object, stay `completing` with the lease released, for the next attempt to find out.
    Retry,
}

impl UploadError {
    fn after_failed_completion(&self) -> AfterFailure {
        match self {
            Self::ChunksMissing { .. } | Self::PartMismatch { .. } | Self::Storage(StorageError::InvalidPart(_)) => {
                AfterFailure::Resend
            }
            Self::Lost { .. } => AfterFailure::Lost,
            _ => AfterFailure::Retry,
        }
    }
}

/// What a completion asks of S3, once the parts are checked.
enum Assembly {
    /// A zero-byte file: one empty object, no multipart upload.
    EmptyObject,
    /// The multipart upload is gone: S3 may have assembled the object already.
    MaybeAssembled,
    Parts(Vec<PartToComplete>),
    /// A form POST's object, already whole: nothing to assemble.
    Posted(ObjectInfo),
}

/// What S3 assembled: the object's ETag and, for an upload whose client never said, its shape.
struct Assembled {
    etag: String,
    shape: Option<ObjectShape>,
}

/// What the worker's recovery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing (more) to do: completed, back to uploading, lost, or not completing at all.
    Settled,
    /// A live completion holds the lease until then: look again at that time.
    NotDue(DateTime<Utc>),
}

impl Uploads {
    /// [`complete`](Self::complete), declaring the whole file's SHA-256 first when the client gives it: a client
    /// that hashes while it sends knows the digest only now. The digest declared at creation may be given
    /// again; another one is refused, and so is one for an upload that completed without any.
    pub async fn complete_declaring(
        &self,
        owner: &Owner,
        id: Uuid,
        sha256: Option<&str>,
    ) -> Result<UploadRecord, UploadError> {
        if let Some(sha256) = sha256 {
            let digest = parse_sha256(sha256)?;
            if !self.repo.declare_file_sha256(id, owner, &digest).await? {
                let upload = self.repo.find_owned_upload(id, owner).await?.ok_or(UploadError::NotFound)?;
                match upload.declared_sha256() {
                    Some(declared) if declared == digest => {}
                    Some(declared) => return Err(UploadError::FileChecksumConflict { declared: Some(declared) }),
                    None if matches!(upload.state, UploadState::Completing | UploadState::Completed) => {
                        return Err(UploadError::FileChecksumConflict { declared: None });
                    }
                    // Not live: the completion says why (gone, aborted...).
                    None => {}
                }
            }
        }
        self.complete(owner, id).await
    }

    /// Stitches `owner`'s chunks into the object. Idempotent: completing a completed upload returns it again.
    /// Of concurrent calls one wins the `uploading -> completing` transition and calls S3; the others wait for
    /// its outcome (or take over once its lease lapses). The work runs detached from the caller: a client that
    /// gives up does not abandon S3 and Postgres halfway, and its retry finds the result.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn complete(&self, owner: &Owner, id: Uuid) -> Result<UploadRecord, UploadError> {
        let deadline = tokio::time::Instant::now() + COMPLETION_WAIT;
        let mut pause = FIRST_PAUSE;
        loop {
            if let Some(upload) = self.repo.begin_completion(id, Some(owner), self.policy.completion_lease).await? {
                return self.detached(move |this| async move { this.drive(upload).await }).await;
            }
            let current = self.repo.find_owned_upload(id, owner).await?.ok_or(UploadError::NotFound)?;
            match current.state {
                UploadState::Completed => return Ok(current),
                UploadState::Completing if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                UploadState::Completing => return Err(UploadError::CompletionInProgress),
                // The other completion was abandoned between our two looks: try again.
                UploadState::Uploading if !current.is_expired(Utc::now()) => {}
                _ => {
                    return Err(gone_check(&current, Utc::now())
                        .err()
                        .unwrap_or(UploadError::NotUploading(current.state)));
                }
            }
        }
    }

    /// Finishes a completion whose process died or gave up: once its lease lapsed, takes it over and drives it
    /// like `complete` does. A live completion is left alone until its lease would lapse.
    #[tracing::instrument(skip_all, fields(upload_id = %id))]
    pub async fn recover_completion(&self, id: Uuid) -> Result<Recovery, UploadError> {
        let Some(upload) = self.repo.find_upload(id).await? else { return Ok(Recovery::Settled) };
        match (upload.state, upload.completing_until) {
            (UploadState::Completing, Some(until)) if until > Utc::now() => return Ok(Recovery::NotDue(until)),
            (UploadState::Completing, _) => {}
            _ => return Ok(Recovery::Settled),
        }
        let Some(upload) = self.repo.begin_completion(id, None, self.policy.completion_lease).await? else {
            // Taken over by a client's `complete` meanwhile: look again when its lease would lapse.
            let until = self.repo.find_upload(id).await?.and_then(|u| u.completing_until);
            return Ok(until.map_or(Recovery::Settled, Recovery::NotDue));
        };
        match self.drive(upload).await {
            Ok(_) => tracing::info!("interrupted completion finished"),
            Err(err) if err.after_failed_completion() != AfterFailure::Retry => {
                tracing::warn!(error = %err, "interrupted completion cannot finish");
            }
            Err(err) => return Err(err),
        }
        Ok(Recovery::Settled)
    }

    /// The one road from `completing`, holding the completion's lease all along: check the parts, have S3
    /// assemble them, then `completed`; on failure, whatever the failure calls for ([`AfterFailure`]).
    async fn drive(&self, upload: UploadRecord) -> Result<UploadRecord, UploadError> {
        let (id, epoch) = (upload.id, upload.completion_epoch);
        let assembly = match self.holding_lease(id, epoch, self.prepare(&upload)).await {
            Ok(assembly) => assembly,
            Err(err) => return Err(self.settle_failure(&upload, err).await),
        };
        if !self.repo.record_assembly_requested(id, epoch).await? {
            return Err(UploadError::CompletionInProgress);
        }
        let upload = UploadRecord { assembly_requested_at: Some(Utc::now()), ..upload };
        let assembled = self.holding_lease(id, epoch, self.assemble(&upload, assembly)).await;
        match assembled {
            Ok(Assembled { etag, shape }) => {
                match self.repo.finish_completion(id, epoch, &etag, shape, self.report(EventType::Completed)).await? {
                    Some(completed) => {
                        // A completed row always has its size: the completion records it when the client never said.
                        crate::metrics::upload_completed(completed.size.map_or(0, |size| size as u64));
                        Ok(completed)
                    }
                    // This completion's lease lapsed and another took over: it reaches the same object.
                    None => match self.repo.find_upload(id).await?.ok_or(UploadError::NotFound)? {
                        done if done.state == UploadState::Completed => Ok(done),
                        _ => Err(UploadError::CompletionInProgress),
                    },
                }
            }
            Err(err) => Err(self.settle_failure(&upload, err).await),
        }
    }

    /// Records what a failed completion leaves: back to `uploading`, lost, or (when S3 may hold the object,
    /// asked by this completion or an earlier one, and a retry may mend it) still `completing` with the lease
    /// released for the next attempt.
    async fn settle_failure(&self, upload: &UploadRecord, failure: UploadError) -> UploadError {
        let (id, epoch) = (upload.id, upload.completion_epoch);
        let maybe_assembled = upload.assembly_requested_at.is_some();
        let settled = match failure.after_failed_completion() {
            AfterFailure::Retry if maybe_assembled => self.repo.release_completion(id, epoch).await,
            AfterFailure::Resend | AfterFailure::Retry => self.repo.abandon_completion(id, epoch).await.map(|_| ()),
            AfterFailure::Lost => match self.repo.lose_completion(id, epoch, self.report(EventType::Aborted)).await {
                Ok(Some(lost)) => {
                    if let Err(err) = self.remove_stored_bytes(&lost).await {
                        // The sweep aborts what is left of a row that is no longer live.
                        tracing::warn!(error = %err, "cannot remove what S3 holds of a lost upload");
                    }
                    Ok(())
                }
                other => other.map(|_| ()),
            },
        };
        if let Err(err) = settled {
            // The lease lapses by itself and the recovery job takes over.
            tracing::warn!(error = %err, "cannot record the failed completion");
        }
        failure
    }

    /// Runs `work` while renewing completion `epoch`'s lease every third of its length.
    async fn holding_lease<T>(&self, id: Uuid, epoch: i64, work: impl Future<Output = T>) -> T {
        let lease = self.policy.completion_lease;
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                () = tokio::time::sleep(lease / 3) => match self.repo.renew_completion(id, epoch, lease).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("completion lease lost: another completion took over"),
                    Err(err) => tracing::warn!(error = %err, "cannot renew the completion lease"),
                },
            }
        }
    }

    /// Checks with S3's ListParts that every chunk is there as declared; asks S3 for nothing that changes state.
    async fn prepare(&self, upload: &UploadRecord) -> Result<Assembly, UploadError> {
        match upload.kind {
            UploadKind::Chunks => {}
            UploadKind::FormPost => return self.prepare_posted(upload).await,
            UploadKind::Multipart => return self.prepare_client_parts(upload).await,
        }
        if upload.s3_upload_id.is_none() {
            return Ok(Assembly::EmptyObject);
        }
        let (verified, mismatches) = match self.reconcile(upload).await {
            // A completion cut off after CompleteMultipartUpload: the object may be there already.
            Err(UploadError::Storage(StorageError::NoSuchUpload)) => return Ok(Assembly::MaybeAssembled),
            other => other?,
        };
        if !mismatches.is_empty() {
            return Err(UploadError::PartMismatch { mismatches });
        }
        let total_chunks = upload.total_chunks.unwrap_or(0) as u32;
        let missing = IndexRanges::from_indices(verified.iter().map(|c| c.index)).complement(total_chunks);
        if !missing.is_empty() {
            return Err(UploadError::ChunksMissing { missing });
        }
        let parts = verified
            .into_iter()
            .map(|c| PartToComplete { part_number: c.index + 1, etag: c.etag, size: c.size, sha256: Some(c.sha256) })
            .collect();
        Ok(Assembly::Parts(parts))
    }

    /// A form POST is complete once its object is there.
    async fn prepare_posted(&self, upload: &UploadRecord) -> Result<Assembly, UploadError> {
        match self.storage.head_object(&upload.object_key).await? {
            Some(object) => Ok(Assembly::Posted(object)),
            None => Err(UploadError::ChunksMissing { missing: IndexRanges::from_indices(0..1) }),
        }
    }

    /// The parts a Companion client PUT, as ListParts has them: 1 to n without a gap (Uppy numbers them so;
    /// our chunk ranges need it), recorded as received chunks on the way.
    async fn prepare_client_parts(&self, upload: &UploadRecord) -> Result<Assembly, UploadError> {
        let parts = match self.record_client_parts(upload).await {
            Err(UploadError::Storage(StorageError::NoSuchUpload)) => return Ok(Assembly::MaybeAssembled),
            other => other?,
        };
        let received = IndexRanges::from_indices(parts.iter().map(|p| p.part_number - 1));
        let highest = parts.last().map_or(1, |p| p.part_number);
        let missing = received.complement(highest);
        if !missing.is_empty() || parts.is_empty() {
            return Err(UploadError::ChunksMissing {
                missing: if parts.is_empty() { IndexRanges::from_indices(0..1) } else { missing },
            });
        }
        let parts = parts
            .into_iter()
            .map(|p| PartToComplete { part_number: p.part_number, etag: p.etag, size: p.size, sha256: None })
            .collect();
        Ok(Assembly::Parts(parts))
    }

    /// Has S3 assemble the object (or finds it assembled); returns the object's ETag.
    async fn assemble(&self, upload: &UploadRecord, assembly: Assembly) -> Result<Assembled, UploadError> {
        let parts = match assembly {
            Assembly::EmptyObject => {
                let etag = self.storage.put_empty_object(&upload.object_key, &upload.content_type).await?;
                return Ok(Assembled { etag, shape: None });
            }
            Assembly::MaybeAssembled => return self.completed_object(upload).await,
            Assembly::Posted(object) => {
                let total_chunks = u32::from(object.size > 0);
                let shape = ObjectShape { size: object.size, chunk_size: object.size.max(1), total_chunks };
                return self.within_limit(Assembled { etag: object.etag, shape: Some(shape) });
            }
            Assembly::Parts(parts) => parts,
        };
        let s3_upload_id = upload.s3_upload_id.as_deref().unwrap_or_default();
        let expected = ObjectShape {
            size: parts.iter().map(|p| p.size).sum(),
            chunk_size: parts.first().map_or(1, |p| p.size),
            total_chunks: parts.len() as u32,
        };
        if upload.kind == UploadKind::Multipart {
            self.within_limit(Assembled { etag: String::new(), shape: Some(expected) })?;
        }
        match self.storage.complete_multipart_upload(&upload.object_key, s3_upload_id, &parts).await {
            // A retried completion whose first answer was lost: the object is there already.
            Err(StorageError::NoSuchUpload) => self.completed_object(upload).await,
            Err(other) => Err(other.into()),
            Ok(etag) => {
                let size = upload.size.map_or(expected.size, |s| s as u64);
                self.check_object_size(upload, size).await?;
                let shape = (upload.kind != UploadKind::Chunks).then_some(expected);
                Ok(Assembled { etag, shape })
            }
        }
    }

    /// A Companion upload declares no size: past the largest upload accepted, it is refused when it completes.
    fn within_limit(&self, assembled: Assembled) -> Result<Assembled, UploadError> {
        match assembled.shape {
            Some(shape) if shape.size > self.policy.max_upload_size => Err(UploadError::Lost {
                reason: format!(
                    "the object's {} bytes exceed the largest upload accepted ({} bytes)",
                    shape.size, self.policy.max_upload_size
                ),
            }),
            _ => Ok(assembled),
        }
    }

    /// S3 assembles the parts it holds; an upload is completed only if that is the size declared (or, for a
    /// Companion upload, listed). (LocalStack 4.13 empties a part when a later PUT to it fails BadDigest, while
    /// ListParts still reports it intact.)
    async fn check_object_size(&self, upload: &UploadRecord, size: u64) -> Result<(), UploadError> {
        let stored = self.storage.head_object(&upload.object_key).await?.map(|object| object.size);
        if stored == Some(size) {
            return Ok(());
        }
        Err(UploadError::Lost { reason: format!("S3 assembled {stored:?} bytes where {size} were expected") })
    }

    /// An object S3 already assembled with the upload's part count (any, for a Companion upload, whose count
    /// and size the object then tells).
    async fn completed_object(&self, upload: &UploadRecord) -> Result<Assembled, UploadError> {
        let object = self.storage.head_object(&upload.object_key).await?;
        match (object, upload.size, upload.total_chunks) {
            (Some(object), Some(size), Some(total))
                if object.size == size as u64 && object.parts_count == Some(total as u32) =>
            {
                Ok(Assembled { etag: object.etag, shape: None })
            }
            (Some(object), None, _) if upload.kind == UploadKind::Multipart && object.parts_count.is_some() => {
                let total_chunks = object.parts_count.unwrap_or(1);
                let shape = ObjectShape {
                    size: object.size,
                    chunk_size: object.size.div_ceil(u64::from(total_chunks)).max(1),
                    total_chunks,
                };
                self.within_limit(Assembled { etag: object.etag, shape: Some(shape) })
            }
            _ => {
                Err(UploadError::Lost { reason: "S3 holds neither the upload's parts nor its assembled object".into() })
            }
        }
    }

    /// Takes S3's ListParts as the truth: a part holding the declared checksum and size is received (even if
    /// its confirmation was lost); anything else is missing. Returns the verified chunks and the mismatches.
    pub(super) async fn reconcile(
        &self,
        upload: &UploadRecord,
    ) -> Result<(Vec<VerifiedChunk>, Vec<PartMismatch>), UploadError> {
        let Some(s3_upload_id) = upload.s3_upload_id.as_deref() else { return Ok((vec![], vec![])) };
        // Read before listing: a confirmation that commits after the listing is not judged by it.
        let chunks = self.repo.list_chunks(upload.id).await?;
        let parts = self.storage.list_parts(&upload.object_key, s3_upload_id).await?;
        let mut verified = Vec::new();
        let mut mismatches = Vec::new();
        let mut lacking = Vec::new();
        let mut parts = parts.into_iter().peekable();
        for chunk in chunks {
            let index = chunk.index as u32;
            // Only a Companion upload's parts lack a digest, and those are never reconciled this way.
            let Some(declared) = chunk.sha256.as_deref().and_then(Sha256Digest::from_slice) else { continue };
            while parts.next_if(|p| p.part_number < index + 1).is_some() {}
            match parts.next_if(|p| p.part_number == index + 1) {
                Some(part) if part.sha256 == Some(declared) && part.size == chunk.size as u64 => {
                    verified.push(VerifiedChunk { index, sha256: declared, size: part.size, etag: part.etag });
                }
                Some(part) => {
                    mismatches.push(PartMismatch {
                        index,
                        declared_size: chunk.size as u64,
                        stored_size: part.size,
                        declared_sha256: declared,
                        stored_sha256: part.sha256,
                    });
                    lacking.push(chunk);
                }
                None if chunk.received_at.is_some() => lacking.push(chunk),
                None => {}
            }
        }
        lacking.retain(|c| c.received_at.is_some());
        self.repo.reconcile_chunks(upload.id, &verified, &lacking).await?;
        Ok((verified, mismatches))
    }
}
