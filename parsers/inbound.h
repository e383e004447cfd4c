/* inbound.h: what every ingress adapter hands to the one pipeline. The raw message
 * plus the provider's metadata; no provider-specific field goes past this struct. */
#ifndef INBOXD_INBOUND_H
#define INBOXD_INBOUND_H

#include <glib.h>

#include "message.h"

typedef struct ib_inbound {
  const char *provider;     /* static: "raw", "sendgrid", "mailgun", "postmark", "ses",
                               "mandrill", "ingest" */
  GBytes *raw;              /* the RFC 5322 bytes (owned reference) */
  int rebuilt;              /* 1 when the adapter synthesized RAW from parsed fields */
  char *envelope_from;      /* NULL: unknown; "": the null sender <> */
  GPtrArray *envelope_to;   /* of char* */
  char *spf, *dkim, *dmarc; /* verdicts as the provider reported them; NULL if none */
  int has_spam_score;
  double spam_score;
  char *event_id;      /* provider's idempotency key (SES/SNS, Postmark); NULL if none */
  GPtrArray *warnings; /* of char*: "code: detail" noticed by the adapter (an unknown
                          charset, a UTF-8 re-encoded body); ib_inbound_apply() copies
                          them into the message's parse_warnings */
} ib_inbound;

/* Allocate an empty inbound for PROVIDER (a static string). Release with
 * ib_inbound_free(). */
ib_inbound *ib_inbound_new(const char *provider);

/* Release IN and what it owns. NULL is a no-op. */
void ib_inbound_free(ib_inbound *in);

/* Append the warning "CODE: DETAIL" (printf-style DETAIL) to IN->warnings. */
void ib_inbound_warn(ib_inbound *in, const char *code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Copy IN's metadata (provider, envelope, auth, spam score, warnings) into MSG. */
void ib_inbound_apply(const ib_inbound *in, ib_message *msg);

#endif
