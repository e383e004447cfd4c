/* sendgrid.c: SendGrid Inbound Parse (spec section 1). Raw mode posts the message in
 * the "email" field; parsed mode posts headers, decoded bodies and attachment files,
 * from which the message is rebuilt. An optional security policy signs the request
 * with ECDSA P-256 over timestamp || body. */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "adapter_impl.h"
#include "rebuild.h"

#define SIG_HEADER "X-Twilio-Email-Event-Webhook-Signature"
#define TS_HEADER "X-Twilio-Email-Event-Webhook-Timestamp"

/* Verify the security-policy signature. Returns IB_OK or the failure set in RES. */
static ib_status
verify_signature(const adapter_request *req, const adapter_config *cfg, adapter_result *res)
{
  ib_status st = IB_OK;
  guchar *der = NULL, *sig = NULL;
  EVP_PKEY *pkey = NULL;
  EVP_MD_CTX *ctx = NULL;
  const char *sig_b64 = adapter_header(req, SIG_HEADER);
  const char *ts = adapter_header(req, TS_HEADER);
  gint64 t = 0;
  if (!sig_b64 || !ts || !sig_b64[0] || !ts[0]) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sendgrid_signature_missing",
                             "the request carries no %s / %s header, but a verification key "
                             "is configured",
                             SIG_HEADER, TS_HEADER);
    goto done;
  }
  if (!adapter_parse_int64(ts, &t)) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sendgrid_bad_timestamp",
                             "the signature timestamp is not a number of seconds");
    goto done;
  }
  gsize der_len = 0, sig_len = 0;
  der = adapter_base64_decode(cfg->sendgrid_verification_key,
                              strlen(cfg->sendgrid_verification_key), &der_len);
  const unsigned char *dp = der;
  pkey = der ? d2i_PUBKEY(NULL, &dp, (long)der_len) : NULL;
  if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) {
    st = adapter_result_fail(res, IB_ERR_INTERNAL, 500, "sendgrid_key_invalid",
                             "the configured SendGrid verification key is not a base64 "
                             "DER EC public key");
    goto done;
  }
  sig = adapter_base64_decode(sig_b64, strlen(sig_b64), &sig_len);
  ctx = EVP_MD_CTX_new();
  if (!sig || sig_len == 0 || !ctx ||
      EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
      EVP_DigestVerifyUpdate(ctx, ts, strlen(ts)) != 1 ||
      EVP_DigestVerifyUpdate(ctx, req->body ? req->body : "", req->len) != 1 ||
      EVP_DigestVerifyFinal(ctx, sig, sig_len) != 1) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sendgrid_bad_signature",
                             "the ECDSA signature does not match the timestamp and body");
    goto done;
  }
  /* Checked after the signature so a forged timestamp cannot probe the window. */
  if (cfg->sendgrid_max_age > 0) {
    gint64 now = adapter_now(req);
    if (t > now + cfg->sendgrid_max_age || now - t > cfg->sendgrid_max_age) {
      st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sendgrid_signature_stale",
                               "the signature timestamp is %" G_GINT64_FORMAT
                               " s away from now (at most %" G_GINT64_FORMAT " allowed)",
                               now - t, cfg->sendgrid_max_age);
      goto done;
    }
  }
done:
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  g_free(der);
  g_free(sig);
  return st;
}

/* SendGrid's dkim field is pseudo-JSON, "{@example.org : pass}" (several entries
 * comma-separated). "pass" when any signature passed, else the first verdict. */
static char *
dkim_verdict(const char *s)
{
  char *inner = g_strdup(s);
  g_strstrip(inner);
  size_t n = strlen(inner);
  if (n >= 2 && inner[0] == '{' && inner[n - 1] == '}') {
    inner[n - 1] = '\0';
    memmove(inner, inner + 1, n - 1);
  }
  char **entries = g_strsplit(inner, ",", -1);
  char *first = NULL;
  int pass = 0;
  for (char **e = entries; *e; e++) {
    const char *colon = strrchr(*e, ':');
    char *v = adapter_verdict(colon ? colon + 1 : *e);
    if (v && strcmp(v, "pass") == 0)
      pass = 1;
    if (!first)
      first = v;
    else
      g_free(v);
  }
  g_strfreev(entries);
  g_free(inner);
  if (pass) {
    g_free(first);
    return g_strdup("pass");
  }
  return first;
}

