/* parse.h: the pure part of the pipeline, shared by "inboxd parse" and ingestion:
 * MIME parse, the adapter's metadata, reply stripping, then classification. */
#ifndef INBOXD_PARSE_H
#define INBOXD_PARSE_H

#include "inbound.h"
#include "mime.h"

/* Parse RAW (LEN bytes) with mime_parse(), apply IN's metadata (IN may be NULL, as in
 * "inboxd parse"), then run strip_message() and classify_message(). Same statuses and
 * ownership as mime_parse(). */
ib_status parse_message(const char *raw, size_t len, const ib_inbound *in,
                        const mime_limits *limits, ib_message **msg_out);

#endif
