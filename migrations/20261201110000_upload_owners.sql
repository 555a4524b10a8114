-- Every upload has an owner: the `sub` of the token that created it (`anonymous` with AUTH=none, and for
-- uploads created before authentication existed).

UPDATE uploads SET owner = 'anonymous' WHERE owner IS NULL;
ALTER TABLE uploads
    ALTER COLUMN owner SET NOT NULL,
    ADD CONSTRAINT uploads_owner_length CHECK (length(owner) BETWEEN 1 AND 255);

-- The per-owner limits: an owner's live uploads and their sizes, read without touching the table.
CREATE INDEX uploads_owner_active ON uploads (owner, expires_at) INCLUDE (size) WHERE state = 'uploading';
