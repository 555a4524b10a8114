-- A job that delivers one webhook event. Its own migration: a new enum value cannot be used in the
-- transaction that adds it, and the next migration's constraints name it.
ALTER TYPE job_kind ADD VALUE 'deliver_webhook';
