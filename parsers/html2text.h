/* html2text.h: readable plain text from an HTML body, with libxml2's HTML parser. */
#ifndef INBOXD_HTML2TEXT_H
#define INBOXD_HTML2TEXT_H

#include <stddef.h>

/* Return the text of HTML (LEN bytes, UTF-8): block elements and <br> become line
 * breaks, entities are decoded, <script>/<style>/<head> dropped, runs of blank lines
 * collapsed. Returns a new string (g_free), never NULL (empty for empty input). */
char *html2text(const char *html, size_t len);

#endif
