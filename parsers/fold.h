/* fold.h: text folding for search, so "sikayet" finds "şikayet" and "Strasse" finds
 * "Straße": the same function runs on what is indexed and on what is searched. */
#ifndef INBOXD_FOLD_H
#define INBOXD_FOLD_H

#include <stddef.h>

/* Case-fold TEXT (UTF-8) and map letters that have no Unicode decomposition to their
 * base letters (ı→i, ß→ss, ø→o, ł→l, æ→ae, ...). Accents that do decompose are left to
 * the FTS5 tokenizer (remove_diacritics 2). Returns a new string (g_free); "" for NULL. */
char *fold_text(const char *text);

/* S (LEN bytes) with its ASCII letters lower-cased and every other byte kept, as
 * g_ascii_strdown but several times faster on long texts. Returns a new string (g_free). */
char *fold_ascii_lower(const char *s, size_t len);

/* Turn a user's search Q into an FTS5 query that cannot be a syntax error: words are
 * ANDed, "quoted phrases" kept, a trailing * makes a prefix search; every other FTS5
 * operator character is dropped. Returns a new string, or NULL when Q has no word. */
char *fold_search_query(const char *q);

#endif
