/* mailgun.c: Mailgun Routes forward() posts (spec section 2): the MIME variant
 * ("body-mime", for route URLs ending in "mime") and the parsed variant (bodies, files
 * and "message-headers", rebuilt into MIME). Both may come urlencoded or multipart.
 * Signed with HMAC-SHA256(key, timestamp || token); the token is handed to the server
 * for its replay check. Store-and-notify posts are refused with what to configure. */
#include <string.h>

#include "adapter.h"
#include "adapter_impl.h"
#include "rebuild.h"

#define MAILGUN_DEFAULT_SKEW 300

/* Mailgun also posts every mail header as a field named like the header, so a sender
 * can add "token", "timestamp" or "signature" fields. All occurrences must agree;
 * returns the first one's field (NULL when absent) or sets RES and *ST on conflict. */
static const form_field *
security_field(const form *f, const char *name, adapter_result *res, ib_status *st)
{
  GPtrArray *all = form_all(f, name);
  const form_field *first = all->len ? g_ptr_array_index(all, 0) : NULL;
  for (guint i = 1; i < all->len; i++) {
    const form_field *o = g_ptr_array_index(all, i);
    if (o->len != first->len || memcmp(o->value, first->value, o->len) != 0) {
      *st = adapter_result_fail(res, IB_ERR_INVALID, 0, "mailgun_conflicting_fields",
                                "the form holds %u \"%s\" fields with different values "
                                "(a mail header may be posing as Mailgun's field)",
                                all->len, name);
      first = NULL;
      break;
    }
  }
  g_ptr_array_unref(all);
  return first;
}

static ib_status
verify_signature(const adapter_request *req, const adapter_config *cfg, const form *f,
                 adapter_result *res)
{
  ib_status st = IB_OK;
  const form_field *ts = security_field(f, "timestamp", res, &st);
  const form_field *token = st == IB_OK ? security_field(f, "token", res, &st) : NULL;
  const form_field *sig = st == IB_OK ? security_field(f, "signature", res, &st) : NULL;
  if (st != IB_OK || !cfg->mailgun_signing_key)
    return st;
  if (!ts || !token || !sig || !ts->len || !token->len || !sig->len)
    return adapter_result_fail(res, IB_ERR_AUTH, 0, "mailgun_signature_missing",
                               "the post lacks timestamp, token or signature, but a Mailgun "
                               "signing key is configured");
  GString *data = g_string_new_len(ts->value, (gssize)ts->len);
  g_string_append_len(data, token->value, (gssize)token->len);
  char *expected = g_compute_hmac_for_data(
      G_CHECKSUM_SHA256, (const guchar *)cfg->mailgun_signing_key, strlen(cfg->mailgun_signing_key),
      (const guchar *)data->str, data->len);
  g_string_free(data, TRUE);
  char *got = g_ascii_strdown(sig->value, (gssize)sig->len);
  int ok = adapter_ct_equal(expected, strlen(expected), got, sig->len);
  g_free(expected);
  g_free(got);
  if (!ok)
    return adapter_result_fail(res, IB_ERR_AUTH, 0, "mailgun_bad_signature",
                               "the signature does not match HMAC-SHA256(signing key, "
                               "timestamp + token)");
  char *tstr = g_strndup(ts->value, ts->len);
  gint64 t = 0;
  int tok = adapter_parse_int64(tstr, &t);
  g_free(tstr);
  gint64 skew = cfg->mailgun_max_skew > 0 ? cfg->mailgun_max_skew : MAILGUN_DEFAULT_SKEW;
  gint64 now = adapter_now(req);
  if (!tok || t > now + skew || now - t > skew)
    return adapter_result_fail(
        res, IB_ERR_AUTH, 0, "mailgun_timestamp_stale",
        "the signed timestamp is not within %" G_GINT64_FORMAT " seconds of now", skew);
  res->replay_token = g_strndup(token->value, token->len);
  res->replay_timestamp = t;
  res->replay_expires = t + skew;
  return IB_OK;
}

/* The [name, value] pairs of "message-headers", or NULL. */
static json_t *
message_headers(const form *f, ib_inbound *in)
{
  const form_field *ff = form_first(f, "message-headers");
  if (!ff)
    return NULL;
  char *why = NULL;
  json_t *j = adapter_json_load(ff->value, ff->len, &why);
  if (!json_is_array(j)) {
    ib_inbound_warn(in, "provider_field_invalid", "Mailgun message-headers is not a JSON array: %s",
                    why ? why : "wrong type");
    json_decref(j);
    j = NULL;
  }
  g_free(why);
  return j;
}

