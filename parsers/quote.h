/* quote.h: the line classifiers behind reply stripping. Each one answers a single
 * question about one line of a mail body ("does this line introduce quoted history?",
 * "is this a mobile footer?"), so strip.c can combine them for plain text and for the
 * text found in HTML alike.
 *
 * The classifiers take lines already passed through quote_norm(): Unicode NFKC (so a
 * no-break space is a space and a full-width colon a colon), case-folded (so "ß" is
 * "ss"), blanks collapsed to single spaces, trimmed, and a space before a final colon
 * removed ("a écrit :" is "a écrit:"). The tables of phrases in quote.c are written in
 * that form (typographic apostrophes are plain ones too); tests/unit/test_strip.c
 * checks that they are, through quote_tables_check(). */
#ifndef INBOXD_QUOTE_H
#define INBOXD_QUOTE_H

#include <glib.h>

/* Return LINE (LEN bytes of UTF-8, or -1 for NUL-terminated) in the normalized form
 * described above. Invalid UTF-8 is repaired first. Returns a new string (g_free),
 * never NULL. LINE is borrowed for the call. */
char *quote_norm(const char *line, gssize len);

/* The same as quote_norm(), always the long way (NFKC, case folding, then blanks):
 * quote_norm() takes shortcuts for ASCII lines and for lines of common Latin and Cyrillic
 * letters, and test_strip checks they agree with this one. New string (g_free). */
char *quote_norm_unicode(const char *line, gssize len);

/* Return TRUE when NORM is an attribution line that introduces a quote: anchored at
 * both ends in one of the supported languages ("on ... wrote:", "am ... schrieb ...:",
 * "le ... a écrit:", "... tarihinde ... şunu yazdı:", "在 ... 写道:", ...), short, and
 * carrying what a mail client writes there and a person rarely does: an address or a
 * time of day. LOOSE is for a line that quoted lines follow: a year or a numeric date is
 * then evidence enough, and looser shapes count too ("jane <jane@example.org> wrote:",
 * "... <jane@example.org>:", "<name> schrieb am <date>:"). NORM is borrowed. */
gboolean quote_is_attribution(const char *norm, gboolean loose);

/* Return TRUE when NORM is a separator such as "-----original message-----" in one of
 * the supported languages (dashes on both sides required). NORM is borrowed. */
gboolean quote_is_separator(const char *norm);

/* Return TRUE when NORM starts forwarded content: "---------- forwarded message
 * ---------", "begin forwarded message:" and their translations. NORM is borrowed. */
gboolean quote_is_forward_marker(const char *norm);

/* Return TRUE when NORM is a line of at least ten underscores (Outlook's rule above a
 * header block). NORM is borrowed. */
gboolean quote_is_rule(const char *norm);

typedef enum quote_field {
  QUOTE_FIELD_NONE = 0,
  QUOTE_FIELD_FROM,
  QUOTE_FIELD_DATE, /* "sent:", "date:", "gesendet:", "发送时间:", ... */
  QUOTE_FIELD_TO,
  QUOTE_FIELD_CC,
  QUOTE_FIELD_SUBJECT
} quote_field;

/* Return which header field of a quoted header block ("from: ...", "von: ...",
 * "*subject:* ...", "发件人: ...") NORM is, or QUOTE_FIELD_NONE. *VALUE_OUT (may be NULL)
 * is set to the text after the label, borrowed from NORM. */
quote_field quote_header_field(const char *norm, const char **value_out);

/* Return the number of lines of the quoted header block that starts at NORMS[I]:
 * consecutive field lines in any of the supported languages (a line without a label
 * may continue a wrapped value) holding a from and a subject field, a date or a to
 * field, and a date, time or address in the from or date value; or 0 when there is
 * none ("From: Berlin\nTo: Lisbon\nDate: 14 February" is not one). *FORWARD_OUT (may
 * be NULL) is set to TRUE when the block's subject has a forward prefix ("fw:", "wg:",
 * "tr:", ...). NORMS holds N normalized lines; both are borrowed. */
gsize quote_header_block(char *const *norms, gsize n, gsize i, gboolean *forward_out);

/* Return TRUE when NORM is a mobile or webmail footer on its own line ("sent from my
 * iphone", "get outlook for android", "von meinem iphone gesendet", "iphone'umdan
 * gönderildi", "отправлено с iphone", "从我的iphone发送", ...), possibly followed by a
 * link in brackets. NORM is borrowed. */
gboolean quote_is_mobile_footer(const char *norm);

/* Return TRUE when NORM is a closing line on its own ("best regards,", "mit
 * freundlichen grüssen", "cordialement", "с уважением,", ...). NORM is borrowed. */
gboolean quote_is_valediction(const char *norm);

/* Return TRUE when NORM carries contact data typical of a signature block: an e-mail
 * address, a web address, a phone number (seven digits or more) or " | " separators.
 * NORM is borrowed. */
gboolean quote_is_contact(const char *norm);

/* Check that every phrase in the tables of quote.c is written in quote_norm() form (a
 * phrase that is not can never match). Calls REPORT (may be NULL) with each offending
 * phrase, borrowed. Returns how many there are: 0 is right. For the unit tests. */
gsize quote_tables_check(void (*report)(const char *entry));

#endif