static void
read_envelope(const form *f, ib_inbound *in)
{
  const form_field *ff = form_first(f, "envelope");
  if (!ff)
    return;
  char *why = NULL;
  json_t *env = adapter_json_load(ff->value, ff->len, &why);
  if (!json_is_object(env)) {
    ib_inbound_warn(in, "envelope_invalid", "SendGrid envelope field is not a JSON object: %s",
                    why ? why : "wrong type");
    g_free(why);
    json_decref(env);
    return;
  }
  json_t *from = json_object_get(env, "from");
  if (json_is_string(from))
    in->envelope_from = adapter_addr_spec(json_string_value(from));
  json_t *to = json_object_get(env, "to");
  if (json_is_string(to)) {
    adapter_add_recipients(in, json_string_value(to));
  } else if (json_is_array(to)) {
    size_t i;
    json_t *v;
    json_array_foreach(to, i, v)
    {
      if (json_is_string(v))
        adapter_add_recipients(in, json_string_value(v));
    }
  }
  json_decref(env);
}

/* A small JSON object field ("charsets", "attachment-info", "content-ids"), or NULL. */
static json_t *
json_field(const form *f, const char *name, ib_inbound *in)
{
  const form_field *ff = form_first(f, name);
  if (!ff)
    return NULL;
  char *why = NULL;
  json_t *j = adapter_json_load(ff->value, ff->len, &why);
  if (!json_is_object(j)) {
    ib_inbound_warn(in, "provider_field_invalid", "SendGrid %s field is not a JSON object: %s",
                    name, why ? why : "wrong type");
    json_decref(j);
    j = NULL;
  }
  g_free(why);
  return j;
}

/* The charset SendGrid names for FIELD in CHARSETS, or NULL. Borrowed. */
static const char *
charset_of(json_t *charsets, const char *field)
{
  return charsets ? adapter_json_str(charsets, field, NULL) : NULL;
}

/* A header field (to/from/cc/subject): SendGrid hands them over decoded, as UTF-8; when
 * the bytes are not UTF-8, trust the charset it names. */
static char *
header_field(const form *f, const char *name, json_t *charsets, ib_inbound *in)
{
  const form_field *ff = form_first(f, name);
  if (!ff)
    return NULL;
  if (g_utf8_validate(ff->value, (gssize)ff->len, NULL))
    return g_strndup(ff->value, ff->len);
  return adapter_to_utf8(ff->value, ff->len, charset_of(charsets, name), name, in);
}

static void
add_attachments(const form *f, rebuild *rb, ib_inbound *in)
{
  json_t *info = json_field(f, "attachment-info", in);
  json_t *cids = json_field(f, "content-ids", in);
  GPtrArray *files = adapter_numbered_fields(f, "attachment", 0);
  for (guint i = 0; i < files->len; i++) {
    const form_field *ff = g_ptr_array_index(files, i);
    json_t *meta = info ? json_object_get(info, ff->name) : NULL;
    const char *filename = adapter_json_str(meta, "name", NULL);
    if (!filename || !filename[0])
      filename = adapter_json_str(meta, "filename", NULL);
    if (!filename || !filename[0])
      filename = ff->filename;
    const char *type = adapter_json_str(meta, "type", NULL);
    if (!type)
      type = ff->content_type;
    const char *charset = adapter_json_str(meta, "charset", NULL);
    char *ctype = charset && type && !strchr(type, ';')
                      ? g_strdup_printf("%s; charset=\"%s\"", type, charset)
                      : g_strdup(type);
    const char *cid = adapter_json_str(meta, "content-id", NULL);
    if (!cid && cids) {
      const char *key;
      json_t *v;
      json_object_foreach(cids, key, v)
      {
        if (json_is_string(v) && strcmp(json_string_value(v), ff->name) == 0) {
          cid = key;
          break;
        }
      }
    }
    rebuild_add_part(rb, ff->value, ff->len, ctype, filename, cid && cid[0] ? cid : NULL);
    g_free(ctype);
  }
  g_ptr_array_unref(files);
  json_decref(info);
  json_decref(cids);
}

static int
is_trace(const char *name)
{
  return g_ascii_strcasecmp(name, "Return-Path") == 0 || g_ascii_strcasecmp(name, "Received") == 0;
}

/* The "headers" field: one header per line (a line starting with a blank continues the
 * previous one). SendGrid sorts them by name, so the original order is lost; trace
 * headers (Return-Path, Received) go first, where a message carries them, in the
 * relative order given. */
