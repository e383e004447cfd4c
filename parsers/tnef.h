/* tnef.h: Outlook's winmail.dat (application/ms-tnef) unpacked with libytnef into the
 * files and the body it carries. */
#ifndef INBOXD_TNEF_H
#define INBOXD_TNEF_H

#include <glib.h>
#include <stddef.h>

#include "status.h"

typedef struct tnef_file {
  char *filename;     /* UTF-8 (long file name when the TNEF has one); may be NULL */
  char *content_type; /* lower-case: the TNEF's MIME tag, else guessed from the name */
  GBytes *data;       /* the file's bytes (owned reference) */
} tnef_file;

typedef struct tnef_result {
  GPtrArray *files; /* of tnef_file*, in TNEF order */
  char *text;       /* plain body (UTF-8, LF line ends), NULL when the TNEF has none */
  char *html;       /* HTML body (UTF-8), NULL when the TNEF has none */
} tnef_result;

/* Unpack the TNEF stream DATA (LEN bytes) into *OUT. The framing (signature, attribute
 * lengths and checksums) is checked first, and libytnef only gets the attributes and
 * MAPI properties we read, within its limits, because it prints to stdout and fails the
 * whole stream on anything else. Returns IB_OK, or IB_ERR_INVALID when DATA is no
 * well-formed TNEF stream or libytnef refuses it (then *OUT is NULL). *OUT is new:
 * release it with tnef_result_free(). DATA is borrowed. */
ib_status tnef_unpack(const guint8 *data, size_t len, tnef_result **out);

/* Release R and everything it owns. NULL is a no-op. */
void tnef_result_free(tnef_result *r);

/* The media type for FILENAME from its extension ("report.pdf" -> "application/pdf"),
 * "application/octet-stream" when unknown or NULL. Returns a static string. */
const char *tnef_guess_type(const char *filename);

#endif
