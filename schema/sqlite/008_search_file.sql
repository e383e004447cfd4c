-- 008_search_file: the full-text index moves out of this file into "<db>.search",
-- written by a thread of its own after each commit (server/store_search.c): indexing
-- was the costliest step of the writer's transaction. The server indexes every message
-- the new file lacks when it starts.
DROP TABLE IF EXISTS message_search;
