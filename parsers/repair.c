/* repair.c: the workarounds for broken mail (see repair.h for the list and contracts).
 * Everything here is pure: bytes in, bytes out, plus a warning on the message. */
#include "repair.h"

#include <errno.h>
#include <string.h>

/* How much of a line a warning quotes: enough to recognise it, never a whole 1 MB
 * header. */
#define QUOTE_MAX 60

/* A line of BUF: [start, start + len) without its line end; NEXT is where the following
 * line starts (BUF's length at the end). */
typedef struct line {
  size_t start, len, next;
  gboolean crlf;
} line;

static line
line_at(const char *buf, size_t len, size_t pos)
{
  line l = {pos, 0, len, FALSE};
  const char *nl = memchr(buf + pos, '\n', len - pos);
  size_t end = nl ? (size_t)(nl - buf) : len;
  l.next = nl ? end + 1 : len;
  if (end > pos && buf[end - 1] == '\r') {
    end--;
    l.crlf = nl != NULL;
  }
  l.len = end - pos;
  return l;
}

/* A printable, valid UTF-8 excerpt of at most QUOTE_MAX bytes of S for a warning. */
static char *
quote(const char *s, size_t len)
{
  if (len > QUOTE_MAX)
    len = QUOTE_MAX;
  char *valid = g_utf8_make_valid(s, (gssize)len);
  for (char *p = valid; *p; p++)
    if ((unsigned char)*p < 0x20)
      *p = ' ';
  return valid;
}

size_t
repair_field_name_len(const char *s, size_t len, size_t *colon_out)
{
  size_t i = 0;
  while (i < len && (unsigned char)s[i] > 32 && (unsigned char)s[i] < 127 && s[i] != ':')
    i++;
  size_t name_len = i;
  if (name_len == 0)
    return 0;
  while (i < len && (s[i] == ' ' || s[i] == '\t'))
    i++;
  if (i >= len || s[i] != ':')
    return 0;
  if (colon_out)
    *colon_out = i;
  return name_len;
}

static gboolean
is_blank_input(const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isspace(s[i]) && s[i] != '\0')
      return FALSE;
  return TRUE;
}

/* Binary data (an image, an archive) is no mail even without headers: NUL bytes or
 * more than 1 in 20 control bytes in the first 4 KiB. */
static gboolean
looks_binary(const char *s, size_t len)
{
  size_t n = len < 4096 ? len : 4096, ctrl = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == 0)
      return TRUE;
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f)
      ctrl++;
  }
  return ctrl * 20 > n;
}

void
repair_buf_clear(repair_buf *buf)
{
  if (!buf)
    return;
  g_free(buf->owned);
  buf->owned = NULL;
  buf->data = NULL;
  buf->len = 0;
}

/* Make BUF a new owned copy of its bytes with INS (INS_LEN bytes) inserted at AT. */
static void
buf_insert(repair_buf *buf, size_t at, const char *ins, size_t ins_len)
{
  char *copy = g_malloc(buf->len + ins_len + 1);
  memcpy(copy, buf->data, at);
  memcpy(copy + at, ins, ins_len);
  memcpy(copy + at + ins_len, buf->data + at, buf->len - at);
  copy[buf->len + ins_len] = '\0';
  g_free(buf->owned);
  buf->owned = copy;
  buf->data = copy;
  buf->len += ins_len;
}

