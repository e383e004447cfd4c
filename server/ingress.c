/* ingress.c: the /inbound/ routes. Each turns its request into ib_inbound values and
 * hands them to the one pipeline; the reply waits for the commit. */
#include <microhttpd.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "server.h"

/* Writer thread: the batch is committed (or not). Reply, then resume as the last use of R. */
static void
on_stored(void *arg, ib_status st)
{
  ib_request *r = arg;
  pipeline_batch *batch = request_data(r);
  if (st == IB_OK) {
    for (guint i = 0; i < pipeline_count(batch); i++)
      metrics_add(pipeline_result_at(batch, i)->duplicate ? METRIC_INGEST_DUPLICATES
                                                          : METRIC_MESSAGES_STORED,
                  1);
    request_reply_json(r, MHD_HTTP_OK, pipeline_reply_json(batch));
  } else {
    request_reply_status(r, st, "the message was not stored (%s); retry later",
                         ib_status_str(st));
  }
  request_resume(r);
}

/* Parse INBOUNDS (stolen) on this worker thread, then store them and reply after the
 * commit. */
static void
ingest_and_reply(ib_request *r, GPtrArray *inbounds)
{
  ib_server *srv = request_server(r);
  pipeline_batch *batch = NULL;
  ib_status st = pipeline_prepare(inbounds, &srv->limits, &batch);
  if (st != IB_OK) {
    request_reply_status(r, st, st == IB_ERR_NOT_MAIL ? "the body is not an email message"
                                                      : "the message cannot be parsed");
    return;
  }
  request_set_data(r, batch, (GDestroyNotify)pipeline_batch_free);
  request_defer(r);
  pipeline_submit(srv->store, batch, on_stored, r);
}

static int
media_type_is(const char *content_type, const char *want)
{
  size_t n = strlen(want);
  if (!content_type || g_ascii_strncasecmp(content_type, want, n) != 0)
    return 0;
  char next = content_type[n];
  return next == '\0' || next == ';' || next == ' ';
}

void
ingress_raw(ib_request *r)
{
  const char *ct = request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (ct && !media_type_is(ct, "message/rfc822") &&
      !media_type_is(ct, "application/octet-stream") && !media_type_is(ct, "text/plain")) {
    request_reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                        "/inbound/raw takes the raw message as message/rfc822, "
                        "application/octet-stream or text/plain, not %s "
                        "(curl: -H 'Content-Type: message/rfc822')",
                        ct);
    return;
  }
  GBytes *body = request_body(r);
  if (!body || g_bytes_get_size(body) == 0) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "empty_body",
                        "the request body must be the raw message");
    return;
  }
  ib_inbound *in = ib_inbound_new("raw");
  in->raw = g_bytes_ref(body);
  GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)ib_inbound_free);
  g_ptr_array_add(list, in);
  ingest_and_reply(r, list);
}
