/* strip.h: reply stripping. What the sender newly wrote, without quoted history,
 * signature or "Sent from my iPhone". */
#ifndef INBOXD_STRIP_H
#define INBOXD_STRIP_H

#include "message.h"

/* Return the newly written part of TEXT (a plain-text body): no quoted history, no
 * signature, no mobile footer; forwarded content is kept. Lines end in LF, without
 * trailing blanks, and there are no leading or trailing blank lines. Returns a new
 * string (g_free), never NULL: "" for NULL, and the whole of TEXT, normalized that way,
 * when stripping would leave nothing. TEXT is borrowed; invalid UTF-8 is repaired. */
char *strip_text(const char *text);

/* Return HTML (UTF-8) without its quoted history (gmail_quote, divRplyFwdMsg,
 * blockquote type=cite, ...), marked signatures and trailing mobile footers, serialized
 * as UTF-8. Returns a new string (g_free), or NULL when nothing was found to strip
 * (forwarded content is kept, not stripped) or nothing visible would be left. HTML is
 * borrowed. */
char *strip_html(const char *html);

/* Fill MSG->stripped_html from msg->html (a copy of it when strip_html() finds nothing
 * to strip) and MSG->stripped_text from msg->text, or, when there is no text body, from
 * html2text() of the stripped HTML. Fields whose source is NULL stay NULL. */
void strip_message(ib_message *msg);

#endif
