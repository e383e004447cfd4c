-- 001_core: tickets, messages with their raw bytes and attachments, the change feed.
-- Times are RFC 3339 UTC text with milliseconds ("2025-01-06T10:00:00.000Z"), so text
-- order is time order.

CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE tickets (
  id               INTEGER PRIMARY KEY,
  subject          TEXT,
  status           TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'closed')),
  customer_name    TEXT,
  customer_address TEXT,
  tags             TEXT NOT NULL DEFAULT '[]',     -- JSON array of strings
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL,
  message_count    INTEGER NOT NULL DEFAULT 0,
  last_message_id  INTEGER,
  version          INTEGER NOT NULL DEFAULT 1      -- bumped on every change (ETags)
);
CREATE INDEX tickets_activity ON tickets (updated_at DESC, id DESC);

CREATE TABLE messages (
  id             INTEGER PRIMARY KEY,
  ticket_id      INTEGER NOT NULL REFERENCES tickets (id),
  direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  classification TEXT NOT NULL,
  provider       TEXT,
  rfc_message_id TEXT NOT NULL,                    -- Message-ID without <>
  raw_sha256     TEXT NOT NULL,
  envelope_to    TEXT NOT NULL DEFAULT '',         -- sorted, comma-joined envelope recipients
  event_id       TEXT,                             -- provider's idempotency key
  from_address   TEXT,
  snippet        TEXT NOT NULL DEFAULT '',
  doc            TEXT NOT NULL,                    -- the message document (JSON) without ids
  created_at     TEXT NOT NULL
);
-- Idempotency: the same message (Message-ID + bytes) to the same mailbox is stored once.
CREATE UNIQUE INDEX messages_dedupe ON messages (rfc_message_id, raw_sha256, envelope_to);
CREATE UNIQUE INDEX messages_event ON messages (provider, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX messages_ticket ON messages (ticket_id, id);

CREATE TABLE raw_messages (
  message_id INTEGER PRIMARY KEY REFERENCES messages (id),
  rebuilt    INTEGER NOT NULL DEFAULT 0,           -- 1: synthesized from a parsed payload
  bytes      BLOB NOT NULL
);

CREATE TABLE attachments (
  id           INTEGER PRIMARY KEY,
  message_id   INTEGER NOT NULL REFERENCES messages (id),
  position     INTEGER NOT NULL,
  filename     TEXT,
  content_type TEXT NOT NULL,
  size         INTEGER NOT NULL,
  sha256       TEXT NOT NULL,
  content_id   TEXT,
  disposition  TEXT NOT NULL CHECK (disposition IN ('attachment', 'inline')),
  data         BLOB NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id, position);

-- The change feed: one row per event, in commit order.
CREATE TABLE events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  type       TEXT NOT NULL,
  ticket_id  INTEGER,
  message_id INTEGER,
  at         TEXT NOT NULL
);
