/* rebuild.c: deterministic raw MIME from parsed fields. See rebuild.h. */
#include "rebuild.h"

#include <gmime/gmime.h>
#include <string.h>

typedef struct rb_header {
  char *name, *value;
} rb_header;

typedef struct rb_part {
  GBytes *data;
  char *content_type; /* sanitized "type/subtype" */
  char *charset;      /* sanitized token or NULL */
  char *filename;     /* valid UTF-8 or NULL */
  char *content_id;   /* sanitized, no brackets; NULL: attachment */
} rb_part;

struct rebuild {
  GPtrArray *headers;   /* of rb_header* */
  GString *text, *html; /* NULL when not set */
  GPtrArray *parts;     /* of rb_part* */
};

/* Soft limit for header lines; we fold at blanks before it. */
#define RB_LINE 78
/* Bytes of UTF-8 per RFC 2047 encoded word: 45 bytes -> 60 base64 characters, so
 * "=?UTF-8?B?" + 60 + "?=" stays under the 75-character limit. */
#define RB_WORD_BYTES 45
#define RB_MAX_FILENAME 255

static void
header_free(gpointer p)
{
  rb_header *h = p;
  g_free(h->name);
  g_free(h->value);
  g_free(h);
}

static void
part_free(gpointer p)
{
  rb_part *pt = p;
  g_bytes_unref(pt->data);
  g_free(pt->content_type);
  g_free(pt->charset);
  g_free(pt->filename);
  g_free(pt->content_id);
  g_free(pt);
}

rebuild *
rebuild_new(void)
{
  rebuild *rb = g_new0(rebuild, 1);
  rb->headers = g_ptr_array_new_with_free_func(header_free);
  rb->parts = g_ptr_array_new_with_free_func(part_free);
  return rb;
}

void
rebuild_free(rebuild *rb)
{
  if (!rb)
    return;
  g_ptr_array_unref(rb->headers);
  g_ptr_array_unref(rb->parts);
  if (rb->text)
    g_string_free(rb->text, TRUE);
  if (rb->html)
    g_string_free(rb->html, TRUE);
  g_free(rb);
}

/* ---- headers ----------------------------------------------------------------------- */

static int
valid_field_name(const char *name)
{
  size_t n = strlen(name);
  if (n == 0 || n > 200)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 33 || c > 126 || c == ':')
      return 0;
  }
  return 1;
}

static int
builder_owned(const char *name)
{
  static const char *const own[] = {"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
                                    "Content-Length", "Content-Disposition"};
  for (size_t i = 0; i < G_N_ELEMENTS(own); i++)
    if (g_ascii_strcasecmp(name, own[i]) == 0)
      return 1;
  return 0;
}

/* VALUE as valid UTF-8 with control characters (CR, LF, ...) turned into spaces and the
 * ends trimmed. New string. */
static char *
clean_value(const char *value)
{
  char *v = g_utf8_make_valid(value ? value : "", -1);
  for (char *p = v; *p; p++)
    if ((unsigned char)*p < 0x20 && *p != '\t')
      *p = ' ';
  return g_strstrip(v);
}

void
rebuild_add_header(rebuild *rb, const char *name, const char *value)
{
  if (!name || !valid_field_name(name) || builder_owned(name))
    return;
  rb_header *h = g_new0(rb_header, 1);
  h->name = g_strdup(name);
  h->value = clean_value(value);
  g_ptr_array_add(rb->headers, h);
}

void
rebuild_set_header(rebuild *rb, const char *name, const char *value)
{
  if (!name || !valid_field_name(name) || builder_owned(name))
    return;
  int found = 0;
  for (guint i = 0; i < rb->headers->len;) {
    rb_header *h = g_ptr_array_index(rb->headers, i);
    if (g_ascii_strcasecmp(h->name, name) != 0) {
      i++;
    } else if (!found) {
      g_free(h->value);
      h->value = clean_value(value);
      found = 1;
      i++;
    } else {
      g_ptr_array_remove_index(rb->headers, i);
    }
  }
  if (!found)
    rebuild_add_header(rb, name, value);
}

