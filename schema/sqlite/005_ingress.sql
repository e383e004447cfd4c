-- 005_ingress: provider replay protection. Every signed Mailgun token is remembered
-- until its signature window has passed, in the same transaction as the messages of its
-- request, so a replay is refused even after a restart.
CREATE TABLE replay_tokens (
  provider   TEXT NOT NULL,
  token      TEXT NOT NULL,
  expires_at INTEGER NOT NULL,     -- unix seconds
  PRIMARY KEY (provider, token)
) WITHOUT ROWID;
CREATE INDEX replay_tokens_expiry ON replay_tokens (expires_at);
