#include "message.h"

#include <stdarg.h>
#include <string.h>

ib_addr *
ib_addr_new(const char *name, const char *address)
{
  ib_addr *a = g_new0(ib_addr, 1);
  a->name = g_strdup(name);
  a->address = g_strdup(address);
  return a;
}

void
ib_addr_free(gpointer p)
{
  ib_addr *a = p;
  if (!a)
    return;
  g_free(a->name);
  g_free(a->address);
  g_free(a);
}

void
ib_header_free(gpointer p)
{
  ib_header *h = p;
  if (!h)
    return;
  g_free(h->name);
  g_free(h->value);
  g_free(h);
}

void
ib_attachment_free(gpointer p)
{
  ib_attachment *a = p;
  if (!a)
    return;
  g_free(a->filename);
  g_free(a->content_type);
  g_free(a->content_id);
  if (a->data)
    g_bytes_unref(a->data);
  g_free(a);
}

void
ib_bounce_rcpt_free(gpointer p)
{
  ib_bounce_rcpt *r = p;
  if (!r)
    return;
  g_free(r->address);
  g_free(r->action);
  g_free(r->status);
  g_free(r->diagnostic);
  g_free(r);
}

void
ib_bounce_free(ib_bounce *b)
{
  if (!b)
    return;
  if (b->recipients)
    g_ptr_array_unref(b->recipients);
  g_free(b->original_message_id);
  g_free(b);
}

void
ib_complaint_free(ib_complaint *c)
{
  if (!c)
    return;
  g_free(c->feedback_type);
  if (c->recipients)
    g_ptr_array_unref(c->recipients);
  g_free(c->original_message_id);
  g_free(c);
}

ib_message *
ib_message_new(void)
{
  ib_message *m = g_new0(ib_message, 1);
  m->references = g_ptr_array_new_with_free_func(g_free);
  m->to = g_ptr_array_new_with_free_func(ib_addr_free);
  m->cc = g_ptr_array_new_with_free_func(ib_addr_free);
  m->reply_to = g_ptr_array_new_with_free_func(ib_addr_free);
  m->headers = g_ptr_array_new_with_free_func(ib_header_free);
  m->attachments = g_ptr_array_new_with_free_func(ib_attachment_free);
  m->warnings = g_ptr_array_new_with_free_func(g_free);
  m->envelope_to = g_ptr_array_new_with_free_func(g_free);
  m->direction = "inbound";
  return m;
}

void
ib_message_free(ib_message *m)
{
  if (!m)
    return;
  g_free(m->message_id);
  g_free(m->in_reply_to);
  g_ptr_array_unref(m->references);
  g_free(m->subject);
  g_free(m->date);
  ib_addr_free(m->from);
  g_ptr_array_unref(m->to);
  g_ptr_array_unref(m->cc);
  g_ptr_array_unref(m->reply_to);
  g_ptr_array_unref(m->headers);
  g_free(m->text);
  g_free(m->html);
  g_ptr_array_unref(m->attachments);
  g_free(m->report.report_type);
  g_free(m->report.status_fields);
  g_free(m->report.original_headers);
  g_ptr_array_unref(m->warnings);
  g_free(m->stripped_text);
  g_free(m->stripped_html);
  ib_bounce_free(m->bounce);
  ib_complaint_free(m->complaint);
  g_free(m->provider);
  g_free(m->envelope_from);
  g_ptr_array_unref(m->envelope_to);
  g_free(m->auth_spf);
  g_free(m->auth_dkim);
  g_free(m->auth_dmarc);
  g_free(m->thread_reason);
  g_free(m);
}

void
ib_message_warn(ib_message *msg, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *detail = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  /* Details may quote attacker bytes; keep the warning valid UTF-8 for jansson. */
  char *valid = g_utf8_make_valid(detail, -1);
  g_ptr_array_add(msg->warnings, g_strdup_printf("%s: %s", code, valid));
  g_free(valid);
  g_free(detail);
}

const char *
ib_message_header(const ib_message *msg, const char *name)
{
  for (guint i = 0; i < msg->headers->len; i++) {
    const ib_header *h = g_ptr_array_index(msg->headers, i);
    if (g_ascii_strcasecmp(h->name, name) == 0)
      return h->value;
  }
  return NULL;
}

const char *
ib_class_str(ib_class c)
{
  switch (c) {
  case IB_CLASS_NEW:
    return "new";
  case IB_CLASS_REPLY:
    return "reply";
  case IB_CLASS_AUTO_REPLY:
    return "auto_reply";
  case IB_CLASS_BOUNCE:
    return "bounce";
  case IB_CLASS_COMPLAINT:
    return "complaint";
  }
  return "new";
}

/* Every string of an ib_message is valid UTF-8 by construction (message.h; the parser
 * and ib_inbound_apply() make it so), so jansson's own validation, a full pass over every
 * body, is skipped. The fuzz targets check the dumped document is valid UTF-8. */
static json_t *
str_or_null(const char *s)
{
  return s ? json_string_nocheck(s) : json_null();
}

/* For strings cut out of bodies (the classifier's report fields): validated here. */
static json_t *
str_checked(const char *s)
{
  if (!s)
    return json_null();
  if (g_utf8_validate(s, -1, NULL))
    return json_string_nocheck(s);
  char *valid = g_utf8_make_valid(s, -1);
  json_t *j = json_string_nocheck(valid);
  g_free(valid);
  return j;
}

