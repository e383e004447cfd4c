-- 003_stored_prefix: no change to the tables. From this version on, a stored document
-- (messages.doc) may hold stripped_text / stripped_html as the length in bytes of the
-- start of text / html they equal (schema/CHANGELOG.md); this version number makes
-- older binaries, which would serve those integers as they are, refuse the database.
SELECT 1;
