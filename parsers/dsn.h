/* dsn.h: the machine-readable parts of delivery reports, as plain text: RFC 3464
 * delivery-status fields, RFC 5965 feedback-report fields, RFC 3463 status codes and
 * the header block of a returned message. No GMime: the MIME parser already cut the
 * parts out (ib_report), this module reads their text. */
#ifndef INBOXD_DSN_H
#define INBOXD_DSN_H

#include <glib.h>

#include "message.h"

/* One "Name: value" field. GROUP counts the blank-line separated field groups from 0
 * (RFC 3464: group 0 holds the per-message fields, each later one a recipient). */
typedef struct dsn_field {
  char *name;  /* as written */
  char *value; /* unfolded (each fold becomes one space), trimmed */
  unsigned group;
} dsn_field;

/* The most fields kept from one text; the rest is ignored. */
#define DSN_MAX_FIELDS 2000

/* Parse TEXT (NUL-terminated, LF or CRLF lines) into fields. Lines that are neither a
 * field nor a continuation are skipped; blank lines before the first field do not open
 * a group. With HEADER_BLOCK set, parsing stops at the first blank line after a field
 * (the end of a message header). Returns a new array of dsn_field* (g_ptr_array_unref
 * frees all); empty, never NULL, for NULL TEXT. */
GPtrArray *dsn_fields_parse(const char *text, int header_block);

/* Return the value of the first field named NAME (case-insensitive) in GROUP, or in any
 * group when GROUP is negative; NULL when none. Borrowed from FIELDS. */
const char *dsn_fields_get(const GPtrArray *fields, int group, const char *name);

/* Return VALUE without a leading RFC 3464 type ("rfc822;", "smtp;", "X-Postfix;"),
 * white space collapsed and trimmed. Returns a new string (g_free); NULL for NULL or a
 * value that is empty after stripping. */
char *dsn_strip_type(const char *value);

/* Return the addr-spec of VALUE: RFC 3464 type stripped, angle brackets and blanks
 * removed. New string (g_free), NULL when nothing is left. */
char *dsn_address(const char *value);

/* Return the first RFC 3463 enhanced status code in TEXT ("5.1.1"): class 2, 4 or 5,
 * then 1-3 and 1-3 digits, not part of a longer dotted number (an IP address). New
 * string (g_free), NULL when none. */
char *dsn_find_status(const char *text);

/* Return the status implied by the first SMTP reply code 4xx/5xx in TEXT ("550" gives
 * "5.0.0"), NULL when none. New string (g_free). */
char *dsn_status_from_smtp(const char *text);

/* Return a msg-id without its angle brackets and blanks ("<a@b> (comment)" gives
 * "a@b"). New string (g_free), NULL for NULL or nothing usable. */
char *dsn_msgid(const char *value);

/* Return the addr-specs of an address list ("A <a@x>, \"B, C\" <b@x>, c@x"): a new
 * array of new strings (g_ptr_array_unref frees all); empty, never NULL. Display names,
 * comments and group syntax are dropped; only entries holding an '@' are kept. */
GPtrArray *dsn_address_list(const char *list);

/* Parse RFC 3464 per-recipient fields of STATUS_FIELDS into recipients, in order, with
 * every action (also "delivered", "relayed", "expanded"). address: Final-Recipient, else
 * Original-Recipient; action: lower-case first word; status: the code of the Status
 * field, else derived from Diagnostic-Code (its enhanced code, else its SMTP code as
 * "5.0.0"/"4.0.0"); diagnostic: Diagnostic-Code without its type, unfolded. Groups that
 * are not separated by blank lines are split at a repeated Final-Recipient. Returns a
 * new array of ib_bounce_rcpt* (g_ptr_array_unref frees all); empty, never NULL. */
GPtrArray *dsn_recipients_parse(const char *status_fields);

#endif
