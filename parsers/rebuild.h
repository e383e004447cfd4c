/* rebuild.h: raw MIME synthesized from a provider's parsed fields (SendGrid parsed mode,
 * Mailgun's parsed form, Postmark without RawEmail), so every provider feeds the same
 * pipeline with RFC 5322 bytes.
 *
 * The shape is the one receivers such as django-anymail build:
 *   multipart/mixed( multipart/related( multipart/alternative(text, html), inline...),
 *                    attachment... )
 * with each level left out when it would have a single child. Text bodies are UTF-8,
 * quoted-printable (base64 when mostly non-ASCII); attachments are base64. Header values
 * are written in the order given; non-ASCII values are RFC 2047 encoded (display names
 * only in address headers), non-ASCII filenames RFC 2231 encoded.
 *
 * The output is DETERMINISTIC: the same input always yields the same bytes (boundaries
 * come from a SHA-256 of the content, no date or random value is added), because the
 * store's idempotency key hashes the raw bytes and providers retry.
 * mime_init() must have run (GMime parses non-ASCII address lists). */
#ifndef INBOXD_REBUILD_H
#define INBOXD_REBUILD_H

#include <glib.h>
#include <stddef.h>

typedef struct rebuild rebuild;

/* A new, empty builder. Release with rebuild_free(). */
rebuild *rebuild_new(void);

/* Release RB. NULL is a no-op. */
void rebuild_free(rebuild *rb);

/* Append header NAME: VALUE (unfolded text; invalid UTF-8 is repaired, CR/LF become
 * spaces). Dropped when NAME is not a valid field name, and for the headers the builder
 * writes itself (MIME-Version, Content-Type, Content-Transfer-Encoding, Content-Length,
 * Content-Disposition). Both strings are copied. */
void rebuild_add_header(rebuild *rb, const char *name, const char *value);

/* Give header NAME the value VALUE: the first header of that name (case-insensitive) is
 * changed in place, later ones are removed, and it is appended when there was none. Used
 * for the decoded From/To/Cc/Subject a provider hands over next to its header list. */
void rebuild_set_header(rebuild *rb, const char *name, const char *value);

/* 1 when a header NAME (case-insensitive) was added. */
int rebuild_has_header(const rebuild *rb, const char *name);

/* The text/plain and text/html bodies: LEN bytes of UTF-8 (repaired if invalid), copied.
 * Line ends may be LF or CRLF; they are written as CRLF. */
void rebuild_set_text(rebuild *rb, const char *text, size_t len);
void rebuild_set_html(rebuild *rb, const char *html, size_t len);

/* Add an attached file of LEN bytes (copied). CONTENT_TYPE: "type/subtype" with optional
 * parameters of which only charset is kept (NULL or malformed: application/octet-stream).
 * FILENAME: UTF-8 or NULL. CONTENT_ID (with or without angle brackets) non-NULL makes it
 * an inline part of the multipart/related; otherwise it is an attachment. */
void rebuild_add_part(rebuild *rb, const char *data, size_t len, const char *content_type,
                      const char *filename, const char *content_id);

/* The message bytes (CRLF line ends). Returns a new GBytes (g_bytes_unref). RB stays
 * usable; calling it twice gives the same bytes. */
GBytes *rebuild_finish(rebuild *rb);

#endif
