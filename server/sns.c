#include "sns.h"

#include <curl/curl.h>
#include <glib.h>
#include <string.h>

#include "log.h"

#define MAX_CERT_BYTES (64 * 1024)
#define CACHE_MAX 32

struct ib_sns {
  char *pinned; /* PEM of --sns-cert-file, or NULL */
  GMutex lock;
  GHashTable *cache; /* url -> PEM */
  GCond idle;
  int visits;  /* subscription visits in progress */
  int closing; /* sns_free() ran while visits were left: the last one frees */
};

ib_status
sns_new(const char *pinned_file, ib_sns **sns_out, char **error_out)
{
  ib_sns *s = g_new0(ib_sns, 1);
  g_mutex_init(&s->lock);
  g_cond_init(&s->idle);
  s->cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  if (pinned_file && *pinned_file) {
    GError *err = NULL;
    if (!g_file_get_contents(pinned_file, &s->pinned, NULL, &err)) {
      *error_out = g_strdup_printf("cannot read --sns-cert-file %s: %s", pinned_file, err->message);
      g_error_free(err);
      sns_free(s);
      return IB_ERR_IO;
    }
  }
  *sns_out = s;
  return IB_OK;
}

static void
sns_destroy(ib_sns *s)
{
  g_hash_table_destroy(s->cache);
  g_free(s->pinned);
  g_mutex_clear(&s->lock);
  g_cond_clear(&s->idle);
  g_free(s);
}

void
sns_free(ib_sns *s)
{
  if (!s)
    return;
  g_mutex_lock(&s->lock);
  int busy = s->visits > 0;
  s->closing = busy;
  g_mutex_unlock(&s->lock);
  if (!busy)
    sns_destroy(s);
}

static size_t
collect(char *data, size_t size, size_t n, void *arg)
{
  GString *buf = arg;
  if (buf->len + size * n > MAX_CERT_BYTES)
    return 0; /* too big for a certificate: abort the transfer */
  g_string_append_len(buf, data, (gssize)(size * n));
  return size * n;
}

/* GET URL with TLS verified; the body (capped) into *BODY_OUT. Returns the HTTP status or
 * 0 on a transport error (*ERROR_OUT). */
static long
http_get(const char *url, char **body_out, char **error_out)
{
  CURL *c = curl_easy_init();
  GString *buf = g_string_new(NULL);
  long code = 0;
  if (!c) {
    *error_out = g_strdup("cannot start libcurl");
    g_string_free(buf, TRUE);
    return 0;
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, buf);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "inboxd");
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (body_out)
      *body_out = g_strdup(buf->str);
  } else {
    *error_out = g_strdup(curl_easy_strerror(rc));
  }
  curl_easy_cleanup(c);
  g_string_free(buf, TRUE);
  return code;
}

char *
sns_cert(void *arg, const char *url, char **error_out)
{
  ib_sns *s = arg;
  if (s->pinned)
    return g_strdup(s->pinned);
  g_mutex_lock(&s->lock);
  char *pem = g_strdup(g_hash_table_lookup(s->cache, url));
  g_mutex_unlock(&s->lock);
  if (pem)
    return pem;
  char *err = NULL;
  long code = http_get(url, &pem, &err);
  if (code != 200 || !pem || !strstr(pem, "-----BEGIN CERTIFICATE-----")) {
    *error_out = code ? g_strdup_printf("SigningCertURL answered %ld", code)
                      : g_strdup_printf("cannot fetch SigningCertURL: %s", err ? err : "?");
    g_free(err);
    g_free(pem);
    return NULL;
  }
  g_mutex_lock(&s->lock);
  if (g_hash_table_size(s->cache) >= CACHE_MAX)
    g_hash_table_remove_all(s->cache);
  g_hash_table_replace(s->cache, g_strdup(url), g_strdup(pem));
  g_mutex_unlock(&s->lock);
  return pem;
}

typedef struct visit {
  ib_sns *sns;
  char *url;
} visit;

static gpointer
visit_main(gpointer p)
{
  visit *v = p;
  char *err = NULL;
  long code = http_get(v->url, NULL, &err);
  if (code >= 200 && code < 300)
    log_info("sns subscription confirmed (%ld)", code);
  else
    log_error("cannot confirm the sns subscription: %s", err ? err
                                                         : code
                                                             ? "the SubscribeURL did not answer 2xx"
                                                             : "?");
  g_free(err);
  ib_sns *s = v->sns;
  g_mutex_lock(&s->lock);
  s->visits--;
  int last = s->closing && s->visits == 0;
  g_cond_broadcast(&s->idle);
  g_mutex_unlock(&s->lock);
  if (last)
    sns_destroy(s);
  g_free(v->url);
  g_free(v);
  return NULL;
}

void
sns_confirm_subscription(ib_sns *s, const char *url)
{
  visit *v = g_new0(visit, 1);
  v->sns = s;
  const char *base = g_getenv("INBOXD_TEST_SNS_BASE");
  const char *path = strstr(url, "://") ? strchr(strstr(url, "://") + 3, '/') : NULL;
  v->url = base && path ? g_strconcat(base, path, NULL) : g_strdup(url);
  g_mutex_lock(&s->lock);
  s->visits++;
  g_mutex_unlock(&s->lock);
  GThread *t = g_thread_new("sns-confirm", visit_main, v);
  g_thread_unref(t);
}

void
sns_drain(ib_sns *s, int timeout_ms)
{
  gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  g_mutex_lock(&s->lock);
  while (s->visits > 0)
    if (!g_cond_wait_until(&s->idle, &s->lock, end))
      break;
  g_mutex_unlock(&s->lock);
}