int
rebuild_has_header(const rebuild *rb, const char *name)
{
  for (guint i = 0; i < rb->headers->len; i++) {
    rb_header *h = g_ptr_array_index(rb->headers, i);
    if (g_ascii_strcasecmp(h->name, name) == 0)
      return 1;
  }
  return 0;
}

static int
is_ascii(const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] >= 0x80)
      return 0;
  return 1;
}

/* Append S (valid UTF-8) as RFC 2047 "B" encoded words separated by spaces, each cut
 * at a character boundary. */
static void
append_encoded_words(GString *out, const char *s)
{
  const char *p = s;
  int first = 1;
  while (*p) {
    const char *end = p;
    while (*end) {
      const char *next = g_utf8_next_char(end);
      if ((size_t)(next - p) > RB_WORD_BYTES)
        break;
      end = next;
    }
    if (end == p) /* cannot happen with valid UTF-8; avoids looping on bad input */
      end = g_utf8_next_char(p);
    char *b64 = g_base64_encode((const guchar *)p, (gsize)(end - p));
    g_string_append_printf(out, "%s=?UTF-8?B?%s?=", first ? "" : " ", b64);
    g_free(b64);
    first = 0;
    p = end;
  }
}

static int
is_atext_phrase(const char *s)
{
  for (const char *p = s; *p; p++)
    if (!g_ascii_isalnum(*p) && !strchr("!#$%&'*+-/=?^_`{|}~ \t", *p))
      return 0;
  return 1;
}

/* Append a display name: as it is when it is atoms, quoted when it has specials, as
 * encoded words when it is not ASCII. */
static void
append_phrase(GString *out, const char *name)
{
  if (!is_ascii(name, strlen(name))) {
    append_encoded_words(out, name);
  } else if (is_atext_phrase(name)) {
    g_string_append(out, name);
  } else {
    g_string_append_c(out, '"');
    for (const char *p = name; *p; p++) {
      if (*p == '"' || *p == '\\')
        g_string_append_c(out, '\\');
      g_string_append_c(out, *p);
    }
    g_string_append_c(out, '"');
  }
}

static void
append_address_list(GString *out, InternetAddressList *list)
{
  int n = internet_address_list_length(list);
  for (int i = 0; i < n; i++) {
    InternetAddress *ia = internet_address_list_get_address(list, i);
    const char *name = internet_address_get_name(ia);
    if (i > 0)
      g_string_append(out, ", ");
    if (INTERNET_ADDRESS_IS_GROUP(ia)) {
      append_phrase(out, name ? name : "");
      g_string_append(out, ": ");
      append_address_list(out, internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)));
      g_string_append_c(out, ';');
    } else if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
      const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
      if (name && name[0]) {
        append_phrase(out, name);
        g_string_append_printf(out, " <%s>", addr ? addr : "");
      } else {
        g_string_append(out, addr ? addr : "");
      }
    }
  }
}

static int
is_address_header(const char *name)
{
  static const char *const addr[] = {
      "From",      "Sender",    "Reply-To",    "To",
      "Cc",        "Bcc",       "Resent-From", "Resent-Sender",
      "Resent-To", "Resent-Cc", "Resent-Bcc",  "Disposition-Notification-To"};
  for (size_t i = 0; i < G_N_ELEMENTS(addr); i++)
    if (g_ascii_strcasecmp(name, addr[i]) == 0)
      return 1;
  return 0;
}

/* The wire form of VALUE for header NAME: ASCII as is; otherwise encoded words (in
 * address headers only the display names). New string. */
static char *
encode_value(const char *name, const char *value)
{
  if (is_ascii(value, strlen(value)))
    return g_strdup(value);
  GString *out = g_string_new(NULL);
  if (is_address_header(name)) {
    InternetAddressList *list = internet_address_list_parse(NULL, value);
    if (list && internet_address_list_length(list) > 0)
      append_address_list(out, list);
    if (list)
      g_object_unref(list);
  }
  if (out->len == 0)
    append_encoded_words(out, value);
  return g_string_free(out, FALSE);
}

