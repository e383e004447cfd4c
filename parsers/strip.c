/* strip.c: reply stripping. What the sender newly wrote, without the quoted history,
 * the signature or the "Sent from my iPhone" footer.
 *
 * Plain text is read line by line, top to bottom:
 *   - "> " lines are quoted history and dropped; the lines between them are the
 *     customer's answers and kept in order (interleaved replies, bottom-posting);
 *   - an attribution line ("On ... wrote:", one line or wrapped over two) followed by
 *     quoted lines is dropped with them; one followed by unquoted text (clients that
 *     quote without "> ") ends the new text, as do "-----Original Message-----" and a
 *     quoted header block ("From:/Sent:/To:/Subject:" in any supported language);
 *   - then, at the end of what is left, the signature ("-- " and what follows), mobile
 *     footers, and a closing block ("Best regards," + name + contact data) go. A
 *     closing without contact data ("Thanks,\nJane") stays: it may be all the customer
 *     wrote, and only what is clearly a signature is removed.
 *
 * Forwards are not replies. A forward's new text is what was written above the
 * "---------- Forwarded message ---------" line (or an Outlook header block whose
 * subject starts with "FW:"), but the support team needs the forwarded mail itself (a
 * customer forwarding an invoice or an error message is asking about it), so the
 * forwarded content is kept whole below the cleaned-up new text.
 *
 * Stripping never returns nothing for a body that had text: when everything would go
 * (a reply with only a quote, only a signature), the whole body is returned, trimmed.
 *
 * HTML is stripped on libxml2's tree: the quote containers of Gmail, Outlook, Apple
 * Mail, Thunderbird and Yahoo are removed (or, for Outlook's reply header, everything
 * from it to the end), with the same forward rule, and the rest is serialized. */
#include "strip.h"

#include <libxml/HTMLparser.h>
#include <libxml/HTMLtree.h>
#include <libxml/xmlIO.h>
#include <limits.h>
#include <string.h>

#include "html2text.h"
#include "quote.h"

/* After "--" without the trailing space (clients that trim it) only this many lines
 * make a signature; more is text that happens to follow a dash line. "-- " with its
 * space is the standard delimiter and cuts whatever follows. */
#define SIG_MAX_LINES 15
/* A closing block: the closing line plus at most this many short lines. */
#define CLOSING_MAX_LINES 10
#define CLOSING_LINE_MAX_CHARS 100
/* Signature, closing and footer removals at the end of a body, at most. */
#define SIGNATURE_ROUNDS 4

/* ---------------------------------------------------------------------------------- */
/* Plain text                                                                          */

typedef struct text_line {
  char *text;        /* the line, trailing blanks trimmed (owned) */
  char *norm;        /* quote_norm(text) (owned) */
  gboolean quoted;   /* starts with ">" (after blanks) */
  gboolean sig_dash; /* was exactly "-- ", the standard signature delimiter */
} text_line;

typedef struct text_body {
  text_line *lines;
  char **norms; /* lines[i].norm, for quote_header_block() (borrowed) */
  gsize n;
} text_body;

static void
text_body_free(text_body *b)
{
  for (gsize i = 0; i < b->n; i++) {
    g_free(b->lines[i].text);
    g_free(b->lines[i].norm);
  }
  g_free(b->lines);
  g_free(b->norms);
}

/* Return the length of S (LEN bytes) without its trailing white space, Unicode
 * included (a no-break space at the end of a line is as invisible as a space). */
static gsize
trim_end(const char *s, gsize len)
{
  while (len > 0) {
    const char *prev = g_utf8_find_prev_char(s, s + len);
    if (!prev || !g_unichar_isspace(g_utf8_get_char(prev)))
      break;
    len = (gsize)(prev - s);
  }
  return len;
}

/* Split TEXT (valid UTF-8) into *B: CRLF and a lone CR end a line like LF. */
static void
text_body_split(const char *text, text_body *b)
{
  gsize count = 1;
  for (const char *p = text; *p; p++)
    if (*p == '\n' || (*p == '\r' && p[1] != '\n'))
      count++;
  b->lines = g_new0(text_line, count);
  b->norms = g_new0(char *, count);
  b->n = 0;

  const char *p = text;
  for (;;) {
    const char *eol = p + strcspn(p, "\r\n");
    text_line *l = &b->lines[b->n];
    l->text = g_strndup(p, trim_end(p, (gsize)(eol - p)));
    l->norm = quote_norm(l->text, -1);
    l->quoted = l->norm[0] == '>';
    l->sig_dash = eol - p == 3 && memcmp(p, "-- ", 3) == 0;
    b->norms[b->n++] = l->norm;
    if (*eol == '\0')
      break;
    p = eol + ((eol[0] == '\r' && eol[1] == '\n') ? 2 : 1);
  }
}

static gboolean
is_blank(const text_line *l)
{
  return l == NULL || l->norm[0] == '\0';
}

