-- 004_conversations: who takes part in a ticket (subject tags only thread for them), the
-- secret of signed reply addresses, the suppression list, and the auto-reply loop guard.

CREATE TABLE participants (
  ticket_id INTEGER NOT NULL REFERENCES tickets (id),
  address   TEXT NOT NULL COLLATE NOCASE,
  role      TEXT NOT NULL CHECK (role IN ('customer', 'cc', 'agent')),
  PRIMARY KEY (ticket_id, address)
) WITHOUT ROWID;

-- Generated once per database; reply+<ticket>.<sig>@domain and our Message-IDs carry
-- HMAC-SHA256(secret, ticket) so a forged address never joins a ticket.
INSERT OR IGNORE INTO meta (key, value) VALUES ('reply_secret', lower(hex(randomblob(32))));

-- Addresses a CRM must stop mailing: hard bounces, complaints (and soft bounces, which a
-- later hard bounce or complaint upgrades).
CREATE TABLE suppressions (
  address    TEXT PRIMARY KEY COLLATE NOCASE,
  reason     TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'soft_bounce', 'complaint')),
  status     TEXT,            -- DSN status code, e.g. 5.1.1
  diagnostic TEXT,
  message_id INTEGER REFERENCES messages (id),
  at         TEXT NOT NULL
);

-- Automatic messages of one sender in a window (auto-reply loops); flagged messages are
-- stored but not forwarded.
ALTER TABLE messages ADD COLUMN loop_suspect INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_sender_time ON messages (from_address COLLATE NOCASE, created_at);
