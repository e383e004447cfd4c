-- 009_automatic_sender_index: the loop guard counts a sender's recent automatic messages
-- (auto-replies and bounces) only, so its index holds those only. The full index cost
-- every stored message a write to a random page of it (one more 4 KiB WAL frame per
-- message in a group commit); most messages are human replies.
DROP INDEX IF EXISTS messages_sender_time;
CREATE INDEX IF NOT EXISTS messages_automatic_sender ON messages (from_address COLLATE NOCASE, created_at)
  WHERE classification IN ('auto_reply', 'bounce');