/* Append "NAME: VALUE\r\n", folded at blanks so lines stay near RB_LINE characters. A
 * word longer than a line is kept whole (lines may then run longer). */
static void
append_header_line(GString *out, const char *name, const char *value)
{
  GString *line = g_string_new(name);
  /* The first break may be the blank after the colon, when the first word of the value
   * (e.g. an encoded word) would not fit on the line with the name. */
  size_t min_break = line->len, colon_blank = line->len + 1;
  g_string_append(line, ": ");
  g_string_append(line, value);
  const char *s = line->str;
  size_t len = line->len, start = 0;
  while (len - start > RB_LINE) {
    size_t cut = 0;
    for (size_t i = start + RB_LINE; i > start && i > min_break; i--) {
      if (s[i] == ' ' || s[i] == '\t') {
        cut = i;
        break;
      }
    }
    if (cut && cut == colon_blank) {
      /* Worth it only when the first word then fits on its own line. */
      size_t w = cut + 1;
      while (w < len && s[w] != ' ' && s[w] != '\t')
        w++;
      if (w - cut > RB_LINE)
        cut = 0;
    }
    if (!cut) {
      for (size_t i = start + RB_LINE + 1; i < len; i++) {
        if ((s[i] == ' ' || s[i] == '\t') && i > colon_blank) {
          cut = i;
          break;
        }
      }
    }
    if (!cut)
      break;
    g_string_append_len(out, s + start, (gssize)(cut - start));
    g_string_append(out, "\r\n");
    start = cut;
    min_break = 0;
  }
  g_string_append_len(out, s + start, (gssize)(len - start));
  g_string_append(out, "\r\n");
  g_string_free(line, TRUE);
}

/* ---- bodies and parts -------------------------------------------------------------- */

static GString *
text_copy(const char *s, size_t len)
{
  char *valid = g_utf8_make_valid(s ? s : "", s ? (gssize)len : 0);
  GString *g = g_string_new(valid);
  g_free(valid);
  return g;
}

void
rebuild_set_text(rebuild *rb, const char *text, size_t len)
{
  if (rb->text)
    g_string_free(rb->text, TRUE);
  rb->text = text_copy(text, len);
}

void
rebuild_set_html(rebuild *rb, const char *html, size_t len)
{
  if (rb->html)
    g_string_free(rb->html, TRUE);
  rb->html = text_copy(html, len);
}

static int
is_token(const char *s, size_t n)
{
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?=", c))
      return 0;
  }
  return 1;
}

/* "type/subtype" of CT, lower case, or NULL when CT does not start with one. */
static char *
media_type(const char *ct)
{
  if (!ct)
    return NULL;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  size_t n = strcspn(ct, ";");
  while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
    n--;
  const char *slash = memchr(ct, '/', n);
  if (!slash || !is_token(ct, (size_t)(slash - ct)) ||
      !is_token(slash + 1, n - (size_t)(slash - ct) - 1))
    return NULL;
  return g_ascii_strdown(ct, (gssize)n);
}

/* The charset parameter of CT when it is a token, else NULL. */
static char *
charset_param(const char *ct)
{
  const char *p = ct ? strchr(ct, ';') : NULL;
  while (p) {
    p++;
    while (*p == ' ' || *p == '\t')
      p++;
    if (g_ascii_strncasecmp(p, "charset", 7) == 0) {
      const char *v = p + 7;
      while (*v == ' ' || *v == '\t')
        v++;
      if (*v == '=') {
        v++;
        while (*v == ' ' || *v == '\t')
          v++;
        int quoted = *v == '"';
        if (quoted)
          v++;
        size_t n = strcspn(v, quoted ? "\"" : "; \t");
        return is_token(v, n) ? g_ascii_strdown(v, (gssize)n) : NULL;
      }
    }
    p = strchr(p, ';');
  }
  return NULL;
}

/* A Content-ID without brackets, blanks or control characters; NULL when nothing is
 * left. */