/* Index of the first non-blank line at or after I (B->n when none). */
static gsize
next_nonblank(const text_body *b, gsize i)
{
  while (i < b->n && is_blank(&b->lines[i]))
    i++;
  return i;
}

/* Return how many lines (1 or 2) the anchored attribution that starts at line I spans,
 * or 0. */
static gsize
attribution_at(const text_body *b, gsize i)
{
  const text_line *l = &b->lines[i];
  if (quote_is_attribution(l->norm, FALSE))
    return 1;
  if (i + 1 >= b->n)
    return 0;
  const text_line *next = &b->lines[i + 1];
  if (is_blank(next) || next->quoted || quote_is_attribution(next->norm, FALSE))
    return 0;
  /* A sentence ends before a line break; a wrapped attribution does not. */
  size_t len = strlen(l->norm);
  if (strchr(".?!", l->norm[len - 1]))
    return 0;
  /* Wrapped attributions are only trusted in their anchored form, so that the loose
   * endings cannot swallow the customer's line above a quote. */
  char *joined = g_strconcat(l->norm, " ", next->norm, NULL);
  gboolean hit = quote_is_attribution(joined, FALSE);
  g_free(joined);
  return hit ? 2 : 0;
}

/* The lines kept from a body: borrowed text_line pointers, NULL for a blank line put
 * where quoted lines were removed. */
typedef struct kept_text {
  GPtrArray *lines;
  gsize forward_at; /* first line of forwarded content, or (gsize)-1 */
} kept_text;

static void
drop_trailing_blanks(GPtrArray *kept)
{
  while (kept->len > 0 && is_blank(kept->pdata[kept->len - 1]))
    g_ptr_array_set_size(kept, kept->len - 1);
}

static void
keep_line(GPtrArray *kept, text_line *l, gboolean *dropped)
{
  if (*dropped && !is_blank(l)) {
    /* Where quoted lines went, exactly one blank line separates the answers. */
    drop_trailing_blanks(kept);
    if (kept->len > 0)
      g_ptr_array_add(kept, NULL);
    *dropped = FALSE;
  }
  g_ptr_array_add(kept, l);
}

/* Scan B top to bottom and keep what the sender wrote, dropping quotes (see the top of
 * this file). Sets KEPT->forward_at when forwarded content starts. */
static void
scan_text(const text_body *b, kept_text *kept)
{
  gboolean dropped = FALSE;

  kept->lines = g_ptr_array_new();
  kept->forward_at = (gsize)-1;
  for (gsize i = 0; i < b->n; i++) {
    text_line *l = &b->lines[i];
    gboolean forward = FALSE;

    if (l->quoted) {
      dropped = TRUE;
      continue;
    }
    if (is_blank(l)) {
      g_ptr_array_add(kept->lines, l);
      continue;
    }
    if (quote_is_forward_marker(l->norm)) {
      kept->forward_at = i;
      return;
    }
    gboolean separator = quote_is_separator(l->norm);
    if (separator || quote_is_rule(l->norm)) {
      /* "-----Original Message-----" ends the new text on its own; Outlook's rule of
       * underscores only when a header block follows it. */
      gsize block = quote_header_block(b->norms, b->n, next_nonblank(b, i + 1), &forward);
      if (block && forward)
        kept->forward_at = i;
      if (block || separator)
        return;
      keep_line(kept->lines, l, &dropped);
      continue;
    }
    if (quote_header_block(b->norms, b->n, i, &forward)) {
      if (forward)
        kept->forward_at = i;
      return;
    }
    gsize span = attribution_at(b, i);
    gsize after = next_nonblank(b, i + (span ? span : 1));
    gboolean quote_follows = after < b->n && b->lines[after].quoted;
    if (!span && quote_follows && quote_is_attribution(l->norm, TRUE))
      span = 1;
    if (span && quote_follows) {
      dropped = TRUE;
      i += span - 1;
      continue;
    }
    if (span)
      return; /* the history follows, quoted without "> " */
    keep_line(kept->lines, l, &dropped);
  }
}

/* Remove, at the end of KEPT, what is clearly not the sender's own words: the
 * signature after "-- ", mobile footers, and a closing block with contact data. Each
 * round removes one of them; a few rounds cover "signature, then footer" and the like,
 * and the bound keeps a body of a thousand footers linear. */