ib_status
repair_input(const char *raw, size_t len, ib_message *msg, repair_buf *out)
{
  memset(out, 0, sizeof *out);
  if (len == 0 || is_blank_input(raw, len))
    return IB_ERR_NOT_MAIL;
  out->data = raw;
  out->len = len;

  if (!memchr(raw, '\n', len) && memchr(raw, '\r', len)) {
    out->owned = g_memdup2(raw, len);
    for (size_t i = 0; i < len; i++)
      if (out->owned[i] == '\r')
        out->owned[i] = '\n';
    out->data = out->owned;
    ib_message_warn(msg, "bare_cr_line_endings", "lines end with CR only; read as LF");
  }

  size_t crlf = 0, lf = 0;
  for (const char *p = out->data, *end = out->data + out->len;
       (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) {
    if (p > out->data && p[-1] == '\r')
      crlf++;
    else
      lf++;
  }
  if (crlf && lf)
    ib_message_warn(msg, "mixed_line_endings",
                    "%zu CRLF and %zu bare LF line ends; both read as line ends", crlf, lf);

  line first = line_at(out->data, out->len, 0);
  if (first.len >= 5 && memcmp(out->data, "From ", 5) == 0 &&
      !repair_field_name_len(out->data, first.len, NULL)) {
    char *q = quote(out->data, first.len);
    ib_message_warn(msg, "mbox_from_line", "skipped leading mbox separator \"%s\"", q);
    g_free(q);
    out->data += first.next;
    out->len -= first.next;
  }

  if (is_blank_input(out->data, out->len)) { /* nothing after the mbox line */
    repair_buf_clear(out);
    return IB_ERR_NOT_MAIL;
  }

  size_t skip = 0;
  unsigned blanks = 0;
  for (;;) {
    line l = line_at(out->data, out->len, skip);
    if (l.len != 0 || l.next == skip || l.next >= out->len)
      break;
    skip = l.next;
    blanks++;
  }
  if (blanks) {
    line l = line_at(out->data, out->len, skip);
    if (repair_field_name_len(out->data + l.start, l.len, NULL)) {
      ib_message_warn(msg, "leading_blank_lines", "skipped %u blank line(s) before the headers",
                      blanks);
      out->data += skip;
      out->len -= skip;
    }
  }

  /* Walk the header block: where it ends, the first line that is no field, and whether
   * any field follows that line (then it is just a broken header line, which the
   * parser drops with a warning). */
  size_t pos = 0, fields = 0, bad_at = 0;
  gboolean have_bad = FALSE, field_after_bad = FALSE, bad_crlf = FALSE;
  while (pos < out->len) {
    line l = line_at(out->data, out->len, pos);
    if (l.len == 0)
      break;
    const char *s = out->data + l.start;
    if (pos > 0 && (s[0] == ' ' || s[0] == '\t')) {
      /* continuation of the previous field (or of the bad line) */
    } else if (repair_field_name_len(s, l.len, NULL)) {
      fields++;
      if (have_bad)
        field_after_bad = TRUE;
    } else if (!have_bad) {
      have_bad = TRUE;
      bad_at = pos;
      bad_crlf = l.crlf;
    }
    pos = l.next;
  }

  if (fields == 0) {
    line l = line_at(out->data, out->len, 0);
    if (l.len != 0 && looks_binary(out->data, out->len)) {
      repair_buf_clear(out);
      return IB_ERR_NOT_MAIL;
    }
    if (l.len != 0)
      buf_insert(out, 0, "\n", 1);
    ib_message_warn(msg, "no_headers", "the message has no header fields; read as body only");
  } else if (have_bad && !field_after_bad) {
    line l = line_at(out->data, out->len, bad_at);
    char *q = quote(out->data + l.start, l.len);
    buf_insert(out, bad_at, bad_crlf ? "\r\n" : "\n", bad_crlf ? 2 : 1);
    ib_message_warn(msg, "missing_blank_line",
                    "no blank line between headers and body; body starts at \"%s\"", q);
    g_free(q);
  }
  return IB_OK;
}

/* ---- charsets ---------------------------------------------------------------- */

/* Convert BYTES from CHARSET to UTF-8 with iconv, replacing each byte iconv rejects by
 * U+FFFD and counting it in *ERRORS_OUT. Returns a new NUL-terminated string of
 * *LEN_OUT bytes (may be NULL), or NULL when iconv does not know CHARSET. */
static char *
convert(const char *bytes, size_t len, const char *charset, size_t *errors_out, size_t *len_out)
{
  *errors_out = 0;
  GIConv cd = g_iconv_open("UTF-8", g_mime_charset_iconv_name(charset));
  if (cd == (GIConv)-1)
    return NULL;
  size_t cap = len * 2 + 16, used = 0;
  char *out = g_malloc(cap);
  gchar *in = (gchar *)bytes;
  gsize inleft = len;
  while (inleft > 0) {
    if (cap - used < 16) {
      cap *= 2;
      out = g_realloc(out, cap);
    }
    gchar *outp = out + used;
    gsize outleft = cap - used - 1;
    gsize r = g_iconv(cd, &in, &inleft, &outp, &outleft);
    int err = errno;
    used = (size_t)(outp - out);
    if (r != (gsize)-1)
      continue;
    if (err == E2BIG) {
      cap *= 2;
      out = g_realloc(out, cap);
      continue;
    }
    if (cap - used < 16) {
      cap *= 2;
      out = g_realloc(out, cap);
    }
    /* EILSEQ: an invalid byte; EINVAL: a sequence cut off by the end of the input */
    memcpy(out + used, "\xEF\xBF\xBD", 3);
    used += 3;
    (*errors_out)++;
    if (err == EILSEQ) {
      in++;
      inleft--;
    } else {
      inleft = 0;
    }
  }
  for (;;) { /* flush the shift state of stateful charsets (ISO-2022-JP) */
    if (cap - used < 16) {
      cap *= 2;
      out = g_realloc(out, cap);
    }
    gchar *outp = out + used;
    gsize outleft = cap - used - 1;
    gsize r = g_iconv(cd, NULL, NULL, &outp, &outleft);
    int err = errno;
    used = (size_t)(outp - out);
    if (r != (gsize)-1 || err != E2BIG)
      break;
    cap *= 2;
    out = g_realloc(out, cap);
  }
  g_iconv_close(cd);
  out[used] = '\0';
  if (len_out)
    *len_out = used;
  return out;
}

static const char *const cp1252_name = "windows-1252";

static char *
decode_1252(const char *bytes, size_t len)
{
  size_t errors;
  char *s = convert(bytes, len, cp1252_name, &errors, NULL);
  return s ? s : g_utf8_make_valid(bytes, (gssize)len);
}

static gboolean
is_7bit(const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] >= 0x80)
      return FALSE;
  return TRUE;
}

