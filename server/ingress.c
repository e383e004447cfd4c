/* ingress.c: every /inbound/<provider> route. The provider's adapter (parsers/adapter.h)
 * turns the request into ib_inbound values or an error with the status that provider
 * must see; the one pipeline stores them and the reply waits for the commit. Nothing
 * provider-specific happens here beyond what adapter_result asks for (a replay token to
 * remember in the same transaction, an SNS subscription to confirm). */
#include <microhttpd.h>
#include <string.h>

#include "adapter.h"
#include "api.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "server.h"

/* Bodies from this size on are parsed on the offload pool (about 2.5 ms of parsing). */
#define INGRESS_OFFLOAD_BYTES (256 * 1024)

typedef enum {
  INGRESS_FAILED,   /* res holds the error to send */
  INGRESS_ANSWERED, /* nothing to store (a health check, a subscription): {"status":"ok"} */
  INGRESS_STORED,   /* the batch went to the writer: its verdict is in stored */
} ingress_outcome;

typedef struct ingress_ctx {
  ib_server *srv;
  const char *provider;
  char *url;
  adapter_result res;
  pipeline_batch *batch;
  ingress_outcome outcome;
  ib_status stored; /* the writer's verdict */
} ingress_ctx;

static void
ingress_ctx_free(gpointer p)
{
  ingress_ctx *ic = p;
  adapter_result_clear(&ic->res);
  pipeline_batch_free(ic->batch);
  g_free(ic->url);
  g_free(ic);
}

static const char *
lookup_header(void *ctx, const char *name)
{
  return request_header(ctx, name);
}

static void
reply_failure(ib_request *r, adapter_result *res)
{
  request_reply_json(r, res->http_status, adapter_error_json(res));
  if (res->allow)
    request_add_header(r, "Allow", res->allow);
  if (res->http_status == MHD_HTTP_SERVICE_UNAVAILABLE)
    request_add_header(r, "Retry-After", "5");
  if (res->note)
    log_warn("%s: %s", res->provider ? res->provider : "ingress", res->note);
}

/* Writer thread: the batch is committed (or not). Record it and resume; reply() runs back
 * on the HTTP worker. */
static void
on_stored(void *arg, ib_status st)
{
  ib_request *r = arg;
  ingress_ctx *ic = request_data(r);
  ic->stored = st;
  request_resume(r);
}

/* On the HTTP thread: the reply to what ingest_prepare() and the writer found. */
static void
reply(ib_request *r)
{
  ingress_ctx *ic = request_data(r);
  if (ic->outcome == INGRESS_FAILED) {
    reply_failure(r, &ic->res);
    return;
  }
  if (ic->outcome == INGRESS_ANSWERED) {
    request_reply_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    return;
  }
  ib_status st = ic->stored;
  if (st == IB_OK) {
    for (guint i = 0; i < pipeline_count(ic->batch); i++)
      metrics_add(pipeline_result_at(ic->batch, i)->duplicate ? METRIC_INGEST_DUPLICATES
                                                              : METRIC_MESSAGES_STORED,
                  1);
    request_reply_json(r, MHD_HTTP_OK, pipeline_reply_json(ic->batch));
  } else {
    if (st == IB_ERR_CONFLICT)
      adapter_result_fail(&ic->res, st, 0, "replayed_token",
                          "this signed token was used before: a replayed request is refused");
    else
      adapter_result_fail(&ic->res, st, 0, ib_status_str(st),
                          "the message was not stored (%s); retry later", ib_status_str(st));
    reply_failure(r, &ic->res);
  }
}

/* The URL as the provider called it (Mandrill signs it when --mandrill-url is unset). */
static char *
request_url(ib_request *r)
{
  const char *host = request_header(r, "Host");
  const char *proto = request_header(r, "X-Forwarded-Proto");
  return g_strdup_printf("%s://%s%s", proto && strcmp(proto, "https") == 0 ? "https" : "http",
                         host ? host : "localhost", request_path(r));
}

/* Adapter, parse, classify and prepare, on any thread. 1: ic->batch is ready for the
 * writer; 0: ic->outcome says what to reply. */
static int
ingest_prepare(ib_request *r, ingress_ctx *ic)
{
  ib_server *srv = ic->srv;
  GBytes *body = request_body(r);
  gsize len = 0;
  const char *data = body ? g_bytes_get_data(body, &len) : NULL;
  adapter_request rq = {.method = request_method(r),
                        .path = request_path(r),
                        .url = ic->url,
                        .content_type = request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE),
                        .body = data ? data : "",
                        .len = len,
                        .body_bytes = body,
                        .header = lookup_header,
                        .header_ctx = r};
  if (adapter_run(ic->provider, &rq, &srv->adapters, &ic->res) != IB_OK) {
    ic->outcome = INGRESS_FAILED;
    return 0;
  }
  if (ic->res.health_check || ic->res.inbound->len == 0) {
    if (ic->res.subscribe_url)
      sns_confirm_subscription(srv->sns, ic->res.subscribe_url);
    if (ic->res.note)
      log_info("%s: %s", ic->provider, ic->res.note);
    ic->outcome = INGRESS_ANSWERED;
    return 0;
  }

  /* The pipeline takes the messages over. */
  GPtrArray *inbounds = ic->res.inbound;
  ic->res.inbound = g_ptr_array_new_with_free_func((GDestroyNotify)ib_inbound_free);
  ib_status st = pipeline_prepare(inbounds, &srv->limits, &ic->batch);
  if (st != IB_OK) {
    adapter_result_fail(&ic->res, st, 0, "not_mail", "the posted message is not an email");
    ic->outcome = INGRESS_FAILED;
    return 0;
  }
  if (ic->res.replay_token)
    pipeline_set_replay(ic->batch, ic->provider, ic->res.replay_token, ic->res.replay_expires);
  ic->outcome = INGRESS_STORED;
  return 1;
}

/* An offload thread: a large body. Both ways out hand R on as the last use of R. */
static void
ingest_offloaded(ib_request *r)
{
  ingress_ctx *ic = request_data(r);
  if (ingest_prepare(r, ic))
    pipeline_submit(ic->srv->store, &ic->srv->threading, ic->batch, on_stored, r);
  else
    request_resume(r);
}

void
ingress_provider(ib_request *r)
{
  const char *provider = adapter_provider_for_path(request_path(r));
  if (!provider) {
    request_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found",
                        "no provider route %s; use /inbound/raw, sendgrid, mailgun, "
                        "mailgun/mime, postmark, ses or mandrill",
                        request_path(r));
    return;
  }
  ingress_ctx *ic = g_new0(ingress_ctx, 1);
  ic->srv = request_server(r);
  ic->provider = provider;
  ic->url = request_url(r);
  adapter_result_init(&ic->res);
  request_set_data(r, ic, ingress_ctx_free);
  /* A large body is parsed on the offload pool: parsing megabytes here would hold every
   * other connection of this HTTP thread, API reads and replies included. A small one
   * is parsed here, where a hand-over would cost more than the parse. */
  GBytes *body = request_body(r);
  if (body && g_bytes_get_size(body) >= INGRESS_OFFLOAD_BYTES) {
    request_offload(r, ingest_offloaded, reply);
    return;
  }
  if (!ingest_prepare(r, ic)) {
    reply(r);
    return;
  }
  request_defer_finish(r, reply);
  pipeline_submit(ic->srv->store, &ic->srv->threading, ic->batch, on_stored, r);
}