static char *
clean_cid(const char *cid)
{
  GString *g = g_string_new(NULL);
  for (const char *p = cid; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c > 32 && c < 127 && c != '<' && c != '>')
      g_string_append_c(g, (char)c);
  }
  if (g->len == 0) {
    g_string_free(g, TRUE);
    return NULL;
  }
  return g_string_free(g, FALSE);
}

/* A filename as valid UTF-8 without control characters (CR/LF become spaces, as
 * receivers do), at most RB_MAX_FILENAME bytes; NULL when blank. */
static char *
clean_filename(const char *name)
{
  char *v = clean_value(name);
  if (strlen(v) > RB_MAX_FILENAME) {
    const char *end = v + RB_MAX_FILENAME;
    end = g_utf8_find_prev_char(v, end + 1);
    v[end ? (size_t)(end - v) : 0] = '\0';
  }
  if (v[0] == '\0') {
    g_free(v);
    return NULL;
  }
  return v;
}

void
rebuild_add_part(rebuild *rb, const char *data, size_t len, const char *content_type,
                 const char *filename, const char *content_id)
{
  rb_part *p = g_new0(rb_part, 1);
  p->data = g_bytes_new(data, len);
  p->content_type = media_type(content_type);
  if (!p->content_type)
    p->content_type = g_strdup("application/octet-stream");
  p->charset = charset_param(content_type);
  p->filename = filename ? clean_filename(filename) : NULL;
  p->content_id = content_id ? clean_cid(content_id) : NULL;
  g_ptr_array_add(rb->parts, p);
}

/* Append a parameter ";\r\n KEY=..." : a quoted string for printable ASCII, RFC 2231
 * KEY*=UTF-8''%XX otherwise. */
static void
append_param(GString *out, const char *key, const char *value)
{
  if (is_ascii(value, strlen(value))) {
    g_string_append_printf(out, ";\r\n %s=\"", key);
    for (const char *p = value; *p; p++) {
      if (*p == '"' || *p == '\\')
        g_string_append_c(out, '\\');
      g_string_append_c(out, *p);
    }
    g_string_append_c(out, '"');
    return;
  }
  g_string_append_printf(out, ";\r\n %s*=UTF-8''", key);
  for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
    if (g_ascii_isalnum(*p) || strchr("!#$&+-.^_`|~", *p))
      g_string_append_c(out, (char)*p);
    else
      g_string_append_printf(out, "%%%02X", *p);
  }
}

/* Encode IN with GMime's encoder and append it with CRLF line ends, without a final
 * line end (the CRLF before the next boundary belongs to the boundary). */
static void
append_encoded(GString *out, GMimeContentEncoding enc, const char *in, size_t len)
{
  GMimeEncoding st;
  g_mime_encoding_init_encode(&st, enc);
  char *buf = g_malloc(g_mime_encoding_outlen(&st, len) + 16);
  size_t n = g_mime_encoding_flush(&st, in, len, buf);
  if (enc == GMIME_CONTENT_ENCODING_BASE64 && n > 0 && buf[n - 1] == '\n')
    n--;
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == '\n')
      g_string_append(out, "\r\n");
    else
      g_string_append_c(out, buf[i]);
  }
  g_free(buf);
}

/* A text body: line ends made LF for the quoted-printable encoder (which writes them
 * as hard line breaks) or CRLF (canonical form) for base64, whichever has fewer bytes
 * of overhead: base64 when more than a third of the bytes are not ASCII. */
static void
append_text_leaf(GString *out, const char *subtype, const GString *text, int top)
{
  size_t high = 0;
  for (size_t i = 0; i < text->len; i++)
    if ((unsigned char)text->str[i] >= 0x80)
      high++;
  int b64 = high * 3 > text->len;
  GString *norm = g_string_sized_new(text->len + 16);
  for (size_t i = 0; i < text->len; i++) {
    char c = text->str[i];
    if (c == '\r') {
      if (i + 1 < text->len && text->str[i + 1] == '\n')
        continue;
      c = '\n';
    }
    if (c == '\n' && b64)
      g_string_append_c(norm, '\r');
    g_string_append_c(norm, c);
  }
  g_string_append_printf(out,
                         "Content-Type: text/%s; charset=utf-8\r\n"
                         "Content-Transfer-Encoding: %s\r\n\r\n",
                         subtype, b64 ? "base64" : "quoted-printable");
  append_encoded(out, b64 ? GMIME_CONTENT_ENCODING_BASE64 : GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE,
                 norm->str, norm->len);
  /* At the top level nothing follows to absorb the last line end: a soft line break
   * ends a quoted-printable body without adding a newline to the text. */
  if (top && norm->len && b64)
    g_string_append(out, "\r\n");
  else if (top && norm->len && norm->str[norm->len - 1] != '\n')
    g_string_append(out, "=\r\n");
  g_string_free(norm, TRUE);
}

