/* html2text.c: the text a reader sees in an HTML mail, via libxml2's forgiving HTML
 * parser and one walk over the tree. Whitespace collapses as in a browser, block
 * elements start new lines (paragraphs, headings, lists and tables a blank line),
 * <br> breaks the line, list items get "- ", quotes get "> ", and links keep their
 * text plus " <url>" when the text does not already say it. */
#include "html2text.h"

#include <glib.h>
#include <libxml/HTMLparser.h>
#include <string.h>

/* Mail bodies larger than this are cut before parsing; the text of a 16 MiB HTML mail
 * is readable long before its end. */
#define H2T_MAX_INPUT (16u << 20)
/* Output is capped too: a crafted body must not turn into gigabytes of "- ". */
#define H2T_MAX_OUTPUT (16u << 20)
/* Deeper list nesting is not indented further. */
#define H2T_MAX_INDENT 8

typedef struct h2t {
  GString *out;
  gboolean space;        /* a collapsed blank is pending before the next word */
  unsigned newlines;     /* line breaks written since the last visible character */
  gboolean quoted_blank; /* the output ends in a blank line quoted with ">" ... */
  gsize quoted_blank_at; /* ... which starts here */
  int pre;               /* inside <pre>: keep whitespace */
  int quote;             /* <blockquote> depth: "> " per level at line start */
  int lists;             /* <ul>/<ol> depth */
  int skip_links;        /* inside an <a> that is inside another <a> */
  gsize link_start;      /* out->len when the current <a> started */
  char *link_href;       /* href of the current <a>, or NULL */
} h2t;

typedef enum { BLOCK_NONE = 0, BLOCK_LINE = 1, BLOCK_PARA = 2 } block_kind;

static const char *const dropped[] = {"script", "style", "head",   "title",  "template",
                                      "svg",    "math",  "object", "iframe", NULL};
static const char *const para_blocks[] = {"p",       "h1",     "h2",       "h3",         "h4",
                                          "h5",      "h6",     "table",    "pre",        "dl",
                                          "address", "figure", "fieldset", "blockquote", NULL};
static const char *const line_blocks[] = {
    "div",        "li",      "tr",      "dt",    "dd",   "section", "article", "header",
    "footer",     "nav",     "main",    "aside", "form", "center",  "caption", "hr",
    "figcaption", "details", "summary", "ul",    "ol",   "body",    "html",    NULL};

