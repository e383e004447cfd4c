/* form.c: multipart/form-data and urlencoded bodies. See form.h. Everything here is
 * written against hostile input: every scan is bounded by the body length, and every
 * malformed shape ends in a status and a sentence, never in a read past the end. */
#include "form.h"

#include <string.h>

struct form {
  GPtrArray *fields; /* of form_field*, freed with field_free */
  char *decoded;     /* urlencoded values live here; NULL for multipart */
};

/* RFC 2046 allows 70 characters; some senders go beyond, so we accept more. */
#define FORM_MAX_BOUNDARY 200

void
form_limits_default(form_limits *l)
{
  l->max_fields = 10000;
  l->max_name_len = 1024;
  l->max_part_header_bytes = 16 * 1024;
}

static void
field_free(gpointer p)
{
  form_field *ff = p;
  if (!ff)
    return;
  g_free(ff->name);
  g_free(ff->filename);
  g_free(ff->content_type);
  g_free(ff);
}

void
form_free(form *f)
{
  if (!f)
    return;
  g_ptr_array_unref(f->fields);
  g_free(f->decoded);
  g_free(f);
}

size_t
form_size(const form *f)
{
  return f->fields->len;
}

const form_field *
form_at(const form *f, size_t i)
{
  return i < f->fields->len ? g_ptr_array_index(f->fields, i) : NULL;
}

const form_field *
form_first(const form *f, const char *name)
{
  for (guint i = 0; i < f->fields->len; i++) {
    const form_field *ff = g_ptr_array_index(f->fields, i);
    if (strcmp(ff->name, name) == 0)
      return ff;
  }
  return NULL;
}

size_t
form_count(const form *f, const char *name)
{
  size_t n = 0;
  for (guint i = 0; i < f->fields->len; i++) {
    const form_field *ff = g_ptr_array_index(f->fields, i);
    if (strcmp(ff->name, name) == 0)
      n++;
  }
  return n;
}

GPtrArray *
form_all(const form *f, const char *name)
{
  GPtrArray *all = g_ptr_array_new();
  for (guint i = 0; i < f->fields->len; i++) {
    form_field *ff = g_ptr_array_index(f->fields, i);
    if (strcmp(ff->name, name) == 0)
      g_ptr_array_add(all, ff);
  }
  return all;
}

char *
form_dup_value(const form *f, const char *name)
{
  const form_field *ff = form_first(f, name);
  return ff ? g_strndup(ff->value, ff->len) : NULL;
}

/* ---- header parameters ------------------------------------------------------------ */

static int
is_lwsp(char c)
{
  return c == ' ' || c == '\t';
}

static const char *
skip_lwsp(const char *p, const char *end)
{
  while (p < end && (is_lwsp(*p) || *p == '\r' || *p == '\n'))
    p++;
  return p;
}

/* Find parameter KEY (case-insensitive) in the "; k=v; k2="v2"" list starting at S and
 * return its value as a new string (quotes and backslash escapes removed), or NULL when
 * absent. The first occurrence wins. Malformed tails end the search quietly. */
static char *
param_get(const char *s, const char *end, const char *key)
{
  size_t klen = strlen(key);
  const char *p = s;
  while (p < end) {
    /* Move to the next ';' that is not inside a quoted string. */
    while (p < end && *p != ';') {
      if (*p == '"') {
        p++;
        while (p < end && *p != '"') {
          if (*p == '\\' && p + 1 < end)
            p++;
          p++;
        }
      }
      if (p < end)
        p++;
    }
    if (p >= end)
      return NULL;
    p = skip_lwsp(p + 1, end);
    const char *name = p;
    while (p < end && *p != '=' && *p != ';' && !is_lwsp(*p))
      p++;
    size_t nlen = (size_t)(p - name);
    p = skip_lwsp(p, end);
    if (p >= end || *p != '=')
      continue;
    p = skip_lwsp(p + 1, end);
    int match = nlen == klen && g_ascii_strncasecmp(name, key, klen) == 0;
    if (p < end && *p == '"') {
      GString *v = match ? g_string_new(NULL) : NULL;
      p++;
      while (p < end && *p != '"') {
        if (*p == '\\' && p + 1 < end)
          p++;
        if (v)
          g_string_append_c(v, *p);
        p++;
      }
      if (p < end)
        p++;
      if (v)
        return g_string_free(v, FALSE);
    } else {
      const char *v = p;
      while (p < end && *p != ';' && !is_lwsp(*p) && *p != '\r' && *p != '\n')
        p++;
      if (match)
        return g_strndup(v, (size_t)(p - v));
    }
  }
  return NULL;
}