/* Does S hold at least one well-formed multi-byte UTF-8 sequence? Text that has 8-bit
 * bytes but none of those is a single-byte charset mislabelled as UTF-8. */
static gboolean
has_utf8_sequence(const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0xC2 || c > 0xF4)
      continue;
    size_t n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (i + n > len)
      return FALSE;
    if (g_utf8_get_char_validated(s + i, (gssize)n) < (gunichar)-2)
      return TRUE;
  }
  return FALSE;
}

static gboolean
name_in(const char *name, const char *const *list)
{
  for (; *list; list++)
    if (strcmp(name, *list) == 0)
      return TRUE;
  return FALSE;
}

static const char *const ascii_names[] = {"us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us",
                                          "us",       "cp367", "ibm367",         "csascii",
                                          "iso-ir-6", NULL};
static const char *const utf8_names[] = {"utf-8", "utf8", "unicode-1-1-utf-8", "x-unicode20utf8",
                                         NULL};

/* Declared charset -> the superset browsers decode it with (WHATWG Encoding Standard). */
static const struct {
  const char *name, *superset;
  gboolean c1_only; /* the declared charset never fails; C1 bytes are the tell */
} supersets[] = {
    {"iso-8859-1", "windows-1252", TRUE},
    {"iso8859-1", "windows-1252", TRUE},
    {"iso_8859-1", "windows-1252", TRUE},
    {"latin1", "windows-1252", TRUE},
    {"l1", "windows-1252", TRUE},
    {"cp819", "windows-1252", TRUE},
    {"iso-8859-9", "windows-1254", TRUE},
    {"iso8859-9", "windows-1254", TRUE},
    {"latin5", "windows-1254", TRUE},
    {"gb2312", "GB18030", FALSE},
    {"gbk", "GB18030", FALSE},
    {"euc-cn", "GB18030", FALSE},
    {"x-gbk", "GB18030", FALSE},
    {"csgb2312", "GB18030", FALSE},
    {"euc-kr", "CP949", FALSE},
    {"ks_c_5601-1987", "CP949", FALSE},
    {"ks_c_5601-1989", "CP949", FALSE},
    {"ksc5601", "CP949", FALSE},
    {"shift_jis", "CP932", FALSE},
    {"shift-jis", "CP932", FALSE},
    {"sjis", "CP932", FALSE},
    {"x-sjis", "CP932", FALSE},
    {"ms_kanji", "CP932", FALSE},
    {"big5", "BIG5-HKSCS", FALSE},
    {"tis-620", "CP874", FALSE},
    {"iso-8859-11", "CP874", FALSE},
};