static void
drop_signature(GPtrArray *kept)
{
  for (int round = 0; round < SIGNATURE_ROUNDS; round++) {
    drop_trailing_blanks(kept);
    if (kept->len == 0)
      return;

    text_line *last = kept->pdata[kept->len - 1];
    if (quote_is_mobile_footer(last->norm)) {
      g_ptr_array_set_size(kept, kept->len - 1);
      continue;
    }

    gsize cut = kept->len;
    for (gsize k = 1; k < kept->len && cut == kept->len; k++) {
      text_line *l = kept->pdata[k];
      if (is_blank(l) || (strcmp(l->text, "--") != 0 && !l->sig_dash))
        continue;
      if (l->sig_dash || kept->len - k - 1 <= SIG_MAX_LINES)
        cut = k;
    }
    if (cut < kept->len) {
      g_ptr_array_set_size(kept, cut);
      continue;
    }

    /* A closing line that opens a paragraph, then a few short lines with contact data
     * ("Best regards,\nJane Doe\nExample Corp | +1 555 0100"). */
    for (gsize k = kept->len - 1; k >= 1 && cut == kept->len; k--) {
      text_line *l = kept->pdata[k];
      if (is_blank(l) || !is_blank(kept->pdata[k - 1]) || !quote_is_valediction(l->norm))
        continue;
      gsize lines = 0;
      gboolean contact = FALSE, short_lines = TRUE;
      for (gsize j = k + 1; j < kept->len; j++) {
        text_line *t = kept->pdata[j];
        if (is_blank(t))
          continue;
        lines++;
        contact = contact || quote_is_contact(t->norm);
        short_lines = short_lines && g_utf8_strlen(t->text, -1) <= CLOSING_LINE_MAX_CHARS;
      }
      if (lines >= 1 && lines <= CLOSING_MAX_LINES && contact && short_lines)
        cut = k;
      break; /* only the last closing line counts */
    }
    if (cut < kept->len) {
      g_ptr_array_set_size(kept, cut);
      continue;
    }
    return;
  }
  drop_trailing_blanks(kept);
}

/* Append LINES (borrowed text_line pointers, NULL as blank) to OUT, one per line, without
 * leading or trailing blank lines. */
static void
append_lines(GString *out, GPtrArray *lines)
{
  gsize first = 0, end = lines->len;
  while (first < end && is_blank(lines->pdata[first]))
    first++;
  while (end > first && is_blank(lines->pdata[end - 1]))
    end--;
  for (gsize k = first; k < end; k++) {
    const text_line *l = lines->pdata[k];
    if (k > first)
      g_string_append_c(out, '\n');
    if (l)
      g_string_append(out, l->text);
  }
}

char *
strip_text(const char *text)
{
  text_body b = {0};
  kept_text kept = {0};
  GPtrArray *forwarded = NULL;
  GString *out = NULL;

  if (!text)
    return g_strdup("");
  char *valid = g_utf8_make_valid(text, -1);
  /* A byte-order mark is no text; some clients put one before the body. */
  text_body_split(g_str_has_prefix(valid, "\xef\xbb\xbf") ? valid + 3 : valid, &b);
  g_free(valid);

  scan_text(&b, &kept);
  drop_signature(kept.lines);

  out = g_string_new(NULL);
  append_lines(out, kept.lines);
  if (kept.forward_at != (gsize)-1) {
    forwarded = g_ptr_array_new();
    for (gsize i = kept.forward_at; i < b.n; i++)
      g_ptr_array_add(forwarded, &b.lines[i]);
    if (out->len > 0)
      g_string_append(out, "\n\n");
    append_lines(out, forwarded);
  }
  if (out->len == 0) {
    /* Everything would go: the original, trimmed, is better than nothing. */
    GPtrArray *all = g_ptr_array_new();
    for (gsize i = 0; i < b.n; i++)
      g_ptr_array_add(all, &b.lines[i]);
    append_lines(out, all);
    g_ptr_array_free(all, TRUE);
  }

  if (forwarded)
    g_ptr_array_free(forwarded, TRUE);
  g_ptr_array_free(kept.lines, TRUE);
  text_body_free(&b);
  return g_string_free(out, FALSE);
}

/* ---------------------------------------------------------------------------------- */
/* HTML                                                                                */

/* The body is UTF-8 already (the MIME parser converted it), so a stale <meta charset>
 * must not make libxml2 decode it again; and no DOCTYPE is invented, since one would
 * change how the stripped copy renders. */
#define STRIP_HTML_OPTIONS                                                                         \
  (HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER |             \
   HTML_PARSE_NODEFDTD | HTML_PARSE_IGNORE_ENC)

/* How much text is read to classify a quote container or an attribution. */
#define PEEK_BYTES 2000
#define ATTRIBUTION_PEEK_BYTES 500
/* Text nesting deeper than this is not looked into when classifying. */
#define PEEK_MAX_DEPTH 64
/* Mobile footers removed from the end of a stripped HTML body, at most. */
#define HTML_FOOTERS_MAX 3

static gboolean
is_element(xmlNodePtr n, const char *name)
{
  return n && n->type == XML_ELEMENT_NODE && n->name &&
         g_ascii_strcasecmp((const char *)n->name, name) == 0;
}

static gboolean
is_element_in(xmlNodePtr n, const char *const *names)
{
  for (size_t i = 0; names[i]; i++)
    if (is_element(n, names[i]))
      return TRUE;
  return FALSE;
}

