#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hash.h"
#include "jsonout.h"
#include "log.h"
#include "server.h"
#include "spool.h"

#define MAX_PARAMS 4
#define MAX_KEYS 2
#define KEY_MAX 64                 /* longest {key} segment */
#define SPOOL_MEM_LIMIT (1u << 20) /* bodies past 1 MiB go to a temporary file */
#define STOP_WAIT_MS 10000         /* http_stop(): the longest wait for work under way */

typedef enum { REQ_NEW, REQ_BODY, REQ_HANDLING, REQ_DEFERRED, REQ_DONE } req_state;

struct ib_request {
  ib_server *srv;
  struct MHD_Connection *conn;
  char *method;
  char *path;
  const route *route;
  int64_t params[MAX_PARAMS];
  int nparams;
  char keys[MAX_KEYS][KEY_MAX + 1];
  ib_spool *spool;
  GBytes *body;
  int read_only;
  req_state state;
  int64_t started_ms; /* clock_mono_ms() of the first call */
  unsigned status;
  struct MHD_Response *response;
  void *data;
  GDestroyNotify data_free;
  int suspended;        /* atomic: counted in srv->suspended until request_resume() */
  int handling;         /* counted in srv->handling until on_completed() */
  route_handler finish; /* request_defer_finish() */
  route_handler work;   /* request_offload(): runs on the offload pool */
  GPtrArray *headers;   /* request_offload(): name, value, ... (MHD's strings) */
};

/* ---- Request accessors ------------------------------------------------------------- */

const char *
request_method(ib_request *r)
{
  return r->method;
}

const char *
request_path(ib_request *r)
{
  return r->path;
}

const char *
request_header(ib_request *r, const char *name)
{
  if (!r->headers)
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
  /* Offloaded: the copy, which another thread may read while the connection waits. */
  for (guint i = 0; i + 1 < r->headers->len; i += 2)
    if (g_ascii_strcasecmp(g_ptr_array_index(r->headers, i), name) == 0)
      return g_ptr_array_index(r->headers, i + 1);
  return NULL;
}

const char *
request_query(ib_request *r, const char *name)
{
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int64_t
request_param(ib_request *r, int i)
{
  return i >= 0 && i < r->nparams ? r->params[i] : 0;
}

const char *
request_key(ib_request *r, int i)
{
  return i >= 0 && i < MAX_KEYS && r->keys[i][0] ? r->keys[i] : NULL;
}

GBytes *
request_body(ib_request *r)
{
  return r->body;
}

json_t *
request_json_body(ib_request *r)
{
  const char *ct = request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!ct || g_ascii_strncasecmp(ct, "application/json", 16) != 0) {
    request_reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                        "the body must be application/json");
    return NULL;
  }
  gsize len = 0;
  const char *data = r->body ? g_bytes_get_data(r->body, &len) : NULL;
  json_error_t err;
  json_t *doc = data ? json_loadb(data, len, JSON_REJECT_DUPLICATES, &err) : NULL;
  if (!doc) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_json", "the body is not valid JSON: %s",
                        data ? err.text : "empty body");
    return NULL;
  }
  if (!json_is_object(doc)) {
    json_decref(doc);
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_json", "the body must be a JSON object");
    return NULL;
  }
  return doc;
}

ib_server *
request_server(ib_request *r)
{
  return r->srv;
}

int
request_read_only(ib_request *r)
{
  return r->read_only;
}

void
request_set_data(ib_request *r, void *data, GDestroyNotify free_fn)
{
  if (r->data && r->data_free)
    r->data_free(r->data);
  r->data = data;
  r->data_free = free_fn;
}

void *
request_data(ib_request *r)
{
  return r->data;
}

/* ---- Replies ------------------------------------------------------------------------- */

static void
add_default_headers(struct MHD_Response *resp)
{
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(resp, "X-Frame-Options", "DENY");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "Content-Security-Policy",
                          "default-src 'none'; frame-ancestors 'none'; sandbox");
}