static const char *
superset_of(const char *name, gboolean *c1_only)
{
  for (size_t i = 0; i < G_N_ELEMENTS(supersets); i++)
    if (strcmp(name, supersets[i].name) == 0) {
      *c1_only = supersets[i].c1_only;
      return supersets[i].superset;
    }
  return NULL;
}

static gboolean
has_c1(const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] >= 0x80 && (unsigned char)s[i] <= 0x9f)
      return TRUE;
  return FALSE;
}

/* Lower-case CHARSET without quotes and blanks: "\"UTF-8\" " -> "utf-8". */
static char *
charset_key(const char *charset)
{
  GString *k = g_string_new(NULL);
  for (const char *p = charset; *p; p++)
    if (*p != '"' && *p != '\'' && !g_ascii_isspace(*p))
      g_string_append_c(k, g_ascii_tolower(*p));
  return g_string_free(k, FALSE);
}

/* The charset of an HTML document from its first <meta charset=...> or
 * <meta http-equiv content="...; charset=..."> within the first 2 KiB, or NULL. */
static char *
html_meta_charset(const char *s, size_t len)
{
  size_t n = len < 2048 ? len : 2048;
  char *head = g_ascii_strdown(s, (gssize)n);
  char *found = NULL;
  for (char *p = strstr(head, "<meta"); p && !found; p = strstr(p + 5, "<meta")) {
    char *end = strchr(p, '>');
    char *cs = strstr(p, "charset=");
    if (!cs || (end && cs > end))
      continue;
    cs += 8;
    while (*cs == '"' || *cs == '\'' || *cs == ' ')
      cs++;
    size_t k = 0;
    while (cs[k] && (g_ascii_isalnum(cs[k]) || strchr("-_.:", cs[k])))
      k++;
    if (k > 0 && k < 40)
      found = g_strndup(cs, k);
  }
  g_free(head);
  return found;
}

/* utf-8 if valid, else windows-1252: the fallback for text of unknown charset. */
static char *
utf8_or_1252(const char *bytes, size_t len, const char **used_out)
{
  if (g_utf8_validate_len(bytes, len, NULL)) {
    *used_out = "utf-8";
    return g_strndup(bytes, len);
  }
  *used_out = cp1252_name;
  return decode_1252(bytes, len);
}

/* In place on S (LEN bytes): CRLF and lone CR -> LF, NUL bytes dropped. Returns the
 * number of NUL bytes dropped; S stays NUL-terminated. */
static size_t
normalize_text(char *s, size_t len)
{
  size_t nuls = 0, w = 0;
  for (size_t r = 0; r < len; r++) {
    if (s[r] == '\r') {
      s[w++] = '\n';
      if (r + 1 < len && s[r + 1] == '\n')
        r++;
    } else if (s[r] == '\0') {
      nuls++;
    } else {
      s[w++] = s[r];
    }
  }
  s[w] = '\0';
  return nuls;
}

