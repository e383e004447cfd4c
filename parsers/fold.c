#include "fold.h"

#include <glib.h>
#include <string.h>

static const struct {
  gunichar from;
  const char *to;
} letters[] = {
    {0x0131, "i"},                  /* ı dotless i */
    {0x0130, "i"},                  /* İ */
    {0x00DF, "ss"},                 /* ß */
    {0x1E9E, "ss"},                 /* ẞ */
    {0x00E6, "ae"},                 /* æ */
    {0x00C6, "ae"}, {0x0153, "oe"}, /* œ */
    {0x0152, "oe"}, {0x00F8, "o"},  /* ø */
    {0x00D8, "o"},  {0x0142, "l"},  /* ł */
    {0x0141, "l"},  {0x0111, "d"},  /* đ */
    {0x0110, "d"},  {0x00F0, "d"},  /* ð */
    {0x00FE, "th"},                 /* þ */
    {0x00DE, "th"},
};

char *
fold_ascii_lower(const char *s, size_t len)
{
  /* A plain loop the compiler vectorizes: g_ascii_strdown calls a function per byte. */
  char *out = g_malloc(len + 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = (char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
  }
  out[len] = '\0';
  return out;
}

char *
fold_text(const char *text)
{
  if (!text)
    return g_strdup("");
  size_t len = strlen(text);
  unsigned char high = 0;
  for (size_t i = 0; i < len; i++)
    high |= (unsigned char)text[i];
  if (high < 0x80) /* ASCII: case folding is tolower, and no letter needs mapping */
    return fold_ascii_lower(text, len);
  char *valid = g_utf8_make_valid(text, -1);
  GString *mapped = g_string_sized_new(strlen(valid));
  for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    const char *to = NULL;
    for (size_t i = 0; c >= 0x80 && i < G_N_ELEMENTS(letters); i++)
      if (letters[i].from == c)
        to = letters[i].to;
    if (to)
      g_string_append(mapped, to);
    else
      g_string_append_unichar(mapped, c);
  }
  char *folded = g_utf8_casefold(mapped->str, (gssize)mapped->len);
  g_string_free(mapped, TRUE);
  g_free(valid);
  return folded;
}

/* Append TERM (already folded) as an FTS5 string, keeping only letters, digits and
 * inner spaces; PREFIX adds the * operator. */
static void
append_term(GString *q, const char *term, int prefix)
{
  GString *clean = g_string_new(NULL);
  for (const char *p = term; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    if (g_unichar_isalnum(c) || g_unichar_ismark(c))
      g_string_append_unichar(clean, c);
    else if (clean->len && clean->str[clean->len - 1] != ' ')
      g_string_append_c(clean, ' ');
  }
  g_strstrip(clean->str);
  if (clean->str[0]) {
    if (q->len)
      g_string_append_c(q, ' ');
    g_string_append_printf(q, "\"%s\"%s", clean->str, prefix ? "*" : "");
  }
  g_string_free(clean, TRUE);
}

char *
fold_search_query(const char *query)
{
  if (!query)
    return NULL;
  char *folded = fold_text(query);
  GString *q = g_string_new(NULL);
  const char *p = folded;
  while (*p) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (!*p)
      break;
    if (*p == '"') {
      const char *end = strchr(p + 1, '"');
      char *phrase = end ? g_strndup(p + 1, (gsize)(end - p - 1)) : g_strdup(p + 1);
      append_term(q, phrase, 0);
      g_free(phrase);
      p = end ? end + 1 : p + strlen(p);
      continue;
    }
    const char *start = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '"')
      p++;
    char *word = g_strndup(start, (gsize)(p - start));
    size_t wl = strlen(word);
    int prefix = wl > 1 && word[wl - 1] == '*';
    append_term(q, word, prefix);
    g_free(word);
  }
  g_free(folded);
  if (!q->len) {
    g_string_free(q, TRUE);
    return NULL;
  }
  return g_string_free(q, FALSE);
}
