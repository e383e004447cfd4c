/* api.c: REST API (/api/), health and the route table. */
#include "api.h"

#include <microhttpd.h>
#include <string.h>

#include "clock.h"
#include "fold.h"
#include "jsonout.h"
#include "server.h"

/* ---- Helpers --------------------------------------------------------------------------- */

static int
query_int(ib_request *r, const char *name, int64_t def, int64_t min, int64_t max, int64_t *out)
{
  const char *v = request_query(r, name);
  if (!v || !*v) {
    *out = def;
    return 1;
  }
  char *end = NULL;
  gint64 n = g_ascii_strtoll(v, &end, 10);
  if (!end || *end || n < min || n > max) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_parameter",
                        "%s must be an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                        name, min, max);
    return 0;
  }
  *out = n;
  return 1;
}

static void
reply_store_error(ib_request *r, ib_status st, const char *what)
{
  if (st == IB_ERR_NOT_FOUND)
    request_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such %s", what);
  else
    request_reply_status(r, st, "cannot read the %s; retry later", what);
}

/* ---- Health ---------------------------------------------------------------------------- */

static void
handle_healthz(ib_request *r)
{
  ib_status st = store_ping(request_server(r)->store);
  if (st == IB_OK)
    request_reply_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
  else
    request_reply_status(r, st, "the database does not answer");
}

/* ---- Tickets --------------------------------------------------------------------------- */

/* Cursors are opaque to clients: base64url of "<updated_at>|<id>". */
static char *
cursor_encode(const char *updated_at, int64_t id)
{
  char *plain = g_strdup_printf("%s|%" G_GINT64_FORMAT, updated_at, id);
  char *b64 = g_base64_encode((const guchar *)plain, strlen(plain));
  g_free(plain);
  for (char *c = b64; *c; c++)
    *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
  return b64;
}

static int
cursor_decode(const char *cursor, ticket_query *q)
{
  char *b64 = g_strdup(cursor);
  for (char *c = b64; *c; c++)
    *c = *c == '-' ? '+' : *c == '_' ? '/' : *c;
  gsize len = 0;
  guchar *plain = g_base64_decode(b64, &len);
  g_free(b64);
  int ok = 0;
  if (plain && len > 0 && len < 64) {
    char *text = g_strndup((const char *)plain, len);
    char *bar = strchr(text, '|');
    if (bar && (size_t)(bar - text) < sizeof q->cursor_updated_at) {
      *bar = '\0';
      char *end = NULL;
      q->cursor_id = g_ascii_strtoll(bar + 1, &end, 10);
      if (end && !*end && q->cursor_id > 0 && text[0]) {
        g_strlcpy(q->cursor_updated_at, text, sizeof q->cursor_updated_at);
        q->has_cursor = 1;
        ok = 1;
      }
    }
    g_free(text);
  }
  g_free(plain);
  return ok;
}

static void
handle_tickets_list(ib_request *r)
{
  ticket_query q = {0};
  int64_t limit;
  if (!query_int(r, "limit", 50, 1, 200, &limit))
    return;
  q.limit = (int)limit;
  q.status = request_query(r, "status");
  if (q.status && !*q.status)
    q.status = NULL;
  if (q.status && strcmp(q.status, "open") && strcmp(q.status, "pending") &&
      strcmp(q.status, "closed")) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_parameter",
                        "status must be open, pending or closed");
    return;
  }
  q.customer = request_query(r, "customer");
  if (q.customer && !*q.customer)
    q.customer = NULL;
  const char *cursor = request_query(r, "cursor");
  if (cursor && *cursor && !cursor_decode(cursor, &q)) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_cursor",
                        "cursor is not one this server returned");
    return;
  }
  q.tag = request_query(r, "tag");
  if (q.tag && !*q.tag)
    q.tag = NULL;
  char since[32];
  const char *updated_since = request_query(r, "updated_since");
  if (updated_since && *updated_since) {
    int64_t ms;
    if (clock_parse_rfc3339(updated_since, &ms) != 0) {
      request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_parameter",
                          "updated_since must be an RFC 3339 time, e.g. 2025-01-06T10:00:00Z");
      return;
    }
    q.updated_since = clock_rfc3339(ms, since, sizeof since);
  }
  char *fts = NULL;
  const char *text = request_query(r, "q");
  if (text && *text && !(fts = fold_search_query(text))) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_parameter",
                        "q must contain at least one word");
    return;
  }
  q.fts_query = fts;
  json_t *doc = NULL;
  int has_next = 0;
  char next_at[32] = "";
  int64_t next_id = 0;
  ib_status st = store_list_tickets(request_server(r)->store, &q, &doc, &has_next, next_at,
                                    sizeof next_at, &next_id);
  g_free(fts);
  if (st != IB_OK) {
    reply_store_error(r, st, "tickets");
    return;
  }
  if (has_next) {
    char *c = cursor_encode(next_at, next_id);
    json_object_set_new(doc, "next_cursor", json_string(c));
    g_free(c);
  }
  request_reply_json(r, MHD_HTTP_OK, doc);
}