static int
hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* RFC 5987 ext-value "charset'lang'pct-encoded" -> new UTF-8 string, or NULL when it
 * does not have that shape or cannot be made UTF-8. */
static char *
ext_value_decode(const char *v)
{
  const char *q1 = strchr(v, '\'');
  const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
  if (!q2)
    return NULL;
  char *charset = g_strndup(v, (size_t)(q1 - v));
  GString *out = g_string_new(NULL);
  for (const char *p = q2 + 1; *p; p++) {
    int hi, lo;
    if (*p == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0) {
      g_string_append_c(out, (char)(hi * 16 + lo));
      p += 2;
    } else {
      g_string_append_c(out, *p);
    }
  }
  char *res = NULL;
  if (g_ascii_strcasecmp(charset, "utf-8") == 0 || g_ascii_strcasecmp(charset, "utf8") == 0 ||
      charset[0] == '\0') {
    if (g_utf8_validate(out->str, (gssize)out->len, NULL))
      res = g_strndup(out->str, out->len);
  } else {
    res = g_convert(out->str, (gssize)out->len, "UTF-8", charset, NULL, NULL, NULL);
  }
  g_free(charset);
  g_string_free(out, TRUE);
  return res;
}

/* ---- multipart/form-data ------------------------------------------------------------ */

typedef struct mp {
  const char *body;
  size_t len;
  const char *dash; /* "--" boundary */
  size_t dlen;
} mp;

/* Find the next delimiter line at or after FROM: "--boundary" at the start of a line
 * (offset 0 or after LF), followed by "--" (close) or by blanks and a line end. Returns
 * its offset and sets *AFTER to the offset of the next line and *CLOSE; (size_t)-1 when
 * there is none. */
static size_t
mp_find(const mp *m, size_t from, size_t *after, int *close)
{
  size_t pos = from;
  while (pos < m->len && m->len - pos >= m->dlen) {
    const char *hit = memmem(m->body + pos, m->len - pos, m->dash, m->dlen);
    if (!hit)
      return (size_t)-1;
    size_t at = (size_t)(hit - m->body);
    pos = at + 1;
    if (at != 0 && m->body[at - 1] != '\n')
      continue;
    size_t p = at + m->dlen;
    if (p + 1 < m->len && m->body[p] == '-' && m->body[p + 1] == '-') {
      *close = 1;
      *after = p + 2;
      return at;
    }
    while (p < m->len && is_lwsp(m->body[p]))
      p++;
    if (p < m->len && m->body[p] == '\r')
      p++;
    if (p < m->len && m->body[p] == '\n') {
      *close = 0;
      *after = p + 1;
      return at;
    }
    /* "--boundary" followed by other text, or by the end of the body without a line
     * end: not a delimiter. */
  }
  return (size_t)-1;
}

/* Parse the part header block starting at START: fill FF's name, filename and
 * content_type, and set *BODY_START after the blank line. */
