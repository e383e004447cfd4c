/* dsn.c: RFC 3464 / 5965 field blocks and RFC 3463 codes, read leniently: real MTAs
 * fold lines anywhere, omit the blank line between groups, write "rfc822;addr" without
 * a space, or put comments after the status code. */
#include "dsn.h"

#include <string.h>

static void
dsn_field_free(gpointer p)
{
  dsn_field *f = p;
  if (!f)
    return;
  g_free(f->name);
  g_free(f->value);
  g_free(f);
}

/* Collapse every run of ASCII white space in S to one space and trim, in place. */
static char *
collapse_ws(char *s)
{
  char *w = s;
  int pending = 0;
  for (const char *r = s; *r; r++) {
    if (g_ascii_isspace(*r)) {
      pending = w > s;
      continue;
    }
    if (pending)
      *w++ = ' ';
    pending = 0;
    *w++ = *r;
  }
  *w = '\0';
  return s;
}

/* Length of a field name at the start of LINE (RFC 5322 ftext, then optional blanks
 * and ':'), or 0 when LINE is no field. *NAME_LEN_OUT excludes the blanks. */
static size_t
field_name_len(const char *line, size_t *name_len_out)
{
  size_t i = 0;
  while (line[i] > 32 && line[i] < 127 && line[i] != ':')
    i++;
  if (i == 0)
    return 0;
  size_t name_len = i;
  while (line[i] == ' ' || line[i] == '\t')
    i++;
  if (line[i] != ':')
    return 0;
  *name_len_out = name_len;
  return i + 1;
}

static int
is_blank_line(const char *line, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isspace(line[i]))
      return 0;
  return 1;
}

GPtrArray *
dsn_fields_parse(const char *text, int header_block)
{
  GPtrArray *fields = g_ptr_array_new_with_free_func(dsn_field_free);
  if (!text)
    return fields;
  unsigned group = 0;
  int group_used = 0;    /* the current group holds a field */
  GString *value = NULL; /* value of the field being read (continuations append) */
  dsn_field *cur = NULL;

  const char *p = text;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    const char *next = eol ? eol + 1 : p + len;
    if (len && p[len - 1] == '\r')
      len--;
    char *line = g_strndup(p, len);
    p = next;

    if (is_blank_line(line, len)) {
      if (cur) {
        cur->value = collapse_ws(g_string_free(value, FALSE));
        cur = NULL;
        value = NULL;
      }
      if (group_used) {
        if (header_block) {
          g_free(line);
          break;
        }
        group++;
        group_used = 0;
      }
      g_free(line);
      continue;
    }
    if ((line[0] == ' ' || line[0] == '\t') && cur) {
      g_string_append_c(value, ' ');
      g_string_append(value, line);
      g_free(line);
      continue;
    }
    if (cur) {
      cur->value = collapse_ws(g_string_free(value, FALSE));
      cur = NULL;
      value = NULL;
    }
    size_t name_len = 0, skip = field_name_len(line, &name_len);
    if (skip && fields->len < DSN_MAX_FIELDS) {
      cur = g_new0(dsn_field, 1);
      cur->name = g_strndup(line, name_len);
      cur->group = group;
      value = g_string_new(line + skip);
      g_ptr_array_add(fields, cur);
      group_used = 1;
    }
    g_free(line);
  }
  if (cur)
    cur->value = collapse_ws(g_string_free(value, FALSE));
  return fields;
}

const char *
dsn_fields_get(const GPtrArray *fields, int group, const char *name)
{
  for (guint i = 0; i < fields->len; i++) {
    const dsn_field *f = g_ptr_array_index(fields, i);
    if ((group < 0 || f->group == (unsigned)group) && g_ascii_strcasecmp(f->name, name) == 0)
      return f->value;
  }
  return NULL;
}

char *
dsn_strip_type(const char *value)
{
  if (!value)
    return NULL;
  const char *p = value;
  while (g_ascii_isspace(*p))
    p++;
  /* atom ";" : the address-type / diagnostic-type of RFC 3464. */
  const char *q = p;
  if (g_ascii_isalpha(*q)) {
    while (g_ascii_isalnum(*q) || *q == '-' || *q == '_' || *q == '.')
      q++;
    while (*q == ' ' || *q == '\t')
      q++;
    if (*q == ';')
      p = q + 1;
  }
  char *out = collapse_ws(g_strdup(p));
  if (!*out) {
    g_free(out);
    return NULL;
  }
  return out;
}

