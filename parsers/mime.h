/* mime.h: raw RFC 5322 bytes -> ib_message, with GMime 3. Best effort: broken mail
 * still yields a message, with what was wrong in msg->warnings. */
#ifndef INBOXD_MIME_H
#define INBOXD_MIME_H

#include <stddef.h>

#include "message.h"

/* Caps on what one message may make the parser do. A cap that is hit never refuses the
 * message: parsing stops at the cap and a "limit_*" warning is added. */
typedef struct mime_limits {
  unsigned max_depth;            /* nesting of multiparts and attached messages */
  unsigned max_parts;            /* MIME parts walked */
  unsigned max_headers;          /* header fields kept per message */
  size_t max_header_bytes;       /* bytes of one header value kept */
  unsigned max_attachments;      /* attachments kept */
  uint64_t max_attachment_bytes; /* decoded bytes of one attachment */
  uint64_t max_decoded_bytes;    /* decoded bytes of all parts together */
} mime_limits;

/* The defaults used by inboxd serve, ingest and parse. */
void mime_limits_default(mime_limits *limits_out);

/* Call once in main() before any thread starts / at exit (wrap g_mime_init/shutdown). */
void mime_init(void);
void mime_shutdown(void);

/* Parse RAW (LEN bytes) into *MSG_OUT. LIMITS may be NULL for the defaults. Returns
 * IB_OK (the message may still carry warnings) or IB_ERR_NOT_MAIL when LEN is 0 or the
 * bytes hold nothing that looks like a message. *MSG_OUT is new: release it with
 * ib_message_free(). RAW is borrowed for the call and may hold NUL bytes. */
ib_status mime_parse(const char *raw, size_t len, const mime_limits *limits, ib_message **msg_out);

#endif
