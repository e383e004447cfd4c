/* reply.c: POST /api/tickets/{id}/messages, an agent's answer. It is recorded as an
 * outbound message of the ticket, with the raw MIME the CRM should send (GET
 * /api/messages/{id}/raw) and the headers that make the customer's answer thread back:
 * a Message-ID of ours carrying the signed ticket, In-Reply-To/References of the thread,
 * Reply-To the signed reply address, and the subject with its [#id] tag. */
#include <gmime/gmime.h>
#include <microhttpd.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "parse.h"
#include "rebuild.h"
#include "server.h"
#include "subject.h"

#define MAX_REFERENCES 10

typedef struct agent_reply {
  ib_server *srv;
  int64_t ticket;
  char *from; /* "Name <addr>" as given, validated */
  char *from_address;
  char *text, *html;
  char *status; /* status to set after replying; NULL: pending when open */
  /* results */
  int64_t message_id;
  json_t *send_headers;
  ib_status stored;
} agent_reply;

static void
agent_reply_free(gpointer p)
{
  agent_reply *a = p;
  g_free(a->from);
  g_free(a->from_address);
  g_free(a->text);
  g_free(a->html);
  g_free(a->status);
  json_decref(a->send_headers);
  g_free(a);
}

/* "Name <addr>" with the quoting RFC 5322 needs (not yet 2047-encoded: rebuild does it). */
static char *
format_mailbox(const char *name, const char *address)
{
  InternetAddress *ia = internet_address_mailbox_new(name, address);
  char *s = internet_address_to_string(ia, NULL, FALSE);
  g_object_unref(ia);
  return s;
}

static char *
angle_list(GPtrArray *ids, guint from)
{
  GString *s = g_string_new(NULL);
  for (guint i = from; i < ids->len; i++)
    g_string_append_printf(s, "%s<%s>", s->len ? " " : "", (char *)g_ptr_array_index(ids, i));
  return g_string_free(s, FALSE);
}

static ib_status
reply_job(ib_tx *tx, void *arg)
{
  agent_reply *a = arg;
  const thread_options *opt = &a->srv->threading;
  store_ticket_brief brief;
  GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
  char *last_inbound = NULL, *message_id = NULL, *subject = NULL, *to = NULL;
  char *reply_to = NULL, *refs = NULL, *date = NULL;
  rebuild *rb = NULL;
  GBytes *raw = NULL;
  ib_message *msg = NULL;
  store_prepared *prep = NULL;
  ib_status st = store_ticket_brief_get(tx, a->ticket, &brief);
  if (st != IB_OK)
    goto done;
  if ((st = store_thread_ids(tx, a->ticket, ids, &last_inbound)) != IB_OK)
    goto done;

  const char *at = strrchr(a->from_address, '@');
  message_id = thread_new_message_id(opt, a->ticket, at ? at + 1 : NULL);
  char *base = subject_normalize(brief.subject);
  subject =
      g_strdup_printf("Re: %s [#%" G_GINT64_FORMAT "]", *base ? base : "your request", a->ticket);
  g_free(base);
  to = brief.customer_address ? format_mailbox(brief.customer_name, brief.customer_address) : NULL;
  reply_to = thread_reply_address(opt, a->ticket);
  /* References: the first message and the newest ones (RFC 5322 3.6.4 allows trimming). */
  if (ids->len > MAX_REFERENCES)
    g_ptr_array_remove_range(ids, 1, ids->len - MAX_REFERENCES);
  refs = angle_list(ids, 0);
  const char *parent = last_inbound ? last_inbound
                       : ids->len   ? (const char *)g_ptr_array_index(ids, ids->len - 1)
                                    : NULL;
  GDateTime *now = g_date_time_new_now_utc();
  date = g_date_time_format(now, "%a, %d %b %Y %H:%M:%S +0000");
  g_date_time_unref(now);

  rb = rebuild_new();
  rebuild_add_header(rb, "From", a->from);
  if (to)
    rebuild_add_header(rb, "To", to);
  rebuild_add_header(rb, "Subject", subject);
  rebuild_add_header(rb, "Date", date);
  char *bracketed = g_strdup_printf("<%s>", message_id);
  rebuild_add_header(rb, "Message-ID", bracketed);
  g_free(bracketed);
  if (parent) {
    char *p = g_strdup_printf("<%s>", parent);
    rebuild_add_header(rb, "In-Reply-To", p);
    g_free(p);
  }
  if (refs[0])
    rebuild_add_header(rb, "References", refs);
  if (reply_to)
    rebuild_add_header(rb, "Reply-To", reply_to);
  if (a->text)
    rebuild_set_text(rb, a->text, strlen(a->text));
  if (a->html)
    rebuild_set_html(rb, a->html, strlen(a->html));
  raw = rebuild_finish(rb);

  gsize len = 0;
  const char *bytes = g_bytes_get_data(raw, &len);
  if ((st = parse_message(bytes, len, NULL, &a->srv->limits, &msg)) != IB_OK)
    goto done;
  msg->direction = "outbound";
  g_free(msg->provider);
  msg->provider = g_strdup("api");
  msg->classification = IB_CLASS_REPLY;

  int changed = 0, loop = 0;
  prep = store_prepare(msg);
  if ((st = store_insert_message(tx, a->ticket, msg, prep, raw, 1, NULL, &a->message_id)) !=
          IB_OK ||
      (st = thread_record(tx, opt, msg, a->ticket, 0, a->message_id, &changed, &loop)) != IB_OK)
    goto done;
  const char *status = a->status ? a->status : strcmp(brief.status, "open") == 0 ? "pending" : NULL;
  if (status && (st = store_update_ticket(tx, a->ticket, status, NULL, &changed)) != IB_OK)
    goto done;
  if ((st = store_add_event(tx, "message.created", a->ticket, a->message_id)) != IB_OK)
    goto done;
  if (changed && (st = store_add_event(tx, "ticket.updated", a->ticket, a->message_id)) != IB_OK)
    goto done;

  char *mid = g_strdup_printf("<%s>", message_id);
  json_decref(a->send_headers);
  a->send_headers =
      json_pack("{s:s, s:o, s:s, s:s}", "From", a->from, "To", to ? json_string(to) : json_null(),
                "Subject", subject, "Message-ID", mid);
  g_free(mid);
  if (parent) {
    char *p = g_strdup_printf("<%s>", parent);
    json_object_set_new(a->send_headers, "In-Reply-To", json_string(p));
    g_free(p);
  }
  if (refs[0])
    json_object_set_new(a->send_headers, "References", json_string(refs));
  if (reply_to)
    json_object_set_new(a->send_headers, "Reply-To", json_string(reply_to));
done:
  store_prepared_free(prep);
  ib_message_free(msg);
  if (raw)
    g_bytes_unref(raw);
  rebuild_free(rb);
  g_free(date);
  g_free(refs);
  g_free(reply_to);
  g_free(to);
  g_free(subject);
  g_free(message_id);
  g_free(last_inbound);
  g_ptr_array_unref(ids);
  store_ticket_brief_clear(&brief);
  return st;
}

