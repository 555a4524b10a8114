-- A completion holds a lease: the process driving it refreshes completing_until while it runs, so a completion
-- whose process died is taken over seconds after the lease lapses, not after a fixed quarter of an hour.
-- completion_epoch counts the completions begun: finishing or abandoning names its epoch, so a stale
-- completion can never flip a newer one.
ALTER TABLE uploads
    ADD COLUMN completion_epoch bigint NOT NULL DEFAULT 0,
    ADD COLUMN completing_until timestamptz;

-- Completions under way when this lands have no heartbeat: their lease has lapsed.
UPDATE uploads SET completing_until = now() WHERE state = 'completing';

ALTER TABLE uploads
    ADD CONSTRAINT uploads_completing_holds_a_lease CHECK ((state = 'completing') = (completing_until IS NOT NULL));

DROP INDEX uploads_completing_updated_at;
-- The sweep's backstop scan: completions whose lease lapsed.
CREATE INDEX uploads_completing_until ON uploads (completing_until) WHERE state = 'completing';
