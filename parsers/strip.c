/* PLACEHOLDER until reply stripping lands (branch "strip"). */
#include "strip.h"

char *
strip_text(const char *text)
{
  return g_strdup(text ? text : "");
}

char *
strip_html(const char *html)
{
  return NULL;
}

void
strip_message(ib_message *msg)
{
  if (msg->text)
    msg->stripped_text = strip_text(msg->text);
}