static void
append_part_leaf(GString *out, const rb_part *p, int is_inline, int top)
{
  g_string_append_printf(out, "Content-Type: %s", p->content_type);
  if (p->charset)
    g_string_append_printf(out, "; charset=%s", p->charset);
  if (p->filename)
    append_param(out, "name", p->filename);
  g_string_append_printf(out, "\r\nContent-Disposition: %s", is_inline ? "inline" : "attachment");
  if (p->filename)
    append_param(out, "filename", p->filename);
  g_string_append(out, "\r\nContent-Transfer-Encoding: base64\r\n");
  if (p->content_id)
    g_string_append_printf(out, "Content-ID: <%s>\r\n", p->content_id);
  g_string_append(out, "\r\n");
  gsize len = 0;
  const char *data = g_bytes_get_data(p->data, &len);
  append_encoded(out, GMIME_CONTENT_ENCODING_BASE64, data ? data : "", len);
  if (top)
    g_string_append(out, "\r\n");
}

/* ---- structure --------------------------------------------------------------------- */

enum { N_TEXT, N_HTML, N_PART, N_MULTI };

typedef struct node {
  int kind;
  const char *subtype; /* N_MULTI */
  GPtrArray *children; /* N_MULTI: of node* */
  const rb_part *part; /* N_PART */
  int is_inline;       /* N_PART */
} node;

static void
node_free(gpointer p)
{
  node *n = p;
  if (n->children)
    g_ptr_array_unref(n->children);
  g_free(n);
}

static node *
node_new(int kind)
{
  node *n = g_new0(node, 1);
  n->kind = kind;
  if (kind == N_MULTI)
    n->children = g_ptr_array_new_with_free_func(node_free);
  return n;
}

/* Skip multiparts that have a single child. */
static const node *
node_collapse(const node *n)
{
  while (n->kind == N_MULTI && n->children->len == 1)
    n = g_ptr_array_index(n->children, 0);
  return n;
}

static const char *
node_type(const node *n)
{
  n = node_collapse(n);
  switch (n->kind) {
  case N_TEXT:
    return "text/plain";
  case N_HTML:
    return "text/html";
  case N_PART:
    return n->part->content_type;
  default:
    return g_str_equal(n->subtype, "alternative") ? "multipart/alternative"
           : g_str_equal(n->subtype, "related")   ? "multipart/related"
                                                  : "multipart/mixed";
  }
}

static void
append_node(GString *out, const rebuild *rb, const node *n, const char *hash, int top)
{
  n = node_collapse(n);
  switch (n->kind) {
  case N_TEXT:
    append_text_leaf(out, "plain", rb->text, top);
    return;
  case N_HTML:
    append_text_leaf(out, "html", rb->html, top);
    return;
  case N_PART:
    append_part_leaf(out, n->part, n->is_inline, top);
    return;
  default:
    break;
  }
  /* Distinct per subtype, so no boundary is a prefix of another; "=_" cannot occur at
   * the start of a quoted-printable or base64 line, so no content line can match. */
  char *boundary = g_strdup_printf("=_inboxd_%c_%.24s", n->subtype[0], hash);
  g_string_append_printf(out, "Content-Type: multipart/%s;", n->subtype);
  if (g_str_equal(n->subtype, "related"))
    g_string_append_printf(out, " type=\"%s\";", node_type(g_ptr_array_index(n->children, 0)));
  g_string_append_printf(out, "\r\n boundary=\"%s\"\r\n\r\n", boundary);
  for (guint i = 0; i < n->children->len; i++) {
    g_string_append_printf(out, "%s--%s\r\n", i ? "\r\n" : "", boundary);
    append_node(out, rb, g_ptr_array_index(n->children, i), hash, 0);
  }
  g_string_append_printf(out, "\r\n--%s--\r\n", boundary);
  g_free(boundary);
}

