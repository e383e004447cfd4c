/* adapter.c: the dispatcher, the result helpers, the status table of spec section 11
 * and the helpers every provider adapter shares (adapter_impl.h). */
#include "adapter.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "adapter_impl.h"

/* ---- results ----------------------------------------------------------------------- */

void
adapter_result_init(adapter_result *res)
{
  memset(res, 0, sizeof *res);
  res->inbound = g_ptr_array_new_with_free_func((GDestroyNotify)ib_inbound_free);
  res->http_status = 200;
}

void
adapter_result_clear(adapter_result *res)
{
  if (res->inbound)
    g_ptr_array_unref(res->inbound);
  g_free(res->message);
  g_free(res->replay_token);
  g_free(res->subscribe_url);
  g_free(res->note);
  memset(res, 0, sizeof *res);
}

ib_status
adapter_result_fail(adapter_result *res, ib_status st, unsigned http, const char *code,
                    const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_free(res->message);
  res->message = g_utf8_make_valid(msg, -1);
  g_free(msg);
  res->status = st;
  res->http_status = http ? http : adapter_http_status(res->provider, st);
  res->code = code;
  if (res->inbound)
    g_ptr_array_set_size(res->inbound, 0);
  return st;
}

json_t *
adapter_error_json(const adapter_result *res)
{
  const char *code = res->code ? res->code : ib_status_str(res->status);
  const char *msg = res->message ? res->message : ib_status_str(res->status);
  return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

/* ---- routing ----------------------------------------------------------------------- */

typedef ib_status (*adapt_fn)(const adapter_request *, const adapter_config *, adapter_result *);

static const struct {
  const char *name;
  adapt_fn fn;
} providers[] = {
    {"sendgrid", sendgrid_adapt}, {"mailgun", mailgun_adapt},   {"postmark", postmark_adapt},
    {"ses", ses_adapt},           {"mandrill", mandrill_adapt}, {"raw", raw_adapt},
};

ib_status
adapter_run(const char *provider, const adapter_request *req, const adapter_config *cfg,
            adapter_result *res)
{
  static const adapter_config no_config;
  if (!cfg)
    cfg = &no_config;
  if (!res->inbound) /* zeroed by adapter_result_clear(): ready again */
    adapter_result_init(res);
  for (size_t i = 0; provider && i < G_N_ELEMENTS(providers); i++) {
    if (strcmp(provider, providers[i].name) != 0)
      continue;
    res->provider = providers[i].name;
    ib_status st = providers[i].fn(req, cfg, res);
    if (st == IB_OK)
      res->http_status = 200;
    return st;
  }
  return adapter_result_fail(res, IB_ERR_NOT_FOUND, 404, "unknown_provider",
                             "no ingress adapter is named \"%s\"", provider ? provider : "");
}

const char *
adapter_provider_for_path(const char *path)
{
  static const char prefix[] = "/inbound/";
  if (!path || strncmp(path, prefix, sizeof prefix - 1) != 0)
    return NULL;
  const char *rest = path + sizeof prefix - 1;
  size_t n = strlen(rest);
  if (n > 0 && rest[n - 1] == '/')
    n--;
  for (size_t i = 0; i < G_N_ELEMENTS(providers); i++) {
    const char *name = providers[i].name;
    if (strlen(name) == n && strncmp(rest, name, n) == 0)
      return name;
  }
  if (n == strlen("mailgun/mime") && strncmp(rest, "mailgun/mime", n) == 0)
    return "mailgun";
  return NULL;
}

unsigned
adapter_http_status(const char *provider, ib_status st)
{
  const char *p = provider ? provider : "";
  switch (st) {
  case IB_OK:
    return 200;
  case IB_ERR_STORAGE:
  case IB_ERR_IO:
  case IB_ERR_NOMEM:
    return 503;
  case IB_ERR_INTERNAL:
  case IB_STATUS_COUNT:
    return 500;
  case IB_ERR_NOT_FOUND:
    return 404;
  case IB_ERR_LIMIT:
    return 413; /* retried everywhere: raising the cap lets the retry through */
  default:
    break;
  }
  /* A request that can never succeed as sent. Mailgun stops only on 406 and Postmark
   * only on 403; Postmark's bad basic auth stays 401 so fixed credentials can still
   * deliver the retries. SNS reads 401 as a basic-auth challenge, so a bad SNS signature
   * is 403. */
  if (strcmp(p, "mailgun") == 0)
    return 406;
  if (strcmp(p, "postmark") == 0)
    return st == IB_ERR_AUTH ? 401 : 403;
  switch (st) {
  case IB_ERR_AUTH:
    return strcmp(p, "ses") == 0 ? 403 : 401;
  case IB_ERR_FORBIDDEN:
    return 403;
  case IB_ERR_CONFLICT:
    return 409;
  case IB_ERR_UNSUPPORTED:
    return 415;
  default:
    return 400;
  }
}

/* ---- shared helpers ---------------------------------------------------------------- */

gint64
adapter_now(const adapter_request *req)
{
  return req->now ? req->now : g_get_real_time() / G_USEC_PER_SEC;
}

const char *
adapter_header(const adapter_request *req, const char *name)
{
  return req->header ? req->header(req->header_ctx, name) : NULL;
}

int
adapter_is_post(const adapter_request *req)
{
  return !req->method || g_ascii_strcasecmp(req->method, "POST") == 0;
}

int
adapter_media_type_is(const char *ct, const char *type)
{
  if (!ct)
    return 0;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  size_t n = strlen(type);
  if (g_ascii_strncasecmp(ct, type, n) != 0)
    return 0;
  ct += n;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  return *ct == '\0' || *ct == ';';
}

int
adapter_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
  if (!a || !b || alen != blen)
    return 0;
  return CRYPTO_memcmp(a, b, alen) == 0;
}