/* Charsets whose encoding of ASCII has NUL bytes: never strip NULs before decoding. */
static gboolean
is_wide(const char *key)
{
  return g_str_has_prefix(key, "utf-16") || g_str_has_prefix(key, "utf-32") ||
         g_str_has_prefix(key, "ucs-2") || g_str_has_prefix(key, "ucs-4") ||
         g_str_has_prefix(key, "ucs2") || g_str_has_prefix(key, "ucs4") ||
         strcmp(key, "unicode") == 0;
}

static char *
memdup0(const char *s, size_t len)
{
  char *d = g_malloc(len + 1);
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

char *
repair_text_to_utf8(const char *bytes, size_t len, const char *charset, gboolean html,
                    const char *what, ib_message *msg)
{
  char *out = NULL, *stripped = NULL, *key = charset ? charset_key(charset) : NULL;
  const char *used = NULL;
  size_t nuls = 0, out_len = 0;
  if (key && !*key) {
    g_free(key);
    key = NULL;
  }
  if (!(key && is_wide(key)) && memchr(bytes, '\0', len)) {
    stripped = memdup0(bytes, len);
    nuls = normalize_text(stripped, len);
    bytes = stripped;
    len = strlen(stripped);
  }

  if (is_7bit(bytes, len) && (!key || name_in(key, ascii_names) || name_in(key, utf8_names))) {
    out = memdup0(bytes, len);
  } else if (!key) {
    char *meta = html ? html_meta_charset(bytes, len) : NULL;
    size_t errors = 0;
    if (meta && (out = convert(bytes, len, meta, &errors, NULL)) != NULL && errors == 0) {
      ib_message_warn(msg, "charset_missing", "%s has no charset; used %s from its <meta>", what,
                      meta);
    } else {
      g_free(out);
      out = utf8_or_1252(bytes, len, &used);
      ib_message_warn(msg, "charset_missing", "%s has 8-bit text and no charset; decoded as %s",
                      what, used);
    }
    g_free(meta);
  } else if (name_in(key, ascii_names)) {
    out = utf8_or_1252(bytes, len, &used);
    ib_message_warn(msg, "charset_mismatch",
                    "%s is declared us-ascii but has 8-bit text; decoded as %s", what, used);
  } else if (name_in(key, utf8_names)) {
    if (g_utf8_validate_len(bytes, len, NULL)) {
      out = memdup0(bytes, len);
    } else if (!has_utf8_sequence(bytes, len)) {
      out = decode_1252(bytes, len);
      ib_message_warn(msg, "charset_mismatch",
                      "%s is declared utf-8 but is not; decoded as windows-1252", what);
    } else {
      out = g_utf8_make_valid(bytes, (gssize)len);
      ib_message_warn(msg, "charset_invalid_bytes",
                      "%s has invalid utf-8 sequences; replaced by U+FFFD", what);
    }
  } else {
    gboolean c1_only = FALSE;
    const char *super = superset_of(key, &c1_only);
    size_t errors = 0;
    if (super && c1_only && has_c1(bytes, len)) {
      out = convert(bytes, len, super, &errors, &out_len);
      ib_message_warn(msg, "charset_superset", "%s declared %s decoded as %s", what, key, super);
    } else if ((out = convert(bytes, len, key, &errors, &out_len)) == NULL) {
      out = utf8_or_1252(bytes, len, &used);
      ib_message_warn(msg, "charset_unknown", "%s has unknown charset \"%s\"; decoded as %s", what,
                      key, used);
    } else if (super && !c1_only && !is_7bit(bytes, len)) {
      /* iconv may fail on, or pass through as C1 controls, what the superset defines */
      size_t errors2 = 0, len2 = 0;
      char *wide = convert(bytes, len, super, &errors2, &len2);
      if (wide && errors2 <= errors && (len2 != out_len || memcmp(wide, out, len2) != 0)) {
        g_free(out);
        out = wide;
        out_len = len2;
        errors = errors2;
        ib_message_warn(msg, "charset_superset", "%s declared %s decoded as %s", what, key, super);
      } else {
        g_free(wide);
      }
    }
    if (out && errors)
      ib_message_warn(msg, "charset_invalid_bytes",
                      "%s has %zu byte(s) invalid in %s; replaced by U+FFFD", what, errors, key);
  }
  if (!out_len)
    out_len = strlen(out);
  nuls += normalize_text(out, out_len);
  if (nuls)
    ib_message_warn(msg, "nul_bytes", "%zu NUL byte(s) removed from %s", nuls, what);
  if (!g_utf8_validate(out, -1, NULL)) {
    char *valid = g_utf8_make_valid(out, -1);
    g_free(out);
    out = valid;
  }
  g_free(key);
  g_free(stripped);
  return out;
}

char *
repair_header_to_utf8(const char *bytes, size_t len, const char *name, ib_message *msg)
{
  char *copy = NULL;
  if (memchr(bytes, '\0', len)) {
    copy = g_malloc(len + 1);
    size_t w = 0;
    for (size_t i = 0; i < len; i++)
      if (bytes[i])
        copy[w++] = bytes[i];
    ib_message_warn(msg, "nul_bytes", "%zu NUL byte(s) removed from header %s", len - w, name);
    bytes = copy;
    len = w;
  }
  char *out;
  if (g_utf8_validate_len(bytes, len, NULL)) {
    out = g_strndup(bytes, len);
  } else {
    out = decode_1252(bytes, len);
    ib_message_warn(msg, "header_8bit", "header %s is not UTF-8; decoded as windows-1252", name);
  }
  g_free(copy);
  return out;
}

GDateTime *
repair_date(const char *value, ib_message *msg)
{
  char *v = g_strstrip(g_strdup(value));
  /* only what starts like an ISO date: YYYY-MM-DD */
  if (!(g_ascii_isdigit(v[0]) && g_ascii_isdigit(v[1]) && g_ascii_isdigit(v[2]) &&
        g_ascii_isdigit(v[3]) && v[4] == '-' && g_ascii_isdigit(v[5]) && g_ascii_isdigit(v[6]) &&
        v[7] == '-')) {
    g_free(v);
    return NULL;
  }
  GTimeZone *utc = g_time_zone_new_utc();
  /* RFC 3339 allows a space instead of the T */
  if (strlen(v) > 10 && v[10] == ' ')
    v[10] = 'T';
  GDateTime *dt = g_date_time_new_from_iso8601(v, utc);
  g_time_zone_unref(utc);
  if (dt)
    ib_message_warn(msg, "date_iso8601", "Date \"%s\" is ISO 8601, not RFC 5322", v);
  g_free(v);
  return dt;
}

char *
repair_msgid_list(const char *value, const char *header, ib_message *msg)
{
  if (!strchr(value, ','))
    return NULL;
  char *copy = g_strdup(value);
  int depth = 0;
  unsigned replaced = 0;
  for (char *p = copy; *p; p++) {
    if (*p == '<')
      depth++;
    else if (*p == '>' && depth > 0)
      depth--;
    else if (*p == ',' && depth == 0) {
      *p = ' ';
      replaced++;
    }
  }
  if (!replaced) {
    g_free(copy);
    return NULL;
  }
  ib_message_warn(msg, "references_commas", "%s separates message ids with commas", header);
  return copy;
}

/* 1 for the bytes a base64 body may hold: the alphabet, padding and line breaks. */
static const unsigned char base64_ok[256] = {
    ['A'] = 1, ['B'] = 1,  ['C'] = 1,  ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1,  ['K'] = 1,  ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1,  ['S'] = 1,  ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,  ['a'] = 1,  ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1,  ['i'] = 1,  ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1,  ['q'] = 1,  ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1,  ['y'] = 1,  ['z'] = 1, ['0'] = 1,  ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1,  ['6'] = 1,  ['7'] = 1, ['8'] = 1,  ['9'] = 1, ['+'] = 1, ['/'] = 1,
    ['='] = 1, ['\r'] = 1, ['\n'] = 1, [' '] = 1, ['\t'] = 1,
};

size_t
repair_check_base64(const char *enc, size_t len, const char *what, ib_message *msg)
{
  const unsigned char *p = (const unsigned char *)enc;
  size_t bad = 0;
  for (size_t i = 0; i < len; i++)
    bad += !base64_ok[p[i]];
  if (bad)
    ib_message_warn(msg, "bad_base64", "%s has %zu byte(s) outside the base64 alphabet, skipped",
                    what, bad);
  return bad;
}

/* RFC 2046 bchars, so the guessed boundary can be quoted in a header we write. */
static gboolean
is_boundary(const char *s, size_t len)
{
  if (len == 0 || len > 70)
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isalnum(s[i]) && !strchr("'()+_,-./:=? ", s[i]))
      return FALSE;
  return s[len - 1] != ' ';
}