/* The request's Origin when --cors-origin allows it ("*" allows any), else NULL. */
static const char *
cors_origin(ib_request *r)
{
  GPtrArray *allowed = r->srv->cfg->cors_origins;
  const char *origin = request_header(r, "Origin");
  if (!origin || !allowed || allowed->len == 0)
    return NULL;
  for (guint i = 0; i < allowed->len; i++) {
    const char *a = g_ptr_array_index(allowed, i);
    if (strcmp(a, "*") == 0 || g_ascii_strcasecmp(a, origin) == 0)
      return origin;
  }
  return NULL;
}

static void
add_cors_headers(ib_request *r, struct MHD_Response *resp)
{
  const char *origin = cors_origin(r);
  if (!origin)
    return;
  MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
  MHD_add_response_header(resp, "Vary", "Origin");
  MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                          "ETag, Retry-After, Content-Disposition, X-Content-SHA256");
}

static void
set_response(ib_request *r, unsigned status, struct MHD_Response *resp)
{
  if (r->response) {
    /* A second reply is a bug of ours; keep the first. */
    log_error("request %s %s replied twice", r->method, r->path);
    MHD_destroy_response(resp);
    return;
  }
  add_default_headers(resp);
  add_cors_headers(r, resp);
  r->status = status;
  r->response = resp;
}

void
request_reply_bytes(ib_request *r, unsigned status, const char *content_type, const void *data,
                    size_t len)
{
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  set_response(r, status, resp);
}

/* If-None-Match: "*" or a comma list of (possibly weak) entity tags. */
static int
etag_matches(const char *header, const char *etag)
{
  if (!header)
    return 0;
  char **parts = g_strsplit(header, ",", 64);
  int match = 0;
  for (char **p = parts; *p && !match; p++) {
    char *t = g_strstrip(*p);
    if (g_str_has_prefix(t, "W/"))
      t += 2;
    match = strcmp(t, "*") == 0 || strcmp(t, etag) == 0;
  }
  g_strfreev(parts);
  return match;
}

/* Reply STATUS with the JSON TEXT (LEN bytes): taken over when OWNED (malloc'd), else
 * copied. A 200 to GET/HEAD gets an ETag (ETAG when given, else the hash of TEXT) and
 * becomes a 304 when If-None-Match has it. */