static const char *const block_names[] = {
    "p",      "div",    "br",   "li", "tr",    "h1",         "h2",  "h3",     "h4",      "h5",
    "h6",     "hr",     "ul",   "ol", "table", "blockquote", "pre", "center", "section", "article",
    "header", "footer", "body", "td", "dl",    "dt",         "dd",  NULL,
};

static const char *const skipped_names[] = {"head", "script", "style", "title", "template", NULL};

static gboolean
is_block(xmlNodePtr n)
{
  return is_element_in(n, block_names);
}

static gboolean
is_skipped(xmlNodePtr n)
{
  return is_element_in(n, skipped_names);
}

/* Return attribute NAME of N as a new string (g_free), or NULL. */
static char *
attr_dup(xmlNodePtr n, const char *name)
{
  if (n->type != XML_ELEMENT_NODE)
    return NULL;
  xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
  char *copy = v ? g_strdup((const char *)v) : NULL;
  xmlFree(v);
  return copy;
}

static gboolean
attr_is(xmlNodePtr n, const char *name, const char *value)
{
  char *v = attr_dup(n, name);
  gboolean hit = v && g_ascii_strcasecmp(g_strstrip(v), value) == 0;
  g_free(v);
  return hit;
}

/* TRUE when the whitespace-separated attribute NAME of N holds TOKEN ("class"). */
static gboolean
attr_has_token(xmlNodePtr n, const char *name, const char *token)
{
  char *v = attr_dup(n, name);
  gboolean hit = FALSE;
  if (v) {
    char **tokens = g_strsplit_set(v, " \t\r\n", -1);
    for (size_t i = 0; tokens[i] && !hit; i++)
      hit = g_ascii_strcasecmp(tokens[i], token) == 0;
    g_strfreev(tokens);
  }
  g_free(v);
  return hit;
}

static gboolean
is_text(xmlNodePtr n)
{
  return n && (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE);
}

static gboolean
is_blank_text(xmlNodePtr n)
{
  if (!is_text(n))
    return FALSE;
  for (const char *p = (const char *)n->content; p && *p; p = g_utf8_next_char(p))
    if (!g_unichar_isspace(g_utf8_get_char(p)))
      return FALSE;
  return TRUE;
}

/* The next node after N in document order, entering N's children when DESCEND;
 * NULL after the last one. */
static xmlNodePtr
doc_next(xmlNodePtr n, gboolean descend)
{
  if (descend && n->type == XML_ELEMENT_NODE && n->children && !is_skipped(n))
    return n->children;
  for (; n; n = n->parent)
    if (n->next)
      return n->next;
  return NULL;
}

/* End the current line of OUT, once: where blocks meet there is one line break, so a
 * header block made of <div>s or <br>s reads as consecutive lines. */
static void
line_break(GString *out)
{
  if (out->len > 0 && out->str[out->len - 1] != '\n')
    g_string_append_c(out, '\n');
}

/* Append the text of N's subtree to OUT as a reader sees it: source line breaks are
 * blanks, block elements and <br> are line breaks. */
