/* Fuzz reply stripping of text and HTML bodies (input split at the first NUL: text, then
 * HTML). The result must be valid UTF-8 when the input was. And quote_norm()'s shortcuts
 * must agree with the long way (quote_norm_unicode()) on every line of the input, valid
 * UTF-8 or not. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quote.h"
#include "strip.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *input = g_strndup((const char *)data, size);
  for (char *line = input, *end; line; line = end ? end + 1 : NULL) {
    end = strchr(line, '\n');
    gssize len = end ? end - line : -1;
    char *fast = quote_norm(line, len), *slow = quote_norm_unicode(line, len);
    if (strcmp(fast, slow) != 0)
      abort();
    g_free(fast);
    g_free(slow);
  }
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