/* Value of the first header NAME (case-insensitive) in message-headers. Borrowed. */
static const char *
header_value(json_t *headers, const char *name)
{
  size_t i;
  json_t *pair;
  json_array_foreach(headers, i, pair)
  {
    json_t *n = json_array_get(pair, 0), *v = json_array_get(pair, 1);
    if (json_is_string(n) && json_is_string(v) &&
        g_ascii_strcasecmp(json_string_value(n), name) == 0)
      return json_string_value(v);
  }
  return NULL;
}

/* Does message-headers hold a header named exactly NAME (so that a form field of that
 * name may be the mail's header rather than Mailgun's)? */
static int
has_header_exact(json_t *headers, const char *name)
{
  size_t i;
  json_t *pair;
  json_array_foreach(headers, i, pair)
  {
    json_t *n = json_array_get(pair, 0);
    if (json_is_string(n) && strcmp(json_string_value(n), name) == 0)
      return 1;
  }
  return 0;
}

/* Mailgun's own field NAME ("sender", "recipient"), new string or NULL. A mail header
 * of exactly that name is posted as a field too, before or after Mailgun's (spec section
 * 0.3): the occurrences that message-headers accounts for are the header's, and the
 * first one left is Mailgun's. Without message-headers, the first occurrence. */
static char *
own_field(const form *f, json_t *headers, const char *name)
{
  GPtrArray *all = form_all(f, name);
  gboolean *taken = g_new0(gboolean, all->len + 1);
  size_t i;
  json_t *pair;
  json_array_foreach(headers, i, pair)
  {
    json_t *n = json_array_get(pair, 0), *v = json_array_get(pair, 1);
    if (!json_is_string(n) || !json_is_string(v) || strcmp(json_string_value(n), name) != 0)
      continue;
    size_t vlen = json_string_length(v);
    for (guint k = 0; k < all->len; k++) {
      const form_field *ff = g_ptr_array_index(all, k);
      if (!taken[k] && ff->len == vlen && memcmp(ff->value, json_string_value(v), vlen) == 0) {
        taken[k] = TRUE;
        break;
      }
    }
  }
  char *out = NULL;
  for (guint k = 0; k < all->len && !out; k++) {
    const form_field *ff = g_ptr_array_index(all, k);
    if (!taken[k])
      out = g_strndup(ff->value, ff->len);
  }
  g_free(taken);
  g_ptr_array_unref(all);
  return out;
}

/* Mailgun's spam and authentication headers (domain setting "deliver but add
 * headers"), from message-headers (parsed) or the message itself (MIME). */
static void
read_verdicts(ib_inbound *in, json_t *headers, const char *raw, size_t raw_len)
{
  static const char *const names[] = {"X-Mailgun-Sscore", "X-Mailgun-Spf",
                                      "X-Mailgun-Dkim-Check-Result"};
  char *v[3];
  for (size_t i = 0; i < 3; i++)
    v[i] = headers ? g_strdup(header_value(headers, names[i]))
                   : adapter_raw_header(raw, raw_len, names[i]);
  in->has_spam_score = adapter_parse_double(v[0], &in->spam_score);
  in->spf = adapter_verdict(v[1]);
  in->dkim = adapter_verdict(v[2]);
  for (size_t i = 0; i < 3; i++)
    g_free(v[i]);
}

static void
add_attachments(const form *f, rebuild *rb, ib_inbound *in)
{
  json_t *cidmap = NULL;
  const form_field *map = form_first(f, "content-id-map");
  if (map) {
    char *why = NULL;
    cidmap = adapter_json_load(map->value, map->len, &why);
    if (!json_is_object(cidmap)) {
      ib_inbound_warn(in, "provider_field_invalid",
                      "Mailgun content-id-map is not a JSON object: %s", why ? why : "wrong type");
      json_decref(cidmap);
      cidmap = NULL;
    }
    g_free(why);
  }
  GPtrArray *files = adapter_numbered_fields(f, "attachment-", 1);
  for (guint i = 0; i < files->len; i++) {
    const form_field *ff = g_ptr_array_index(files, i);
    const char *cid = NULL, *key;
    json_t *v;
    json_object_foreach(cidmap, key, v)
    {
      /* Mailgun has sent empty and repeated keys; the last duplicate won in jansson. */
      if (key[0] && json_is_string(v) && strcmp(json_string_value(v), ff->name) == 0) {
        cid = key;
        break;
      }
    }
    rebuild_add_part(rb, ff->value, ff->len, ff->content_type, ff->filename, cid);
  }
  g_ptr_array_unref(files);
  json_decref(cidmap);
}

