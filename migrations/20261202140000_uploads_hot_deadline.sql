-- Every presign and confirm moves its upload's deadline (`expires_at`, `updated_at`). With `expires_at` in an
-- index, no such update could be HOT: each wrote a new entry into every index of `uploads` and left a dead
-- version that the next lookup of the same upload walked (bench/PROFILE.md: 2 HOT of 24,539 updates, 82 index
-- entries and 206 buffer hits per presign). With the deadline in no index, the update stays on its page.

-- The sweep's scan of lapsed uploads (state = 'uploading' AND expires_at <= now()) now reads the live uploads
-- through `uploads_owner_active` below and checks each deadline: the live uploads are few.
DROP INDEX uploads_uploading_expires_at;

-- The per-owner limits read an owner's live uploads and their sizes: at most MAX_ACTIVE_UPLOADS rows, whose
-- deadlines are now checked in the table rather than the index.
DROP INDEX uploads_owner_active;
CREATE INDEX uploads_owner_active ON uploads (owner) INCLUDE (size) WHERE state = 'uploading';

-- Room on each page for the new versions, so they stay HOT instead of moving to another page.
ALTER TABLE uploads SET (fillfactor = 80);