static json_t *
addr_to_json(const ib_addr *a)
{
  if (!a)
    return json_null();
  return json_pack("{s:o, s:o}", "name", str_or_null(a->name), "address", str_or_null(a->address));
}

static json_t *
addrs_to_json(const GPtrArray *list)
{
  json_t *arr = json_array();
  for (guint i = 0; i < list->len; i++)
    json_array_append_new(arr, addr_to_json(g_ptr_array_index(list, i)));
  return arr;
}

static json_t *
strings_to_json(const GPtrArray *list)
{
  json_t *arr = json_array();
  for (guint i = 0; list && i < list->len; i++)
    json_array_append_new(arr, str_or_null(g_ptr_array_index(list, i)));
  return arr;
}

static json_t *
checked_strings_to_json(const GPtrArray *list)
{
  json_t *arr = json_array();
  for (guint i = 0; list && i < list->len; i++)
    json_array_append_new(arr, str_checked(g_ptr_array_index(list, i)));
  return arr;
}

static json_t *
bounce_to_json(const ib_bounce *b)
{
  json_t *rcpts = json_array();
  for (guint i = 0; b->recipients && i < b->recipients->len; i++) {
    const ib_bounce_rcpt *r = g_ptr_array_index(b->recipients, i);
    json_array_append_new(rcpts, json_pack("{s:o, s:o, s:o, s:o}", "address",
                                           str_checked(r->address), "action",
                                           str_checked(r->action), "status", str_checked(r->status),
                                           "diagnostic", str_checked(r->diagnostic)));
  }
  return json_pack("{s:s, s:o, s:o}", "kind", b->hard ? "hard" : "soft", "recipients", rcpts,
                   "original_message_id", str_checked(b->original_message_id));
}

static json_t *
complaint_to_json(const ib_complaint *c)
{
  return json_pack("{s:o, s:o, s:o}", "feedback_type", str_checked(c->feedback_type), "recipients",
                   checked_strings_to_json(c->recipients), "original_message_id",
                   str_checked(c->original_message_id));
}

json_t *
ib_message_to_json(const ib_message *m)
{
  json_t *doc = json_object();
  if (!doc)
    return NULL;
  json_object_set_new(doc, "direction", json_string(m->direction ? m->direction : "inbound"));
  json_object_set_new(doc, "provider", str_or_null(m->provider));
  json_object_set_new(doc, "classification", json_string(ib_class_str(m->classification)));
  json_object_set_new(doc, "message_id", str_or_null(m->message_id));
  json_object_set_new(doc, "in_reply_to", str_or_null(m->in_reply_to));
  json_object_set_new(doc, "references", strings_to_json(m->references));
  json_object_set_new(doc, "subject", str_or_null(m->subject));
  json_object_set_new(doc, "date", str_or_null(m->date));
  json_object_set_new(doc, "from", addr_to_json(m->from));
  json_object_set_new(doc, "to", addrs_to_json(m->to));
  json_object_set_new(doc, "cc", addrs_to_json(m->cc));
  json_object_set_new(doc, "reply_to", addrs_to_json(m->reply_to));
  json_object_set_new(doc, "envelope",
                      json_pack("{s:o, s:o}", "from", str_or_null(m->envelope_from), "to",
                                strings_to_json(m->envelope_to)));
  json_object_set_new(doc, "text", str_or_null(m->text));
  json_object_set_new(doc, "html", str_or_null(m->html));
  json_object_set_new(doc, "stripped_text", str_or_null(m->stripped_text));
  json_object_set_new(doc, "stripped_html", str_or_null(m->stripped_html));

  json_t *atts = json_array();
  for (guint i = 0; i < m->attachments->len; i++) {
    const ib_attachment *a = g_ptr_array_index(m->attachments, i);
    json_array_append_new(atts,
                          json_pack("{s:o, s:s, s:I, s:s, s:o, s:s}", "filename",
                                    str_or_null(a->filename), "content_type",
                                    a->content_type ? a->content_type : "application/octet-stream",
                                    "size", (json_int_t)a->size, "sha256", a->sha256, "content_id",
                                    str_or_null(a->content_id), "disposition",
                                    a->disposition == IB_DISP_INLINE ? "inline" : "attachment"));
  }
  json_object_set_new(doc, "attachments", atts);

  json_t *hdrs = json_array();
  for (guint i = 0; i < m->headers->len; i++) {
    const ib_header *h = g_ptr_array_index(m->headers, i);
    json_t *pair = json_array();
    json_array_append_new(pair, json_string_nocheck(h->name));
    json_array_append_new(pair, json_string_nocheck(h->value ? h->value : ""));
    json_array_append_new(hdrs, pair);
  }
  json_object_set_new(doc, "headers", hdrs);
  json_object_set_new(doc, "auth",
                      json_pack("{s:o, s:o, s:o}", "spf", str_or_null(m->auth_spf), "dkim",
                                str_or_null(m->auth_dkim), "dmarc", str_or_null(m->auth_dmarc)));
  json_object_set_new(doc, "spam_score",
                      m->has_spam_score ? json_real(m->spam_score) : json_null());
  json_object_set_new(doc, "thread_reason", str_or_null(m->thread_reason));
  json_object_set_new(doc, "bounce", m->bounce ? bounce_to_json(m->bounce) : json_null());
  json_object_set_new(doc, "complaint",
                      m->complaint ? complaint_to_json(m->complaint) : json_null());
  json_object_set_new(doc, "parse_warnings", strings_to_json(m->warnings));
  return doc;
}
