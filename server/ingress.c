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

typedef struct ingress_ctx {
  const char *provider;
  adapter_result res;
  pipeline_batch *batch;
  ib_status stored; /* the writer's verdict */
} ingress_ctx;

static void
ingress_ctx_free(gpointer p)
{
  ingress_ctx *ic = p;
  adapter_result_clear(&ic->res);
  pipeline_batch_free(ic->batch);
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

static void
reply(ib_request *r)
{
  ingress_ctx *ic = request_data(r);
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

void
ingress_provider(ib_request *r)
{
  ib_server *srv = request_server(r);
  const char *provider = adapter_provider_for_path(request_path(r));
  if (!provider) {
    request_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found",
                        "no provider route %s; use /inbound/raw, sendgrid, mailgun, "
                        "mailgun/mime, postmark, ses or mandrill",
                        request_path(r));
    return;
  }
  ingress_ctx *ic = g_new0(ingress_ctx, 1);
  ic->provider = provider;
  adapter_result_init(&ic->res);
  request_set_data(r, ic, ingress_ctx_free);

  GBytes *body = request_body(r);
  gsize len = 0;
  const char *data = body ? g_bytes_get_data(body, &len) : NULL;
  char *url = request_url(r);
  adapter_request rq = {.method = request_method(r),
                        .path = request_path(r),
                        .url = url,
                        .content_type = request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE),
                        .body = data ? data : "",
                        .len = len,
                        .body_bytes = body,
                        .header = lookup_header,
                        .header_ctx = r};
  ib_status st = adapter_run(provider, &rq, &srv->adapters, &ic->res);
  g_free(url);
  if (st != IB_OK) {
    reply_failure(r, &ic->res);
    return;
  }
  if (ic->res.health_check || ic->res.inbound->len == 0) {
    if (ic->res.subscribe_url)
      sns_confirm_subscription(srv->sns, ic->res.subscribe_url);
    if (ic->res.note)
      log_info("%s: %s", provider, ic->res.note);
    request_reply_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    return;
  }

  /* The pipeline takes the messages over. */
  GPtrArray *inbounds = ic->res.inbound;
  ic->res.inbound = g_ptr_array_new_with_free_func((GDestroyNotify)ib_inbound_free);
  st = pipeline_prepare(inbounds, &srv->limits, &ic->batch);
  if (st != IB_OK) {
    adapter_result_fail(&ic->res, st, 0, "not_mail", "the posted message is not an email");
    reply_failure(r, &ic->res);
    return;
  }
  if (ic->res.replay_token)
    pipeline_set_replay(ic->batch, provider, ic->res.replay_token, ic->res.replay_expires);
  request_defer_finish(r, reply);
  pipeline_submit(srv->store, &srv->threading, ic->batch, on_stored, r);
}