GBytes *
adapter_bytes(const adapter_request *req, const char *data, size_t len)
{
  uintptr_t d = (uintptr_t)data, b = (uintptr_t)req->body;
  if (req->body_bytes && req->body && d >= b && len <= req->len && d - b <= req->len - len) {
    gsize blen = 0;
    const char *base = g_bytes_get_data(req->body_bytes, &blen);
    if (base == req->body && blen == req->len)
      return g_bytes_new_from_bytes(req->body_bytes, (gsize)(d - b), len);
  }
  return g_bytes_new(data, len);
}

ib_status
adapter_form(const adapter_request *req, const adapter_config *cfg, adapter_result *res,
             form **form_out)
{
  char *why = NULL;
  ib_status st =
      form_parse(req->content_type, req->body, req->len, cfg->form_limits, form_out, &why);
  if (st == IB_ERR_UNSUPPORTED)
    adapter_result_fail(res, st, 0, "unsupported_media_type", "%s", why);
  else if (st == IB_ERR_LIMIT)
    adapter_result_fail(res, st, 0, "form_limit", "%s", why);
  else if (st != IB_OK)
    adapter_result_fail(res, st, 0, "bad_form", "malformed form body: %s", why);
  g_free(why);
  return st;
}

#define JSON_DEPTH_DEFAULT 64

/* The deepest nesting of arrays and objects in BUF, counted outside strings, stopping
 * once past LIMIT. */
static size_t
json_depth(const char *buf, size_t len, size_t limit)
{
  size_t depth = 0, max = 0;
  int in_string = 0;
  for (size_t i = 0; i < len && max <= limit; i++) {
    char c = buf[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '[' || c == '{') {
      max = MAX(max, ++depth);
    } else if ((c == ']' || c == '}') && depth) {
      depth--;
    }
  }
  return max;
}

json_t *
adapter_json_load_depth(const char *buf, size_t len, size_t max_depth, char **why_out)
{
  if (!max_depth)
    max_depth = JSON_DEPTH_DEFAULT;
  if (buf && json_depth(buf, len, max_depth) > max_depth) {
    *why_out = g_strdup_printf("JSON nested deeper than %zu levels", max_depth);
    return NULL;
  }
  return adapter_json_load(buf, len, why_out);
}

json_t *
adapter_json_load(const char *buf, size_t len, char **why_out)
{
  if (buf && json_depth(buf, len, JSON_DEPTH_DEFAULT) > JSON_DEPTH_DEFAULT) {
    *why_out = g_strdup_printf("JSON nested deeper than %d levels", JSON_DEPTH_DEFAULT);
    return NULL;
  }
  json_error_t err;
  json_t *j = json_loadb(buf ? buf : "", len, JSON_ALLOW_NUL, &err);
  if (!j)
    *why_out = g_strdup_printf("%s (line %d, column %d)", err.text, err.line, err.column);
  return j;
}

const char *
adapter_json_str(const json_t *obj, const char *key, size_t *len_out)
{
  json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  if (!json_is_string(v)) {
    if (len_out)
      *len_out = 0;
    return NULL;
  }
  if (len_out)
    *len_out = json_string_length(v);
  return json_string_value(v);
}

char *
adapter_addr_spec(const char *s)
{
  if (!s)
    return NULL;
  const char *lt = strrchr(s, '<');
  const char *gt = lt ? strchr(lt, '>') : NULL;
  char *out = lt && gt ? g_strndup(lt + 1, (size_t)(gt - lt - 1)) : g_strdup(s);
  g_strstrip(out);
  if (out[0] == '\0' && !(lt && gt)) {
    g_free(out);
    return NULL;
  }
  return out;
}

void
adapter_add_recipients(ib_inbound *in, const char *list)
{
  if (!list)
    return;
  char **parts = g_strsplit(list, ",", -1);
  for (char **p = parts; *p; p++) {
    char *a = adapter_addr_spec(*p);
    if (a && a[0])
      g_ptr_array_add(in->envelope_to, a);
    else
      g_free(a);
  }
  g_strfreev(parts);
}

char *
adapter_verdict(const char *s)
{
  if (!s)
    return NULL;
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strcspn(s, " \t\r\n;(");
  if (n == 0)
    return NULL;
  char *v = g_ascii_strdown(s, (gssize)n);
  char *valid = g_utf8_make_valid(v, -1);
  g_free(v);
  return valid;
}

