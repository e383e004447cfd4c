/* mandrill.c: Mandrill (Mailchimp Transactional) inbound webhooks (spec section 4): a
 * urlencoded "mandrill_events" JSON array, each "inbound" event carrying the message
 * in msg.raw_msg. Signed with base64 HMAC-SHA1(key, url + sorted names and values).
 * Mandrill checks the URL with HEAD (and GET) before using it: a health check. */
#include <string.h>

#include "adapter.h"
#include "adapter_impl.h"

static gint
by_name(gconstpointer a, gconstpointer b)
{
  const form_field *fa = *(const form_field *const *)a, *fb = *(const form_field *const *)b;
  return strcmp(fa->name, fb->name);
}

static ib_status
verify_signature(const adapter_request *req, const adapter_config *cfg, const form *f,
                 adapter_result *res)
{
  const char *got = adapter_header(req, "X-Mandrill-Signature");
  const char *url = cfg->mandrill_url ? cfg->mandrill_url : req->url;
  if (!url)
    return adapter_result_fail(res, IB_ERR_INTERNAL, 500, "mandrill_url_missing",
                               "a Mandrill key is configured but not the webhook URL it signs");
  if (!got || !got[0])
    return adapter_result_fail(res, IB_ERR_AUTH, 0, "mandrill_signature_missing",
                               "the request has no X-Mandrill-Signature header, but a Mandrill "
                               "key is configured");
  /* Names in byte order (the sort is stable, so repeated names keep body order). */
  GPtrArray *fields = g_ptr_array_new();
  for (size_t i = 0; i < form_size(f); i++)
    g_ptr_array_add(fields, (gpointer)form_at(f, i));
  g_ptr_array_sort(fields, by_name);
  GHmac *mac =
      g_hmac_new(G_CHECKSUM_SHA1, (const guchar *)cfg->mandrill_key, strlen(cfg->mandrill_key));
  g_hmac_update(mac, (const guchar *)url, (gssize)strlen(url));
  for (guint i = 0; i < fields->len; i++) {
    const form_field *ff = g_ptr_array_index(fields, i);
    g_hmac_update(mac, (const guchar *)ff->name, (gssize)strlen(ff->name));
    g_hmac_update(mac, (const guchar *)ff->value, (gssize)ff->len);
  }
  guint8 digest[20];
  gsize dlen = sizeof digest;
  g_hmac_get_digest(mac, digest, &dlen);
  g_hmac_unref(mac);
  g_ptr_array_unref(fields);
  char *expected = g_base64_encode(digest, dlen);
  int ok = adapter_ct_equal(expected, strlen(expected), got, strlen(got));
  g_free(expected);
  if (!ok)
    return adapter_result_fail(res, IB_ERR_AUTH, 0, "mandrill_bad_signature",
                               "X-Mandrill-Signature does not match the configured key and "
                               "webhook URL");
  return IB_OK;
}

/* One inbound event: msg.raw_msg is the message, msg.email the address it reached. */
static ib_status
inbound_event(json_t *ev, size_t index, adapter_result *res)
{
  json_t *msg = json_object_get(ev, "msg");
  size_t len = 0;
  const char *raw = adapter_json_str(msg, "raw_msg", &len);
  if (!raw || len == 0)
    return adapter_result_fail(res, IB_ERR_NOT_MAIL, 0, "mandrill_event_invalid",
                               "inbound event %zu has no msg.raw_msg", index + 1);
  ib_inbound *in = ib_inbound_new("mandrill");
  in->raw = g_bytes_new(raw, len);
  adapter_add_recipients(in, adapter_json_str(msg, "email", NULL));
  json_t *spf = json_object_get(msg, "spf");
  in->spf = adapter_verdict(adapter_json_str(spf, "result", NULL));
  json_t *dkim = json_object_get(msg, "dkim");
  if (json_is_object(dkim)) {
    json_t *signed_ = json_object_get(dkim, "signed"), *valid = json_object_get(dkim, "valid");
    if (json_is_boolean(signed_))
      in->dkim = g_strdup(!json_is_true(signed_) ? "none" : json_is_true(valid) ? "pass" : "fail");
  }
  json_t *score = json_object_get(json_object_get(msg, "spam_report"), "score");
  if (json_is_number(score)) {
    in->has_spam_score = 1;
    in->spam_score = json_number_value(score);
  }
  g_ptr_array_add(res->inbound, in);
  return IB_OK;
}

ib_status
mandrill_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res)
{
  ib_status st;
  form *f = NULL;
  json_t *events = NULL;
  char *why = NULL;
  if (req->method && (g_ascii_strcasecmp(req->method, "HEAD") == 0 ||
                      g_ascii_strcasecmp(req->method, "GET") == 0)) {
    res->health_check = 1;
    return IB_OK;
  }
  if (!adapter_is_post(req)) {
    res->allow = "POST, HEAD, GET";
    return adapter_result_fail(res, IB_ERR_UNSUPPORTED, 405, "method_not_allowed",
                               "Mandrill posts events with POST");
  }
  if ((st = adapter_form(req, cfg, res, &f)) != IB_OK)
    return st;
  if (cfg->mandrill_key && (st = verify_signature(req, cfg, f, res)) != IB_OK)
    goto done;
  if (form_count(f, "mandrill_events") != 1) {
    st = adapter_result_fail(res, IB_ERR_INVALID, 0, "mandrill_no_events",
                             "the form must hold exactly one mandrill_events field (it has %zu)",
                             form_count(f, "mandrill_events"));
    goto done;
  }
  const form_field *ff = form_first(f, "mandrill_events");
  events = adapter_json_load_depth(ff->value, ff->len, cfg->max_json_depth, &why);
  if (!json_is_array(events)) {
    st = adapter_result_fail(res, IB_ERR_INVALID, 0, "mandrill_bad_events",
                             "mandrill_events is not a JSON array: %s", why ? why : "wrong type");
    goto done;
  }
  size_t i, skipped = 0;
  json_t *ev;
  json_array_foreach(events, i, ev)
  {
    const char *type = adapter_json_str(ev, "event", NULL);
    if (!type || strcmp(type, "inbound") != 0) {
      skipped++; /* tracking events posted to the inbound URL carry no mail */
      continue;
    }
    if ((st = inbound_event(ev, i, res)) != IB_OK)
      goto done;
  }
  if (res->inbound->len == 0)
    res->note = g_strdup_printf("mandrill batch of %zu events holds no inbound event",
                                json_array_size(events));
  else if (skipped)
    res->note = g_strdup_printf("mandrill batch: %zu non-inbound events skipped", skipped);
done:
  g_free(why);
  json_decref(events);
  form_free(f);
  return st;
}