static void
reply_json_text(ib_request *r, unsigned status, char *text, size_t len, int owned,
                const char *etag_given)
{
  char etag[40] = "";
  if (status == MHD_HTTP_OK && (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)) {
    if (etag_given) {
      g_strlcpy(etag, etag_given, sizeof etag);
    } else {
      char sum[65];
      hash_sha256_hex(text, len, sum);
      g_snprintf(etag, sizeof etag, "\"%.32s\"", sum);
    }
    if (etag_matches(request_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
      if (owned)
        free(text);
      struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
      MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
      set_response(r, MHD_HTTP_NOT_MODIFIED, resp);
      return;
    }
  }
  /* jansson allocates with malloc: MHD frees it with free(). */
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      len, text, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (etag[0])
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
  set_response(r, status, resp);
}

void
request_reply_json(ib_request *r, unsigned status, json_t *doc)
{
  size_t len = 0;
  char *text = jsonout_dumps(doc, &len);
  json_decref(doc);
  if (!text) {
    text = strdup("{\"error\":{\"code\":\"internal_error\",\"message\":\"cannot encode the "
                  "response\"}}");
    len = text ? strlen(text) : 0;
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
  reply_json_text(r, status, text, len, 1, NULL);
}

void
request_reply_json_shared(ib_request *r, const char *text, size_t len, const char *etag)
{
  reply_json_text(r, MHD_HTTP_OK, (char *)text, len, 0, etag);
}

static void
reply_error_v(ib_request *r, unsigned status, const char *code, const char *fmt, va_list ap)
{
  char *msg = g_strdup_vprintf(fmt, ap);
  char *valid = g_utf8_make_valid(msg, -1);
  request_reply_json(r, status,
                     json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", valid));
  g_free(valid);
  g_free(msg);
}

void
request_reply_error(ib_request *r, unsigned status, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  reply_error_v(r, status, code, fmt, ap);
  va_end(ap);
}

static unsigned
http_status_for(ib_status st)
{
  switch (st) {
  case IB_OK:
    return MHD_HTTP_OK;
  case IB_ERR_INVALID:
  case IB_ERR_NOT_MAIL:
    return MHD_HTTP_BAD_REQUEST;
  case IB_ERR_LIMIT:
    return MHD_HTTP_CONTENT_TOO_LARGE;
  case IB_ERR_AUTH:
    return MHD_HTTP_UNAUTHORIZED;
  case IB_ERR_FORBIDDEN:
    return MHD_HTTP_FORBIDDEN;
  case IB_ERR_NOT_FOUND:
    return MHD_HTTP_NOT_FOUND;
  case IB_ERR_CONFLICT:
    return MHD_HTTP_CONFLICT;
  case IB_ERR_UNSUPPORTED:
    return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
  case IB_ERR_STORAGE:
  case IB_ERR_IO:
  case IB_ERR_NOMEM:
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  default:
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
}

void
request_reply_status(ib_request *r, ib_status st, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  unsigned status = http_status_for(st);
  reply_error_v(r, status, ib_status_str(st), fmt, ap);
  va_end(ap);
  if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
    request_add_header(r, "Retry-After", "5");
}

typedef struct stream_ctx {
  request_reader read;
  void *ctx;
  GDestroyNotify free_fn;
} stream_ctx;

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  stream_ctx *s = cls;
  ssize_t n = s->read(s->ctx, pos, buf, max);
  if (n == REQUEST_STREAM_PAUSE)
    return 0; /* the reader suspended the connection: MHD calls again after resume */
  if (n < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  if (n == 0)
    return MHD_CONTENT_READER_END_OF_STREAM;
  return n;
}

static void
stream_free(void *cls)
{
  stream_ctx *s = cls;
  if (s->free_fn)
    s->free_fn(s->ctx);
  g_free(s);
}

void
request_reply_stream(ib_request *r, unsigned status, const char *content_type, uint64_t size,
                     request_reader read, void *ctx, GDestroyNotify free_fn)
{
  stream_ctx *s = g_new0(stream_ctx, 1);
  s->read = read;
  s->ctx = ctx;
  s->free_fn = free_fn;
  struct MHD_Response *resp =
      MHD_create_response_from_callback(size == REQUEST_SIZE_UNKNOWN ? MHD_SIZE_UNKNOWN : size,
                                        64 * 1024, stream_read, s, stream_free);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  set_response(r, status, resp);
}

void
request_add_header(ib_request *r, const char *name, const char *value)
{
  if (r->response)
    MHD_add_response_header(r->response, name, value);
}

void
request_set_header(ib_request *r, const char *name, const char *value)
{
  if (!r->response)
    return;
  const char *old = MHD_get_response_header(r->response, name);
  if (old) {
    char *copy = g_strdup(old);
    MHD_del_response_header(r->response, name, copy);
    g_free(copy);
  }
  MHD_add_response_header(r->response, name, value);
}

/* ---- Deferring ------------------------------------------------------------------------ */

/* Count R as suspended until request_resume(): http_stop() stops the daemon only when none
 * is, since libmicrohttpd aborts the process when stopped with a connection suspended. */
static void
suspend(ib_request *r)
{
  if (g_atomic_int_compare_and_exchange(&r->suspended, 0, 1))
    g_atomic_int_inc(&r->srv->suspended);
  MHD_suspend_connection(r->conn);
}

void
request_defer(ib_request *r)
{
  r->state = REQ_DEFERRED;
  suspend(r);
}

void
request_pause(ib_request *r)
{
  suspend(r);
}

void
request_defer_finish(ib_request *r, route_handler finish)
{
  r->finish = finish;
  request_defer(r);
}

void
request_resume(ib_request *r)
{
  /* R may be finished and freed on its HTTP thread as soon as it is resumed; the count
   * drops only after that, so http_stop() never stops the daemon in between. */
  ib_server *srv = r->srv;
  int counted = g_atomic_int_compare_and_exchange(&r->suspended, 1, 0);
  MHD_resume_connection(r->conn);
  if (counted)
    g_atomic_int_dec_and_test(&srv->suspended);
}

/* 503 while stopping, with Retry-After: a provider sends the request again. */
static void
reply_shutting_down(ib_request *r)
{
  request_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down",
                      "inboxd is stopping; retry shortly");
  request_add_header(r, "Retry-After", "5");
  request_add_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
}

static enum MHD_Result
copy_header(void *cls, enum MHD_ValueKind kind, const char *name, const char *value)
{
  (void)kind;
  g_ptr_array_add(cls, (char *)name);
  g_ptr_array_add(cls, (char *)(value ? value : ""));
  return MHD_YES;
}

void
request_offload(ib_request *r, route_handler work, route_handler finish)
{
  /* MHD's header strings live as long as the request; only the walk of its list must
   * happen here, on the connection's own thread. */
  r->headers = g_ptr_array_new();
  MHD_get_connection_values(r->conn, MHD_HEADER_KIND, copy_header, r->headers);
  r->work = work;
  ib_server *srv = r->srv;
  /* Under the lock that http_stop() takes to close the pool: a push either happens
   * before the pool is freed, or sees it closed and is answered here. */
  pthread_mutex_lock(&srv->active_lock);
  if (!srv->offload) {
    pthread_mutex_unlock(&srv->active_lock);
    reply_shutting_down(r);
    return;
  }
  request_defer_finish(r, finish);
  g_thread_pool_push(srv->offload, r, NULL);
  pthread_mutex_unlock(&srv->active_lock);
}

/* An offload thread: name it once (the benchmark counts CPU by thread name), then run.
 * INBOXD_TEST_OFFLOAD_GATE (tests only) names a file the work waits for, after creating
 * that name plus ".held": a test can hold offloaded work and show that the HTTP threads
 * answer meanwhile. */
static void
offload_run(gpointer data, gpointer user_data)
{
  static __thread int named;
  const char *gate = user_data;
  if (!named) {
    pthread_setname_np(pthread_self(), "http-offload");
    named = 1;
  }
  ib_request *r = data;
  if (g_atomic_int_get(&r->srv->stopping)) {
    /* Queued when the drain ran out: not started, so answered instead (the sender
     * retries), and the pool's last wait is only for the work under way. */
    r->finish = NULL;
    reply_shutting_down(r);
    request_resume(r);
    return;
  }
  if (gate && !g_file_test(gate, G_FILE_TEST_EXISTS)) {
    char *held = g_strconcat(gate, ".held", NULL);
    g_file_set_contents(held, "", 0, NULL);
    g_free(held);
    while (!g_file_test(gate, G_FILE_TEST_EXISTS))
      g_usleep(10000);
  }
  r->work(r);
}

/* ---- Routing and auth ---------------------------------------------------------------- */

/* Match PATH against PATTERN; {id} segments must be positive decimal integers and are
 * stored in PARAMS; {key} segments (opaque ids such as "dlv_...": letters, digits, "_"
 * and "-", at most KEY_MAX) are copied into KEYS when it is not NULL. */
static int
route_match_keys(const route *rt, const char *path, int64_t *params, int *nparams,
                 char (*keys)[KEY_MAX + 1])
{
  const char *p = rt->pattern, *s = path;
  int n = 0, nkeys = 0;
  while (*p) {
    if (g_str_has_prefix(p, "{id}")) {
      const char *start = s;
      while (g_ascii_isdigit(*s))
        s++;
      size_t len = (size_t)(s - start);
      if (len == 0 || len > 18 || n >= MAX_PARAMS)
        return 0;
      params[n++] = g_ascii_strtoll(start, NULL, 10);
      if (params[n - 1] <= 0)
        return 0;
      p += 4;
      continue;
    }
    if (g_str_has_prefix(p, "{key}")) {
      const char *start = s;
      while (g_ascii_isalnum(*s) || *s == '_' || *s == '-')
        s++;
      size_t len = (size_t)(s - start);
      if (len == 0 || len > KEY_MAX || nkeys >= MAX_KEYS)
        return 0;
      if (keys) {
        memcpy(keys[nkeys], start, len);
        keys[nkeys][len] = '\0';
      }
      nkeys++;
      p += 5;
      continue;
    }
    if (*p != *s)
      return 0;
    p++;
    s++;
  }
  if (*s && !(rt->flags & ROUTE_PREFIX))
    return 0;
  *nparams = n;
  return 1;
}

static int
route_match(const route *rt, const char *path, int64_t *params, int *nparams)
{
  return route_match_keys(rt, path, params, nparams, NULL);
}

static int
method_is(const route *rt, const char *method)
{
  if (strcmp(rt->method, method) == 0)
    return 1;
  return strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0;
}

/* Find the route for R; on failure reply 404 or 405 with Allow. */
static int
route_find(ib_request *r)
{
  GString *allow = NULL;
  for (const route *rt = r->srv->routes; rt->method; rt++) {
    int64_t params[MAX_PARAMS];
    char keys[MAX_KEYS][KEY_MAX + 1];
    int n = 0;
    if (!route_match(rt, r->path, params, &n))
      continue;
    if (method_is(rt, r->method)) {
      r->route = rt;
      memset(keys, 0, sizeof keys);
      route_match_keys(rt, r->path, params, &n, keys);
      memcpy(r->params, params, sizeof params);
      memcpy(r->keys, keys, sizeof keys);
      r->nparams = n;
      if (allow)
        g_string_free(allow, TRUE);
      return 1;
    }
    if (!allow)
      allow = g_string_new(NULL);
    if (!strstr(allow->str, rt->method)) {
      if (allow->len)
        g_string_append(allow, ", ");
      g_string_append(allow, rt->method);
      if (strcmp(rt->method, "GET") == 0)
        g_string_append(allow, ", HEAD");
    }
  }
  if (allow) {
    request_reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                        "%s is not allowed on %s; use %s", r->method, r->path, allow->str);
    request_add_header(r, "Allow", allow->str);
    g_string_free(allow, TRUE);
  } else {
    request_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no route for %s", r->path);
  }
  return 0;
}

static int
secret_equal(const char *given, size_t given_len, const char *want)
{
  size_t want_len = strlen(want);
  if (given_len != want_len)
    return 0;
  return CRYPTO_memcmp(given, want, want_len) == 0;
}

static int
check_api_auth(ib_request *r)
{
  GPtrArray *tokens = r->srv->cfg->api_tokens;
  if (!tokens || tokens->len == 0)
    return 1;
  const char *auth = request_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
  int found = 0, read_only = 0;
  if (auth && g_ascii_strncasecmp(auth, "Bearer ", 7) == 0) {
    const char *given = auth + 7;
    while (*given == ' ')
      given++;
    size_t given_len = strlen(given);
    /* Check every token, so the time taken does not tell which one matched. */
    for (guint i = 0; i < tokens->len; i++) {
      const char *t = g_ptr_array_index(tokens, i);
      int ro = g_str_has_suffix(t, ":ro");
      size_t len = strlen(t) - (ro ? 3 : 0);
      if (given_len == len && CRYPTO_memcmp(given, t, len) == 0) {
        found = 1;
        read_only = ro;
      }
    }
  }
  if (!found) {
    request_reply_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                        auth ? "the API token is not valid"
                             : "this API needs Authorization: Bearer <token>");
    request_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"inboxd\"");
    return 0;
  }
  r->read_only = read_only;
  if (read_only && (r->route->flags & ROUTE_WRITE)) {
    request_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden",
                        "this API token is read-only; %s %s needs a read-write token", r->method,
                        r->path);
    return 0;
  }
  return 1;
}

