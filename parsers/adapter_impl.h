/* adapter_impl.h: helpers shared by the provider adapters (sendgrid.c, mailgun.c, ...).
 * Not for the server: it only needs adapter.h. */
#ifndef INBOXD_ADAPTER_IMPL_H
#define INBOXD_ADAPTER_IMPL_H

#include <glib.h>
#include <jansson.h>

#include "adapter.h"

/* REQ->now, or the real clock when it is 0. */
gint64 adapter_now(const adapter_request *req);

/* Request header NAME, or NULL (also when REQ has no header callback). Borrowed. */
const char *adapter_header(const adapter_request *req, const char *name);

/* 1 when REQ->method is POST (or unset). */
int adapter_is_post(const adapter_request *req);

/* 1 when the media type of CT (a Content-Type value; parameters ignored, case-
 * insensitive) is TYPE. 0 for NULL. */
int adapter_media_type_is(const char *ct, const char *type);

/* Constant-time equality of two secrets or signatures: lengths first (not secret), then
 * CRYPTO_memcmp. Returns 1 when equal. */
int adapter_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* The raw message DATA (LEN bytes) as a new GBytes: a reference to REQ->body_bytes when
 * DATA lies inside REQ->body and body_bytes is set, else a copy. */
GBytes *adapter_bytes(const adapter_request *req, const char *data, size_t len);

/* Decode REQ's form body with CFG's limits. On failure sets RES (400 "bad_form", 413
 * "form_limit", 415 "unsupported_media_type") and returns the status; *FORM_OUT is new
 * (form_free) on success. */
ib_status adapter_form(const adapter_request *req, const adapter_config *cfg, adapter_result *res,
                       form **form_out);

/* Parse LEN bytes of JSON (duplicate keys allowed, the last one wins; "\u0000" allowed
 * in strings). Returns a new reference, or NULL with *WHY_OUT a new sentence (g_free). */
json_t *adapter_json_load(const char *buf, size_t len, char **why_out);

/* "PREFIX<N>" -> N (1 to 100000), or 0 when NAME has another shape. */
unsigned adapter_field_number(const char *name, const char *prefix);

/* The fields of F named PREFIX<N> ("attachment-1", "attachment2"...), sorted by N; with
 * FILES_ONLY only file parts (a mail header of that name can arrive as a plain field).
 * Returns a new array (g_ptr_array_unref) of fields borrowed from F. */
GPtrArray *adapter_numbered_fields(const form *f, const char *prefix, int files_only);

/* As adapter_json_load(), refusing documents nested deeper than MAX_DEPTH (0: the
 * default of 64) before jansson sees them: a provider's payload is a few levels deep. */
json_t *adapter_json_load_depth(const char *buf, size_t len, size_t max_depth, char **why_out);

/* The string member KEY of OBJ (NULL when absent or not a string), with its length. */
const char *adapter_json_str(const json_t *obj, const char *key, size_t *len_out);

/* An addr-spec from "<a@b>", " a@b ", "Name <a@b>": the part in angle brackets when there
 * is one, trimmed. "<>" gives "" (the null sender). Returns a new string, or NULL when S
 * is NULL or blank. */
char *adapter_addr_spec(const char *s);

/* Append each comma-separated address of LIST (bare or in angle brackets) to
 * IN->envelope_to. */
void adapter_add_recipients(ib_inbound *in, const char *list);

/* A provider's verdict ("Pass", "PASS", "pass (sender SPF authorized)") as a lowercase
 * word ("pass"); NULL when S is NULL or blank. New string. */
char *adapter_verdict(const char *s);

/* Parse a decimal number (leading/trailing blanks allowed, nothing else). Returns 1 and
 * sets *OUT on success. */
int adapter_parse_double(const char *s, double *out);
int adapter_parse_int64(const char *s, gint64 *out);

/* The first header NAME (case-insensitive) in the header block of the raw message RAW
 * (LEN bytes), unfolded and trimmed, as a new string; NULL when absent. Only the header
 * block is scanned, so a body line never matches. */
char *adapter_raw_header(const char *raw, size_t len, const char *name);

/* Base64-decode S (LEN bytes) strictly: only the alphabet, '=' padding at the end and
 * whitespace. Returns a new buffer (g_free) with *OUT_LEN set, or NULL when S is not
 * base64. */
guchar *adapter_base64_decode(const char *s, size_t len, gsize *out_len);

/* Text in charset CHARSET (NULL or unknown: assumed UTF-8) as new valid UTF-8. When the
 * conversion is not possible the bytes are decoded as UTF-8 with replacement characters
 * and a "charset_fallback" warning naming WHAT is added to IN. */
char *adapter_to_utf8(const char *data, size_t len, const char *charset, const char *what,
                      ib_inbound *in);

#endif