static void
rebuild_parsed(const form *f, json_t *headers, ib_inbound *in)
{
  rebuild *rb = rebuild_new();
  size_t i;
  json_t *pair;
  json_array_foreach(headers, i, pair)
  {
    json_t *n = json_array_get(pair, 0), *v = json_array_get(pair, 1);
    if (json_is_string(n) && json_is_string(v))
      rebuild_add_header(rb, json_string_value(n), json_string_value(v));
  }
  /* Without message-headers, the few headers Mailgun posts as documented fields. */
  static const struct {
    const char *field, *header;
  } fallback[] = {{"from", "From"},
                  {"To", "To"},
                  {"recipient", "To"},
                  {"subject", "Subject"},
                  {"Message-Id", "Message-Id"},
                  {"Date", "Date"}};
  for (size_t k = 0; k < G_N_ELEMENTS(fallback); k++) {
    if (rebuild_has_header(rb, fallback[k].header))
      continue;
    char *v = form_dup_value(f, fallback[k].field);
    if (v)
      rebuild_add_header(rb, fallback[k].header, v);
    g_free(v);
  }
  const form_field *text = form_first(f, "body-plain");
  if (text) {
    char *t = adapter_to_utf8(text->value, text->len, "UTF-8", "body-plain", in);
    rebuild_set_text(rb, t, strlen(t));
    g_free(t);
  }
  const form_field *html = form_first(f, "body-html");
  if (html) {
    char *h = adapter_to_utf8(html->value, html->len, "UTF-8", "body-html", in);
    rebuild_set_html(rb, h, strlen(h));
    g_free(h);
  }
  add_attachments(f, rb, in);
  in->raw = rebuild_finish(rb);
  in->rebuilt = 1;
  rebuild_free(rb);
}

ib_status
mailgun_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res)
{
  ib_status st;
  form *f = NULL;
  json_t *headers = NULL;
  ib_inbound *in = NULL;
  if (!adapter_is_post(req)) {
    res->allow = "POST";
    return adapter_result_fail(res, IB_ERR_UNSUPPORTED, 405, "method_not_allowed",
                               "Mailgun posts mail with POST");
  }
  if ((st = adapter_form(req, cfg, res, &f)) != IB_OK)
    return st;
  if ((st = verify_signature(req, cfg, f, res)) != IB_OK)
    goto done;
  in = ib_inbound_new("mailgun");
  headers = message_headers(f, in);
  const form_field *mime = form_first(f, "body-mime");
  /* A mail header named exactly "body-mime" in a parsed post must not pose as the
   * message. */
  if (mime && headers && has_header_exact(headers, "body-mime") && form_count(f, "body-mime") == 1)
    mime = NULL;
  const form_field *notify = form_first(f, "message-url");
  const form_field *atts = form_first(f, "attachments");
  if (!mime && (notify || (atts && atts->len && atts->value[0] == '['))) {
    st = adapter_result_fail(res, IB_ERR_UNSUPPORTED, 0, "mailgun_store_notify_unsupported",
                             "this is a store(notify=...) notification, which does not carry "
                             "the message; configure the Mailgun route with "
                             "forward(\"https://<host>/inbound/mailgun/mime\") instead");
    goto done;
  }
  if (!mime && !headers && !form_first(f, "body-plain") && !form_first(f, "body-html")) {
    st = adapter_result_fail(res, IB_ERR_NOT_MAIL, 0, "mailgun_no_message",
                             "the post has neither body-mime nor message-headers / body-plain "
                             "fields");
    goto done;
  }
  if (mime && mime->len == 0) {
    st = adapter_result_fail(res, IB_ERR_NOT_MAIL, 0, "mailgun_empty_message",
                             "the body-mime field is empty");
    goto done;
  }
  char *sender = own_field(f, headers, "sender");
  in->envelope_from = adapter_addr_spec(sender);
  g_free(sender);
  char *rcpt = own_field(f, headers, "recipient");
  adapter_add_recipients(in, rcpt);
  g_free(rcpt);
  if (mime) {
    in->raw = adapter_bytes(req, mime->value, mime->len);
    read_verdicts(in, NULL, mime->value, mime->len);
  } else {
    read_verdicts(in, headers, NULL, 0);
    rebuild_parsed(f, headers, in);
  }
  g_ptr_array_add(res->inbound, in);
  in = NULL;
done:
  ib_inbound_free(in);
  json_decref(headers);
  form_free(f);
  return st;
}