static int
check_ingress_auth(ib_request *r)
{
  const ib_config *cfg = r->srv->cfg;
  const char *user = cfg->ingress_user ? cfg->ingress_user : "";
  const char *password = cfg->ingress_password ? cfg->ingress_password : "";
  /* Either flag alone turns auth on: a password set without a user must not leave the
   * routes open. The missing one is then the empty string. */
  if (!*user && !*password)
    return 1;
  const char *auth = request_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
  int ok = 0;
  if (auth && g_ascii_strncasecmp(auth, "Basic ", 6) == 0) {
    gsize len = 0;
    guchar *dec = g_base64_decode(auth + 6, &len);
    const char *colon = dec ? memchr(dec, ':', len) : NULL;
    if (colon) {
      size_t ulen = (size_t)(colon - (const char *)dec);
      int user_ok = secret_equal((const char *)dec, ulen, user);
      int pass_ok = secret_equal(colon + 1, len - ulen - 1, password);
      ok = user_ok & pass_ok;
    }
    if (dec)
      memset(dec, 0, len);
    g_free(dec);
  }
  if (!ok) {
    request_reply_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                        auth ? "the ingress credentials are not valid"
                             : "this route needs HTTP basic auth (--ingress-user)");
    request_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"inboxd\"");
  }
  return ok;
}

