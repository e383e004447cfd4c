-- 011_ticket_tags: one row per tag of a ticket, so the ticket list's tag filter can be led
-- by an index. Matching each ticket's JSON array (json_each) read every ticket for a tag
-- that few tickets have: 75 ms a page at 78,000 tickets. tickets.tags stays the document's
-- source; the triggers keep this table equal to it, whoever writes the column.
CREATE TABLE IF NOT EXISTS ticket_tags (
  tag       TEXT NOT NULL,
  ticket_id INTEGER NOT NULL,
  PRIMARY KEY (tag, ticket_id)
) WITHOUT ROWID;

INSERT OR IGNORE INTO ticket_tags (tag, ticket_id)
  SELECT j.value, t.id FROM tickets t, json_each(t.tags) j WHERE t.tags <> '[]';

CREATE TRIGGER IF NOT EXISTS ticket_tags_insert AFTER INSERT ON tickets WHEN NEW.tags <> '[]'
BEGIN
  INSERT OR IGNORE INTO ticket_tags (tag, ticket_id) SELECT value, NEW.id FROM json_each(NEW.tags);
END;

-- Only an UPDATE that names tags fires it; the ingest path's updates of a ticket do not.
CREATE TRIGGER IF NOT EXISTS ticket_tags_update AFTER UPDATE OF tags ON tickets WHEN NEW.tags IS NOT OLD.tags
BEGIN
  DELETE FROM ticket_tags
    WHERE ticket_id = OLD.id AND tag IN (SELECT value FROM json_each(OLD.tags));
  INSERT OR IGNORE INTO ticket_tags (tag, ticket_id) SELECT value, NEW.id FROM json_each(NEW.tags);
END;
