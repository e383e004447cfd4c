/* PLACEHOLDER until the libxml2 version lands (branch "mime"). */
#include "html2text.h"

#include <glib.h>

char *
html2text(const char *html, size_t len)
{
  return g_utf8_make_valid(html, (gssize)len);
}
