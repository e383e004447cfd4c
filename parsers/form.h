/* form.h: HTML form bodies (multipart/form-data, RFC 7578, and
 * application/x-www-form-urlencoded) decoded from a complete in-memory request body.
 *
 * Providers post mail as forms (SendGrid, Mailgun, Mandrill). Field values are bytes,
 * not strings: they may hold 8-bit data in any charset and NUL bytes, so every value
 * is a (pointer, length) pair. multipart values point into the caller's body (no copy);
 * urlencoded values are percent-decoded into one buffer the form owns. Duplicate names
 * are kept, in body order: Mailgun posts every mail header as its own field, and the
 * security fields must be checked across all occurrences. Names compare byte for byte
 * (case-sensitive: Mailgun's "Sender" header and "sender" envelope field coexist). */
#ifndef INBOXD_FORM_H
#define INBOXD_FORM_H

#include <glib.h>
#include <stddef.h>

#include "status.h"

typedef struct form_field {
  char *name;         /* owned by the form; NUL-terminated, never NULL, holds no NUL */
  char *filename;     /* owned; multipart "filename" (or RFC 5987 "filename*", decoded to
                         UTF-8 when possible); NULL when the part had none */
  char *content_type; /* owned; the part's Content-Type value as sent (trimmed); NULL
                         when absent and always NULL for urlencoded fields */
  const char *value;  /* borrowed from the body (multipart) or from the form
                         (urlencoded); LEN bytes, not NUL-terminated, may hold NUL */
  size_t len;
} form_field;

typedef struct form form;

/* Caps decided before parsing. A body that exceeds one is refused with IB_ERR_LIMIT. */
typedef struct form_limits {
  size_t max_fields;            /* fields in the body */
  size_t max_name_len;          /* bytes of one field name (after decoding) */
  size_t max_part_header_bytes; /* bytes of one multipart part's header block */
} form_limits;

/* The defaults: 10000 fields, 1024-byte names, 16 KiB part headers. */
void form_limits_default(form_limits *limits_out);

/* Decode BODY (LEN bytes) according to CONTENT_TYPE (the request's Content-Type value:
 * "multipart/form-data; boundary=..." with the boundary quoted or not, or
 * "application/x-www-form-urlencoded"). LIMITS may be NULL for the defaults.
 * Returns IB_OK, IB_ERR_UNSUPPORTED (CONTENT_TYPE is neither form type, or NULL),
 * IB_ERR_INVALID (malformed: no or bad boundary, a part without a name, a missing final
 * boundary, a truncated part header, a NUL in a name) or IB_ERR_LIMIT. On success
 * *FORM_OUT is new (form_free) and BODY must outlive it: multipart values point into it.
 * On failure *FORM_OUT is NULL and, when ERROR_OUT is not NULL, *ERROR_OUT is a new
 * lowercase sentence saying what is wrong (g_free). Multipart parts may end lines with
 * CRLF or bare LF; the preamble and epilogue are ignored. */
ib_status form_parse(const char *content_type, const char *body, size_t len,
                     const form_limits *limits, form **form_out, char **error_out);

/* Release F. NULL is a no-op. */
void form_free(form *f);

/* Number of fields, and field I (0-based, body order; borrowed from F). */
size_t form_size(const form *f);
const form_field *form_at(const form *f, size_t i);

/* The first field named NAME, or NULL. Borrowed from F. */
const form_field *form_first(const form *f, const char *name);

/* How many fields are named NAME. */
size_t form_count(const form *f, const char *name);

/* Every field named NAME, in body order: a new array (g_ptr_array_unref) of borrowed
 * const form_field pointers, empty when there is none. */
GPtrArray *form_all(const form *f, const char *name);

/* The first NAME's value as a new NUL-terminated string (g_free), or NULL when absent.
 * Bytes after an embedded NUL are not visible through the C string. */
char *form_dup_value(const form *f, const char *name);

#endif
