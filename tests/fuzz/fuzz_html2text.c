/* Fuzz HTML-to-text (libxml2): never crash, always valid UTF-8 out. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>

#include "html2text.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *html = g_utf8_make_valid((const char *)data, (gssize)size);
  char *text = html2text(html, strlen(html));
  if (!text || !g_utf8_validate(text, -1, NULL))
    abort();
  g_free(text);
  g_free(html);
  return 0;
}
