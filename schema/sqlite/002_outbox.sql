-- 002_outbox: the transactional outbox of the forwarder. One delivery per forwarded event,
-- inserted in the same transaction as the event (store_add_event's hook), so no event is
-- lost between commit and send and none is sent for a rollback.
--
-- Per-ticket order: at most one delivery of a ticket is "active" at a time, i.e.
-- 'delivering', or 'pending' with a next_attempt_at. The later ones of the ticket wait as
-- 'pending' with next_attempt_at NULL and are promoted in seq order when the active one
-- ends (delivered or failed). The forwarder only claims pending rows that are due.

CREATE TABLE deliveries (
  seq             INTEGER PRIMARY KEY,              -- events.seq: the event's order
  id              TEXT NOT NULL UNIQUE,             -- "dlv_" + 24 hex, the same on every attempt
  type            TEXT NOT NULL,                    -- event type, e.g. "message.created"
  ticket_id       INTEGER NOT NULL,
  message_id      INTEGER,                          -- NULL for events without a message
  status          TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,       -- finished attempts
  last_status     INTEGER,                          -- HTTP status of the last attempt, if any
  last_error      TEXT,                             -- what went wrong last, for operators
  next_attempt_at INTEGER,                          -- epoch ms; NULL: not scheduled (see above)
  created_at      TEXT NOT NULL,                    -- the event's time (RFC 3339)
  delivered_at    TEXT,
  ticket          TEXT NOT NULL                     -- ticket document at event time (JSON)
);
-- Due deliveries, earliest first.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
-- The open deliveries of a ticket, in event order (ordering, promotion).
CREATE INDEX deliveries_open ON deliveries (ticket_id, seq)
  WHERE status IN ('pending', 'delivering');
-- Operators' listing by status, and the queue gauges.
CREATE INDEX deliveries_status ON deliveries (status, seq);

-- What the outbox records, kept in the database so that every writer ("inboxd ingest"
-- from an MTA pipe as well as "inboxd serve") applies the same rule: written by
-- "inboxd serve" at start from --forward-url / --forward-skip.
INSERT OR IGNORE INTO meta (key, value) VALUES ('outbox.enabled', '0');
INSERT OR IGNORE INTO meta (key, value) VALUES ('outbox.skip', '');
