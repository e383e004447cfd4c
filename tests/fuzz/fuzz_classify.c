/* Fuzz classification on hostile report parts and headers directly (no GMime in the
 * way): the input is split on NUL bytes into subject, a header block, the status fields
 * of a report, the returned message's headers, and the text body. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "subject.h"

static char *
next_piece(const uint8_t **p, const uint8_t *end)
{
  const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
  const uint8_t *stop = nul ? nul : end;
  char *s = g_utf8_make_valid((const char *)*p, (gssize)(stop - *p));
  *p = nul ? nul + 1 : end;
  return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const uint8_t *p = data, *end = data + size;
  ib_message *m = ib_message_new();
  m->subject = next_piece(&p, end);
  char *hdrs = next_piece(&p, end);
  char **lines = g_strsplit(hdrs, "\n", 64);
  for (char **l = lines; *l; l++) {
    char *colon = strchr(*l, ':');
    if (!colon)
      continue;
    ib_header *h = g_new0(ib_header, 1);
    h->name = g_strndup(*l, (gsize)(colon - *l));
    h->value = g_strdup(colon + 1);
    g_ptr_array_add(m->headers, h);
  }
  g_strfreev(lines);
  g_free(hdrs);
  m->report.report_type = g_strdup(size % 3 == 0   ? "delivery-status"
                                   : size % 3 == 1 ? "feedback-report"
                                                   : "other");
  m->report.status_fields = next_piece(&p, end);
  m->report.original_headers = next_piece(&p, end);
  m->text = next_piece(&p, end);
  m->envelope_from = size % 2 ? g_strdup("") : NULL;
  m->from = ib_addr_new(NULL, size % 5 ? "MAILER-DAEMON@example.org" : "someone@example.org");
  classify_message(m);
  json_t *doc = ib_message_to_json(m);
  if (!doc)
    abort();
  json_decref(doc);
  long long t;
  subject_ticket_tag(m->subject, &t);
  g_free(subject_normalize(m->subject));
  ib_message_free(m);
  return 0;
}