/* CORS preflight (and plain OPTIONS): the methods of the path, no auth needed. */
static void
reply_preflight(ib_request *r)
{
  GString *allow = g_string_new(NULL);
  for (const route *rt = r->srv->routes; rt->method; rt++) {
    int64_t params[MAX_PARAMS];
    int n = 0;
    if (!route_match(rt, r->path, params, &n) || strstr(allow->str, rt->method))
      continue;
    g_string_append_printf(allow, "%s%s", allow->len ? ", " : "", rt->method);
  }
  if (!allow->len) {
    request_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no route for %s", r->path);
    g_string_free(allow, TRUE);
    return;
  }
  g_string_append(allow, ", OPTIONS");
  struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(resp, "Allow", allow->str);
  if (cors_origin(r)) {
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow->str);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, If-None-Match, Last-Event-ID");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
  }
  set_response(r, MHD_HTTP_NO_CONTENT, resp);
  g_string_free(allow, TRUE);
}

/* Checks of the first call, before any body byte: route, auth, declared size. */
static void
request_start(ib_request *r)
{
  if (g_atomic_int_get(&r->srv->draining)) {
    /* Stopping: requests already running finish; new ones are turned away, and a
     * provider retries them (on another node, or on this one once it is back). */
    reply_shutting_down(r);
    return;
  }
  if (strcmp(r->method, "OPTIONS") == 0) {
    reply_preflight(r);
    return;
  }
  if (!route_find(r))
    return;
  if ((r->route->flags & ROUTE_API) && !check_api_auth(r))
    return;
  if ((r->route->flags & ROUTE_INGRESS) && !check_ingress_auth(r))
    return;
  if (!(r->route->flags & ROUTE_BODY))
    return;
  uint64_t cap =
      (r->route->flags & ROUTE_SMALL) ? HTTP_SMALL_BODY : (uint64_t)r->srv->cfg->max_body_bytes;
  const char *cl = request_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl) {
    guint64 declared = g_ascii_strtoull(cl, NULL, 10);
    if (declared > cap) {
      request_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                          "the request body of %" G_GUINT64_FORMAT
                          " bytes is over the limit of %" G_GUINT64_FORMAT " bytes",
                          (guint64)declared, (guint64)cap);
      return;
    }
  }
  r->spool = spool_new(cap, SPOOL_MEM_LIMIT);
}

