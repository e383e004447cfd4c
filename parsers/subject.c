/* subject.c: reply/forward prefixes, bracket tags and the inboxd ticket tag. All work is
 * on UTF-8 code points; prefix words are compared after NFKC and case folding so that
 * "RE", "Re", "ｒｅ" and "İLT"/"İlt" all match their entry below. */
#include "subject.h"

#include <glib.h>
#include <string.h>

/* Reply and forward prefix words, already NFKC + case-folded (see prefix_word_key()).
 * Each one counts only when a ':' (or full-width '：') follows, optionally after a
 * counter "[2]"/"(2)" and blanks ("RE :" is French typography); "réf"/"ref" may also end
 * in a '.' ("Réf. :", "Réf."). */
static const char *const prefix_words[] = {
    "re",   "fwd",  "fw",   "aw",          "wg",   "sv",     "vs",   "vb",
    "vl",   "ynt",  "ilt",  "i\xcc\x87lt", /* "İlt" folds to i + U+0307 COMBINING DOT ABOVE */
    "rv",   "réf",  "ref",  "tr",          "antw", "doorst", "odp",  "pd",
    "res",  "enc",  "rif",  "vá",          "tov",  "απ",     "σχετ", "πρθ",
    "回复", "回覆", "答复", "答覆",        "转发", "轉寄",   "轉發", "转寄",
};

#define PREFIX_WORD_MAX_CHARS 8
#define TAG_MAX_BYTES 80

static int
is_blank(gunichar c)
{
  return g_unichar_isspace(c) || g_unichar_iscntrl(c) || c == 0x3000 || c == 0xFEFF;
}

static const char *
skip_blanks(const char *p)
{
  while (*p && is_blank(g_utf8_get_char(p)))
    p = g_utf8_next_char(p);
  return p;
}

/* Inline blanks between a prefix word and its colon: spaces and tabs only. */
static const char *
skip_inline_blanks(const char *p)
{
  while (*p == ' ' || *p == '\t')
    p++;
  if (g_str_has_prefix(p, "\xc2\xa0")) /* NBSP, as French mailers write "RE\u00a0:" */
    return skip_inline_blanks(p + 2);
  return p;
}

static char *
prefix_word_key(const char *word, gssize len)
{
  char *nfkc = g_utf8_normalize(word, len, G_NORMALIZE_ALL_COMPOSE);
  if (!nfkc)
    return g_strdup("");
  char *fold = g_utf8_casefold(nfkc, -1);
  g_free(nfkc);
  return fold;
}

static int
is_prefix_word(const char *key)
{
  for (size_t i = 0; i < G_N_ELEMENTS(prefix_words); i++)
    if (strcmp(key, prefix_words[i]) == 0)
      return 1;
  return 0;
}

/* If P starts a bracket tag ("[EXT]", "【list】"), return the byte after it, else NULL.
 * A tag has no nested opening bracket and at most TAG_MAX_BYTES of content. */
static const char *
skip_bracket_tag(const char *p)
{
  const char *close;
  size_t open_len;
  if (*p == '[') {
    close = "]";
    open_len = 1;
  } else if (g_str_has_prefix(p, "【")) {
    close = "】";
    open_len = strlen("【");
  } else {
    return NULL;
  }
  const char *q = p + open_len;
  /* Bounded search: a subject full of '[' must stay linear. */
  const char *end = g_strstr_len(q, TAG_MAX_BYTES + strlen(close), close);
  if (!end || (size_t)(end - q) > TAG_MAX_BYTES)
    return NULL;
  for (const char *r = q; r < end; r++)
    if (*r == '[')
      return NULL;
  return end + strlen(close);
}

/* If P starts a reply/forward prefix ("Re:", "AW :", "Re[2]:", "Réf."), return the byte
 * after it, else NULL. */
static const char *
skip_prefix(const char *p)
{
  const char *q = p;
  int chars = 0;
  while (*q && g_unichar_isalpha(g_utf8_get_char(q)) && chars <= PREFIX_WORD_MAX_CHARS) {
    q = g_utf8_next_char(q);
    chars++;
  }
  if (chars == 0 || chars > PREFIX_WORD_MAX_CHARS)
    return NULL;
  char *key = prefix_word_key(p, q - p);
  int known = is_prefix_word(key);
  int is_ref = strcmp(key, "réf") == 0 || strcmp(key, "ref") == 0;
  g_free(key);
  if (!known)
    return NULL;

  /* Optional counter: "Re[2]:", "Re(3):". */
  if (*q == '[' || *q == '(') {
    char closer = *q == '[' ? ']' : ')';
    const char *r = q + 1;
    while (g_ascii_isdigit(*r))
      r++;
    if (r > q + 1 && *r == closer)
      q = r + 1;
  }
  if (is_ref && *q == '.') {
    q = skip_inline_blanks(q + 1);
    if (*q == ':')
      return q + 1;
    if (g_str_has_prefix(q, "："))
      return q + strlen("：");
    return q;
  }
  q = skip_inline_blanks(q);
  if (*q == ':')
    return q + 1;
  if (g_str_has_prefix(q, "："))
    return q + strlen("：");
  return NULL;
}

