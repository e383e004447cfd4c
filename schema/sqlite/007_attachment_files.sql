-- 007_attachment_files: with --attachment-dir, attachment bytes are kept as files named
-- by their SHA-256 (written and fsynced before the row commits) and the row's data is
-- empty.
ALTER TABLE attachments ADD COLUMN in_file INTEGER NOT NULL DEFAULT 0;