static gboolean
name_in(const xmlChar *name, const char *const *list)
{
  for (; *list; list++)
    if (g_ascii_strcasecmp((const char *)name, *list) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
is_name(const xmlChar *name, const char *want)
{
  return g_ascii_strcasecmp((const char *)name, want) == 0;
}

static gboolean
full(const h2t *h)
{
  return h->out->len >= H2T_MAX_OUTPUT;
}

static gboolean
at_line_start(const h2t *h)
{
  return h->out->len == 0 || h->newlines > 0;
}

/* Before the first character of a line: the quote marks. */
static void
line_prefix(h2t *h)
{
  for (int i = 0; i < h->quote; i++)
    g_string_append(h->out, "> ");
}

/* Write one line break; an empty line inside a quote still gets its ">". */
static void
newline(h2t *h)
{
  if (h->newlines > 0 && h->quote > 0) {
    h->quoted_blank = TRUE;
    h->quoted_blank_at = h->out->len;
    line_prefix(h);
  }
  g_string_append_c(h->out, '\n');
  h->newlines++;
}

/* Leaving a quote: a blank line at its end belongs to the outer level. */
static void
unquote_trailing_blank(h2t *h)
{
  if (!h->quoted_blank || h->newlines < 2)
    return;
  g_string_truncate(h->out, h->quoted_blank_at);
  h->quoted_blank = FALSE;
  if (h->quote > 0) {
    h->quoted_blank = TRUE;
    line_prefix(h);
  }
  g_string_append_c(h->out, '\n');
}

/* End the current line so that at least N newlines separate it from what follows. */
static void
block_break(h2t *h, unsigned n)
{
  if (n == 0)
    return;
  h->space = FALSE;
  if (h->out->len == 0 || full(h))
    return;
  while (h->newlines < n)
    newline(h);
}

/* Append visible, non-blank content, starting the line or the word as needed. */
static void
content(h2t *h, const char *s, gsize len)
{
  if (full(h))
    return;
  if (at_line_start(h))
    line_prefix(h);
  else if (h->space)
    g_string_append_c(h->out, ' ');
  h->space = FALSE;
  h->newlines = 0;
  h->quoted_blank = FALSE;
  g_string_append_len(h->out, s, (gssize)len);
}

/* Characters that take no room: zero-width spaces and joiners, BOM, soft hyphen. */
static gboolean
is_invisible(gunichar c)
{
  return c == 0x200B || c == 0x200C || c == 0x200D || c == 0x2060 || c == 0xFEFF || c == 0x00AD ||
         c == 0x034F;
}

static gboolean
is_blank(gunichar c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == 0x00A0 ||
         c == 0x2007 || c == 0x202F;
}

static void
text_node(h2t *h, const char *s)
{
  const char *p = s;
  while (*p && !full(h)) {
    gunichar c = g_utf8_get_char(p);
    const char *next = g_utf8_next_char(p);
    if (h->pre) {
      if (c == '\n') {
        newline(h);
      } else if (c != '\r') {
        if (at_line_start(h))
          line_prefix(h);
        h->newlines = 0;
        h->quoted_blank = FALSE;
        g_string_append_len(h->out, p, next - p);
      }
    } else if (is_blank(c)) {
      h->space = TRUE;
    } else if (!is_invisible(c)) {
      /* take the whole run of visible characters at once */
      const char *end = next;
      while (*end) {
        gunichar d = g_utf8_get_char(end);
        if (is_blank(d) || is_invisible(d))
          break;
        end = g_utf8_next_char(end);
      }
      content(h, p, (gsize)(end - p));
      next = end;
    }
    p = next;
  }
}

static block_kind
block_of(const xmlChar *name)
{
  if (name_in(name, para_blocks))
    return BLOCK_PARA;
  if (name_in(name, line_blocks))
    return BLOCK_LINE;
  return BLOCK_NONE;
}

/* Is TEXT (the link's visible text) just its URL HREF, with or without the scheme? */
static gboolean
text_is_url(const char *text, const char *href)
{
  if (strcmp(text, href) == 0)
    return TRUE;
  const char *bare = strstr(href, "://");
  bare = bare ? bare + 3 : href;
  size_t n = strlen(bare);
  if (n && bare[n - 1] == '/')
    n--;
  size_t t = strlen(text);
  if (t && text[t - 1] == '/')
    t--;
  return n == t && g_ascii_strncasecmp(text, bare, n) == 0;
}

/* Called when an element starts. Returns FALSE to skip its content. */
static gboolean
enter(h2t *h, xmlNode *n)
{
  if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
    if (n->content)
      text_node(h, (const char *)n->content);
    return FALSE;
  }
  if (n->type != XML_ELEMENT_NODE)
    return n->type == XML_DOCUMENT_NODE || n->type == XML_HTML_DOCUMENT_NODE;
  const xmlChar *name = n->name;
  if (!name || name_in(name, dropped))
    return FALSE;
  if (is_name(name, "br")) {
    if (!full(h))
      newline(h);
    h->space = FALSE;
    return FALSE;
  }
  block_break(h, block_of(name));
  if (is_name(name, "pre")) {
    h->pre++;
  } else if (is_name(name, "blockquote")) {
    h->quote++;
  } else if (is_name(name, "ul") || is_name(name, "ol")) {
    h->lists++;
  } else if (is_name(name, "li")) {
    int indent = h->lists > 1 ? MIN(h->lists - 1, H2T_MAX_INDENT) : 0;
    if (!full(h)) {
      line_prefix(h);
      for (int i = 0; i < indent; i++)
        g_string_append(h->out, "  ");
      g_string_append(h->out, "- ");
    }
    h->space = FALSE;
    h->newlines = 0;
    h->quoted_blank = FALSE;
  } else if (is_name(name, "a")) {
    if (h->link_href || h->skip_links) {
      h->skip_links++;
    } else {
      xmlChar *href = xmlGetProp(n, (const xmlChar *)"href");
      if (href && (g_str_has_prefix((const char *)href, "http://") ||
                   g_str_has_prefix((const char *)href, "https://")))
        h->link_href = g_strstrip(g_strdup((const char *)href));
      else
        h->skip_links++;
      xmlFree(href);
      h->link_start = h->out->len;
    }
  }
  return TRUE;
}

static void
leave(h2t *h, xmlNode *n)
{
  if (n->type != XML_ELEMENT_NODE || !n->name)
    return;
  const xmlChar *name = n->name;
  if (is_name(name, "pre")) {
    h->pre--;
  } else if (is_name(name, "blockquote")) {
    h->quote--;
    unquote_trailing_blank(h);
  } else if (is_name(name, "ul") || is_name(name, "ol")) {
    h->lists--;
  } else if (is_name(name, "td") || is_name(name, "th")) {
    h->space = TRUE;
  } else if (is_name(name, "a")) {
    if (h->skip_links) {
      h->skip_links--;
    } else if (h->link_href) {
      char *text = g_strstrip(g_strdup(h->out->str + MIN(h->link_start, h->out->len)));
      if (*text && !text_is_url(text, h->link_href) && *h->link_href) {
        h->space = FALSE;
        content(h, " <", 2);
        g_string_append(h->out, h->link_href);
        g_string_append_c(h->out, '>');
      }
      g_free(text);
      g_free(h->link_href);
      h->link_href = NULL;
    }
  }
  block_break(h, block_of(name));
}

/* Trailing blanks off every line, at most one blank line in a row, no blank lines or
 * blanks at either end. */
static char *
tidy(const GString *in)
{
  GString *out = g_string_sized_new(in->len + 1);
  unsigned newlines = 0;
  for (gsize i = 0; i < in->len; i++) {
    char c = in->str[i];
    if (c == '\n') {
      while (out->len && (out->str[out->len - 1] == ' ' || out->str[out->len - 1] == '\t'))
        g_string_truncate(out, out->len - 1);
      if (out->len && newlines < 2)
        g_string_append_c(out, '\n');
      newlines++;
      continue;
    }
    if (out->len == 0 && (c == ' ' || c == '\t'))
      continue;
    newlines = 0;
    g_string_append_c(out, c);
  }
  while (out->len && g_ascii_isspace(out->str[out->len - 1]))
    g_string_truncate(out, out->len - 1);
  return g_string_free(out, FALSE);
}

char *
html2text(const char *html, size_t len)
{
  if (!html || len == 0)
    return g_strdup("");
  if (len > H2T_MAX_INPUT) {
    const char *cut = g_utf8_find_prev_char(html, html + H2T_MAX_INPUT);
    len = cut ? (size_t)(cut - html) : H2T_MAX_INPUT;
  }
  htmlDocPtr doc = htmlReadMemory(html, (int)len, NULL, "UTF-8",
                                  HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                      HTML_PARSE_RECOVER | HTML_PARSE_COMPACT);
  if (!doc)
    return g_strdup("");

  h2t h = {0};
  h.out = g_string_sized_new(len / 2 + 16);
  xmlNode *n = doc->children;
  while (n) {
    gboolean descend = enter(&h, n);
    if (descend && n->children) {
      n = n->children;
      continue;
    }
    if (descend)
      leave(&h, n);
    while (n && !n->next) {
      n = n->parent;
      if (!n || n == (xmlNode *)doc) {
        n = NULL;
        break;
      }
      leave(&h, n);
    }
    if (n)
      n = n->next;
  }
  xmlFreeDoc(doc);
  g_free(h.link_href);

  char *text = tidy(h.out);
  g_string_free(h.out, TRUE);
  if (!g_utf8_validate(text, -1, NULL)) {
    char *valid = g_utf8_make_valid(text, -1);
    g_free(text);
    text = valid;
  }
  return text;
}