/* Skip leading blanks, prefixes and tags of S; count the prefixes in *PREFIXES_OUT. */
static const char *
skip_noise(const char *s, int *prefixes_out)
{
  int prefixes = 0;
  const char *p = skip_blanks(s);
  for (;;) {
    const char *next = skip_bracket_tag(p);
    if (!next) {
      next = skip_prefix(p);
      if (next)
        prefixes++;
    }
    if (!next)
      break;
    p = skip_blanks(next);
  }
  if (prefixes_out)
    *prefixes_out = prefixes;
  return p;
}

/* Length of a ticket tag "[#<digits>]" at P, or 0. */
static size_t
ticket_tag_len(const char *p)
{
  if (p[0] != '[' || p[1] != '#')
    return 0;
  size_t i = 2;
  while (g_ascii_isdigit(p[i]))
    i++;
  if (i == 2 || p[i] != ']')
    return 0;
  return i + 1;
}

/* Valid UTF-8, NFC, with every ticket tag removed. New string. */
static char *
clean_copy(const char *subject)
{
  char *valid = g_utf8_make_valid(subject, -1);
  char *nfc = g_utf8_normalize(valid, -1, G_NORMALIZE_DEFAULT_COMPOSE);
  g_free(valid);
  if (!nfc)
    return g_strdup("");
  GString *out = g_string_sized_new(strlen(nfc));
  for (const char *p = nfc; *p;) {
    size_t tag = ticket_tag_len(p);
    if (tag) {
      g_string_append_c(out, ' ');
      p += tag;
    } else {
      g_string_append_c(out, *p++);
    }
  }
  g_free(nfc);
  return g_string_free(out, FALSE);
}

/* Copy P with blank runs collapsed to one space, trimmed. */
static GString *
collapse_blanks(const char *p)
{
  GString *out = g_string_new(NULL);
  int pending_space = 0;
  for (; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    if (is_blank(c)) {
      pending_space = out->len > 0;
      continue;
    }
    if (pending_space)
      g_string_append_c(out, ' ');
    pending_space = 0;
    g_string_append_unichar(out, c);
  }
  return out;
}

char *
subject_normalize(const char *subject)
{
  if (!subject)
    return g_strdup("");
  char *clean = clean_copy(subject);
  GString *out = collapse_blanks(skip_noise(clean, NULL));
  g_free(clean);

  static const char fwd_suffix[] = "(fwd)";
  size_t n = sizeof fwd_suffix - 1;
  if (out->len >= n && g_ascii_strcasecmp(out->str + out->len - n, fwd_suffix) == 0) {
    g_string_truncate(out, out->len - n);
    while (out->len && out->str[out->len - 1] == ' ')
      g_string_truncate(out, out->len - 1);
  }
  return g_string_free(out, FALSE);
}

char *
subject_key(const char *subject)
{
  char *norm = subject_normalize(subject);
  char *fold = g_utf8_casefold(norm, -1);
  g_free(norm);
  return fold;
}

int
subject_ticket_tag(const char *subject, long long *ticket_out)
{
  if (!subject)
    return 0;
  for (const char *p = strchr(subject, '['); p; p = strchr(p + 1, '[')) {
    size_t len = ticket_tag_len(p);
    if (!len || len - 3 > 18) /* 18 digits always fit in a long long */
      continue;
    guint64 value = 0;
    char *digits = g_strndup(p + 2, len - 3);
    gboolean ok = g_ascii_string_to_unsigned(digits, 10, 1, G_MAXINT64, &value, NULL);
    g_free(digits);
    if (!ok)
      continue;
    if (ticket_out)
      *ticket_out = (long long)value;
    return 1;
  }
  return 0;
}

int
subject_has_reply_prefix(const char *subject)
{
  if (!subject)
    return 0;
  char *clean = clean_copy(subject);
  int prefixes = 0;
  skip_noise(clean, &prefixes);
  g_free(clean);
  return prefixes > 0;
}