static void
gather_text(xmlNodePtr n, GString *out, gsize max, int depth)
{
  if (out->len >= max || depth > PEEK_MAX_DEPTH)
    return;
  if (is_text(n) && n->content) {
    for (const char *p = (const char *)n->content; *p && out->len < max; p++)
      g_string_append_c(out, (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p);
    return;
  }
  if (n->type != XML_ELEMENT_NODE || is_skipped(n))
    return;
  if (is_block(n))
    line_break(out);
  for (xmlNodePtr c = n->children; c; c = c->next)
    gather_text(c, out, max, depth + 1);
  if (is_block(n))
    line_break(out);
}

/* The text of N's subtree (new string, valid UTF-8, at most about MAX bytes). */
static char *
node_text(xmlNodePtr n, gsize max)
{
  GString *out = g_string_new(NULL);
  gather_text(n, out, max, 0);
  char *s = g_utf8_make_valid(out->str, (gssize)out->len);
  g_string_free(out, TRUE);
  return s;
}

/* The text from N to the end of the document (new string, at most about MAX bytes). */
static char *
text_from(xmlNodePtr n, gsize max)
{
  GString *out = g_string_new(NULL);
  while (n && out->len < max) {
    gather_text(n, out, max, 0);
    while (n && !n->next) {
      n = n->parent;
      if (n && is_block(n))
        line_break(out);
    }
    if (n)
      n = n->next;
  }
  char *s = g_utf8_make_valid(out->str, (gssize)out->len);
  g_string_free(out, TRUE);
  return s;
}

/* Split TEXT into normalized lines (new vector, g_strfreev) and count them. */
static char **
norm_lines(const char *text, gsize *n_out)
{
  char **lines = g_strsplit(text, "\n", -1);
  gsize n = 0;
  for (; lines[n]; n++) {
    char *norm = quote_norm(lines[n], -1);
    g_free(lines[n]);
    lines[n] = norm;
  }
  *n_out = n;
  return lines;
}

/* TRUE when TEXT (the start of a quote container, or what follows a separator) is
 * forwarded content: a forward marker, or a header block whose subject starts "FW:". */
static gboolean
is_forward_text(const char *text)
{
  gsize n, i = 0;
  gboolean forward = FALSE;
  char **lines = norm_lines(text, &n);

  while (i < n && lines[i][0] == '\0')
    i++;
  if (i < n && quote_is_forward_marker(lines[i])) {
    forward = TRUE;
  } else {
    if (i < n && (quote_is_separator(lines[i]) || quote_is_rule(lines[i])))
      for (i++; i < n && lines[i][0] == '\0'; i++)
        ;
    gsize block = quote_header_block(lines, n, i, &forward);
    forward = block && forward;
  }
  g_strfreev(lines);
  return forward;
}

/* TRUE when TEXT begins with a quoted header block ("From: ... Sent: ..."), possibly
 * after a separator line. */
static gboolean
starts_header_block(const char *text)
{
  gsize n, i = 0;
  char **lines = norm_lines(text, &n);
  while (i < n && lines[i][0] == '\0')
    i++;
  if (i < n && (quote_is_separator(lines[i]) || quote_is_rule(lines[i])))
    for (i++; i < n && lines[i][0] == '\0'; i++)
      ;
  gboolean hit = quote_header_block(lines, n, i, NULL) > 0;
  g_strfreev(lines);
  return hit;
}

/* TRUE when TEXT is an attribution on one line or wrapped over two (LOOSE as in
 * quote_is_attribution()): its non-blank lines, joined. */
static gboolean
is_attribution_text(const char *text, gboolean loose)
{
  gsize n, used = 0;
  char **lines = norm_lines(text, &n);
  GString *joined = g_string_new(NULL);
  for (gsize i = 0; i < n; i++) {
    if (lines[i][0] == '\0')
      continue;
    if (joined->len)
      g_string_append_c(joined, ' ');
    g_string_append(joined, lines[i]);
    used++;
  }
  gboolean hit = used >= 1 && used <= 2 && quote_is_attribution(joined->str, loose);
  g_string_free(joined, TRUE);
  g_strfreev(lines);
  return hit;
}

/* Attributions and header labels end in a colon, ASCII or full-width. */
static gboolean
has_colon(const char *s)
{
  return strchr(s, ':') || strstr(s, "\xef\xbc\x9a");
}

static void
remove_node(xmlNodePtr n)
{
  xmlUnlinkNode(n);
  xmlFreeNode(n);
}

/* Remove N and everything after it in the document, and the rule (<hr>) and blank
 * lines right above it (Outlook puts an <hr> over its reply header). */
static void
cut_from(xmlNodePtr n)
{
  for (xmlNodePtr p = n->prev;
       p && (is_blank_text(p) || is_element(p, "br") || is_element(p, "hr"));) {
    xmlNodePtr prev = p->prev;
    gboolean hr = is_element(p, "hr");
    remove_node(p);
    p = hr ? NULL : prev;
  }
  for (xmlNodePtr a = n; a && a->type != XML_DOCUMENT_NODE && a->type != XML_HTML_DOCUMENT_NODE;
       a = a->parent)
    while (a->next)
      remove_node(a->next);
  remove_node(n);
}

static const char *const inline_names[] = {"a",    "span", "b",     "strong", "i", "em",
                                           "font", "u",    "small", "o:p",    NULL};

/* Find the attribution written just before the node BEFORE: a block of its own
 * ("<div>On ... wrote:</div>"), or a run of inline nodes after a <br> ("Thanks!<br>On
 * ... <a>jane@example.org</a> wrote:<br>"), also at the end of a block before it.
 * Returns TRUE when there is one, and unless DRY_RUN removes it. */
static gboolean
remove_attribution_before(xmlNodePtr before, gboolean dry_run)
{
  xmlNodePtr p = before->prev;
  while (p && (is_blank_text(p) || is_element(p, "br")))
    p = p->prev;
  if (!p)
    return FALSE;

  if (p->type == XML_ELEMENT_NODE && !is_element_in(p, inline_names)) {
    char *text = node_text(p, ATTRIBUTION_PEEK_BYTES);
    gboolean whole = strlen(text) < ATTRIBUTION_PEEK_BYTES && is_attribution_text(text, TRUE);
    g_free(text);
    if (whole && !dry_run) {
      while (before->prev != p)
        remove_node(before->prev);
      remove_node(p);
    }
    if (whole || !p->last)
      return whole;
    /* "<div>Thanks!<br><br>On ... wrote:<br></div><blockquote>": the end of the block. */
    p = p->last;
    while (p && (is_blank_text(p) || is_element(p, "br")))
      p = p->prev;
    if (!p)
      return FALSE;
  }

  xmlNodePtr first = p;
  while (first->prev && (is_text(first->prev) || is_element_in(first->prev, inline_names)))
    first = first->prev;
  GString *run = g_string_new(NULL);
  for (xmlNodePtr r = first;; r = r->next) {
    gather_text(r, run, ATTRIBUTION_PEEK_BYTES, 0);
    if (r == p)
      break;
  }
  char *text = g_utf8_make_valid(run->str, (gssize)run->len);
  g_string_free(run, TRUE);
  gboolean hit = strlen(text) < ATTRIBUTION_PEEK_BYTES && is_attribution_text(text, TRUE);
  g_free(text);
  if (!hit || dry_run)
    return hit;
  for (xmlNodePtr r = first;;) {
    xmlNodePtr next = r->next;
    gboolean last = r == p;
    remove_node(r);
    if (last)
      break;
    r = next;
  }
  return TRUE;
}

/* TRUE when the first thing after N with text in it is a <blockquote>. */
static gboolean
blockquote_follows(xmlNodePtr n)
{
  for (xmlNodePtr f = doc_next(n, FALSE); f; f = doc_next(f, TRUE)) {
    if (is_element(f, "blockquote"))
      return TRUE;
    if (is_text(f) && !is_blank_text(f))
      return FALSE;
    if (is_element(f, "img"))
      return FALSE;
  }
  return FALSE;
}

/* Outlook desktop's reply header: <div style="border:none;border-top:solid #E1E1E1
 * 1.0pt;padding:3.0pt 0cm 0cm 0cm"> (#B5C4DF before Outlook 2013), holding "From: ...". */
static gboolean
is_outlook_border(xmlNodePtr n)
{
  if (!is_element(n, "div"))
    return FALSE;
  char *style = attr_dup(n, "style");
  if (!style)
    return FALSE;
  GString *flat = g_string_new(NULL);
  for (const char *p = style; *p; p++)
    if (!g_ascii_isspace(*p))
      g_string_append_c(flat, g_ascii_tolower(*p));
  g_free(style);
  gboolean hit = FALSE;
  if (strstr(flat->str, "border-top:solid")) {
    if (strstr(flat->str, "#e1e1e1") || strstr(flat->str, "#b5c4df")) {
      hit = TRUE;
    } else {
      char *text = node_text(n, PEEK_BYTES);
      hit = starts_header_block(text);
      g_free(text);
    }
  }
  g_string_free(flat, TRUE);
  return hit;
}

/* TRUE when N has visible text outside its blockquotes and Gmail attribution. */
static gboolean
has_own_text(xmlNodePtr n, int depth)
{
  if (depth > PEEK_MAX_DEPTH)
    return FALSE;
  for (xmlNodePtr c = n->children; c; c = c->next) {
    if (is_text(c) && !is_blank_text(c))
      return TRUE;
    if (c->type != XML_ELEMENT_NODE || is_skipped(c) || is_element(c, "blockquote") ||
        attr_has_token(c, "class", "gmail_attr"))
      continue;
    if (has_own_text(c, depth + 1))
      return TRUE;
  }
  return FALSE;
}

typedef enum html_action {
  HTML_KEEP = 0, /* look inside */
  HTML_REMOVE,   /* remove this subtree (a quote, a signature) and go on */
  HTML_CUT,      /* remove this and everything after it: the rest is history */
  HTML_STOP      /* forwarded content starts: keep the rest whole */
} html_action;

/* A quote container: REMOVE, or STOP when it holds forwarded content. */
static html_action
quote_or_forward(xmlNodePtr n, html_action quote)
{
  char *text = node_text(n, PEEK_BYTES);
  gboolean forward = is_forward_text(text);
  g_free(text);
  return forward ? HTML_STOP : quote;
}

static html_action
classify_element(xmlNodePtr n)
{
  char *id = attr_dup(n, "id");
  html_action act = HTML_KEEP;

  /* Signatures the client marked as such. */
  if (attr_has_token(n, "class", "gmail_signature") ||
      attr_has_token(n, "class", "gmail_signature_prefix") ||
      attr_has_token(n, "class", "moz-signature") ||
      (id && (g_ascii_strcasecmp(id, "Signature") == 0 ||
              g_ascii_strcasecmp(id, "ms-outlook-mobile-signature") == 0))) {
    act = HTML_REMOVE;
    goto done;
  }
  /* Gmail puts inline answers inside its quote container, between the quoted
   * blockquotes: then only the attribution and the blockquotes go. */
  if (attr_has_token(n, "class", "gmail_quote") && !is_element(n, "blockquote") &&
      has_own_text(n, 0))
    goto done;
  /* Quotes that can sit between the customer's answers. */
  if (attr_has_token(n, "class", "gmail_attr") || attr_has_token(n, "class", "gmail_quote") ||
      attr_has_token(n, "class", "yahoo_quoted") || (id && g_str_has_prefix(id, "yahoo_quoted")) ||
      attr_has_token(n, "class", "moz-cite-prefix") ||
      (is_element(n, "blockquote") && attr_is(n, "type", "cite"))) {
    act = quote_or_forward(n, HTML_REMOVE);
    goto done;
  }
  /* Outlook's reply header: everything from here on is history. */
  if ((id && (strcmp(id, "divRplyFwdMsg") == 0 || g_str_has_suffix(id, "_divRplyFwdMsg"))) ||
      attr_has_token(n, "class", "OutlookMessageHeader") || is_outlook_border(n)) {
    act = quote_or_forward(n, HTML_CUT);
    goto done;
  }
  /* A plain <blockquote> is a quote only under an attribution ("On ... wrote:"). */
  if (is_element(n, "blockquote")) {
    if (remove_attribution_before(n, TRUE))
      act = HTML_REMOVE;
    goto done;
  }
  /* "<div>On ... wrote:</div>" over unquoted history (clients without a quote class). */
  if (is_element(n, "div") || is_element(n, "p")) {
    char *text = node_text(n, ATTRIBUTION_PEEK_BYTES);
    if (strlen(text) < ATTRIBUTION_PEEK_BYTES && has_colon(text) &&
        is_attribution_text(text, FALSE) && !blockquote_follows(n))
      act = HTML_CUT;
    g_free(text);
  }

done:
  g_free(id);
  return act;
}

static html_action
classify_text(xmlNodePtr n)
{
  if (!n->content || strlen((const char *)n->content) > ATTRIBUTION_PEEK_BYTES)
    return HTML_KEEP;
  if (!has_colon((const char *)n->content) && !strchr((const char *)n->content, '-'))
    return HTML_KEEP; /* no marker, label or attribution: the common case, made cheap */
  html_action act = HTML_KEEP;
  char *norm = quote_norm((const char *)n->content, -1);
  if (quote_is_forward_marker(norm)) {
    act = HTML_STOP;
  } else if (quote_is_separator(norm) || quote_header_field(norm, NULL) == QUOTE_FIELD_FROM) {
    char *text = text_from(n, PEEK_BYTES);
    if (is_forward_text(text))
      act = HTML_STOP;
    else if (quote_is_separator(norm) || starts_header_block(text))
      act = HTML_CUT;
    g_free(text);
  } else if (quote_is_attribution(norm, FALSE) && !blockquote_follows(n)) {
    act = HTML_CUT;
  }
  g_free(norm);
  return act;
}

/* Where a text-level cut starts: "<b>From:</b> ..." is cut from the <b>, not from the
 * text inside it, so no empty <b> is left behind. */
static xmlNodePtr
cut_point(xmlNodePtr n)
{
  while (n->parent && is_element_in(n->parent, inline_names) && n->prev == NULL)
    n = n->parent;
  return n;
}

/* Remove the quoted history from DOC. Returns TRUE when something was removed. */
static gboolean
strip_tree(xmlDocPtr doc)
{
  gboolean changed = FALSE;
  xmlNodePtr n = xmlDocGetRootElement(doc);

  while (n) {
    html_action act = HTML_KEEP;
    if (n->type == XML_ELEMENT_NODE && !is_skipped(n))
      act = classify_element(n);
    else if (is_text(n))
      act = classify_text(n);

    if (act == HTML_STOP)
      break;
    if (act == HTML_CUT) {
      cut_from(is_text(n) ? cut_point(n) : n);
      changed = TRUE;
      break;
    }
    if (act == HTML_REMOVE) {
      xmlNodePtr next = doc_next(n, FALSE);
      if (is_element(n, "blockquote"))
        remove_attribution_before(n, FALSE);
      remove_node(n);
      changed = TRUE;
      n = next;
      continue;
    }
    n = doc_next(n, TRUE);
  }
  return changed;
}

/* The last text node with visible text in DOC, or NULL. */
static xmlNodePtr
last_visible_text(xmlDocPtr doc)
{
  xmlNodePtr last = NULL;
  for (xmlNodePtr n = xmlDocGetRootElement(doc); n; n = doc_next(n, TRUE))
    if (is_text(n) && !is_blank_text(n))
      last = n;
  return last;
}

/* Remove "Sent from my iPhone" and the like from the end of DOC: the block around the
 * last text, when all of that block's text is a footer. Returns TRUE when it did. */
static gboolean
drop_html_footers(xmlDocPtr doc)
{
  gboolean changed = FALSE;
  for (int round = 0; round < HTML_FOOTERS_MAX; round++) {
    xmlNodePtr t = last_visible_text(doc);
    if (!t)
      break;
    xmlNodePtr block = t;
    while (block->parent && block->parent->type == XML_ELEMENT_NODE && !is_block(block) &&
           !is_element(block->parent, "body"))
      block = block->parent;
    char *text = node_text(block, ATTRIBUTION_PEEK_BYTES);
    char *norm = quote_norm(text, -1);
    gboolean footer = quote_is_mobile_footer(norm);
    g_free(text);
    g_free(norm);
    if (!footer || is_element(block, "body") || is_element(block, "html"))
      break;
    remove_node(block);
    changed = TRUE;
  }
  return changed;
}

/* TRUE when DOC still shows something: text or an image. */
static gboolean
has_content(xmlDocPtr doc)
{
  for (xmlNodePtr n = xmlDocGetRootElement(doc); n; n = doc_next(n, TRUE))
    if ((is_text(n) && !is_blank_text(n)) || is_element(n, "img"))
      return TRUE;
  return FALSE;
}

/* libxml2 drops namespace prefixes from HTML tag names, so Word's empty paragraph
 * marks, <o:p>&nbsp;</o:p>, come back as <p> inside <p>, which a browser renders as
 * extra empty paragraphs. Its parser never nests a real <p> directly in a <p>, so an
 * empty or blank <p> under a <p> is one of those: give it its name back. */
static void
restore_office_p(xmlDocPtr doc)
{
  for (xmlNodePtr n = xmlDocGetRootElement(doc); n; n = doc_next(n, TRUE)) {
    if (!is_element(n, "p"))
      continue;
    gboolean nested = FALSE;
    for (xmlNodePtr a = n->parent; a && !nested; a = a->parent)
      nested = is_element(a, "p");
    gboolean blank = TRUE;
    for (xmlNodePtr c = n->children; c && blank; c = c->next)
      blank = is_blank_text(c);
    if (nested && blank)
      xmlNodeSetName(n, (const xmlChar *)"o:p");
  }
}

/* A <meta> naming the charset the mail was sent in would lie about the UTF-8 we
 * write: make every charset declaration say UTF-8 (none is added). */
static void
fix_meta_charset(xmlDocPtr doc)
{
  xmlNodePtr root = xmlDocGetRootElement(doc), head = root ? root->children : NULL;
  while (head && !is_element(head, "head"))
    head = head->next;
  for (xmlNodePtr n = head ? head->children : NULL; n; n = n->next) {
    if (!is_element(n, "meta"))
      continue;
    if (xmlHasProp(n, (const xmlChar *)"charset"))
      xmlSetProp(n, (const xmlChar *)"charset", (const xmlChar *)"UTF-8");
    if (attr_is(n, "http-equiv", "content-type"))
      xmlSetProp(n, (const xmlChar *)"content", (const xmlChar *)"text/html; charset=UTF-8");
  }
}

/* Serialize DOC as UTF-8 HTML. Returns a new string (g_free), or NULL on failure. An
 * output buffer without an encoder holds libxml2's own UTF-8, with only markup
 * characters escaped (htmlDocDumpMemory would pick the document's <meta> charset or
 * turn every non-ASCII character into an entity). */
static char *
html_serialize(xmlDocPtr doc)
{
  char *out = NULL;
  fix_meta_charset(doc);
  restore_office_p(doc);
  xmlOutputBufferPtr buf = xmlAllocOutputBuffer(NULL);
  if (!buf)
    return NULL;
  htmlDocContentDumpFormatOutput(buf, doc, "UTF-8", 0);
  if (xmlOutputBufferFlush(buf) >= 0) {
    const xmlChar *content = xmlOutputBufferGetContent(buf);
    size_t size = xmlOutputBufferGetSize(buf);
    if (content)
      out = g_utf8_make_valid((const char *)content, (gssize)size);
  }
  xmlOutputBufferClose(buf);
  return out;
}

char *
strip_html(const char *html)
{
  htmlDocPtr doc = NULL;
  char *out = NULL;

  if (!html || !*html)
    return NULL;
  size_t len = strlen(html);
  if (len > INT_MAX)
    return NULL;
  doc = htmlReadMemory(html, (int)len, NULL, "UTF-8", STRIP_HTML_OPTIONS);
  if (!doc || !xmlDocGetRootElement(doc))
    goto done;
  gboolean changed = strip_tree(doc);
  changed = drop_html_footers(doc) || changed;
  if (!changed || !has_content(doc))
    goto done; /* nothing to strip, or nothing would be left */
  out = html_serialize(doc);

done:
  if (doc)
    xmlFreeDoc(doc);
  return out;
}

/* ---------------------------------------------------------------------------------- */

void
strip_message(ib_message *msg)
{
  if (msg->html) {
    msg->stripped_html = strip_html(msg->html);
    if (!msg->stripped_html)
      msg->stripped_html = g_strdup(msg->html);
  }
  if (msg->text) {
    msg->stripped_text = strip_text(msg->text);
  } else if (msg->html) {
    /* No text part: read the stripped HTML, then strip what only text shows (the
     * signature delimiter, footers the HTML did not mark). */
    char *text = html2text(msg->stripped_html, strlen(msg->stripped_html));
    msg->stripped_text = strip_text(text);
    g_free(text);
  }
}
