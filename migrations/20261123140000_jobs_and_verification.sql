-- The worker's job queue, and the whole-object verification it records on uploads.

-- pending: completed, not hashed yet; verified: the object's SHA-256 equals the declared one; corrupt: it does not;
-- computed: no hash was declared, the object's SHA-256 is recorded for downloads; failed: the worker gave up.
CREATE TYPE verification_state AS ENUM ('pending', 'verified', 'corrupt', 'computed', 'failed');

ALTER TABLE uploads
    ADD COLUMN verification_state verification_state,
    -- The SHA-256 of the object as S3 holds it, computed by the worker (the declared one is declared_sha256).
    ADD COLUMN object_sha256 bytea CHECK (length(object_sha256) = 32),
    ADD COLUMN verified_at timestamptz,
    ADD COLUMN verification_error text,
    ADD CONSTRAINT uploads_verification_only_when_completed
        CHECK (verification_state IS NULL OR state = 'completed');

-- Uploads completed before this migration get verified like new ones.
UPDATE uploads SET verification_state = 'pending' WHERE state = 'completed';

-- The recovery scan: completions an API process left half done.
CREATE INDEX uploads_completing_updated_at ON uploads (updated_at) WHERE state = 'completing';
-- The orphan sweep: which of S3's multipart uploads a live row still owns.
CREATE INDEX uploads_live_s3_upload_id ON uploads (s3_upload_id) WHERE state IN ('uploading', 'completing');

-- sweep: the one recurring job (enqueues expiries and recoveries, aborts orphan multipart uploads);
-- the others act on one upload each.
CREATE TYPE job_kind AS ENUM ('sweep', 'expire_upload', 'verify_object', 'recover_completion');
-- failed: attempts exhausted; the job stays, with its last error, for an operator to see.
CREATE TYPE job_state AS ENUM ('queued', 'running', 'done', 'failed');

CREATE TABLE jobs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              job_kind NOT NULL,
    upload_id         uuid REFERENCES uploads (id) ON DELETE CASCADE,
    state             job_state NOT NULL DEFAULT 'queued',
    -- Claims so far, including those of workers that died holding the lease.
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at            timestamptz NOT NULL DEFAULT now(),
    lease_owner       text,
    lease_expires_at  timestamptz,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    -- One job of a kind per upload (and one sweep): enqueueing twice is a no-op.
    UNIQUE NULLS NOT DISTINCT (kind, upload_id),
    CHECK ((kind = 'sweep') = (upload_id IS NULL)),
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- The dequeue: due queued jobs, and running jobs whose worker stopped renewing its lease.
CREATE INDEX jobs_queued_run_at ON jobs (run_at) WHERE state = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
-- The sweep's clean-up of finished jobs past their retention.
CREATE INDEX jobs_done_finished_at ON jobs (finished_at) WHERE state = 'done';

INSERT INTO jobs (kind) VALUES ('sweep');
INSERT INTO jobs (kind, upload_id) SELECT 'verify_object', id FROM uploads WHERE state = 'completed';