static void
handle_ticket_get(ib_request *r)
{
  json_t *doc = NULL;
  ib_status st = store_ticket_thread(request_server(r)->store, request_param(r, 0), &doc, NULL);
  if (st != IB_OK) {
    reply_store_error(r, st, "ticket");
    return;
  }
  request_reply_json(r, MHD_HTTP_OK, doc);
}

/* ---- Messages and attachments ------------------------------------------------------------ */

static void
handle_message_get(ib_request *r)
{
  json_t *doc = NULL;
  ib_status st = store_message(request_server(r)->store, request_param(r, 0), &doc);
  if (st != IB_OK) {
    reply_store_error(r, st, "message");
    return;
  }
  request_reply_json(r, MHD_HTTP_OK, doc);
}

typedef struct blob_stream {
  ib_store *store;
  store_blob_kind kind;
  int64_t id;
} blob_stream;

static ssize_t
blob_read(void *ctx, uint64_t offset, char *buf, size_t max)
{
  blob_stream *b = ctx;
  size_t got = 0;
  if (store_blob_read(b->store, b->kind, b->id, offset, buf, max, &got) != IB_OK)
    return -1;
  return (ssize_t)got;
}

static void
reply_blob(ib_request *r, store_blob_kind kind, int64_t id, uint64_t size, const char *content_type)
{
  blob_stream *b = g_new0(blob_stream, 1);
  b->store = request_server(r)->store;
  b->kind = kind;
  b->id = id;
  request_reply_stream(r, MHD_HTTP_OK, content_type, size, blob_read, b, g_free);
}

static void
handle_message_raw(ib_request *r)
{
  uint64_t size = 0;
  int64_t id = request_param(r, 0);
  ib_status st = store_raw_size(request_server(r)->store, id, &size);
  if (st != IB_OK) {
    reply_store_error(r, st, "message");
    return;
  }
  reply_blob(r, STORE_BLOB_RAW, id, size, "message/rfc822");
  char *disp = g_strdup_printf("attachment; filename=\"message-%" G_GINT64_FORMAT ".eml\"", id);
  request_add_header(r, "Content-Disposition", disp);
  g_free(disp);
}

/* Content-Disposition for an attacker-chosen FILENAME (RFC 6266): the path part, CR/LF,
 * quotes, backslashes and control characters removed; an ASCII fallback plus the UTF-8
 * name in filename*. */