/* The last call: the whole body is here (or there is none); run the handler. */
static void
request_dispatch(ib_request *r)
{
  if (r->spool) {
    uint64_t cap =
        (r->route->flags & ROUTE_SMALL) ? HTTP_SMALL_BODY : (uint64_t)r->srv->cfg->max_body_bytes;
    if (spool_length(r->spool) > cap) {
      request_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                          "the request body is over the limit of %" G_GUINT64_FORMAT " bytes",
                          (guint64)cap);
      return;
    }
    if (spool_bytes(r->spool, &r->body) != IB_OK) {
      request_reply_status(r, IB_ERR_IO, "cannot buffer the request body; retry later");
      return;
    }
  }
  r->handling = 1;
  g_atomic_int_inc(&r->srv->handling);
  if (g_atomic_int_get(&r->srv->stopping)) {
    /* A body that completed after the drain ran out: nothing new is started now. */
    reply_shutting_down(r);
    return;
  }
  r->state = REQ_HANDLING;
  r->route->handler(r);
  if (r->state == REQ_HANDLING && !r->response) {
    log_error("handler of %s %s set no reply", r->method, r->path);
    request_reply_status(r, IB_ERR_INTERNAL, "the server set no reply");
  }
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------------ */

static enum MHD_Result
queue_reply(ib_request *r)
{
  r->state = REQ_DONE;
  enum MHD_Result ret = MHD_queue_response(r->conn, r->status, r->response);
  MHD_destroy_response(r->response);
  r->response = NULL;
  return ret;
}

