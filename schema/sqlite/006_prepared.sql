-- 006_prepared: the fields that only the writer knows (thread_reason; classification and
-- created_at already are columns) move out of the stored document, so the document can
-- be serialized on the HTTP workers before the message reaches the writer. The read path
-- puts them back.
ALTER TABLE messages ADD COLUMN thread_reason TEXT;
UPDATE messages SET thread_reason = json_extract(doc, '$.thread_reason');
