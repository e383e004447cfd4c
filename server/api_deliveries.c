/* api_deliveries.c: operators' view of the forwarder: GET /api/deliveries,
 * POST /api/deliveries/{key}/retry and GET /metrics. */
#include <microhttpd.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "metrics.h"
#include "outbox.h"
#include "server.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000

/* ---- GET /api/deliveries ------------------------------------------------------------------ */

void
api_deliveries_list(ib_request *r)
{
  const char *status = request_query(r, "status");
  if (status && !*status)
    status = NULL;
  if (status && strcmp(status, "pending") && strcmp(status, "delivering") &&
      strcmp(status, "delivered") && strcmp(status, "failed")) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_parameter",
                        "status must be pending, delivering, delivered or failed");
    return;
  }
  const char *order = request_query(r, "order");
  if (order && *order && strcmp(order, "newest") && strcmp(order, "oldest")) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_parameter",
                        "order must be newest or oldest");
    return;
  }
  int64_t limit = LIST_DEFAULT;
  const char *v = request_query(r, "limit");
  if (v && *v) {
    char *end = NULL;
    limit = g_ascii_strtoll(v, &end, 10);
    if (!end || *end || limit < 1 || limit > LIST_MAX) {
      request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_parameter",
                          "limit must be an integer from 1 to %d", LIST_MAX);
      return;
    }
  }
  json_t *doc = NULL;
  ib_status st = outbox_list(request_server(r)->store, status, (int)limit,
                             order && strcmp(order, "oldest") == 0, &doc);
  if (st != IB_OK) {
    request_reply_status(r, st, "cannot read the deliveries; retry later");
    return;
  }
  request_reply_json(r, MHD_HTTP_OK, doc);
}

/* ---- POST /api/deliveries/{key}/retry ------------------------------------------------------ */

typedef struct retry_req {
  ib_request *r;
  forwarder *fw;
  char id[72];
  json_t *doc;        /* the delivery after the change */
  const char *reason; /* static, for a conflict */
} retry_req;

static void
retry_req_free(gpointer p)
{
  retry_req *q = p;
  json_decref(q->doc);
  g_free(q);
}

static ib_status
retry_run(ib_tx *tx, void *arg)
{
  retry_req *q = arg;
  json_decref(q->doc);
  q->doc = NULL;
  return outbox_retry(tx, q->id, clock_now_ms(), &q->doc, &q->reason);
}

/* Writer thread, after the commit: reply, wake the forwarder, resume as the last use. */
static void
retry_done(void *arg, ib_status st)
{
  retry_req *q = arg;
  ib_request *r = q->r;
  if (st == IB_OK) {
    request_reply_json(r, MHD_HTTP_OK, json_pack("{s:O}", "delivery", q->doc));
    forward_wake(q->fw);
  } else if (st == IB_ERR_NOT_FOUND) {
    request_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no delivery %s", q->id);
  } else if (st == IB_ERR_CONFLICT) {
    request_reply_error(r, MHD_HTTP_CONFLICT, "conflict", "%s",
                        q->reason ? q->reason : "the delivery cannot be retried now");
  } else {
    request_reply_status(r, st, "the delivery was not queued again; retry later");
  }
  request_resume(r);
}

void
api_delivery_retry(ib_request *r)
{
  retry_req *q = g_new0(retry_req, 1);
  q->r = r;
  q->fw = request_server(r)->forward;
  g_strlcpy(q->id, request_key(r, 0), sizeof q->id);
  request_set_data(r, q, retry_req_free);
  request_defer(r);
  store_submit(request_server(r)->store, retry_run, q, retry_done, q);
}

/* ---- GET /metrics ------------------------------------------------------------------------ */

void
api_metrics(ib_request *r)
{
  GString *out = g_string_new(NULL);
  metrics_render(out);
  outbox_stats stats;
  if (outbox_stats_get(request_server(r)->store, &stats) == IB_OK) {
    metrics_render_gauge(out, "inboxd_delivery_queue_depth",
                         "Deliveries not yet delivered or failed (pending or being sent).",
                         (double)(stats.pending + stats.delivering));
    metrics_render_gauge(out, "inboxd_delivery_in_flight", "Deliveries being sent now.",
                         (double)stats.delivering);
    double age = 0;
    if (stats.oldest_open_ms)
      age = MAX(0, (double)(clock_now_ms() - stats.oldest_open_ms) / 1000.0);
    metrics_render_gauge(out, "inboxd_delivery_oldest_pending_age_seconds",
                         "Age of the oldest event not yet delivered (0 when none).", age);
  }
  metrics_render_gauge(out, "inboxd_forwarding_enabled", "1 when --forward-url is set.",
                       request_server(r)->forward ? 1 : 0);
  request_reply_bytes(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", out->str,
                      out->len);
  g_string_free(out, TRUE);
}