static void
active_add(ib_server *srv, int delta)
{
  pthread_mutex_lock(&srv->active_lock);
  srv->active += (unsigned)delta;
  if (srv->active == 0)
    pthread_cond_broadcast(&srv->active_cond);
  pthread_mutex_unlock(&srv->active_lock);
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
  ib_server *srv = cls;
  ib_request *r = *con_cls;
  if (!r) {
    r = g_new0(ib_request, 1);
    r->srv = srv;
    r->conn = conn;
    r->method = g_strdup(method);
    r->path = g_strdup(url);
    r->started_ms = clock_mono_ms();
    *con_cls = r;
    active_add(srv, 1);
    request_start(r);
    if (r->response)
      return queue_reply(r);
    r->state = REQ_BODY;
    return MHD_YES;
  }
  if (*upload_data_size) {
    /* A body that trickles in for longer than the request timeout is a slowloris (idle
     * connections are closed by MHD's own timeout): drop the connection. */
    if (clock_mono_ms() - r->started_ms > srv->cfg->request_timeout_s * 1000) {
      log_warn("closing %s %s: the body took longer than %" G_GINT64_FORMAT " s", r->method,
               r->path, srv->cfg->request_timeout_s);
      return MHD_NO;
    }
    /* Consume every chunk, even after an error or past the cap, so the request is
     * drained and the reply can be sent. */
    if (r->spool && !r->response)
      spool_append(r->spool, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (r->state == REQ_BODY && !r->response) {
    request_dispatch(r);
    /* A deferred request may be completed by another thread at any moment: touch
     * nothing of it until MHD calls again after request_resume(). */
    if (r->state == REQ_DEFERRED)
      return MHD_YES;
  }
  if (r->state == REQ_DEFERRED && !r->response && r->finish) {
    /* Resumed by request_defer_finish()'s other thread: build the reply here. */
    route_handler finish = r->finish;
    r->finish = NULL;
    finish(r);
    if (!r->response)
      request_reply_status(r, IB_ERR_INTERNAL, "the server set no reply");
  }
  if (r->response)
    return queue_reply(r);
  return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
  ib_server *srv = cls;
  ib_request *r = *con_cls;
  if (!r)
    return;
  if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
    log_debug("request %s %s ended early (%d)", r->method, r->path, (int)toe);
  if (r->response)
    MHD_destroy_response(r->response);
  if (r->data && r->data_free)
    r->data_free(r->data);
  spool_free(r->spool);
  if (r->headers)
    g_ptr_array_unref(r->headers);
  if (r->body)
    g_bytes_unref(r->body);
  int handling = r->handling;
  g_free(r->method);
  g_free(r->path);
  g_free(r);
  *con_cls = NULL;
  if (handling)
    g_atomic_int_dec_and_test(&srv->handling);
  active_add(srv, -1);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  char *msg = g_strdup_vprintf(fmt, ap);
  g_strchomp(msg);
  log_warn("http: %s", msg);
  g_free(msg);
}

/* ---- Daemon ------------------------------------------------------------------------------ */

static int
parse_listen(const char *listen, struct sockaddr_storage *addr_out, int *v6_out, char **error_out)
{
  const char *colon = strrchr(listen, ':');
  if (!colon) {
    *error_out = g_strdup_printf("--listen %s: expected HOST:PORT", listen);
    return -1;
  }
  char *host = g_strndup(listen, (gsize)(colon - listen));
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = '\0';
  }
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res);
  if (rc != 0 || !res) {
    *error_out = g_strdup_printf("--listen %s: %s", listen, gai_strerror(rc));
    g_free(host);
    return -1;
  }
  memcpy(addr_out, res->ai_addr, res->ai_addrlen);
  *v6_out = res->ai_family == AF_INET6;
  freeaddrinfo(res);
  g_free(host);
  return 0;
}

