/* message.h: the normalized message, what every stage after the MIME parser reads
 * and fills in (DESIGN.md "message"). It holds only plain C data and GLib
 * containers, no GMime objects, so it can move between threads.
 *
 * Ownership: an ib_message owns every string and array it points to. Arrays are
 * GPtrArrays created with their element destructor, so g_ptr_array_add() steals the
 * element. Strings are UTF-8 (validated) and freed with g_free(). */
#ifndef INBOXD_MESSAGE_H
#define INBOXD_MESSAGE_H

#include <glib.h>
#include <jansson.h>
#include <stdint.h>

#include "status.h"

typedef struct ib_addr {
  char *name;    /* display name, decoded; NULL when absent */
  char *address; /* addr-spec as written; NULL when absent (group syntax, garbage) */
} ib_addr;

typedef struct ib_header {
  char *name;  /* as written (case kept) */
  char *value; /* unfolded, leading/trailing blanks trimmed, raw (not RFC 2047-decoded),
                  made valid UTF-8 (8-bit bytes: UTF-8 if valid, else windows-1252) */
} ib_header;

typedef enum ib_disposition { IB_DISP_ATTACHMENT = 0, IB_DISP_INLINE } ib_disposition;

typedef struct ib_attachment {
  char *filename;     /* decoded (RFC 2047/2231), never a path to trust; NULL when none */
  char *content_type; /* lower-case "type/subtype" */
  char *content_id;   /* without angle brackets; NULL when none */
  ib_disposition disposition;
  uint64_t size;   /* decoded size in bytes */
  char sha256[65]; /* lower-case hex of the decoded bytes */
  GBytes *data;    /* decoded bytes (owned reference) */
} ib_attachment;

typedef enum ib_class {
  IB_CLASS_NEW = 0,
  IB_CLASS_REPLY,
  IB_CLASS_AUTO_REPLY,
  IB_CLASS_BOUNCE,
  IB_CLASS_COMPLAINT
} ib_class;

typedef struct ib_bounce_rcpt {
  char *address, *action, *status, *diagnostic; /* each may be NULL */
} ib_bounce_rcpt;

typedef struct ib_bounce {
  int hard;                  /* 1: permanent (5.x.x), 0: transient (4.x.x) */
  GPtrArray *recipients;     /* of ib_bounce_rcpt* */
  char *original_message_id; /* Message-ID of the returned mail, no <>; may be NULL */
} ib_bounce;

typedef struct ib_complaint {
  char *feedback_type;       /* "abuse", "fraud", ...; may be NULL */
  GPtrArray *recipients;     /* of char*: original recipients */
  char *original_message_id; /* may be NULL */
} ib_complaint;

/* The machine-readable pieces of a multipart/report, kept by the MIME parser for the
 * classifier (which parses them without GMime). All NULL when the mail is no report. */
typedef struct ib_report {
  char *report_type;      /* report-type parameter, lower-case: "delivery-status", ... */
  char *status_fields;    /* decoded body of the message/delivery-status,
                             message/feedback-report (or message/global-*) part */
  char *original_headers; /* header block of the returned message (message/rfc822 or
                             text/rfc822-headers part) */
} ib_report;

typedef struct ib_message {
  /* From the MIME parser. */
  char *message_id;              /* no angle brackets; synthetic when the mail has none */
  int message_id_synthetic;      /* 1 when message_id was made from the hash of the bytes */
  char *in_reply_to;             /* first msg-id of In-Reply-To, no <>; NULL when none */
  GPtrArray *references;         /* of char*, oldest first, no <> */
  char *subject;                 /* decoded; NULL when no Subject header */
  char *date;                    /* RFC 3339 UTC ("2025-01-06T10:00:00Z"); NULL if absent/invalid */
  ib_addr *from;                 /* NULL when no usable From */
  GPtrArray *to, *cc, *reply_to; /* of ib_addr* */
  GPtrArray *headers;            /* of ib_header*, in message order */
  char *text;             /* text body (from text/plain, else derived from html); may be NULL */
  char *html;             /* html body; may be NULL */
  GPtrArray *attachments; /* of ib_attachment* */
  ib_report report;
  GPtrArray *warnings; /* of char*: parse_warnings, snake_case code + ": " + detail */
  char raw_sha256[65]; /* hex SHA-256 of the raw bytes parsed */

  /* From reply stripping. */
  char *stripped_text; /* may be NULL */
  char *stripped_html; /* may be NULL */

  /* From the classifier. */
  ib_class classification;
  ib_bounce *bounce;       /* only for IB_CLASS_BOUNCE */
  ib_complaint *complaint; /* only for IB_CLASS_COMPLAINT */

  /* From the ingress adapter (NULL/absent for inboxd parse). */
  char *provider; /* "raw", "sendgrid", ...; NULL in inboxd parse */
  char *envelope_from;
  GPtrArray *envelope_to; /* of char* */
  char *auth_spf, *auth_dkim, *auth_dmarc;
  int has_spam_score;
  double spam_score;

  /* From the threader / store (server side). */
  const char *direction; /* static string: "inbound" (default) or "outbound" */
  char *thread_reason;   /* NULL until threaded */
} ib_message;

/* Allocate an empty message with all arrays created. Never fails (GLib aborts on OOM).
 * Release it with ib_message_free(). */
ib_message *ib_message_new(void);

/* Release MSG and everything it owns. NULL is a no-op. */
void ib_message_free(ib_message *msg);

/* Element helpers, usable as GDestroyNotify for the arrays above. */
ib_addr *ib_addr_new(const char *name, const char *address);
void ib_addr_free(gpointer addr);
void ib_header_free(gpointer hdr);
void ib_attachment_free(gpointer att);
void ib_bounce_free(ib_bounce *bounce);
void ib_complaint_free(ib_complaint *complaint);
void ib_bounce_rcpt_free(gpointer rcpt);

/* Append a warning "CODE: DETAIL" (printf-style DETAIL) to MSG->warnings. */
void ib_message_warn(ib_message *msg, const char *code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Return the value of the first header named NAME (case-insensitive), or NULL. Borrowed
 * from MSG. */
const char *ib_message_header(const ib_message *msg, const char *name);

/* "new", "reply", ... Never NULL. */
const char *ib_class_str(ib_class c);

/* Build the message document of DESIGN.md (without "id", "ticket_id", "created_at" and
 * attachment "id"/"url", which the store adds). Returns a new reference (json_decref),
 * or NULL only on allocation failure. Strings are valid UTF-8 by construction. */
json_t *ib_message_to_json(const ib_message *msg);

#endif
