-- Uploads and their chunks. Never edit a migration once it has landed: add a new one.

CREATE TYPE upload_state AS ENUM ('uploading', 'completing', 'completed', 'aborted', 'expired');

CREATE TABLE uploads (
    id               uuid PRIMARY KEY,
    -- Who may act on it; NULL until authentication exists.
    owner            text,
    state            upload_state NOT NULL DEFAULT 'uploading',
    filename         text NOT NULL CHECK (length(filename) BETWEEN 1 AND 1024),
    content_type     text NOT NULL CHECK (length(content_type) BETWEEN 1 AND 255),
    size             bigint NOT NULL CHECK (size >= 0),
    chunk_size       bigint NOT NULL CHECK (chunk_size > 0 AND chunk_size <= 5368709120),
    total_chunks     integer NOT NULL CHECK (total_chunks BETWEEN 0 AND 10000),
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- The whole file's SHA-256 as the client declared it, for verification after completion.
    declared_sha256  bytea CHECK (length(declared_sha256) = 32),
    object_key       text NOT NULL UNIQUE,
    -- S3's multipart upload id; NULL for a zero-byte file, which is one empty object and no multipart.
    s3_upload_id     text,
    -- The completed object's ETag as S3 gave it, quotes included.
    etag             text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    CHECK (total_chunks = 0 OR s3_upload_id IS NOT NULL),
    CHECK ((state = 'completed') = (etag IS NOT NULL AND completed_at IS NOT NULL))
);

-- The worker's expiry scan: only live uploads, by deadline.
CREATE INDEX uploads_uploading_expires_at ON uploads (expires_at) WHERE state = 'uploading';
CREATE INDEX uploads_owner ON uploads (owner) WHERE owner IS NOT NULL;

CREATE TABLE chunks (
    upload_id    uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    index        integer NOT NULL CHECK (index BETWEEN 0 AND 9999),
    -- The checksum signed into the chunk's latest presigned URL.
    sha256       bytea NOT NULL CHECK (length(sha256) = 32),
    size         bigint NOT NULL CHECK (size > 0 AND size <= 5368709120),
    -- Set when the chunk is known to be in S3 (confirmed by the client or found by ListParts).
    etag         text,
    declared_at  timestamptz NOT NULL DEFAULT now(),
    received_at  timestamptz,
    PRIMARY KEY (upload_id, index),
    CHECK ((etag IS NULL) = (received_at IS NULL))
);
