-- Uploads made through the Companion-compatible routes (Uppy's @uppy/aws-s3), which say nothing of a file's size
-- or its parts' checksums until they are done:
--   chunks     our own protocol: size and chunk plan declared at create, every chunk's SHA-256 signed into its URL
--   form_post  one object sent by a browser form POST under a presigned POST policy; no multipart upload
--   multipart  an S3 multipart upload whose parts the client cuts itself (no checksums)
-- The last two learn size, chunk size and part count when they complete; until then they are NULL.

ALTER TABLE uploads
    ADD COLUMN kind text NOT NULL DEFAULT 'chunks' CHECK (kind IN ('chunks', 'form_post', 'multipart')),
    ALTER COLUMN size DROP NOT NULL,
    ALTER COLUMN chunk_size DROP NOT NULL,
    ALTER COLUMN total_chunks DROP NOT NULL,
    ADD CONSTRAINT uploads_shape_known CHECK (
        (size IS NOT NULL AND chunk_size IS NOT NULL AND total_chunks IS NOT NULL)
        OR (kind <> 'chunks' AND state <> 'completed')
    ),
    -- A form POST leaves one object and no multipart upload; every other upload with parts has one.
    DROP CONSTRAINT uploads_check,
    ADD CONSTRAINT uploads_parts_have_a_multipart_upload CHECK (
        kind = 'form_post' OR total_chunks IS NULL OR total_chunks = 0 OR s3_upload_id IS NOT NULL
    );

-- A part the client cut itself has no checksum we signed: its row records what ListParts reported.
ALTER TABLE chunks ALTER COLUMN sha256 DROP NOT NULL;

-- The sweep's look for form POSTs that happened: live single-object uploads, by deadline.
CREATE INDEX uploads_form_post_pending ON uploads (expires_at) WHERE kind = 'form_post' AND state = 'uploading';