static char *
content_disposition(const char *filename)
{
  const char *base = filename ? filename : "";
  for (const char *p = base; *p; p++)
    if (*p == '/' || *p == '\\')
      base = p + 1;
  GString *utf8 = g_string_new(NULL);
  GString *ascii = g_string_new(NULL);
  if (g_utf8_validate(base, -1, NULL)) {
    for (const char *p = base; *p && utf8->len < 200; p = g_utf8_next_char(p)) {
      gunichar c = g_utf8_get_char(p);
      if (c < 0x20 || c == 0x7f || c == '"' || c == '\\' || (c >= 0x80 && c < 0xa0))
        continue;
      g_string_append_unichar(utf8, c);
      g_string_append_c(ascii, c < 0x80 && c != '%' && c != ';' ? (char)c : '_');
    }
  }
  /* Leading dots would make hidden files or "..". */
  while (utf8->len && utf8->str[0] == '.')
    g_string_erase(utf8, 0, 1);
  while (ascii->len && ascii->str[0] == '.')
    g_string_erase(ascii, 0, 1);
  if (!ascii->len) {
    g_string_assign(ascii, "attachment");
    g_string_assign(utf8, "attachment");
  }
  char *escaped = g_uri_escape_string(utf8->str, NULL, FALSE);
  char *out =
      g_strdup_printf("attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii->str, escaped);
  g_free(escaped);
  g_string_free(utf8, TRUE);
  g_string_free(ascii, TRUE);
  return out;
}

static int
safe_content_type(const char *type)
{
  /* A token/token media type only; anything that would render as a page in a browser is
   * served as bytes. */
  if (!type || !*type)
    return 0;
  for (const char *p = type; *p; p++)
    if (!(g_ascii_isalnum(*p) || strchr("/.+-_", *p)))
      return 0;
  if (g_ascii_strncasecmp(type, "text/html", 9) == 0 || strstr(type, "xml") ||
      strstr(type, "javascript") || strstr(type, "svg"))
    return 0;
  return strchr(type, '/') != NULL;
}

static void
handle_attachment_get(ib_request *r)
{
  int64_t id = request_param(r, 0);
  store_attachment_info info;
  ib_status st = store_attachment_info_get(request_server(r)->store, id, &info);
  if (st != IB_OK) {
    reply_store_error(r, st, "attachment");
    return;
  }
  reply_blob(r, STORE_BLOB_ATTACHMENT, id, info.size,
             safe_content_type(info.content_type) ? info.content_type : "application/octet-stream");
  char *disp = content_disposition(info.filename);
  request_add_header(r, "Content-Disposition", disp);
  g_free(disp);
  request_add_header(r, "X-Content-SHA256", info.sha256);
  store_attachment_info_clear(&info);
}

/* ---- Change feed ----------------------------------------------------------------------------- */

static void
handle_events(ib_request *r)
{
  int64_t after, limit, wait;
  if (!query_int(r, "after", 0, 0, G_MAXINT64, &after) ||
      !query_int(r, "limit", 100, 1, 1000, &limit) || !query_int(r, "wait", 0, 0, 300, &wait))
    return;
  ib_feed *feed = request_server(r)->feed;
  const char *accept = request_header(r, "Accept");
  if (accept && strstr(accept, "text/event-stream")) {
    /* EventSource resumes with Last-Event-ID after a reconnect. */
    const char *last_id = request_header(r, "Last-Event-ID");
    if (last_id && *last_id) {
      gint64 id = g_ascii_strtoll(last_id, NULL, 10);
      after = MAX(after, id);
    }
    feed_stream(feed, r, after);
    return;
  }
  feed_long_poll(feed, r, after, (int)limit, (int)wait);
}

/* ---- Ticket changes -------------------------------------------------------------------------- */

typedef struct ticket_patch {
  int64_t id;
  char *status;
  char *tags_json;
  int changed;
  ib_status stored;
} ticket_patch;

static void
ticket_patch_free(gpointer p)
{
  ticket_patch *tp = p;
  g_free(tp->status);
  g_free(tp->tags_json);
  g_free(tp);
}

static ib_status
patch_job(ib_tx *tx, void *arg)
{
  ticket_patch *tp = arg;
  ib_status st = store_update_ticket(tx, tp->id, tp->status, tp->tags_json, &tp->changed);
  if (st == IB_OK && tp->changed)
    st = store_add_event(tx, "ticket.updated", tp->id, 0);
  return st;
}

/* Writer thread, after the commit. */
static void
patch_done(void *arg, ib_status st)
{
  ib_request *r = arg;
  ((ticket_patch *)request_data(r))->stored = st;
  request_resume(r);
}

/* Back on the HTTP worker: answer with the ticket as it now is. */
static void
patch_reply(ib_request *r)
{
  ticket_patch *tp = request_data(r);
  ib_status st = tp->stored;
  json_t *doc = NULL;
  if (st == IB_OK)
    st = store_ticket_thread(request_server(r)->store, tp->id, &doc, NULL);
  if (st == IB_OK) {
    json_t *ticket = json_incref(json_object_get(doc, "ticket"));
    json_decref(doc);
    request_reply_json(r, MHD_HTTP_OK,
                       json_pack("{s:o, s:b}", "ticket", ticket, "changed", tp->changed));
  } else {
    reply_store_error(r, st, "ticket");
  }
}

/* Tags: strings of 1-64 printable characters, at most 50, duplicates dropped, order kept. */
static char *
normalize_tags(ib_request *r, json_t *tags)
{
  if (!json_is_array(tags) || json_array_size(tags) > 50) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_tags",
                        "tags must be an array of at most 50 strings");
    return NULL;
  }
  json_t *out = json_array();
  size_t i;
  json_t *tag;
  json_array_foreach(tags, i, tag)
  {
    const char *t = json_string_value(tag);
    glong len = t ? g_utf8_strlen(t, -1) : 0;
    int printable = t != NULL;
    for (const char *p = t; p && *p; p = g_utf8_next_char(p))
      if (!g_unichar_isgraph(g_utf8_get_char(p)) && *p != ' ')
        printable = 0;
    if (!t || len < 1 || len > 64 || !printable || t[0] == ' ' || t[strlen(t) - 1] == ' ') {
      json_decref(out);
      request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_tags",
                          "tag %zu must be a string of 1 to 64 printable characters without "
                          "leading or trailing spaces",
                          i);
      return NULL;
    }
    int seen = 0;
    size_t j;
    json_t *prev;
    json_array_foreach(out, j, prev) seen |= strcmp(json_string_value(prev), t) == 0;
    if (!seen)
      json_array_append(out, tag);
  }
  char *text = jsonout_dumps(out, NULL);
  json_decref(out);
  char *copy = g_strdup(text);
  free(text);
  return copy;
}