ib_status
http_start(ib_server *srv, const route *routes, unsigned *port_out, char **error_out)
{
  struct sockaddr_storage addr;
  int v6 = 0;
  *error_out = NULL;
  if (parse_listen(srv->cfg->listen, &addr, &v6, error_out) != 0)
    return IB_ERR_INVALID;
  srv->routes = routes;
  pthread_mutex_init(&srv->active_lock, NULL);
  pthread_cond_init(&srv->active_cond, NULL);
  unsigned threads = srv->cfg->threads > 0 ? (unsigned)srv->cfg->threads
                                           : (unsigned)MAX(1, (int)g_get_num_processors());
  GError *err = NULL;
  srv->offload = g_thread_pool_new(offload_run, (gpointer)g_getenv("INBOXD_TEST_OFFLOAD_GATE"),
                                   (gint)threads, TRUE, &err);
  if (err) {
    *error_out = g_strdup_printf("cannot start the offload threads: %s", err->message);
    g_error_free(err);
    if (srv->offload)
      g_thread_pool_free(srv->offload, TRUE, FALSE);
    srv->offload = NULL;
    return IB_ERR_INTERNAL;
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
  srv->daemon =
      MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
                       NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                       MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
                       (unsigned)srv->cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                       (unsigned)srv->cfg->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
                       (unsigned)srv->cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
                       on_completed, srv, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, MHD_OPTION_END);
  if (!srv->daemon) {
    *error_out =
        g_strdup_printf("cannot listen on %s (address in use, or not allowed?)", srv->cfg->listen);
    g_thread_pool_free(srv->offload, TRUE, TRUE);
    srv->offload = NULL;
    return IB_ERR_IO;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  srv->port = info ? info->port : 0;
  *port_out = srv->port;
  return IB_OK;
}

void
http_quiesce(ib_server *srv)
{
  /* Not MHD_quiesce_daemon(): with epoll and a worker pool it races the workers, which
   * remove the listening socket from their epoll sets too, and MHD aborts the process
   * when it loses ("Failed to remove listen FD from epoll set", seen in CI at SIGTERM).
   * New requests are answered 503 instead (request_start) until http_stop(). */
  g_atomic_int_set(&srv->draining, 1);
}

unsigned
http_drain(ib_server *srv, int64_t timeout_ms)
{
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&srv->active_lock);
  while (srv->active > 0)
    if (pthread_cond_timedwait(&srv->active_cond, &srv->active_lock, &deadline) != 0)
      break;
  unsigned left = srv->active;
  pthread_mutex_unlock(&srv->active_lock);
  return left;
}

void
http_stop(ib_server *srv)
{
  /* After a drain that ran out, requests may still be under way: offloaded work, jobs
   * in the writer's queue, bodies still arriving. From here on nothing new starts (a
   * body that completes, offloaded work not yet begun: 503), the work under way
   * finishes and resumes its connection while the daemon still runs, and only then is
   * the daemon stopped: libmicrohttpd aborts the process when stopped with a connection
   * suspended. The store's writer runs until teardown, after this. */
  g_atomic_int_set(&srv->stopping, 1);
  pthread_mutex_lock(&srv->active_lock);
  GThreadPool *pool = srv->offload;
  srv->offload = NULL;
  unsigned open = srv->active;
  pthread_mutex_unlock(&srv->active_lock);
  if (open)
    log_warn("stopping with %u requests open: work under way finishes, the rest is "
             "answered 503",
             open);
  if (pool)
    g_thread_pool_free(pool, FALSE, TRUE);
  /* Every request a handler took is answered and done (a body still arriving is not
   * waited for: the daemon drops it), or the wait ends. */
  int64_t until = clock_mono_ms() + STOP_WAIT_MS;
  while (g_atomic_int_get(&srv->handling) > 0 && clock_mono_ms() < until)
    g_usleep(10000);
  int left = g_atomic_int_get(&srv->suspended);
  if (left > 0) {
    /* Stuck (it should not happen): exit without stopping the daemon rather than abort. */
    log_error("%d requests still suspended %d ms after the drain; exiting without closing "
              "their connections",
              left, STOP_WAIT_MS);
    return;
  }
  if (srv->daemon) {
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    pthread_mutex_destroy(&srv->active_lock);
    pthread_cond_destroy(&srv->active_cond);
  }
}