/* Writer thread, after the commit. */
static void
reply_done(void *arg, ib_status st)
{
  ib_request *r = arg;
  ((agent_reply *)request_data(r))->stored = st;
  request_resume(r);
}

/* Back on the HTTP worker: answer with the stored message. */
static void
reply_finish(ib_request *r)
{
  agent_reply *a = request_data(r);
  ib_status st = a->stored;
  json_t *doc = NULL;
  if (st == IB_OK)
    st = store_message(a->srv->store, a->message_id, &doc);
  if (st == IB_OK) {
    json_object_set(doc, "send_headers", a->send_headers);
    request_reply_json(r, MHD_HTTP_CREATED, doc);
    char *loc = g_strdup_printf("/api/messages/%" G_GINT64_FORMAT, a->message_id);
    request_add_header(r, "Location", loc);
    g_free(loc);
  } else if (st == IB_ERR_NOT_FOUND) {
    request_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such ticket");
  } else {
    request_reply_status(r, st, "the reply was not recorded; retry");
  }
}

/* A string field of BODY: NULL when absent; *BAD set when present but not a string. */
static const char *
string_field(json_t *body, const char *name, int *bad)
{
  json_t *v = json_object_get(body, name);
  if (!v || json_is_null(v))
    return NULL;
  if (!json_is_string(v)) {
    *bad = 1;
    return NULL;
  }
  return json_string_value(v);
}

static int
is_blank(const char *s)
{
  for (; s && *s; s++)
    if (!g_ascii_isspace(*s))
      return 0;
  return 1;
}

void
api_post_message(ib_request *r)
{
  json_t *body = request_json_body(r);
  if (!body)
    return;
  int bad = 0;
  const char *from = string_field(body, "from", &bad);
  const char *text = string_field(body, "text", &bad);
  const char *html = string_field(body, "html", &bad);
  const char *status = string_field(body, "status", &bad);
  InternetAddressList *list = NULL;
  InternetAddress *ia = NULL;
  if (bad) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field",
                        "from, text, html and status must be strings");
    goto done;
  }
  if (from && !strpbrk(from, "\r\n"))
    list = internet_address_list_parse(NULL, from);
  if (list && internet_address_list_length(list) == 1)
    ia = internet_address_list_get_address(list, 0);
  const char *addr = ia && INTERNET_ADDRESS_IS_MAILBOX(ia)
                         ? internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia))
                         : NULL;
  if (!addr || !strchr(addr, '@') || strchr(addr, '@') == addr) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_from",
                        "from must be one email address, e.g. \"Ana <ana@example.com>\"");
    goto done;
  }
  if (is_blank(text) && is_blank(html)) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "empty_reply", "give the reply's text");
    goto done;
  }
  if (status && strcmp(status, "open") && strcmp(status, "pending") && strcmp(status, "closed")) {
    request_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_status",
                        "status must be open, pending or closed");
    goto done;
  }
  agent_reply *a = g_new0(agent_reply, 1);
  a->srv = request_server(r);
  a->ticket = request_param(r, 0);
  a->from = g_strdup(from);
  a->from_address = g_strdup(addr);
  a->text = g_strdup(text);
  a->html = g_strdup(html);
  a->status = g_strdup(status);
  request_set_data(r, a, agent_reply_free);
  request_defer_finish(r, reply_finish);
  store_submit(a->srv->store, reply_job, a, reply_done, r);
done:
  if (list)
    g_object_unref(list);
  json_decref(body);
}
