/* jsonout.h: a fast writer for jansson values, byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes.
 *
 * Why: jansson's dumper walks every string one code point at a time through a callback;
 * on the ingest path it was the largest single cost of a worker (about 520,000
 * instructions for one 5 KB message's document, callgrind, tests/bench/profile.py). This
 * one copies runs of bytes that need no escape with memcpy. */
#ifndef INBOXD_JSONOUT_H
#define INBOXD_JSONOUT_H

#include <jansson.h>
#include <stddef.h>

/* Serialize V compactly. Returns a new NUL-terminated string (release it with free(),
 * like json_dumps' result) and its length in *LEN_OUT (may be NULL), or NULL when V is NULL
 * or memory ran out. V is borrowed. Strings are copied as bytes: jansson's strings are
 * valid UTF-8 (json_string checks it; our json_string_nocheck callers guarantee it), so
 * only '"', '\\' and control characters are escaped, as jansson does. */
char *jsonout_dumps(const json_t *v, size_t *len_out);

#endif