static void
hash_chunk(GChecksum *sum, const void *data, size_t len)
{
  guint64 n = GUINT64_TO_LE((guint64)len);
  g_checksum_update(sum, (const guchar *)&n, sizeof n);
  if (len)
    g_checksum_update(sum, data, (gssize)len);
}

static void
hash_str(GChecksum *sum, const char *s)
{
  hash_chunk(sum, s ? s : "", s ? strlen(s) + 1 : 0);
}

/* SHA-256 over everything that goes into the message, in order. New hex string. */
static char *
content_hash(const rebuild *rb)
{
  GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
  for (guint i = 0; i < rb->headers->len; i++) {
    const rb_header *h = g_ptr_array_index(rb->headers, i);
    hash_str(sum, h->name);
    hash_str(sum, h->value);
  }
  hash_str(sum, rb->text ? rb->text->str : NULL);
  hash_str(sum, rb->html ? rb->html->str : NULL);
  for (guint i = 0; i < rb->parts->len; i++) {
    const rb_part *p = g_ptr_array_index(rb->parts, i);
    gsize len = 0;
    const char *data = g_bytes_get_data(p->data, &len);
    hash_chunk(sum, data, len);
    hash_str(sum, p->content_type);
    hash_str(sum, p->charset);
    hash_str(sum, p->filename);
    hash_str(sum, p->content_id);
  }
  char *hex = g_strdup(g_checksum_get_string(sum));
  g_checksum_free(sum);
  return hex;
}

GBytes *
rebuild_finish(rebuild *rb)
{
  int has_body = rb->text || rb->html;
  node *alt = node_new(N_MULTI), *rel = node_new(N_MULTI), *mixed = node_new(N_MULTI);
  alt->subtype = "alternative";
  rel->subtype = "related";
  mixed->subtype = "mixed";
  if (rb->text)
    g_ptr_array_add(alt->children, node_new(N_TEXT));
  if (rb->html)
    g_ptr_array_add(alt->children, node_new(N_HTML));
  if (!has_body)
    g_ptr_array_add(alt->children, node_new(N_TEXT)); /* placeholder, dropped below */
  g_ptr_array_add(rel->children, alt);
  for (guint i = 0; i < rb->parts->len; i++) {
    const rb_part *p = g_ptr_array_index(rb->parts, i);
    node *leaf = node_new(N_PART);
    leaf->part = p;
    leaf->is_inline = p->content_id != NULL;
    /* Inline parts belong beside a body they can be shown in; without one they go to
     * the mixed level, still marked inline. */
    g_ptr_array_add(leaf->is_inline && has_body ? rel->children : mixed->children, leaf);
  }
  if (has_body || mixed->children->len == 0) {
    g_ptr_array_insert(mixed->children, 0, rel);
  } else {
    node_free(rel);
  }
  GString *empty = NULL;
  if (!has_body && mixed->children->len == 1 &&
      ((node *)g_ptr_array_index(mixed->children, 0))->kind == N_MULTI) {
    /* Nothing at all: an empty text/plain body. */
    empty = rb->text = g_string_new("");
  }
  char *hash = content_hash(rb);
  GString *out = g_string_new(NULL);
  for (guint i = 0; i < rb->headers->len; i++) {
    const rb_header *h = g_ptr_array_index(rb->headers, i);
    char *enc = encode_value(h->name, h->value);
    append_header_line(out, h->name, enc);
    g_free(enc);
  }
  g_string_append(out, "MIME-Version: 1.0\r\n");
  append_node(out, rb, mixed, hash, 1);
  if (empty) {
    g_string_free(empty, TRUE);
    rb->text = NULL;
  }
  node_free(mixed);
  g_free(hash);
  return g_string_free_to_bytes(out);
}