static gboolean
is_token(const char *s)
{
  if (!s || !*s || strlen(s) > 40)
    return FALSE;
  for (; *s; s++)
    if (!g_ascii_isalnum(*s) && !strchr("-+.", *s))
      return FALSE;
  return TRUE;
}

GMimeObject *
repair_multipart(GMimeMultipart *multipart, GMimeParserOptions *opts, ib_message *msg,
                 const char **base_out, size_t *len_out)
{
  const char *pro = g_mime_multipart_get_prologue(multipart);
  if (!pro)
    return NULL;
  size_t plen = strlen(pro), pos = 0;
  const char *bnd = NULL;
  size_t blen = 0;
  while (pos < plen) {
    line l = line_at(pro, plen, pos);
    const char *s = pro + l.start;
    if (l.len > 2 && s[0] == '-' && s[1] == '-') {
      size_t n = l.len - 2;
      while (n > 0 && (s[2 + n - 1] == ' ' || s[2 + n - 1] == '\t'))
        n--;
      if (is_boundary(s + 2, n)) {
        bnd = s + 2;
        blen = n;
        pos = l.next;
      }
      break;
    }
    pos = l.next;
  }
  if (!bnd)
    return NULL;
  /* the delimiter must occur again: a second part or the close delimiter */
  char *delim = g_strdup_printf("\n--%.*s", (int)blen, bnd);
  gboolean again = strstr(pro + pos - 1, delim) != NULL;
  g_free(delim);
  if (!again)
    return NULL;

  GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(multipart));
  const char *sub = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
  if (!is_token(sub))
    sub = "mixed";
  char *head =
      g_strdup_printf("Content-Type: multipart/%s; boundary=\"%.*s\"\n\n", sub, (int)blen, bnd);
  GByteArray *arr = g_byte_array_sized_new((guint)(strlen(head) + plen));
  g_byte_array_append(arr, (const guint8 *)head, (guint)strlen(head));
  g_byte_array_append(arr, (const guint8 *)pro, (guint)plen);
  /* ARR must live as long as the part: *BASE_OUT points into it, and the part's streams
   * may read from it. The stream does not own it (when no part keeps the stream, the
   * stream goes with the parser); the returned part does, as object data, which GObject
   * frees after the part's own finalize has released its streams. */
  GMimeStream *stream = g_mime_stream_mem_new_with_byte_array(arr);
  g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
  GMimeParser *parser = g_mime_parser_new_with_stream(stream);
  GMimeObject *part = g_mime_parser_construct_part(parser, opts);
  g_object_unref(parser);
  g_object_unref(stream);
  if (!part || !GMIME_IS_MULTIPART(part) ||
      g_mime_multipart_get_count(GMIME_MULTIPART(part)) == 0) {
    if (part)
      g_object_unref(part);
    g_byte_array_unref(arr);
    g_free(head);
    return NULL;
  }
  g_object_set_data_full(G_OBJECT(part), "inboxd-repair-buffer", arr,
                         (GDestroyNotify)g_byte_array_unref);
  ib_message_warn(msg, "multipart_boundary_guessed",
                  "multipart/%s without a matching boundary; used \"%.*s\" found in its body", sub,
                  (int)blen, bnd);
  g_free(head);
  *base_out = (const char *)arr->data;
  *len_out = arr->len;
  return part;
}