char *
dsn_address(const char *value)
{
  char *s = dsn_strip_type(value);
  if (!s)
    return NULL;
  GString *out = g_string_new(NULL);
  for (const char *p = s; *p; p++)
    if (*p != '<' && *p != '>' && !g_ascii_isspace(*p) && *p != '"')
      g_string_append_c(out, *p);
  g_free(s);
  if (!out->len) {
    g_string_free(out, TRUE);
    return NULL;
  }
  return g_string_free(out, FALSE);
}

/* Count the digits at P (at most MAX + 1, so the caller sees "too many"). */
static size_t
digits_at(const char *p, size_t max)
{
  size_t n = 0;
  while (n <= max && g_ascii_isdigit(p[n]))
    n++;
  return n;
}

char *
dsn_find_status(const char *text)
{
  if (!text)
    return NULL;
  for (const char *p = text; *p; p++) {
    if (*p != '2' && *p != '4' && *p != '5')
      continue;
    if (p > text && (g_ascii_isdigit(p[-1]) || p[-1] == '.'))
      continue;
    if (p[1] != '.')
      continue;
    size_t a = digits_at(p + 2, 3);
    if (a < 1 || a > 3 || p[2 + a] != '.')
      continue;
    const char *c = p + 3 + a;
    size_t b = digits_at(c, 3);
    if (b < 1 || b > 3)
      continue;
    const char *end = c + b;
    /* "5.1.1." ends a sentence; "192.0.2.1" style numbers go on with digits. */
    if (*end == '.' && g_ascii_isdigit(end[1]))
      continue;
    return g_strndup(p, end - p);
  }
  return NULL;
}

char *
dsn_status_from_smtp(const char *text)
{
  if (!text)
    return NULL;
  for (const char *p = text; *p; p++) {
    if (*p != '4' && *p != '5')
      continue;
    if (p > text && (g_ascii_isalnum(p[-1]) || p[-1] == '.' || p[-1] == '-'))
      continue;
    if (!g_ascii_isdigit(p[1]) || !g_ascii_isdigit(p[2]))
      continue;
    char after = p[3];
    if (g_ascii_isalnum(after) || after == '.')
      continue;
    return g_strdup_printf("%c.0.0", *p);
  }
  return NULL;
}

char *
dsn_msgid(const char *value)
{
  if (!value)
    return NULL;
  const char *lt = strchr(value, '<');
  const char *gt = lt ? strchr(lt, '>') : NULL;
  const char *start = value, *end = value + strlen(value);
  if (lt && gt) {
    start = lt + 1;
    end = gt;
  } else {
    /* No brackets: the first word is the id. */
    while (start < end && g_ascii_isspace(*start))
      start++;
    const char *w = start;
    while (w < end && !g_ascii_isspace(*w))
      w++;
    end = w;
  }
  GString *out = g_string_new(NULL);
  for (const char *p = start; p < end; p++)
    if (!g_ascii_isspace(*p) && *p != '<' && *p != '>')
      g_string_append_c(out, *p);
  if (!out->len) {
    g_string_free(out, TRUE);
    return NULL;
  }
  return g_string_free(out, FALSE);
}

/* Add the addr-spec of one list entry ENTRY (LEN bytes) to OUT. */
static void
add_list_entry(GPtrArray *out, const char *entry, size_t len)
{
  GString *spec = g_string_new(NULL);
  const char *lt = memchr(entry, '<', len);
  const char *gt = lt ? memchr(lt, '>', len - (lt - entry)) : NULL;
  if (lt && gt) {
    for (const char *p = lt + 1; p < gt; p++)
      if (!g_ascii_isspace(*p))
        g_string_append_c(spec, *p);
  } else {
    /* Bare addr-spec, perhaps with a comment "a@x (Name)" or a group "team: a@x". */
    int depth = 0, in_quote = 0;
    for (size_t i = 0; i < len; i++) {
      char c = entry[i];
      if (in_quote) {
        in_quote = c != '"';
        continue;
      }
      if (c == '"' && !depth)
        in_quote = 1;
      else if (c == '(')
        depth++;
      else if (c == ')' && depth)
        depth--;
      else if (!depth && c == ':')
        g_string_truncate(spec, 0);
      else if (!depth && !g_ascii_isspace(c) && c != ';')
        g_string_append_c(spec, c);
    }
  }
  if (strchr(spec->str, '@'))
    g_ptr_array_add(out, g_string_free(spec, FALSE));
  else
    g_string_free(spec, TRUE);
}

