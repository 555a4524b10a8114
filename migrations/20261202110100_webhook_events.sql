-- Webhooks: an event row is written in the transaction of the state change it reports, with the job that
-- delivers it (the jobs table is the outbox); every attempt is logged.

-- pending: not delivered yet; delivered: the receiver answered 2xx; dead: still undelivered WEBHOOK_MAX_AGE after
-- the event, no longer tried (kept, with its attempts, for an operator).
CREATE TYPE webhook_event_state AS ENUM ('pending', 'delivered', 'dead');

CREATE TABLE webhook_events (
    -- The Webhook-Id header: the same on every attempt, so receivers can de-duplicate.
    id           uuid PRIMARY KEY,
    upload_id    uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    type         text NOT NULL CHECK (type IN ('upload.completed', 'upload.verified', 'upload.corrupt',
                                               'upload.expired', 'upload.aborted')),
    -- The body sent, as of the state change (not of the attempt).
    payload      jsonb NOT NULL,
    state        webhook_event_state NOT NULL DEFAULT 'pending',
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    CHECK ((state = 'pending') = (finished_at IS NULL))
);

-- The sweep's clean-up of delivered events past the job retention.
CREATE INDEX webhook_events_delivered_finished_at ON webhook_events (finished_at) WHERE state = 'delivered';
CREATE INDEX webhook_events_upload_id ON webhook_events (upload_id);

CREATE TABLE webhook_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    -- The receiver's status, when it answered at all.
    status_code  integer,
    -- Why the attempt failed: not 2xx, refused, timed out, ... (never the URL nor the secret).
    error        text,
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0),
    attempted_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, attempt)
);

-- A delivery job names its event, not an upload: an upload has several events, each its own job.
ALTER TABLE jobs ADD COLUMN webhook_event_id uuid UNIQUE REFERENCES webhook_events (id) ON DELETE CASCADE;
ALTER TABLE jobs DROP CONSTRAINT jobs_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_upload_unless_sweep_or_webhook
    CHECK ((kind IN ('sweep', 'deliver_webhook')) = (upload_id IS NULL));
ALTER TABLE jobs ADD CONSTRAINT jobs_webhook_names_its_event
    CHECK ((kind = 'deliver_webhook') = (webhook_event_id IS NOT NULL));
-- One job of a kind per upload still (the ON CONFLICT target of every enqueue), but NULLs now distinct so that
-- delivery jobs (no upload) can be many; the one sweep keeps its own guard.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_upload_id_key;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_upload_id_key UNIQUE (kind, upload_id);
CREATE UNIQUE INDEX jobs_one_sweep ON jobs (kind) WHERE kind = 'sweep';