static void
add_headers(const form *f, rebuild *rb)
{
  char *headers = form_dup_value(f, "headers");
  char *valid = g_utf8_make_valid(headers, -1);
  char **lines = g_strsplit(valid, "\n", -1);
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  GPtrArray *values = g_ptr_array_new_with_free_func(g_free);
  GString *value = NULL;
  for (char **l = lines; *l; l++) {
    char *line = g_strchomp(*l); /* drops the \r of CRLF too */
    if ((line[0] == ' ' || line[0] == '\t') && value) {
      g_string_append(value, line);
      continue;
    }
    if (value)
      g_ptr_array_add(values, g_string_free(value, FALSE));
    value = NULL;
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
      continue;
    g_ptr_array_add(names, g_strstrip(g_strndup(line, (size_t)(colon - line))));
    value = g_string_new(colon + 1);
  }
  if (value)
    g_ptr_array_add(values, g_string_free(value, FALSE));
  for (int trace = 1; trace >= 0; trace--)
    for (guint i = 0; i < names->len; i++)
      if (is_trace(g_ptr_array_index(names, i)) == trace)
        rebuild_add_header(rb, g_ptr_array_index(names, i), g_ptr_array_index(values, i));
  g_ptr_array_unref(names);
  g_ptr_array_unref(values);
  g_strfreev(lines);
  g_free(valid);
  g_free(headers);
}

/* Parsed mode: the headers, the decoded From/To/Cc/Subject over them, the bodies in the
 * charsets SendGrid names, the files. */
static void
rebuild_parsed(const form *f, ib_inbound *in)
{
  rebuild *rb = rebuild_new();
  json_t *charsets = json_field(f, "charsets", in);
  add_headers(f, rb);

  static const struct {
    const char *field, *header;
  } overrides[] = {{"from", "From"}, {"to", "To"}, {"cc", "Cc"}, {"subject", "Subject"}};
  for (size_t i = 0; i < G_N_ELEMENTS(overrides); i++) {
    char *v = header_field(f, overrides[i].field, charsets, in);
    if (v)
      rebuild_set_header(rb, overrides[i].header, v);
    g_free(v);
  }
  const form_field *text = form_first(f, "text");
  if (text) {
    char *t = adapter_to_utf8(text->value, text->len, charset_of(charsets, "text"), "text", in);
    rebuild_set_text(rb, t, strlen(t));
    g_free(t);
  }
  const form_field *html = form_first(f, "html");
  if (html) {
    char *h = adapter_to_utf8(html->value, html->len, charset_of(charsets, "html"), "html", in);
    rebuild_set_html(rb, h, strlen(h));
    g_free(h);
  }
  add_attachments(f, rb, in);
  in->raw = rebuild_finish(rb);
  in->rebuilt = 1;
  json_decref(charsets);
  rebuild_free(rb);
}

ib_status
sendgrid_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res)
{
  ib_status st;
  form *f = NULL;
  if (!adapter_is_post(req)) {
    res->allow = "POST";
    return adapter_result_fail(res, IB_ERR_UNSUPPORTED, 405, "method_not_allowed",
                               "SendGrid posts mail with POST");
  }
  if (cfg->sendgrid_verification_key && (st = verify_signature(req, cfg, res)) != IB_OK)
    return st;
  if ((st = adapter_form(req, cfg, res, &f)) != IB_OK)
    return st;
  const form_field *email = form_first(f, "email");
  if (!email && !form_first(f, "headers")) {
    st = adapter_result_fail(res, IB_ERR_NOT_MAIL, 0, "sendgrid_no_message",
                             "the form has neither an \"email\" field (raw mode) nor a "
                             "\"headers\" field (parsed mode)");
    goto done;
  }
  if (email && email->len == 0) {
    st = adapter_result_fail(res, IB_ERR_NOT_MAIL, 0, "sendgrid_empty_message",
                             "the \"email\" field is empty");
    goto done;
  }
  ib_inbound *in = ib_inbound_new("sendgrid");
  read_envelope(f, in);
  char *spf = form_dup_value(f, "SPF");
  in->spf = adapter_verdict(spf);
  g_free(spf);
  char *dkim = form_dup_value(f, "dkim");
  in->dkim = dkim ? dkim_verdict(dkim) : NULL;
  g_free(dkim);
  char *score = form_dup_value(f, "spam_score");
  in->has_spam_score = adapter_parse_double(score, &in->spam_score);
  g_free(score);
  if (email)
    in->raw = adapter_bytes(req, email->value, email->len);
  else
    rebuild_parsed(f, in);
  g_ptr_array_add(res->inbound, in);
done:
  form_free(f);
  return st;
}
