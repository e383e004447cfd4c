/* strip.h: reply stripping. What the sender newly wrote, without quoted history,
 * signature or "Sent from my iPhone". */
#ifndef INBOXD_STRIP_H
#define INBOXD_STRIP_H

#include "message.h"

/* Return the newly written part of TEXT (a plain-text body). Returns a new string
 * (g_free); never NULL; TEXT itself (copied) when nothing can be stripped. */
char *strip_text(const char *text);

/* Return HTML without its quoted history (gmail_quote, divRplyFwdMsg, blockquote
 * type=cite, ...). Returns a new string (g_free), or NULL when nothing was found to
 * strip. */
char *strip_html(const char *html);

/* Fill MSG->stripped_text (and stripped_html) from msg->text / msg->html. */
void strip_message(ib_message *msg);

#endif
