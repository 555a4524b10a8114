-- Idempotency-Key of POST /v1/uploads: a retried create returns the upload the first one made.

CREATE TABLE idempotency_keys (
    owner           text NOT NULL,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the create's validated request: the same key with another request is refused.
    request_sha256  bytea NOT NULL CHECK (length(request_sha256) = 32),
    -- Checked at commit: the key row is written before the upload row, in the same transaction, so that a
    -- concurrent duplicate waits on it instead of creating a second upload.
    upload_id       uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- UPLOAD_TTL after the create; the worker's sweep deletes keys past it.
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
