/* inbound.h: what every ingress adapter hands to the one pipeline. The raw message
 * plus the provider's metadata; no provider-specific field goes past this struct. */
#ifndef INBOXD_INBOUND_H
#define INBOXD_INBOUND_H

#include <glib.h>

#include "message.h"

typedef struct ib_inbound {
  const char *provider;   /* static: "raw", "sendgrid", "mailgun", "postmark", "ses",
                             "mandrill", "ingest" */
  GBytes *raw;            /* the RFC 5322 bytes (owned reference) */
  int rebuilt;            /* 1 when the adapter synthesized RAW from parsed fields */
  char *envelope_from;    /* NULL: unknown; "": the null sender <> */
  GPtrArray *envelope_to; /* of char* */
  char *spf, *dkim, *dmarc; /* verdicts as the provider reported them; NULL if none */
  int has_spam_score;
  double spam_score;
  char *event_id;         /* provider's idempotency key (SES/SNS, Postmark); NULL if none */
} ib_inbound;

/* Allocate an empty inbound for PROVIDER (a static string). Release with
 * ib_inbound_free(). */
ib_inbound *ib_inbound_new(const char *provider);

/* Release IN and what it owns. NULL is a no-op. */
void ib_inbound_free(ib_inbound *in);

/* Copy IN's metadata (provider, envelope, auth, spam score) into MSG. */
void ib_inbound_apply(const ib_inbound *in, ib_message *msg);

#endif
