/* repair.h: every workaround inboxd applies to broken mail, in one place.
 *
 * Real mail is often malformed: no blank line after the headers, an mbox "From " line
 * in front, CR-only line ends, 8-bit header bytes in an unknown charset, bodies whose
 * declared charset is wrong or missing, dates in ISO 8601, multiparts whose boundary
 * parameter is missing or does not match the body. Each workaround below is
 * documented at its prototype, tested in tests/unit/test_repair.c, and adds a
 * "code: detail" entry to the message's parse_warnings whenever it changes anything,
 * so a reader of the stored message can tell what was guessed. */
#ifndef INBOXD_REPAIR_H
#define INBOXD_REPAIR_H

#include <gmime/gmime.h>
#include <stddef.h>

#include "message.h"

/* The bytes the MIME parser should read after the input-level repairs. */
typedef struct repair_buf {
  const char *data; /* the raw input itself, a suffix of it, or OWNED */
  size_t len;
  char *owned; /* new bytes (g_free) when a repair had to rewrite the input */
} repair_buf;

/* Apply the input-level repairs to RAW (LEN bytes) and set *OUT to the bytes to parse.
 * In order, each reported when it fires:
 *  - bare_cr_line_endings: the input has CR but no LF at all (classic Mac); every CR
 *    becomes LF so lines can be found (copies the input).
 *  - mixed_line_endings: CRLF and bare LF line ends in one message (a relay rewrote
 *    part of it); both are read as line ends, which GMime does anyway: warning only.
 *  - mbox_from_line: a leading mbox "From sender date" separator line is skipped.
 *  - leading_blank_lines: blank lines before the first header are skipped.
 *  - no_headers: the input starts with something that is not a header field; it is
 *    parsed as a body without headers (copies the input, adding the blank line).
 *  - missing_blank_line: the header block is ended by a line that is not a field and
 *    no field follows it; a blank line is inserted there so that text becomes the body
 *    instead of being dropped as broken headers (copies the input).
 * Returns IB_OK, or IB_ERR_NOT_MAIL when LEN is 0, the input is only whitespace, or it
 * has no header and is binary (NUL or control bytes), i.e. nothing message-like.
 * RAW is borrowed and must outlive *OUT; release *OUT with repair_buf_clear(). */
ib_status repair_input(const char *raw, size_t len, ib_message *msg, repair_buf *out);

/* Free what *BUF owns and reset it. NULL-safe. */
void repair_buf_clear(repair_buf *buf);

/* Return the length of the field name at the start of LINE (LEN bytes, no line end) if
 * LINE is a header field "name: value" (name of printable ASCII without ':', optional
 * blanks before the colon, RFC 5322 obs-field), else 0. *COLON_OUT (may be NULL) gets
 * the index of the colon. Pure predicate, no warning. */
size_t repair_field_name_len(const char *line, size_t len, size_t *colon_out);

/* Convert the header value BYTES (LEN bytes) of header NAME to UTF-8. RFC 6532 allows
 * raw UTF-8; any other 8-bit bytes are decoded as windows-1252 (header_8bit warning)
 * and NUL bytes are dropped (nul_bytes warning). Returns a new string (g_free). */
char *repair_header_to_utf8(const char *bytes, size_t len, const char *name, ib_message *msg);

/* Convert the decoded text body BYTES (LEN bytes) declared as CHARSET (NULL or "" when
 * the part has none) to UTF-8 with LF line ends. WHAT names the part in warnings
 * ("text/plain body"). Workarounds, each with its warning:
 *  - charset_missing: no charset and 8-bit bytes: the charset of an HTML <meta> (HTML
 *    only), else UTF-8 when valid, else windows-1252. 7-bit text is us-ascii by
 *    RFC 2045 and needs no warning.
 *  - charset_mismatch: declared us-ascii or utf-8 but the bytes are not: valid UTF-8 is
 *    taken as such, otherwise windows-1252.
 *  - charset_superset: bytes the declared charset does not define are decoded with its
 *    common superset, as browsers do (iso-8859-1 -> windows-1252, gb2312/gbk ->
 *    gb18030, euc-kr, ks_c_5601-1987 -> cp949, shift_jis -> cp932, big5 -> big5-hkscs,
 *    tis-620, iso-8859-11 -> cp874).
 *  - charset_unknown: a charset iconv does not know: UTF-8 if valid, else windows-1252.
 *  - charset_invalid_bytes: bytes still invalid after all that become U+FFFD.
 *  - nul_bytes: NUL bytes are dropped.
 * Returns a new valid UTF-8 string (g_free), never NULL. */
char *repair_text_to_utf8(const char *bytes, size_t len, const char *charset, gboolean html,
                          const char *what, ib_message *msg);

/* A Date value in ISO 8601 / RFC 3339 ("2025-01-06T10:00:00Z", as some scripts write)
 * instead of RFC 5322. Tried before GMime's date parser, which reads such values as
 * midnight or not at all. Returns a new GDateTime (unref) and warns date_iso8601, or
 * NULL when VALUE does not start like an ISO date or does not parse as one (no warning:
 * the caller goes on with RFC 5322). */
GDateTime *repair_date(const char *value, ib_message *msg);

/* Some clients separate the msg-ids of References / In-Reply-To with commas, which
 * stops GMime's parser after the first id. Returns a new copy of VALUE with commas
 * outside <...> turned into spaces and warns references_commas, or NULL when VALUE has
 * no such comma. HEADER names the field in the warning. */
char *repair_msgid_list(const char *value, const char *header, ib_message *msg);

/* GMime's base64 decoder silently skips bytes outside the alphabet. Count them in the
 * encoded content ENC (LEN bytes) and warn bad_base64 naming WHAT when there are any.
 * Returns the number of invalid bytes. */
size_t repair_check_base64(const char *enc, size_t len, const char *what, ib_message *msg);

/* A multipart without a boundary parameter, or whose boundary never occurs, parses
 * into zero children with the whole body in the prologue. If the prologue holds a
 * delimiter line "--X" that occurs again later, re-parse the prologue as the same
 * multipart type with boundary X (warning multipart_boundary_guessed). Returns the new
 * part (g_object_unref; it owns its bytes, readable through *BASE_OUT and *LEN_OUT as
 * long as the part lives), or NULL when no boundary can be found. OPTS is the parse's
 * options. */
GMimeObject *repair_multipart(GMimeMultipart *multipart, GMimeParserOptions *opts, ib_message *msg,
                              const char **base_out, size_t *len_out);

/* ---- GMime bug workarounds: the mail is fine, so these add no warning ---- */

/* GMime 3.2.13 (Debian 12; fixed upstream later, jstedfast/gmime#133) decodes adjacent
 * B-encoded words of one charset by joining their base64 text first, so the '='
 * padding of one word ends the decoding and the rest of the header is lost
 * ("=?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?=" -> "Hello"). Thunderbird and Outlook
 * write such words all the time. Returns a new copy of VALUE with every B word
 * rewritten as the equivalent Q word (same charset, same bytes), or NULL when VALUE has
 * no padded B word followed by another encoded word. */
char *repair_rfc2047_padding(const char *value);

#endif