int
adapter_parse_double(const char *s, double *out)
{
  if (!s)
    return 0;
  char *end = NULL;
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s == '\0')
    return 0;
  double d = g_ascii_strtod(s, &end);
  while (end && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
    end++;
  if (!end || *end != '\0' || end == s || d != d /* NaN */)
    return 0;
  *out = d;
  return 1;
}

int
adapter_parse_int64(const char *s, gint64 *out)
{
  if (!s)
    return 0;
  char *t = g_strstrip(g_strdup(s));
  gint64 v = 0;
  gboolean ok = g_ascii_string_to_signed(t, 10, G_MININT64, G_MAXINT64, &v, NULL);
  g_free(t);
  if (ok)
    *out = v;
  return ok ? 1 : 0;
}

char *
adapter_raw_header(const char *raw, size_t len, const char *name)
{
  size_t nlen = strlen(name);
  size_t p = 0;
  GString *val = NULL;
  while (p < len) {
    const char *nl = memchr(raw + p, '\n', len - p);
    size_t eol = nl ? (size_t)(nl - raw) : len;
    size_t lend = eol > p && raw[eol - 1] == '\r' ? eol - 1 : eol;
    const char *line = raw + p;
    size_t llen = lend - p;
    p = eol + 1;
    if (llen == 0)
      break; /* end of the header block */
    if (line[0] == ' ' || line[0] == '\t') {
      if (val) {
        g_string_append_c(val, ' ');
        g_string_append_len(val, line, (gssize)llen);
      }
      continue;
    }
    if (val)
      break; /* the wanted header ended */
    if (llen > nlen && g_ascii_strncasecmp(line, name, nlen) == 0) {
      size_t i = nlen;
      while (i < llen && (line[i] == ' ' || line[i] == '\t'))
        i++;
      if (i < llen && line[i] == ':')
        val = g_string_new_len(line + i + 1, (gssize)(llen - i - 1));
    }
  }
  if (!val)
    return NULL;
  char *s = g_string_free(val, FALSE);
  return g_strstrip(s);
}

guchar *
adapter_base64_decode(const char *s, size_t len, gsize *out_len)
{
  GString *clean = g_string_sized_new(len + 4);
  size_t pad = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
      continue;
    if (c == '=') {
      pad++;
      continue;
    }
    if (pad || !(g_ascii_isalnum(c) || c == '+' || c == '/')) {
      g_string_free(clean, TRUE);
      return NULL; /* a character outside the alphabet, or data after padding */
    }
    g_string_append_c(clean, c);
  }
  if (pad > 2 || clean->len % 4 == 1) {
    g_string_free(clean, TRUE);
    return NULL;
  }
  while (clean->len % 4)
    g_string_append_c(clean, '=');
  guchar *out = g_base64_decode(clean->str, out_len);
  g_string_free(clean, TRUE);
  return out;
}

char *
adapter_to_utf8(const char *data, size_t len, const char *charset, const char *what, ib_inbound *in)
{
  int is_utf8 = !charset || !charset[0] || g_ascii_strcasecmp(charset, "utf-8") == 0 ||
                g_ascii_strcasecmp(charset, "utf8") == 0;
  if (!is_utf8) {
    gsize out_len = 0;
    char *conv = g_convert(data, (gssize)len, "UTF-8", charset, NULL, &out_len, NULL);
    if (conv && g_utf8_validate(conv, (gssize)out_len, NULL))
      return conv;
    g_free(conv);
  } else if (g_utf8_validate(data, (gssize)len, NULL)) {
    return g_strndup(data, len);
  }
  ib_inbound_warn(in, "charset_fallback",
                  "%s is not valid %s; decoded as UTF-8 with replacement characters", what,
                  charset && charset[0] ? charset : "UTF-8");
  return g_utf8_make_valid(data, (gssize)len);
}

unsigned
adapter_field_number(const char *name, const char *prefix)
{
  size_t n = strlen(prefix);
  guint64 v = 0;
  if (strncmp(name, prefix, n) != 0 ||
      !g_ascii_string_to_unsigned(name + n, 10, 1, 100000, &v, NULL))
    return 0;
  return (unsigned)v;
}

static gint
by_field_number(gconstpointer a, gconstpointer b, gpointer prefix)
{
  const form_field *fa = *(const form_field *const *)a, *fb = *(const form_field *const *)b;
  unsigned na = adapter_field_number(fa->name, prefix);
  unsigned nb = adapter_field_number(fb->name, prefix);
  return na < nb ? -1 : na > nb;
}

GPtrArray *
adapter_numbered_fields(const form *f, const char *prefix, int files_only)
{
  GPtrArray *out = g_ptr_array_new();
  for (size_t i = 0; i < form_size(f); i++) {
    const form_field *ff = form_at(f, i);
    if (adapter_field_number(ff->name, prefix) && (!files_only || ff->filename || ff->content_type))
      g_ptr_array_add(out, (gpointer)ff);
  }
  g_ptr_array_sort_with_data(out, by_field_number, (gpointer)prefix);
  return out;
}
