#include "inbound.h"

#include <stdarg.h>

ib_inbound *
ib_inbound_new(const char *provider)
{
  ib_inbound *in = g_new0(ib_inbound, 1);
  in->provider = provider;
  in->envelope_to = g_ptr_array_new_with_free_func(g_free);
  in->warnings = g_ptr_array_new_with_free_func(g_free);
  return in;
}

void
ib_inbound_free(ib_inbound *in)
{
  if (!in)
    return;
  if (in->raw)
    g_bytes_unref(in->raw);
  g_free(in->envelope_from);
  g_ptr_array_unref(in->envelope_to);
  g_free(in->spf);
  g_free(in->dkim);
  g_free(in->dmarc);
  g_free(in->event_id);
  g_ptr_array_unref(in->warnings);
  g_free(in);
}

void
ib_inbound_warn(ib_inbound *in, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *detail = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  char *line = g_strconcat(code, ": ", detail, NULL);
  g_ptr_array_add(in->warnings, g_utf8_make_valid(line, -1));
  g_free(line);
  g_free(detail);
}

/* A copy of S made valid UTF-8 (adapters hand over provider strings as they came). */
static char *
valid_dup(const char *s)
{
  return s ? g_utf8_make_valid(s, -1) : NULL;
}

void
ib_inbound_apply(const ib_inbound *in, ib_message *msg)
{
  g_free(msg->provider);
  msg->provider = g_strdup(in->provider);
  g_free(msg->envelope_from);
  msg->envelope_from = valid_dup(in->envelope_from);
  for (guint i = 0; i < in->envelope_to->len; i++)
    g_ptr_array_add(msg->envelope_to, valid_dup(g_ptr_array_index(in->envelope_to, i)));
  g_free(msg->auth_spf);
  msg->auth_spf = valid_dup(in->spf);
  g_free(msg->auth_dkim);
  msg->auth_dkim = valid_dup(in->dkim);
  g_free(msg->auth_dmarc);
  msg->auth_dmarc = valid_dup(in->dmarc);
  msg->has_spam_score = in->has_spam_score;
  msg->spam_score = in->spam_score;
  for (guint i = 0; i < in->warnings->len; i++)
    g_ptr_array_add(msg->warnings, g_strdup(g_ptr_array_index(in->warnings, i)));
  if (in->rebuilt)
    ib_message_warn(msg, "rebuilt", "raw MIME was rebuilt by inboxd from the %s payload",
                    in->provider);
}