GPtrArray *
dsn_address_list(const char *list)
{
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  if (!list)
    return out;
  const char *start = list;
  int in_quote = 0, in_angle = 0, depth = 0;
  for (const char *p = list;; p++) {
    char c = *p;
    if (c == '\0' || (c == ',' && !in_quote && !in_angle && !depth)) {
      add_list_entry(out, start, p - start);
      if (c == '\0')
        break;
      start = p + 1;
      continue;
    }
    if (in_quote) {
      if (c == '\\' && p[1])
        p++;
      else if (c == '"')
        in_quote = 0;
    } else if (c == '"') {
      in_quote = 1;
    } else if (c == '(') {
      depth++;
    } else if (c == ')' && depth) {
      depth--;
    } else if (c == '<' && !depth) {
      in_angle = 1;
    } else if (c == '>' && !depth) {
      in_angle = 0;
    }
  }
  return out;
}

typedef struct rcpt_build {
  ib_bounce_rcpt *rcpt;
  unsigned group;
  int has_original, has_final;
  char *original; /* Original-Recipient, used when there is no Final-Recipient */
} rcpt_build;

static void
rcpt_finish(GPtrArray *out, rcpt_build *b)
{
  if (!b->rcpt)
    return;
  ib_bounce_rcpt *r = b->rcpt;
  if (!r->address) {
    r->address = b->original;
    b->original = NULL;
  }
  if (!r->status && r->diagnostic) {
    r->status = dsn_find_status(r->diagnostic);
    if (!r->status)
      r->status = dsn_status_from_smtp(r->diagnostic);
  }
  if (r->address || r->action || r->status)
    g_ptr_array_add(out, r);
  else
    ib_bounce_rcpt_free(r);
  g_free(b->original);
  memset(b, 0, sizeof *b);
}

static void
rcpt_start(GPtrArray *out, rcpt_build *b, unsigned group)
{
  rcpt_finish(out, b);
  b->rcpt = g_new0(ib_bounce_rcpt, 1);
  b->group = group;
}

GPtrArray *
dsn_recipients_parse(const char *status_fields)
{
  GPtrArray *out = g_ptr_array_new_with_free_func(ib_bounce_rcpt_free);
  GPtrArray *fields = dsn_fields_parse(status_fields, 0);
  rcpt_build b = {0};
  for (guint i = 0; i < fields->len; i++) {
    const dsn_field *f = g_ptr_array_index(fields, i);
    int same = b.rcpt && b.group == f->group;
    if (g_ascii_strcasecmp(f->name, "Original-Recipient") == 0) {
      if (!same || b.has_original || b.has_final)
        rcpt_start(out, &b, f->group);
      b.has_original = 1;
      g_free(b.original);
      b.original = dsn_address(f->value);
    } else if (g_ascii_strcasecmp(f->name, "Final-Recipient") == 0) {
      if (!same || b.has_final)
        rcpt_start(out, &b, f->group);
      b.has_final = 1;
      g_free(b.rcpt->address);
      b.rcpt->address = dsn_address(f->value);
    } else if (g_ascii_strcasecmp(f->name, "Action") == 0) {
      if (!same || b.rcpt->action)
        rcpt_start(out, &b, f->group);
      char *a = dsn_strip_type(f->value);
      if (a) {
        a[strcspn(a, " \t(;")] = '\0';
        b.rcpt->action = g_ascii_strdown(a, -1);
        g_free(a);
      }
    } else if (g_ascii_strcasecmp(f->name, "Status") == 0) {
      if (!same || b.rcpt->status)
        rcpt_start(out, &b, f->group);
      b.rcpt->status = dsn_find_status(f->value);
    } else if (g_ascii_strcasecmp(f->name, "Diagnostic-Code") == 0) {
      if (!same || b.rcpt->diagnostic)
        rcpt_start(out, &b, f->group);
      b.rcpt->diagnostic = dsn_strip_type(f->value);
    }
  }
  rcpt_finish(out, &b);
  g_ptr_array_unref(fields);
  return out;
}
