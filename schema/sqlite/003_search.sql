-- 003_search: full-text search over subjects, bodies and sender names (FTS5). Text is
-- folded by inboxd (fold_text: case, ı/ß/ø...) and the tokenizer removes diacritics, so
-- "sikayet" finds "şikayet". Contentless: the text lives in messages.doc already;
-- rowid = messages.id.
CREATE VIRTUAL TABLE message_search USING fts5(
  subject, body, names,
  content = '',
  tokenize = 'unicode61 remove_diacritics 2'
);

CREATE INDEX tickets_customer ON tickets (customer_address COLLATE NOCASE);
CREATE INDEX tickets_status_activity ON tickets (status, updated_at DESC, id DESC);
