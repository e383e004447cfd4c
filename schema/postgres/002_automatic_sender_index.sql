-- 002_automatic_sender_index: as sqlite/009, the loop guard's index holds automatic
-- messages (auto-replies and bounces) only, the only ones it counts.
DROP INDEX IF EXISTS messages_sender_time;
CREATE INDEX IF NOT EXISTS messages_automatic_sender ON messages (lower(from_address), created_at)
  WHERE classification IN ('auto_reply', 'bounce');
