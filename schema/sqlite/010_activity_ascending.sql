-- 010_activity_ascending: the ticket activity indexes in ascending order. Lists are read
-- newest first, which SQLite does as well by walking an ascending index backwards; but
-- new and updated tickets, which always carry the newest updated_at, were inserted at the
-- left edge of a descending index, where every page split rebalances its neighbours and
-- leaves half-empty pages: about 7.6 WAL frames (4 KiB each) per group commit for the two
-- indexes, measured by mapping the WAL's frames to their b-trees under tests/bench load.
-- At the right edge of an ascending index SQLite appends to the last page.
DROP INDEX IF EXISTS tickets_activity;
CREATE INDEX tickets_activity ON tickets (updated_at, id);
DROP INDEX IF EXISTS tickets_status_activity;
CREATE INDEX tickets_status_activity ON tickets (status, updated_at, id);
