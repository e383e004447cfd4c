/* postmark.c: Postmark's inbound webhook (spec section 3): one JSON document per
 * message. RawEmail is the message when the server setting includes it; otherwise the
 * message is rebuilt from Headers, the lifted-out From/To/Cc/Subject/Date/Reply-To, the
 * bodies and the base64 attachments. Postmark signs nothing (basic auth in the server). */
#include <string.h>

#include "adapter.h"
#include "adapter_impl.h"
#include "rebuild.h"

/* "Name" <email> with the name quoted (escapes for " and \), or the bare email. */
static void
append_mailbox(GString *out, const char *name, const char *email)
{
  if (out->len)
    g_string_append(out, ", ");
  if (!name || !name[0]) {
    g_string_append(out, email);
    return;
  }
  g_string_append_c(out, '"');
  for (const char *p = name; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_c(out, '\\');
    g_string_append_c(out, *p);
  }
  g_string_append_printf(out, "\" <%s>", email);
}

/* An address header from the structured FULL array ([{Email, Name}]) when it has
 * entries, else from the formatted string PLAIN. New string or NULL when both are
 * empty. */
static char *
address_header(json_t *doc, const char *full, const char *plain)
{
  GString *out = g_string_new(NULL);
  json_t *arr = json_object_get(doc, full);
  if (json_is_object(arr)) { /* FromFull is a single object */
    const char *email = adapter_json_str(arr, "Email", NULL);
    if (email && email[0])
      append_mailbox(out, adapter_json_str(arr, "Name", NULL), email);
  } else {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
      const char *email = adapter_json_str(v, "Email", NULL);
      if (email && email[0])
        append_mailbox(out, adapter_json_str(v, "Name", NULL), email);
    }
  }
  if (out->len == 0) {
    const char *s = adapter_json_str(doc, plain, NULL);
    if (s)
      g_string_append(out, s);
  }
  if (out->len == 0) {
    g_string_free(out, TRUE);
    return NULL;
  }
  return g_string_free(out, FALSE);
}

static void
add_attachments(json_t *doc, rebuild *rb, ib_inbound *in)
{
  size_t i;
  json_t *att;
  json_array_foreach(json_object_get(doc, "Attachments"), i, att)
  {
    size_t blen = 0;
    const char *b64 = adapter_json_str(att, "Content", &blen);
    if (!b64) /* Postmark's "send test" payloads */
      b64 = adapter_json_str(att, "Data", &blen);
    const char *name = adapter_json_str(att, "Name", NULL);
    gsize len = 0;
    guchar *data = b64 ? adapter_base64_decode(b64, blen, &len) : NULL;
    if (!data) {
      ib_inbound_warn(in, "attachment_dropped",
                      "Postmark attachment %zu (%s) has no valid base64 Content", i + 1,
                      name ? name : "unnamed");
      continue;
    }
    json_t *declared = json_object_get(att, "ContentLength");
    if (json_is_integer(declared) && (gsize)json_integer_value(declared) != len)
      ib_inbound_warn(in, "attachment_length_mismatch",
                      "Postmark attachment %zu declares %" JSON_INTEGER_FORMAT
                      " bytes but holds %zu",
                      i + 1, json_integer_value(declared), (size_t)len);
    const char *cid = adapter_json_str(att, "ContentID", NULL);
    rebuild_add_part(rb, (const char *)data, len, adapter_json_str(att, "ContentType", NULL), name,
                     cid && cid[0] ? cid : NULL);
    g_free(data);
  }
}