static void
handle_ticket_patch(ib_request *r)
{
  json_t *body = request_json_body(r);
  if (!body)
    return;
  ticket_patch *tp = g_new0(ticket_patch, 1);
  tp->id = request_param(r, 0);
  const char *key;
  json_t *value;
  json_object_foreach(body, key, value)
  {
    if (strcmp(key, "status") == 0) {
      const char *st = json_string_value(value);
      if (!st || (strcmp(st, "open") && strcmp(st, "pending") && strcmp(st, "closed"))) {
        request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_status",
                            "status must be \"open\", \"pending\" or \"closed\"");
        goto fail;
      }
      tp->status = g_strdup(st);
    } else if (strcmp(key, "tags") == 0) {
      if (!(tp->tags_json = normalize_tags(r, value)))
        goto fail;
    } else {
      request_reply_error(r, MHD_HTTP_BAD_REQUEST, "unknown_field",
                          "\"%s\" cannot be changed; a ticket's status and tags can", key);
      goto fail;
    }
  }
  if (!tp->status && !tp->tags_json) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "empty_patch",
                        "give \"status\" and/or \"tags\" to change");
    goto fail;
  }
  json_decref(body);
  request_set_data(r, tp, ticket_patch_free);
  request_defer_finish(r, patch_reply);
  store_submit(request_server(r)->store, patch_job, tp, patch_done, r);
  return;
fail:
  json_decref(body);
  ticket_patch_free(tp);
}

static void
handle_suppressions(ib_request *r)
{
  json_t *doc = NULL;
  ib_status st = store_suppressions(request_server(r)->store, &doc);
  if (st != IB_OK) {
    reply_store_error(r, st, "suppressions");
    return;
  }
  request_reply_json(r, MHD_HTTP_OK, doc);
}

/* ---- Route table ------------------------------------------------------------------------------
 */

static const route routes[] = {
    {"GET", "/healthz", handle_healthz, 0},
    {"GET", "/", web_static, 0},
    {"GET", "/static/", web_static, ROUTE_PREFIX},
    {"POST", "/inbound/", ingress_provider, ROUTE_PREFIX | ROUTE_BODY | ROUTE_INGRESS},
    /* Mandrill checks a webhook URL with HEAD/GET before using it; the adapter answers
     * 405 on the other providers' routes. */
    {"GET", "/inbound/", ingress_provider, ROUTE_PREFIX},
    {"GET", "/api/tickets", handle_tickets_list, ROUTE_API},
    {"GET", "/api/tickets/{id}", handle_ticket_get, ROUTE_API},
    {"PATCH", "/api/tickets/{id}", handle_ticket_patch,
     ROUTE_API | ROUTE_WRITE | ROUTE_BODY | ROUTE_SMALL},
    {"POST", "/api/tickets/{id}/messages", api_post_message,
     ROUTE_API | ROUTE_WRITE | ROUTE_BODY | ROUTE_SMALL},
    {"GET", "/api/messages/{id}", handle_message_get, ROUTE_API},
    {"GET", "/api/messages/{id}/raw", handle_message_raw, ROUTE_API},
    {"GET", "/api/attachments/{id}", handle_attachment_get, ROUTE_API},
    {"GET", "/api/events", handle_events, ROUTE_API},
    {"GET", "/api/suppressions", handle_suppressions, ROUTE_API},
    {"GET", "/api/deliveries", api_deliveries_list, ROUTE_API},
    {"POST", "/api/deliveries/{key}/retry", api_delivery_retry, ROUTE_API | ROUTE_WRITE},
    {"GET", "/metrics", api_metrics, 0},
    {NULL, NULL, NULL, 0},
};

const route *
api_routes(void)
{
  return routes;
}
