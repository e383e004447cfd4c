/* Fuzz reply stripping of text and HTML bodies (input split at the first NUL: text, then
 * HTML). The result must be valid UTF-8 when the input was. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strip.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *input = g_strndup((const char *)data, size);
  char *text = g_utf8_make_valid(input, -1);
  char *out = strip_text(text);
  if (!out || !g_utf8_validate(out, -1, NULL))
    abort();
  g_free(out);
  const char *nul = memchr(data, 0, size);
  const char *html = nul ? nul + 1 : (const char *)data;
  size_t html_len = nul ? size - (size_t)(html - (const char *)data) : size;
  char *h = g_utf8_make_valid(html, (gssize)html_len);
  char *sh = strip_html(h);
  if (sh && !g_utf8_validate(sh, -1, NULL))
    abort();
  g_free(sh);
  g_free(h);
  g_free(text);
  g_free(input);
  return 0;
}