static void
rebuild_message(json_t *doc, ib_inbound *in)
{
  rebuild *rb = rebuild_new();
  size_t i;
  json_t *h;
  json_array_foreach(json_object_get(doc, "Headers"), i, h)
  {
    const char *name = adapter_json_str(h, "Name", NULL);
    const char *value = adapter_json_str(h, "Value", NULL);
    if (name && value)
      rebuild_add_header(rb, name, value);
  }
  /* Postmark lifts these out of Headers; put them back. */
  const char *date = adapter_json_str(doc, "Date", NULL);
  if (date && date[0])
    rebuild_set_header(rb, "Date", date);
  char *from = address_header(doc, "FromFull", "From");
  if (from && !json_is_object(json_object_get(doc, "FromFull"))) {
    /* Only the flat fields: From holds the address, FromName the name. */
    const char *fname = adapter_json_str(doc, "FromName", NULL);
    if (fname && fname[0] && !strchr(from, '<')) {
      GString *g = g_string_new(NULL);
      append_mailbox(g, fname, from);
      g_free(from);
      from = g_string_free(g, FALSE);
    }
  }
  static const struct {
    const char *header, *full, *plain;
  } addrs[] = {{"To", "ToFull", "To"}, {"Cc", "CcFull", "Cc"}};
  if (from)
    rebuild_set_header(rb, "From", from);
  g_free(from);
  const char *reply_to = adapter_json_str(doc, "ReplyTo", NULL);
  if (reply_to && reply_to[0])
    rebuild_set_header(rb, "Reply-To", reply_to);
  for (size_t k = 0; k < G_N_ELEMENTS(addrs); k++) {
    char *v = address_header(doc, addrs[k].full, addrs[k].plain);
    if (v)
      rebuild_set_header(rb, addrs[k].header, v);
    g_free(v);
  }
  const char *subject = adapter_json_str(doc, "Subject", NULL);
  if (subject)
    rebuild_set_header(rb, "Subject", subject);
  size_t len = 0;
  const char *text = adapter_json_str(doc, "TextBody", &len);
  if (text && len)
    rebuild_set_text(rb, text, len);
  const char *html = adapter_json_str(doc, "HtmlBody", &len);
  if (html && len)
    rebuild_set_html(rb, html, len);
  add_attachments(doc, rb, in);
  in->raw = rebuild_finish(rb);
  in->rebuilt = 1;
  rebuild_free(rb);
}

/* Return-Path (Postmark prepends it as Headers[0]), the spam score and SPF verdict
 * SpamAssassin added. */
static void
read_headers(json_t *doc, ib_inbound *in)
{
  size_t i;
  json_t *h;
  json_array_foreach(json_object_get(doc, "Headers"), i, h)
  {
    const char *name = adapter_json_str(h, "Name", NULL);
    const char *value = adapter_json_str(h, "Value", NULL);
    if (!name || !value)
      continue;
    if (!in->envelope_from && g_ascii_strcasecmp(name, "Return-Path") == 0)
      in->envelope_from = adapter_addr_spec(value);
    else if (!in->has_spam_score && g_ascii_strcasecmp(name, "X-Spam-Score") == 0)
      in->has_spam_score = adapter_parse_double(value, &in->spam_score);
    else if (!in->spf && g_ascii_strcasecmp(name, "Received-SPF") == 0)
      in->spf = adapter_verdict(value);
  }
}

ib_status
postmark_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res)
{
  ib_status st = IB_OK;
  json_t *doc = NULL;
  char *why = NULL;
  if (!adapter_is_post(req)) {
    res->allow = "POST";
    return adapter_result_fail(res, IB_ERR_UNSUPPORTED, 405, "method_not_allowed",
                               "Postmark posts mail with POST");
  }
  const char *ct = req->content_type;
  if (ct && !adapter_media_type_is(ct, "application/json")) {
    return adapter_result_fail(res, IB_ERR_UNSUPPORTED, 0, "unsupported_media_type",
                               "Postmark posts application/json, not %s", ct);
  }
  doc = adapter_json_load_depth(req->body, req->len, cfg->max_json_depth, &why);
  if (!json_is_object(doc)) {
    st = adapter_result_fail(res, IB_ERR_INVALID, 0, "postmark_bad_json",
                             "the body is not a JSON object: %s", why ? why : "wrong type");
    goto done;
  }
  size_t raw_len = 0;
  const char *raw = adapter_json_str(doc, "RawEmail", &raw_len);
  if (!raw_len && !json_object_get(doc, "Headers") && !json_object_get(doc, "TextBody") &&
      !json_object_get(doc, "HtmlBody")) {
    st = adapter_result_fail(res, IB_ERR_NOT_MAIL, 0, "postmark_no_message",
                             "the JSON has neither RawEmail nor Headers / TextBody / HtmlBody");
    goto done;
  }
  ib_inbound *in = ib_inbound_new("postmark");
  const char *id = adapter_json_str(doc, "MessageID", NULL);
  in->event_id = id && id[0] ? g_utf8_make_valid(id, -1) : NULL;
  read_headers(doc, in);
  adapter_add_recipients(in, adapter_json_str(doc, "OriginalRecipient", NULL));
  if (raw_len)
    in->raw = g_bytes_new(raw, raw_len);
  else
    rebuild_message(doc, in);
  g_ptr_array_add(res->inbound, in);
done:
  g_free(why);
  json_decref(doc);
  return st;
}