/* ---- GMime bug workarounds ------------------------------------------------------- */

/* An RFC 2047 encoded word at P: "=?charset?E?text?=". Sets the pieces and returns the
 * length of the word, or 0. */
static size_t
encoded_word(const char *p, const char **cs, size_t *cs_len, char *enc, const char **text,
             size_t *text_len)
{
  if (p[0] != '=' || p[1] != '?')
    return 0;
  const char *q = p + 2;
  size_t n = strcspn(q, "? \t\r\n");
  if (n == 0 || n > 75 || q[n] != '?')
    return 0;
  *cs = q;
  *cs_len = n;
  q += n + 1;
  if (!q[0] || !strchr("BbQq", q[0]) || q[1] != '?')
    return 0;
  *enc = (char)g_ascii_toupper(q[0]);
  q += 2;
  size_t t = strcspn(q, "? \t\r\n");
  if (q[t] != '?' || q[t + 1] != '=')
    return 0;
  *text = q;
  *text_len = t;
  return (size_t)(q + t + 2 - p);
}

char *
repair_rfc2047_padding(const char *value)
{
  if (!value || !strstr(value, "=?"))
    return NULL;
  /* does the bug fire: a padded B word followed (after blanks) by another word? */
  gboolean fires = FALSE;
  for (const char *p = strstr(value, "=?"); p && !fires; p = strstr(p + 2, "=?")) {
    const char *cs, *text;
    size_t cs_len, text_len;
    char enc;
    size_t n = encoded_word(p, &cs, &cs_len, &enc, &text, &text_len);
    if (!n)
      continue;
    if (enc == 'B' && memchr(text, '=', text_len)) {
      const char *next = p + n + strspn(p + n, " \t\r\n");
      const char *cs2, *text2;
      size_t cs2_len, text2_len;
      char enc2;
      if (encoded_word(next, &cs2, &cs2_len, &enc2, &text2, &text2_len))
        fires = TRUE;
    }
    p += n - 2;
  }
  if (!fires)
    return NULL;

  GString *out = g_string_sized_new(strlen(value) * 2);
  const char *p = value;
  while (*p) {
    const char *cs, *text;
    size_t cs_len, text_len;
    char enc;
    size_t n = encoded_word(p, &cs, &cs_len, &enc, &text, &text_len);
    if (!n || enc != 'B') {
      if (n) {
        g_string_append_len(out, p, (gssize)n);
        p += n;
      } else {
        g_string_append_c(out, *p++);
      }
      continue;
    }
    char *b64 = g_strndup(text, text_len);
    gsize raw_len = 0;
    guchar *raw = g_base64_decode(b64, &raw_len);
    g_string_append(out, "=?");
    g_string_append_len(out, cs, (gssize)cs_len);
    g_string_append(out, "?Q?");
    for (gsize i = 0; i < raw_len; i++) {
      if (g_ascii_isalnum(raw[i]))
        g_string_append_c(out, (char)raw[i]);
      else
        g_string_append_printf(out, "=%02X", raw[i]);
    }
    g_string_append(out, "?=");
    g_free(raw);
    g_free(b64);
    p += n;
  }
  return g_string_free(out, FALSE);
}
