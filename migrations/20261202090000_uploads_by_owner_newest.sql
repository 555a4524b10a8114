-- GET /v1/uploads: an owner's uploads newest first, a keyset page at a time ((created_at, id) < cursor),
-- read from the index in order (scanned backwards) and stopped after the page.
CREATE INDEX uploads_owner_created_at ON uploads (owner, created_at, id);

-- The new index leads with owner, so it serves every lookup the old one did.
DROP INDEX uploads_owner;