static ib_status
mp_headers(const mp *m, size_t start, const form_limits *lim, size_t index, form_field *ff,
           size_t *body_start, char **why)
{
  ib_status st = IB_OK;
  GString *disp = NULL, *ctype = NULL, *cur = NULL; /* cur: the header being unfolded */
  size_t p = start;
  int ended = 0;
  while (p < m->len) {
    if (p - start > lim->max_part_header_bytes) {
      st = IB_ERR_LIMIT;
      *why = g_strdup_printf("part %zu has more than %zu bytes of headers", index + 1,
                             lim->max_part_header_bytes);
      goto done;
    }
    const char *nl = memchr(m->body + p, '\n', m->len - p);
    size_t eol = nl ? (size_t)(nl - m->body) : m->len;
    size_t lend = eol;
    if (lend > p && m->body[lend - 1] == '\r')
      lend--;
    if (!nl)
      break; /* a header line without its end: truncated */
    const char *line = m->body + p;
    size_t llen = lend - p;
    p = eol + 1;
    if (llen == 0) {
      ended = 1;
      break;
    }
    if (is_lwsp(line[0])) {
      if (cur)
        g_string_append_len(cur, line, (gssize)llen);
      continue;
    }
    cur = NULL;
    const char *colon = memchr(line, ':', llen);
    if (!colon)
      continue; /* not a header; ignored like browsers do */
    size_t nlen = (size_t)(colon - line);
    while (nlen > 0 && is_lwsp(line[nlen - 1]))
      nlen--;
    const char *val = colon + 1;
    size_t vlen = llen - (size_t)(val - line);
    if (nlen == 19 && g_ascii_strncasecmp(line, "Content-Disposition", 19) == 0) {
      if (!disp) {
        disp = g_string_new_len(val, (gssize)vlen);
        cur = disp;
      }
    } else if (nlen == 12 && g_ascii_strncasecmp(line, "Content-Type", 12) == 0) {
      if (!ctype) {
        ctype = g_string_new_len(val, (gssize)vlen);
        cur = ctype;
      }
    }
  }
  if (!ended) {
    st = IB_ERR_INVALID;
    *why = g_strdup_printf("part %zu: header block not terminated (truncated body?)", index + 1);
    goto done;
  }
  if (!disp) {
    st = IB_ERR_INVALID;
    *why = g_strdup_printf("part %zu has no Content-Disposition header", index + 1);
    goto done;
  }
  if (memchr(disp->str, '\0', disp->len) || (ctype && memchr(ctype->str, '\0', ctype->len))) {
    st = IB_ERR_INVALID;
    *why = g_strdup_printf("part %zu: NUL byte in a header", index + 1);
    goto done;
  }
  const char *dend = disp->str + disp->len;
  ff->name = param_get(disp->str, dend, "name");
  if (!ff->name) {
    st = IB_ERR_INVALID;
    *why = g_strdup_printf("part %zu has no name parameter", index + 1);
    goto done;
  }
  if (strlen(ff->name) > lim->max_name_len) {
    st = IB_ERR_LIMIT;
    *why =
        g_strdup_printf("part %zu: field name longer than %zu bytes", index + 1, lim->max_name_len);
    goto done;
  }
  char *ext = param_get(disp->str, dend, "filename*");
  if (ext) {
    ff->filename = ext_value_decode(ext);
    g_free(ext);
  }
  if (!ff->filename)
    ff->filename = param_get(disp->str, dend, "filename");
  if (ctype)
    ff->content_type = g_strstrip(g_strndup(ctype->str, ctype->len));
  *body_start = p;
done:
  if (disp)
    g_string_free(disp, TRUE);
  if (ctype)
    g_string_free(ctype, TRUE);
  return st;
}

static ib_status
parse_multipart(form *f, const char *ctype, const char *body, size_t len, const form_limits *lim,
                char **why)
{
  ib_status st = IB_OK;
  char *boundary = param_get(ctype, ctype + strlen(ctype), "boundary");
  char *dash = NULL;
  form_field *ff = NULL;
  if (!boundary || boundary[0] == '\0') {
    st = IB_ERR_INVALID;
    *why = g_strdup("multipart/form-data without a boundary parameter");
    goto done;
  }
  size_t blen = strlen(boundary);
  if (blen > FORM_MAX_BOUNDARY || strpbrk(boundary, "\r\n")) {
    st = IB_ERR_INVALID;
    *why = g_strdup("multipart boundary is too long or holds a line break");
    goto done;
  }
  dash = g_strconcat("--", boundary, NULL);
  mp m = {body, len, dash, blen + 2};
  size_t after = 0;
  int close = 0;
  size_t at = mp_find(&m, 0, &after, &close);
  if (at == (size_t)-1) {
    st = IB_ERR_INVALID;
    *why = g_strdup("multipart body does not contain its boundary");
    goto done;
  }
  size_t index = 0;
  while (!close) {
    if (f->fields->len >= lim->max_fields) {
      st = IB_ERR_LIMIT;
      *why = g_strdup_printf("more than %zu form fields", lim->max_fields);
      goto done;
    }
    ff = g_new0(form_field, 1);
    size_t vstart = 0;
    st = mp_headers(&m, after, lim, index, ff, &vstart, why);
    if (st != IB_OK)
      goto done;
    /* The next delimiter may start right at VSTART (empty value, the blank line's
     * newline doubling as the delimiter's). */
    size_t next = mp_find(&m, vstart, &after, &close);
    if (next == (size_t)-1) {
      st = IB_ERR_INVALID;
      *why = g_strdup_printf("part %zu (\"%s\") is not followed by a boundary: the final "
                             "boundary is missing",
                             index + 1, ff->name);
      goto done;
    }
    size_t vend = next;
    if (vend > vstart && body[vend - 1] == '\n')
      vend--;
    if (vend > vstart && body[vend - 1] == '\r')
      vend--;
    ff->value = body + vstart;
    ff->len = vend - vstart;
    g_ptr_array_add(f->fields, ff);
    ff = NULL;
    index++;
  }
done:
  field_free(ff);
  g_free(boundary);
  g_free(dash);
  return st;
}

