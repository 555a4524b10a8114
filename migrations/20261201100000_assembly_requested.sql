-- When a completion first asked S3 to assemble the object (CompleteMultipartUpload sent, or the object found
-- possibly assembled): from then on a completion that fails transiently must not put the upload back to
-- uploading, whichever completion (a later one taking over) fails.
ALTER TABLE uploads ADD COLUMN assembly_requested_at timestamptz;

-- Completions under way when this lands may have asked already.
UPDATE uploads SET assembly_requested_at = now() WHERE state = 'completing';
