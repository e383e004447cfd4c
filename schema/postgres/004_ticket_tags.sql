-- 004_ticket_tags: an index of the tickets' tags (as sqlite/011), so the ticket list's tag
-- filter (tags::jsonb ? tag) can be led by an index: without one, a tag that few tickets
-- have read every ticket. The list is planned for the tag it is given, with the
-- expression's statistics, which ANALYZE gathers now rather than at the next autovacuum:
-- without them PostgreSQL guesses that a tag is on 1% of the tickets and scans.
CREATE INDEX IF NOT EXISTS tickets_tags ON tickets USING gin ((tags::jsonb));
ANALYZE tickets;
