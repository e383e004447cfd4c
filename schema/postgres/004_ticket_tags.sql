-- 004_ticket_tags: an index of the tickets' tags (as sqlite/011), so the ticket list's tag
-- filter (tags::jsonb ? tag) can be led by an index: without one, a tag that few tickets
-- have read every ticket. PostgreSQL plans with the bound tag and the expression's
-- statistics: a rare tag's tickets come from this index, a common one is checked on the
-- tickets an activity scan reaches.
CREATE INDEX IF NOT EXISTS tickets_tags ON tickets USING gin ((tags::jsonb));