/* ---- application/x-www-form-urlencoded ----------------------------------------------- */

/* Percent-decode IN (LEN bytes) into OUT ('+' is a space; a '%' not followed by two hex
 * digits stays as it is, as browsers do). Returns the decoded length (<= LEN). */
static size_t
url_decode(const char *in, size_t len, char *out)
{
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int hi, lo;
    if (in[i] == '+') {
      out[o++] = ' ';
    } else if (in[i] == '%' && i + 2 < len && (hi = hexval(in[i + 1])) >= 0 &&
               (lo = hexval(in[i + 2])) >= 0) {
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = in[i];
    }
  }
  return o;
}

static ib_status
parse_urlencoded(form *f, const char *body, size_t len, const form_limits *lim, char **why)
{
  /* Values are decoded into one buffer as large as the body: decoding never grows. */
  f->decoded = g_malloc(len + 1);
  char *out = f->decoded;
  size_t p = 0;
  while (p < len) {
    const char *amp = memchr(body + p, '&', len - p);
    size_t end = amp ? (size_t)(amp - body) : len;
    if (end > p) {
      if (f->fields->len >= lim->max_fields) {
        *why = g_strdup_printf("more than %zu form fields", lim->max_fields);
        return IB_ERR_LIMIT;
      }
      const char *eq = memchr(body + p, '=', end - p);
      size_t nend = eq ? (size_t)(eq - body) : end;
      if (nend - p > lim->max_name_len * 3) {
        *why = g_strdup_printf("field name longer than %zu bytes", lim->max_name_len);
        return IB_ERR_LIMIT;
      }
      char *name = g_malloc(nend - p + 1);
      size_t nlen = url_decode(body + p, nend - p, name);
      name[nlen] = '\0';
      if (nlen > lim->max_name_len || memchr(name, '\0', nlen)) {
        ib_status st = nlen > lim->max_name_len ? IB_ERR_LIMIT : IB_ERR_INVALID;
        if (st == IB_ERR_LIMIT)
          *why = g_strdup_printf("field name longer than %zu bytes", lim->max_name_len);
        else
          *why = g_strdup_printf("field %u: NUL byte in the name", f->fields->len + 1);
        g_free(name);
        return st;
      }
      form_field *ff = g_new0(form_field, 1);
      ff->name = name;
      ff->value = out;
      ff->len = eq ? url_decode(eq + 1, end - nend - 1, out) : 0;
      out += ff->len;
      g_ptr_array_add(f->fields, ff);
    }
    p = end + 1;
  }
  *out = '\0';
  return IB_OK;
}

/* ---- entry point ------------------------------------------------------------------- */

/* Does the media type at the start of CTYPE equal TYPE (case-insensitive)? */
static int
media_type_is(const char *ctype, const char *type)
{
  const char *p = ctype;
  while (is_lwsp(*p))
    p++;
  size_t tlen = strlen(type);
  if (g_ascii_strncasecmp(p, type, tlen) != 0)
    return 0;
  p += tlen;
  while (is_lwsp(*p))
    p++;
  return *p == '\0' || *p == ';';
}

ib_status
form_parse(const char *content_type, const char *body, size_t len, const form_limits *limits,
           form **form_out, char **error_out)
{
  form_limits defaults;
  char *why = NULL;
  ib_status st;
  form *f = g_new0(form, 1);
  f->fields = g_ptr_array_new_with_free_func(field_free);
  *form_out = NULL;
  if (!limits) {
    form_limits_default(&defaults);
    limits = &defaults;
  }
  if (!body && len > 0) {
    st = IB_ERR_INTERNAL;
    why = g_strdup("no body buffer");
  } else if (content_type && media_type_is(content_type, "multipart/form-data")) {
    st = parse_multipart(f, content_type, body ? body : "", len, limits, &why);
  } else if (content_type && media_type_is(content_type, "application/x-www-form-urlencoded")) {
    st = parse_urlencoded(f, body ? body : "", len, limits, &why);
  } else {
    st = IB_ERR_UNSUPPORTED;
    why = g_strdup_printf("media type %s%s%s is not a form (want multipart/form-data or "
                          "application/x-www-form-urlencoded)",
                          content_type ? "\"" : "", content_type ? content_type : "none",
                          content_type ? "\"" : "");
  }
  if (st == IB_OK) {
    *form_out = f;
    f = NULL;
  }
  form_free(f);
  if (error_out)
    *error_out = why;
  else
    g_free(why);
  return st;
}
