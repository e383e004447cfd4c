/* mime.c: raw RFC 5322 bytes -> ib_message, with GMime 3.
 *
 * The order of work in mime_parse():
 *  1. repair_input() fixes what would make GMime lose the structure (repair.c);
 *  2. the top-level header block is read here, byte for byte, into msg->headers; the
 *     envelope fields (subject, addresses, ids, date) are decoded from those values
 *     with GMime's decoders, always from the first occurrence of a field;
 *  3. GMime parses the same bytes from a memory stream that borrows them (no copy);
 *  4. walk() visits the MIME tree with our own depth and part caps, records every leaf
 *     in document order and chooses the bodies (text/plain and text/html of
 *     alternative / related / mixed, Apple Mail's interleaved inline text included);
 *  5. the chosen bodies are decoded and converted to UTF-8, then every other leaf
 *     becomes an attachment (winmail.dat unpacked, message/rfc822 kept whole as the
 *     bytes it has in the input), and the multipart/report pieces are copied out.
 * Nothing parsed is ever written back out with GMime: reserializing untrusted input
 * re-encodes it and can loop on crafted parameters before GMime 3.2.15. */
#include "mime.h"

#include "hash.h"

#include <gmime/gmime.h>
#include <libxml/parser.h>
#include <stdarg.h>
#include <string.h>

#include "html2text.h"
#include "repair.h"
#include "tnef.h"

/* parse_warnings kept per message; a storm of identical GMime reports is folded. */
#define WARN_MAX 100
/* Bytes of untrusted text quoted in a warning. */
#define QUOTE_MAX 80
/* Characters of a filename made from an attached message's subject. */
#define SUBJECT_NAME_MAX 120

void
mime_limits_default(mime_limits *l)
{
  l->max_depth = 32;
  l->max_parts = 1000;
  l->max_headers = 1000;
  l->max_header_bytes = 64 * 1024;
  l->max_attachments = 500;
  l->max_attachment_bytes = (uint64_t)64 << 20;
  l->max_decoded_bytes = (uint64_t)256 << 20;
}

void
mime_init(void)
{
  g_mime_init();
  xmlInitParser();
}

void
mime_shutdown(void)
{
  g_mime_shutdown();
  xmlCleanupParser();
}

/* The bytes a GMime tree was parsed from: the (repaired) input, or the buffer of a
 * multipart that repair_multipart() re-parsed. Header and content offsets that GMime
 * reports are offsets into BASE. */
typedef struct src {
  const char *base;
  size_t len;
} src;

typedef enum leaf_kind { LEAF_OTHER = 0, LEAF_PLAIN, LEAF_HTML, LEAF_MESSAGE } leaf_kind;

/* A leaf of the MIME tree, in document order. */
typedef struct leaf {
  GMimeObject *obj;      /* borrowed from the parsed tree */
  leaf_kind kind;        /* PLAIN/HTML: may be a body; MESSAGE: an attached message */
  gboolean body;         /* chosen as (part of) msg->text or msg->html */
  gboolean in_report;    /* inside the first multipart/report */
  const char *msg_bytes; /* LEAF_MESSAGE: the attached message as in the input */
  size_t msg_len;
} leaf;

/* Body candidates of a subtree: indexes into ctx.leaves. */
typedef struct bodies {
  GArray *plain, *html;
} bodies;

typedef struct ctx {
  ib_message *msg;
  mime_limits lim;
  GMimeParserOptions *opts;
  gint64 top_header_end;      /* end of the top-level header block, in the input */
  gboolean constructing;      /* GMime is building the tree (see on_gmime_warning) */
  const char *current_header; /* address field being parsed (see on_gmime_warning) */
  char *address_issue;        /* first item GMime could not read in that field */
  GPtrArray *leaves;          /* of leaf* */
  GPtrArray *keep;            /* GMimeObjects made by repairs, alive until the end */
  GPtrArray *bounds;          /* boundaries of the enclosing multiparts (borrowed) */
  GHashTable *cids;           /* content ids referenced as cid: by the html body */
  unsigned parts;
  uint64_t decoded;
  int in_report;
  gboolean report_seen, truncated, has_multipart;
  gboolean warned_depth, warned_parts, warned_attachments, warned_decoded;
  tnef_result *tnef_body;    /* body carried by the first winmail.dat, if any */
  unsigned warnings_dropped; /* warnings not kept past WARN_MAX */
} ctx;

/* ---- small helpers --------------------------------------------------------------- */

/* A printable, valid UTF-8 excerpt of S for a warning (new string). */
static char *
quote(const char *s)
{
  if (!s)
    return g_strdup("");
  size_t n = strnlen(s, QUOTE_MAX);
  char *q = g_utf8_make_valid(s, (gssize)n);
  for (char *p = q; *p; p++)
    if ((unsigned char)*p < 0x20)
      *p = ' ';
  return q;
}

/* ib_message_warn(), except that an identical warning is not added twice: GMime
 * reports e.g. every unterminated multipart of a deep tree separately. */
static void G_GNUC_PRINTF(3, 4) warn(ctx *c, const char *code, const char *fmt, ...)
{
  if (c->msg->warnings->len >= WARN_MAX) {
    c->warnings_dropped++;
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  char *detail = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  char *valid = g_utf8_make_valid(detail, -1);
  char *full = g_strdup_printf("%s: %s", code, valid);
  g_free(valid);
  g_free(detail);
  for (guint i = 0; i < c->msg->warnings->len; i++)
    if (strcmp(g_ptr_array_index(c->msg->warnings, i), full) == 0) {
      g_free(full);
      return;
    }
  g_ptr_array_add(c->msg->warnings, full);
}

/* A line of BUF starting at POS: content [start, start + len), next line at NEXT. */
typedef struct line {
  size_t start, len, next;
} line;

static line
line_at(const char *buf, size_t len, size_t pos)
{
  line l = {pos, 0, len};
  const char *nl = memchr(buf + pos, '\n', len - pos);
  size_t end = nl ? (size_t)(nl - buf) : len;
  l.next = nl ? end + 1 : len;
  if (end > pos && buf[end - 1] == '\r')
    end--;
  l.len = end - pos;
  return l;
}

/* Offset just past the blank line that ends the header block starting at POS, or
 * LEN when there is none. */
static size_t
header_block_end(const char *buf, size_t len, size_t pos)
{
  while (pos < len) {
    line l = line_at(buf, len, pos);
    if (l.len == 0)
      return l.next;
    pos = l.next;
  }
  return len;
}

/* Length of the header lines at the start of BUF, without the blank line. */
static size_t
header_block_len(const char *buf, size_t len)
{
  size_t pos = 0;
  while (pos < len) {
    line l = line_at(buf, len, pos);
    if (l.len == 0)
      return pos;
    pos = l.next;
  }
  return len;
}

static gboolean
is_type(GMimeObject *o, const char *type, const char *subtype)
{
  GMimeContentType *ct = g_mime_object_get_content_type(o);
  return ct && g_mime_content_type_is_type(ct, type, subtype);
}

/* "type/subtype" of O in lower case (new string). */
static char *
mime_type_of(GMimeObject *o)
{
  GMimeContentType *ct = g_mime_object_get_content_type(o);
  char *t = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
  char *lower = g_ascii_strdown(t ? t : "application/octet-stream", -1);
  g_free(t);
  char *valid = g_utf8_make_valid(lower, -1);
  g_free(lower);
  return valid;
}

/* S as valid UTF-8 without CR, LF and surrounding blanks; NULL when nothing is left.
 * Consumes S. */
static char *
clean_name(char *s)
{
  if (!s)
    return NULL;
  char *valid = g_utf8_make_valid(s, -1);
  g_free(s);
  char *w = valid;
  for (char *r = valid; *r; r++)
    if (*r != '\r' && *r != '\n')
      *w++ = *r;
  *w = '\0';
  g_strstrip(valid);
  if (!*valid) {
    g_free(valid);
    return NULL;
  }
  return valid;
}

/* A msg-id or content-id without <>, blanks and controls; NULL when empty. */
static char *
clean_id(const char *s)
{
  if (!s)
    return NULL;
  GString *id = g_string_new(NULL);
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p > 32 && *p != '<' && *p != '>' && *p != 0x7f)
      g_string_append_c(id, *p);
  char *valid = g_utf8_make_valid(id->str, (gssize)id->len);
  g_string_free(id, TRUE);
  if (!*valid) {
    g_free(valid);
    return NULL;
  }
  return valid;
}

static char *
utf8_dup(const char *s)
{
  return s ? g_utf8_make_valid(s, -1) : NULL;
}

/* ---- GMime's warnings --------------------------------------------------------------- */

static void
on_gmime_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer user_data)
{
  ctx *c = user_data;
  /* Inside the top-level header block our own header scan reports bad lines,
   * duplicates, 8-bit bytes and bad addresses, with the field's name. */
  gboolean top = c->constructing && offset >= 0 && offset < c->top_header_end;
  char *q = quote(item);
  switch (code) {
  case GMIME_WARN_DUPLICATED_HEADER:
  case GMIME_CRIT_CONFLICTING_HEADER:
    if (!top)
      warn(c, "duplicate_header", "%s in a MIME part", q);
    break;
  case GMIME_WARN_UNENCODED_8BIT_HEADER:
    break; /* raw UTF-8 is RFC 6532; other bytes are reported by the header scan */
  case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
    if (!top)
      warn(c, "invalid_rfc2047", "%s", q);
    break;
  case GMIME_CRIT_INVALID_HEADER_NAME:
    if (!top)
      warn(c, "invalid_header_line", "\"%s\" in a MIME part", q);
    break;
  case GMIME_WARN_INVALID_ADDRESS_LIST:
    if (c->current_header && !c->address_issue)
      c->address_issue = g_strdup(q);
    break;
  case GMIME_WARN_DUPLICATED_PARAMETER:
  case GMIME_CRIT_CONFLICTING_PARAMETER:
    warn(c, "duplicate_parameter", "%s", q);
    break;
  case GMIME_WARN_INVALID_CONTENT_TYPE:
    warn(c, "invalid_content_type", "%s", q);
    break;
  case GMIME_WARN_INVALID_PARAMETER:
    warn(c, "invalid_parameter", "%s", q);
    break;
  case GMIME_WARN_MALFORMED_MULTIPART:
    warn(c, "malformed_multipart", "%s", q);
    break;
  case GMIME_WARN_TRUNCATED_MESSAGE:
    c->truncated = TRUE; /* reported after the walk, when we know what was cut */
    break;
  case GMIME_WARN_MALFORMED_MESSAGE:
    warn(c, "malformed_message", "%s", q);
    break;
  case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
    warn(c, "multipart_without_boundary", "multipart/%s has no boundary parameter", q);
    break;
  case GMIME_CRIT_NESTING_OVERFLOW:
    warn(c, "limit_depth", "GMime stopped at its nesting limit");
    break;
  case GMIME_WARN_PART_WITHOUT_CONTENT:
  case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
    warn(c, "empty_part", "a MIME part has no content");
    break;
  default:
    warn(c, "mime_warning", "GMime warning %d: %s", (int)code, q);
    break;
  }
  g_free(q);
}

/* ---- the top-level header block ---------------------------------------------------- */

static void
add_header(ctx *c, char *name, GString *raw)
{
  ib_message *m = c->msg;
  if (m->headers->len >= c->lim.max_headers) {
    if (m->headers->len == c->lim.max_headers) {
      warn(c, "limit_headers", "more than %u header fields; the rest were dropped",
           c->lim.max_headers);
    }
    g_free(name);
    return;
  }
  char *value = repair_header_to_utf8(raw->str, raw->len, name, m);
  g_strstrip(value);
  size_t vlen = strlen(value);
  if (vlen > c->lim.max_header_bytes) {
    const char *cut = g_utf8_find_prev_char(value, value + c->lim.max_header_bytes + 1);
    size_t keep = cut ? (size_t)(cut - value) : 0;
    value[keep] = '\0';
    warn(c, "limit_header_bytes", "header %s is %zu bytes; kept the first %zu", name, vlen, keep);
  }
  ib_header *h = g_new0(ib_header, 1);
  h->name = name;
  h->value = value;
  g_ptr_array_add(m->headers, h);
}

/* Read the header block at the start of BUF into msg->headers (every field, in order,
 * unfolded, raw). Returns the offset where the body starts. */
static size_t
scan_headers(ctx *c, const char *buf, size_t len)
{
  size_t pos = 0;
  char *name = NULL;
  GString *value = g_string_new(NULL);
  while (pos < len) {
    line l = line_at(buf, len, pos);
    pos = l.next;
    const char *s = buf + l.start;
    size_t colon = 0, nlen;
    if (l.len == 0)
      break;
    if ((s[0] == ' ' || s[0] == '\t') && name) {
      g_string_append_len(value, s, (gssize)l.len);
    } else if ((nlen = repair_field_name_len(s, l.len, &colon)) > 0) {
      if (name)
        add_header(c, name, value);
      name = g_strndup(s, nlen);
      g_string_assign(value, "");
      g_string_append_len(value, s + colon + 1, (gssize)(l.len - colon - 1));
    } else {
      char *line_text = g_strndup(s, MIN(l.len, (size_t)QUOTE_MAX));
      char *q = quote(line_text);
      warn(c, "invalid_header_line", "\"%s\" is no header field; ignored", q);
      g_free(q);
      g_free(line_text);
    }
  }
  if (name)
    add_header(c, name, value);
  g_string_free(value, TRUE);
  return pos;
}

static const char *
first_header(ctx *c, const char *name)
{
  return ib_message_header(c->msg, name);
}

/* RFC 5322 allows these at most once; a second one is a spoofing trick or a bug. */
static const char *const singleton_fields[] = {"From",       "Sender",  "Reply-To",   "To",
                                               "Cc",         "Bcc",     "Message-ID", "In-Reply-To",
                                               "References", "Subject", "Date",       NULL};

static void
check_duplicates(ctx *c)
{
  for (const char *const *f = singleton_fields; *f; f++) {
    unsigned n = 0;
    for (guint i = 0; i < c->msg->headers->len; i++) {
      const ib_header *h = g_ptr_array_index(c->msg->headers, i);
      if (g_ascii_strcasecmp(h->name, *f) == 0)
        n++;
    }
    if (n > 1)
      warn(c, "duplicate_header", "%s appears %u times; the first one is used", *f, n);
  }
}

/* Unstructured header text, RFC 2047 decoded, as valid UTF-8 (new string). */
static char *
decode_text(ctx *c, const char *value)
{
  char *fixed = repair_rfc2047_padding(value);
  char *d = g_mime_utils_header_decode_text(c->opts, fixed ? fixed : value);
  char *out = utf8_dup(d ? d : value);
  g_free(d);
  g_free(fixed);
  return out;
}

static void
add_address(GPtrArray *out, InternetAddress *ia, int depth)
{
  if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
    const char *name = internet_address_get_name(ia);
    const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
    char *n = name && *name ? utf8_dup(name) : NULL;
    char *a = addr && *addr ? utf8_dup(addr) : NULL;
    if (n || a) {
      ib_addr *x = g_new0(ib_addr, 1);
      x->name = n;
      x->address = a;
      g_ptr_array_add(out, x);
    }
  } else if (INTERNET_ADDRESS_IS_GROUP(ia) && depth < 2) {
    InternetAddressList *members = internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia));
    int n = members ? internet_address_list_length(members) : 0;
    for (int i = 0; i < n; i++)
      add_address(out, internet_address_list_get_address(members, i), depth + 1);
  }
}

/* Parse the first FIELD header into OUT: mailboxes in order, groups flattened. A value
 * GMime finds no address in at all is kept as a name without address. */
static void
parse_addresses(ctx *c, const char *field, GPtrArray *out)
{
  const char *value = first_header(c, field);
  if (!value || !*value)
    return;
  char *fixed = repair_rfc2047_padding(value);
  c->current_header = field;
  InternetAddressList *list = internet_address_list_parse(c->opts, fixed ? fixed : value);
  c->current_header = NULL;
  int n = list ? internet_address_list_length(list) : 0;
  for (int i = 0; i < n; i++)
    add_address(out, internet_address_list_get_address(list, i), 0);
  if (n == 0) {
    char *name = g_mime_utils_header_decode_phrase(c->opts, fixed ? fixed : value);
    char *q = quote(value);
    warn(c, "invalid_address", "%s: \"%s\" holds no address; kept as a name", field, q);
    g_free(q);
    char *clean = clean_name(name);
    if (clean)
      g_ptr_array_add(out, ib_addr_new(clean, NULL));
    g_free(clean);
  } else if (c->address_issue) {
    warn(c, "invalid_address", "%s: cannot read \"%s\"", field, c->address_issue);
  }
  g_free(c->address_issue);
  c->address_issue = NULL;
  if (list)
    g_object_unref(list);
  g_free(fixed);
}

/* Message ids of the first FIELD header, in order, into OUT (char*). */
static void
parse_msgids(ctx *c, const char *field, GPtrArray *out)
{
  const char *value = first_header(c, field);
  if (!value || !*value)
    return;
  char *fixed = repair_msgid_list(value, field, c->msg);
  const char *v = fixed ? fixed : value;
  GMimeReferences *refs = g_mime_references_parse(c->opts, v);
  int n = refs ? g_mime_references_length(refs) : 0;
  for (int i = 0; i < n; i++) {
    char *id = clean_id(g_mime_references_get_message_id(refs, i));
    if (id)
      g_ptr_array_add(out, id);
  }
  if (out->len == 0) {
    /* no <id> at all: a bare id still identifies the message */
    char *d = g_mime_utils_decode_message_id(v);
    if (d && *d && !strpbrk(d, " \t")) {
      char *id = clean_id(d);
      if (id)
        g_ptr_array_add(out, id);
    }
    g_free(d);
  }
  if (refs)
    g_mime_references_free(refs);
  g_free(fixed);
}

static void
parse_date(ctx *c)
{
  const char *value = first_header(c, "Date");
  if (!value)
    return;
  /* ISO 8601 first: GMime reads "2025-01-06 12:00:00+02:00" as midnight */
  GDateTime *dt = repair_date(value, c->msg);
  if (!dt && *value)
    dt = g_mime_utils_header_decode_date(value);
  GDateTime *utc = dt ? g_date_time_to_utc(dt) : NULL;
  if (utc) {
    c->msg->date = g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ");
    g_date_time_unref(utc);
  } else {
    char *q = quote(value);
    warn(c, "bad_date", "cannot read Date \"%s\"", q);
    g_free(q);
  }
  if (dt)
    g_date_time_unref(dt);
}

static void
fill_envelope(ctx *c)
{
  ib_message *m = c->msg;
  check_duplicates(c);

  const char *subject = first_header(c, "Subject");
  if (subject)
    m->subject = decode_text(c, subject);

  GPtrArray *from = g_ptr_array_new_with_free_func(ib_addr_free);
  parse_addresses(c, "From", from);
  if (from->len)
    m->from = g_ptr_array_steal_index(from, 0);
  g_ptr_array_unref(from);
  parse_addresses(c, "To", m->to);
  parse_addresses(c, "Cc", m->cc);
  parse_addresses(c, "Reply-To", m->reply_to);

  const char *mid = first_header(c, "Message-ID");
  if (mid) {
    char *d = g_mime_utils_decode_message_id(mid);
    m->message_id = clean_id(d);
    g_free(d);
  }
  GPtrArray *irt = g_ptr_array_new_with_free_func(g_free);
  parse_msgids(c, "In-Reply-To", irt);
  if (irt->len)
    m->in_reply_to = g_ptr_array_steal_index(irt, 0);
  g_ptr_array_unref(irt);
  parse_msgids(c, "References", m->references);
  parse_date(c);
}

/* ---- decoding ------------------------------------------------------------------------ */

/* The decoded content of PART (transfer encoding undone through a filter stream), or
 * NULL when the decoded-bytes cap is reached. WHAT names the part in warnings. */
static GBytes *
decode_part(ctx *c, GMimePart *part, const char *what)
{
  if (c->decoded >= c->lim.max_decoded_bytes) {
    if (!c->warned_decoded)
      warn(c, "limit_decoded_bytes",
           "more than %" G_GUINT64_FORMAT " decoded bytes; later parts were skipped",
           c->lim.max_decoded_bytes);
    c->warned_decoded = TRUE;
    return NULL;
  }
  GMimeDataWrapper *w = g_mime_part_get_content(part);
  GMimeStream *in = w ? g_mime_data_wrapper_get_stream(w) : NULL;
  if (!in)
    return g_bytes_new(NULL, 0);
  GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(w);
  gint64 elen = g_mime_stream_length(in);

  if (enc == GMIME_CONTENT_ENCODING_BASE64 && GMIME_IS_STREAM_MEM(in)) {
    /* the encoded bytes are a range of the input: check them in place */
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(in));
    gint64 end = in->bound_end < 0 ? (gint64)(ba ? ba->len : 0) : in->bound_end;
    if (ba && in->bound_start >= 0 && in->bound_start <= end && end <= (gint64)ba->len)
      repair_check_base64((const char *)ba->data + in->bound_start, (size_t)(end - in->bound_start),
                          what, c->msg);
  }

  /* Reserve about the decoded size (base64 decodes to 3/4): GByteArray rounds the
   * reservation up to a power of two, so reserving the encoded size would keep up to
   * 2.7x the attachment allocated. */
  gint64 want = enc == GMIME_CONTENT_ENCODING_BASE64 ? elen / 4 * 3 + 3 : elen;
  GByteArray *arr = g_byte_array_sized_new(want > 0 && want < G_MAXINT32 ? (guint)want : 0);
  GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(arr);
  g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
  GMimeStream *filtered = g_mime_stream_filter_new(mem);
  if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
      enc == GMIME_CONTENT_ENCODING_UUENCODE) {
    GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);
    g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), f);
    g_object_unref(f);
  }
  g_mime_stream_reset(in);
  if (g_mime_stream_write_to_stream(in, filtered) < 0)
    warn(c, "read_error", "cannot read the content of %s", what);
  g_mime_stream_flush(filtered);
  g_object_unref(filtered);
  g_object_unref(mem);
  GBytes *bytes = g_byte_array_free_to_bytes(arr);

  c->decoded += g_bytes_get_size(bytes);
  if (c->decoded > c->lim.max_decoded_bytes) {
    warn(c, "limit_decoded_bytes",
         "more than %" G_GUINT64_FORMAT " decoded bytes; %s and later parts were skipped",
         c->lim.max_decoded_bytes, what);
    c->warned_decoded = TRUE;
    g_bytes_unref(bytes);
    return NULL;
  }
  return bytes;
}

/* RFC 3676 format=flowed: join soft-broken lines (ending in a space) with the next line
 * of the same quote depth, undo space-stuffing; DELSP removes the soft space. */
static char *
unflow(const char *text, gboolean delsp)
{
  GString *out = g_string_sized_new(strlen(text) + 1);
  gboolean joining = FALSE;
  int depth_open = -1;
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    int depth = 0;
    while ((size_t)depth < len && p[depth] == '>')
      depth++;
    const char *s = p + depth;
    size_t n = len - (size_t)depth;
    if (n && s[0] == ' ') {
      s++;
      n--;
    }
    gboolean sig = n == 3 && memcmp(s, "-- ", 3) == 0;
    gboolean soft = n > 0 && s[n - 1] == ' ' && !sig;
    if (joining && depth != depth_open) {
      g_string_append_c(out, '\n');
      joining = FALSE;
    }
    if (!joining) {
      for (int i = 0; i < depth; i++)
        g_string_append_c(out, '>');
      if (depth)
        g_string_append_c(out, ' ');
    }
    g_string_append_len(out, s, (gssize)(soft && delsp ? n - 1 : n));
    if (soft) {
      joining = TRUE;
      depth_open = depth;
    } else {
      joining = FALSE;
      if (nl)
        g_string_append_c(out, '\n');
    }
    if (!nl)
      break;
    p = nl + 1;
  }
  return g_string_free(out, FALSE);
}

/* The text of a text part as UTF-8 with LF line ends (new string), or NULL when the
 * decoded-bytes cap is reached. */
static char *
part_text(ctx *c, GMimeObject *o, gboolean html, const char *what)
{
  GBytes *bytes = decode_part(c, GMIME_PART(o), what);
  if (!bytes)
    return NULL;
  gsize len = 0;
  const char *data = g_bytes_get_data(bytes, &len);
  const char *charset = g_mime_object_get_content_type_parameter(o, "charset");
  char *text = repair_text_to_utf8(data ? data : "", len, charset, html, what, c->msg);
  g_bytes_unref(bytes);
  const char *format = g_mime_object_get_content_type_parameter(o, "format");
  if (!html && format && g_ascii_strcasecmp(format, "flowed") == 0) {
    const char *delsp = g_mime_object_get_content_type_parameter(o, "delsp");
    char *flat = unflow(text, delsp && g_ascii_strcasecmp(delsp, "yes") == 0);
    g_free(text);
    text = flat;
  }
  return text;
}

/* ---- the walk ------------------------------------------------------------------------ */

static guint
add_leaf(ctx *c, GMimeObject *o, leaf_kind kind)
{
  leaf *l = g_new0(leaf, 1);
  l->obj = o;
  l->kind = kind;
  l->in_report = c->in_report > 0;
  g_ptr_array_add(c->leaves, l);
  return c->leaves->len - 1;
}

static void
bodies_init(bodies *b)
{
  b->plain = g_array_new(FALSE, FALSE, sizeof(guint));
  b->html = g_array_new(FALSE, FALSE, sizeof(guint));
}

static void
bodies_clear(bodies *b)
{
  g_array_unref(b->plain);
  g_array_unref(b->html);
}

static void
append_all(GArray *to, const GArray *from)
{
  if (from->len)
    g_array_append_vals(to, from->data, from->len);
}

/* A text/plain or text/html leaf that is no attachment can be a body. A file name
 * makes an inline part an attachment, except on the message itself: a single-part mail
 * with "name=" on its Content-Type is still its own text. */
static leaf_kind
body_kind(GMimeObject *o, gboolean root)
{
  if (!GMIME_IS_TEXT_PART(o))
    return LEAF_OTHER;
  const char *disp = g_mime_object_get_disposition(o);
  if (disp && g_ascii_strcasecmp(disp, "attachment") == 0)
    return LEAF_OTHER;
  if (!root && g_mime_part_get_filename(GMIME_PART(o)))
    return LEAF_OTHER;
  if (is_type(o, "text", "plain"))
    return LEAF_PLAIN;
  if (is_type(o, "text", "html"))
    return LEAF_HTML;
  return LEAF_OTHER;
}

/* Offset of the first delimiter line "--BOUNDARY" at or after START, the line end
 * before it included; LEN when there is none. */
static size_t
find_boundary(const src *s, size_t start, const char *boundary)
{
  size_t blen = strlen(boundary);
  if (blen == 0 || start >= s->len)
    return s->len;
  size_t from = start > 0 ? start - 1 : 0;
  const char *hay = s->base + from;
  size_t left = s->len - from;
  for (;;) {
    const char *nl = memchr(hay, '\n', left);
    if (!nl)
      return s->len;
    size_t at = (size_t)(nl - s->base);
    if (s->len - at - 1 >= blen + 2 && nl[1] == '-' && nl[2] == '-' &&
        memcmp(nl + 3, boundary, blen) == 0) {
      if (at > start && s->base[at - 1] == '\r')
        at--;
      return at < start ? start : at;
    }
    left -= (size_t)(nl + 1 - hay);
    hay = nl + 1;
  }
}

/* Where the message attached as PART starts and ends in S, without reserializing: its
 * content starts after the blank line ending PART's headers and ends at the next
 * delimiter of any enclosing multipart. */
static void
message_range(ctx *c, GMimeObject *part, const src *s, leaf *l)
{
  gint64 last = -1, first_inner = -1;
  GMimeHeaderList *hl = g_mime_object_get_header_list(part);
  int n = hl ? g_mime_header_list_get_count(hl) : 0;
  for (int i = 0; i < n; i++) {
    gint64 off = g_mime_header_get_offset(g_mime_header_list_get_header_at(hl, i));
    if (off > last)
      last = off;
  }
  size_t start;
  if (last >= 0 && (size_t)last < s->len) {
    start = header_block_end(s->base, s->len, (size_t)last);
  } else {
    /* no headers of its own (the default type inside multipart/digest): the attached
     * message starts with its first header */
    GMimeMessage *inner = GMIME_IS_MESSAGE_PART(part)
                              ? g_mime_message_part_get_message(GMIME_MESSAGE_PART(part))
                              : NULL;
    GMimeHeaderList *ih = inner ? g_mime_object_get_header_list(GMIME_OBJECT(inner)) : NULL;
    int k = ih ? g_mime_header_list_get_count(ih) : 0;
    for (int i = 0; i < k; i++) {
      gint64 off = g_mime_header_get_offset(g_mime_header_list_get_header_at(ih, i));
      if (off >= 0 && (first_inner < 0 || off < first_inner))
        first_inner = off;
    }
    if (first_inner < 0 || (size_t)first_inner > s->len)
      return;
    start = (size_t)first_inner;
  }
  size_t end = s->len;
  for (guint i = 0; i < c->bounds->len; i++) {
    const char *b = g_ptr_array_index(c->bounds, i);
    if (b) {
      size_t at = find_boundary(s, start, b);
      if (at < end)
        end = at;
    }
  }
  l->msg_bytes = s->base + start;
  l->msg_len = end - start;
}

static void walk(ctx *c, GMimeObject *obj, unsigned depth, const src *s, bodies *out);

/* The root of a multipart/related: the part named by its start parameter, else the
 * first. */
static int
related_root(GMimeObject *obj)
{
  GMimeMultipart *mp = GMIME_MULTIPART(obj);
  char *start = clean_id(g_mime_object_get_content_type_parameter(obj, "start"));
  int root = 0;
  if (start) {
    for (int i = 0; i < g_mime_multipart_get_count(mp); i++) {
      char *cid = clean_id(g_mime_object_get_content_id(g_mime_multipart_get_part(mp, i)));
      gboolean match = cid && strcmp(cid, start) == 0;
      g_free(cid);
      if (match) {
        root = i;
        break;
      }
    }
  }
  g_free(start);
  return root;
}

static void
walk_multipart(ctx *c, GMimeObject *obj, unsigned depth, const src *s, bodies *out)
{
  GMimeMultipart *mp = GMIME_MULTIPART(obj);
  int count = g_mime_multipart_get_count(mp);
  c->has_multipart = TRUE;
  if (count == 0) {
    const char *base = NULL;
    size_t len = 0;
    GMimeObject *fixed = repair_multipart(mp, c->opts, c->msg, &base, &len);
    if (fixed) {
      g_ptr_array_add(c->keep, fixed);
      src s2 = {base, len};
      walk_multipart(c, fixed, depth, &s2, out);
    }
    return;
  }

  g_ptr_array_add(c->bounds, (gpointer)g_mime_object_get_content_type_parameter(obj, "boundary"));
  if (is_type(obj, "multipart", "alternative")) {
    /* plain from the first alternative that has one, html from the last (RFC 2046:
     * alternatives are in increasing order of preference) */
    bodies *kids = g_new0(bodies, count);
    for (int i = 0; i < count; i++) {
      bodies_init(&kids[i]);
      walk(c, g_mime_multipart_get_part(mp, i), depth + 1, s, out ? &kids[i] : NULL);
    }
    if (out) {
      for (int i = 0; i < count; i++)
        if (kids[i].plain->len) {
          append_all(out->plain, kids[i].plain);
          break;
        }
      for (int i = count - 1; i >= 0; i--)
        if (kids[i].html->len) {
          append_all(out->html, kids[i].html);
          break;
        }
    }
    for (int i = 0; i < count; i++)
      bodies_clear(&kids[i]);
    g_free(kids);
  } else if (is_type(obj, "multipart", "related")) {
    int root = related_root(obj);
    for (int i = 0; i < count; i++)
      walk(c, g_mime_multipart_get_part(mp, i), depth + 1, s, i == root ? out : NULL);
  } else if (is_type(obj, "multipart", "signed")) {
    for (int i = 0; i < count; i++)
      walk(c, g_mime_multipart_get_part(mp, i), depth + 1, s, i == 0 ? out : NULL);
  } else if (is_type(obj, "multipart", "encrypted")) {
    for (int i = 0; i < count; i++)
      walk(c, g_mime_multipart_get_part(mp, i), depth + 1, s, NULL);
  } else {
    gboolean report = is_type(obj, "multipart", "report") && !c->report_seen;
    if (report) {
      c->report_seen = TRUE;
      const char *rt = g_mime_object_get_content_type_parameter(obj, "report-type");
      if (rt && *rt) {
        char *lower = g_ascii_strdown(rt, -1);
        c->msg->report.report_type = utf8_dup(g_strstrip(lower));
        g_free(lower);
      }
      c->in_report++;
    }
    for (int i = 0; i < count; i++)
      walk(c, g_mime_multipart_get_part(mp, i), depth + 1, s, out);
    if (report)
      c->in_report--;
  }
  g_ptr_array_remove_index(c->bounds, c->bounds->len - 1);
}

static void
walk(ctx *c, GMimeObject *obj, unsigned depth, const src *s, bodies *out)
{
  if (!obj)
    return;
  if (depth > c->lim.max_depth) {
    if (!c->warned_depth)
      warn(c, "limit_depth", "parts nested deeper than %u levels were skipped", c->lim.max_depth);
    c->warned_depth = TRUE;
    return;
  }
  if (c->parts >= c->lim.max_parts) {
    if (!c->warned_parts)
      warn(c, "limit_parts", "more than %u MIME parts; the rest were skipped", c->lim.max_parts);
    c->warned_parts = TRUE;
    return;
  }
  c->parts++;
  if (GMIME_IS_MULTIPART(obj)) {
    walk_multipart(c, obj, depth, s, out);
  } else if (GMIME_IS_MESSAGE_PART(obj)) {
    guint i = add_leaf(c, obj, LEAF_MESSAGE);
    message_range(c, obj, s, g_ptr_array_index(c->leaves, i));
  } else if (GMIME_IS_PART(obj)) {
    leaf_kind kind = out ? body_kind(obj, depth == 0) : LEAF_OTHER;
    guint i = add_leaf(c, obj, kind);
    if (kind == LEAF_PLAIN)
      g_array_append_val(out->plain, i);
    else if (kind == LEAF_HTML)
      g_array_append_val(out->html, i);
  }
}

/* ---- bodies, attachments, report ----------------------------------------------------- */

/* Concatenate the texts of the leaves INDEXES (Apple Mail's inline pieces), plain text
 * pieces on their own lines. NULL when there are none. */
static char *
join_bodies(ctx *c, const GArray *indexes, gboolean html)
{
  if (!indexes->len)
    return NULL;
  GString *all = NULL;
  for (guint i = 0; i < indexes->len; i++) {
    leaf *l = g_ptr_array_index(c->leaves, g_array_index(indexes, guint, i));
    l->body = TRUE;
    char *t = part_text(c, l->obj, html, html ? "text/html body" : "text/plain body");
    if (!t)
      continue;
    if (!all) {
      all = g_string_new(t);
    } else {
      if (!html && all->len && all->str[all->len - 1] != '\n')
        g_string_append_c(all, '\n');
      g_string_append(all, t);
    }
    g_free(t);
  }
  return all ? g_string_free(all, FALSE) : NULL;
}

/* Content ids the HTML refers to as cid: URLs, lower-cased. */
static void
collect_cids(ctx *c, const char *html)
{
  for (const char *p = html; (p = strcasestr(p, "cid:")) != NULL;) {
    p += 4;
    size_t n = strcspn(p, "\"'()<> \t\r\n&");
    if (n) {
      char *raw = g_strndup(p, n);
      char *unesc = g_uri_unescape_string(raw, NULL);
      char *id = clean_id(unesc ? unesc : raw);
      if (id) {
        char *lower = g_utf8_strdown(id, -1);
        g_hash_table_add(c->cids, lower);
      }
      g_free(id);
      g_free(unesc);
      g_free(raw);
    }
    p += n;
  }
}

static gboolean
cid_referenced(ctx *c, const char *cid)
{
  char *lower = g_utf8_strdown(cid, -1);
  gboolean hit = g_hash_table_contains(c->cids, lower);
  g_free(lower);
  return hit;
}

/* Add an attachment made of DATA (stolen) and FILENAME (stolen) with CONTENT_TYPE.
 * OBJ (may be NULL, for files unpacked from winmail.dat) supplies Content-ID and
 * disposition. */
static void
add_attachment(ctx *c, GMimeObject *obj, char *filename, const char *content_type, GBytes *data)
{
  ib_message *m = c->msg;
  char *name = clean_name(filename);
  gsize size = g_bytes_get_size(data);
  if (size > c->lim.max_attachment_bytes) {
    warn(c, "limit_attachment_bytes",
         "%s is %zu bytes, over the %" G_GUINT64_FORMAT " byte cap; dropped",
         name ? name : content_type, (size_t)size, c->lim.max_attachment_bytes);
    g_free(name);
    g_bytes_unref(data);
    return;
  }
  if (m->attachments->len >= c->lim.max_attachments) {
    if (!c->warned_attachments)
      warn(c, "limit_attachments", "more than %u attachments; the rest were dropped",
           c->lim.max_attachments);
    c->warned_attachments = TRUE;
    g_free(name);
    g_bytes_unref(data);
    return;
  }
  ib_attachment *a = g_new0(ib_attachment, 1);
  a->filename = name;
  a->content_type = g_ascii_strdown(content_type, -1);
  a->content_id = obj ? clean_id(g_mime_object_get_content_id(obj)) : NULL;
  a->disposition = IB_DISP_ATTACHMENT;
  if (a->content_id) {
    const char *disp = g_mime_object_get_disposition(obj);
    if (cid_referenced(c, a->content_id) || (disp && g_ascii_strcasecmp(disp, "inline") == 0))
      a->disposition = IB_DISP_INLINE;
  }
  a->size = size;
  gsize data_len = 0;
  const void *bytes = g_bytes_get_data(data, &data_len);
  hash_sha256_hex(bytes, data_len, a->sha256);
  a->data = data;
  g_ptr_array_add(m->attachments, a);
}

/* "Subject.eml" for an attached message from its own header block, or NULL. */
static char *
name_from_subject(ctx *c, const char *bytes, size_t len)
{
  size_t hlen = header_block_len(bytes, len), pos = 0;
  char *name = NULL;
  while (pos < hlen && !name) {
    line l = line_at(bytes, hlen, pos);
    pos = l.next;
    size_t colon = 0;
    size_t nlen = repair_field_name_len(bytes + l.start, l.len, &colon);
    if (nlen != 7 || g_ascii_strncasecmp(bytes + l.start, "Subject", 7) != 0)
      continue;
    GString *v = g_string_new_len(bytes + l.start + colon + 1, (gssize)(l.len - colon - 1));
    while (pos < hlen) {
      line k = line_at(bytes, hlen, pos);
      if (k.len == 0 || (bytes[k.start] != ' ' && bytes[k.start] != '\t'))
        break;
      g_string_append_len(v, bytes + k.start, (gssize)k.len);
      pos = k.next;
    }
    char *valid = g_utf8_validate_len(v->str, v->len, NULL)
                      ? g_strndup(v->str, v->len)
                      : g_utf8_make_valid(v->str, (gssize)v->len);
    char *clean = clean_name(decode_text(c, g_strstrip(valid)));
    if (clean) {
      if (g_utf8_strlen(clean, -1) > SUBJECT_NAME_MAX)
        *g_utf8_offset_to_pointer(clean, SUBJECT_NAME_MAX) = '\0';
      name = g_strconcat(clean, ".eml", NULL);
    }
    g_free(clean);
    g_free(valid);
    g_string_free(v, TRUE);
  }
  return name;
}

/* The parameter PARAM of header FIELD of O, re-read from the raw header when GMime's
 * own decoding would hit its RFC 2047 padding bug (repair_rfc2047_padding); NULL
 * otherwise or when absent. Parses only: nothing is reserialized. */
static char *
param_without_padding_bug(ctx *c, GMimeObject *o, const char *field, const char *param)
{
  GMimeHeaderList *hl = g_mime_object_get_header_list(o);
  GMimeHeader *h = hl ? g_mime_header_list_get_header(hl, field) : NULL;
  const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
  char *fixed = raw ? repair_rfc2047_padding(raw) : NULL;
  if (!fixed)
    return NULL;
  char *value = NULL;
  if (g_ascii_strcasecmp(field, "Content-Disposition") == 0) {
    GMimeContentDisposition *d = g_mime_content_disposition_parse(c->opts, fixed);
    const char *v = d ? g_mime_content_disposition_get_parameter(d, param) : NULL;
    value = v ? utf8_dup(v) : NULL;
    if (d)
      g_object_unref(d);
  } else {
    GMimeContentType *t = g_mime_content_type_parse(c->opts, fixed);
    const char *v = t ? g_mime_content_type_get_parameter(t, param) : NULL;
    value = v ? utf8_dup(v) : NULL;
    if (t)
      g_object_unref(t);
  }
  g_free(fixed);
  return value;
}

static char *
part_filename(ctx *c, GMimeObject *o)
{
  char *fixed = param_without_padding_bug(c, o, "Content-Disposition", "filename");
  if (!fixed && !g_mime_object_get_content_disposition_parameter(o, "filename"))
    fixed = param_without_padding_bug(c, o, "Content-Type", "name");
  if (fixed)
    return fixed;
  const char *name = GMIME_IS_PART(o) ? g_mime_part_get_filename(GMIME_PART(o)) : NULL;
  if (!name)
    name = g_mime_object_get_content_disposition_parameter(o, "filename");
  if (!name)
    name = g_mime_object_get_content_type_parameter(o, "name");
  return name ? utf8_dup(name) : NULL;
}

static gboolean
is_tnef(GMimeObject *o, const char *filename)
{
  return is_type(o, "application", "ms-tnef") || is_type(o, "application", "vnd.ms-tnef") ||
         (filename && g_ascii_strcasecmp(filename, "winmail.dat") == 0);
}

static gboolean
is_status_part(GMimeObject *o)
{
  return is_type(o, "message", "delivery-status") || is_type(o, "message", "feedback-report") ||
         is_type(o, "message", "global-delivery-status") ||
         is_type(o, "message", "disposition-notification") ||
         is_type(o, "message", "global-disposition-notification");
}

static gboolean
is_returned_message(GMimeObject *o)
{
  return is_type(o, "message", "rfc822") || is_type(o, "message", "global") ||
         is_type(o, "text", "rfc822-headers") || is_type(o, "message", "global-headers");
}

/* UTF-8 is the charset of the message/global-* types (RFC 6533). */
static const char *
report_charset(GMimeObject *o)
{
  const char *cs = g_mime_object_get_content_type_parameter(o, "charset");
  if (cs)
    return cs;
  GMimeContentType *ct = g_mime_object_get_content_type(o);
  const char *sub = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
  return sub && g_ascii_strncasecmp(sub, "global", 6) == 0 ? "utf-8" : NULL;
}

static void
report_headers(ctx *c, GMimeObject *o, const char *bytes, size_t len)
{
  if (c->msg->report.original_headers || !bytes)
    return;
  size_t hlen = header_block_len(bytes, len);
  c->msg->report.original_headers = repair_text_to_utf8(bytes, hlen, report_charset(o), FALSE,
                                                        "returned message headers", c->msg);
}

static void
unpack_tnef(ctx *c, GMimeObject *o, char *filename, GBytes *data)
{
  gsize len = 0;
  const guint8 *d = g_bytes_get_data(data, &len);
  tnef_result *t = NULL;
  if (tnef_unpack(d, len, &t) != IB_OK) {
    warn(c, "tnef_unreadable", "%s is no readable TNEF stream; kept as is",
         filename ? filename : "winmail.dat");
    char *type = mime_type_of(o);
    add_attachment(c, o, filename, type, data);
    g_free(type);
    return;
  }
  if (t->files->len == 0 && !t->text && !t->html) {
    warn(c, "tnef_empty", "%s carries no files and no plain or HTML body; kept as is",
         filename ? filename : "winmail.dat");
    char *type = mime_type_of(o);
    add_attachment(c, o, filename, type, data);
    g_free(type);
    tnef_result_free(t);
    return;
  }
  for (guint i = 0; i < t->files->len; i++) {
    tnef_file *f = g_ptr_array_index(t->files, i);
    add_attachment(c, NULL, g_strdup(f->filename), f->content_type, g_bytes_ref(f->data));
  }
  g_free(filename);
  g_bytes_unref(data);
  if (!c->tnef_body && (t->text || t->html))
    c->tnef_body = t;
  else
    tnef_result_free(t);
}

static void
emit_leaf(ctx *c, leaf *l)
{
  GMimeObject *o = l->obj;
  char *type = mime_type_of(o);
  char *filename = part_filename(c, o);
  GBytes *data = NULL;
  if (l->kind == LEAF_MESSAGE) {
    if (!l->msg_bytes) {
      warn(c, "message_part_unlocated", "cannot find the bytes of an attached %s", type);
      data = g_bytes_new(NULL, 0);
    } else {
      data = g_bytes_new(l->msg_bytes, l->msg_len);
    }
  } else {
    data = decode_part(c, GMIME_PART(o), filename ? filename : type);
    if (!data)
      goto done;
  }
  gsize len = 0;
  const char *bytes = g_bytes_get_data(data, &len);

  if (l->in_report && is_status_part(o) && !c->msg->report.status_fields)
    c->msg->report.status_fields =
        repair_text_to_utf8(bytes ? bytes : "", len, report_charset(o), FALSE, type, c->msg);
  if (l->in_report && is_returned_message(o))
    report_headers(c, o, bytes, len);

  if (!filename && (is_type(o, "message", "rfc822") || is_type(o, "message", "global")))
    filename = name_from_subject(c, bytes ? bytes : "", len);
  if (!filename && (is_type(o, "message", "rfc822") || is_type(o, "message", "global")))
    filename = g_strdup("message.eml");

  if (l->kind != LEAF_MESSAGE && is_tnef(o, filename)) {
    unpack_tnef(c, o, filename, data);
    filename = NULL;
    data = NULL;
    goto done;
  }
  add_attachment(c, o, filename, type, data);
  filename = NULL;
  data = NULL;

done:
  g_free(filename);
  if (data)
    g_bytes_unref(data);
  g_free(type);
}

static gboolean
is_blank_text(const char *s)
{
  for (; s && *s; s++)
    if (!g_ascii_isspace(*s))
      return FALSE;
  return TRUE;
}

static void
fill_body(ctx *c, GMimeMessage *gm, const src *s)
{
  ib_message *m = c->msg;
  GMimeObject *root = g_mime_message_get_mime_part(gm);
  if (!root)
    return;
  bodies top;
  bodies_init(&top);
  walk(c, root, 0, s, &top);
  m->text = join_bodies(c, top.plain, FALSE);
  m->html = join_bodies(c, top.html, TRUE);
  bodies_clear(&top);

  if (m->html)
    collect_cids(c, m->html);
  for (guint i = 0; i < c->leaves->len; i++) {
    leaf *l = g_ptr_array_index(c->leaves, i);
    if (!l->body)
      emit_leaf(c, l);
  }

  if (c->tnef_body && !m->text && !m->html) {
    m->text = c->tnef_body->text ? g_strdup(c->tnef_body->text) : NULL;
    m->html = c->tnef_body->html ? g_strdup(c->tnef_body->html) : NULL;
    warn(c, "tnef_body", "the body was taken from winmail.dat");
  }
  if (c->truncated)
    warn(c, c->has_multipart ? "missing_closing_boundary" : "truncated_message",
         c->has_multipart ? "a multipart ends without its closing boundary"
                          : "the message ends inside its headers");
}

/* ---- entry point ------------------------------------------------------------------- */

static void
ctx_init(ctx *c, ib_message *m, const mime_limits *limits)
{
  c->msg = m;
  if (limits)
    c->lim = *limits;
  else
    mime_limits_default(&c->lim);
  c->leaves = g_ptr_array_new_with_free_func(g_free);
  c->keep = g_ptr_array_new_with_free_func(g_object_unref);
  c->bounds = g_ptr_array_new();
  c->cids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  c->opts = g_mime_parser_options_new();
  g_mime_parser_options_set_address_compliance_mode(c->opts, GMIME_RFC_COMPLIANCE_LOOSE);
  g_mime_parser_options_set_parameter_compliance_mode(c->opts, GMIME_RFC_COMPLIANCE_LOOSE);
  g_mime_parser_options_set_rfc2047_compliance_mode(c->opts, GMIME_RFC_COMPLIANCE_LOOSE);
  static const char *fallback[] = {"utf-8", "windows-1252", NULL};
  g_mime_parser_options_set_fallback_charsets(c->opts, fallback);
  g_mime_parser_options_set_warning_callback(c->opts, on_gmime_warning, c);
}

/* NULL-safe on a zeroed ctx. The options go last: GMime objects keep a pointer. */
static void
ctx_clear(ctx *c)
{
  if (c->keep)
    g_ptr_array_unref(c->keep);
  if (c->leaves)
    g_ptr_array_unref(c->leaves);
  if (c->bounds)
    g_ptr_array_unref(c->bounds);
  if (c->cids)
    g_hash_table_unref(c->cids);
  tnef_result_free(c->tnef_body);
  g_free(c->address_issue);
  if (c->opts)
    g_mime_parser_options_free(c->opts);
  memset(c, 0, sizeof *c);
}

/* After the body is known: text from the HTML when there is no plain text, the
 * synthetic Message-ID, the warning cap. */
static void
finish(ctx *c)
{
  ib_message *m = c->msg;
  if ((!m->text || is_blank_text(m->text)) && m->html) {
    g_free(m->text);
    m->text = html2text(m->html, strlen(m->html));
  }
  if (!m->message_id) {
    m->message_id = g_strdup_printf("%s@inboxd.invalid", m->raw_sha256);
    m->message_id_synthetic = 1;
  }
  if (m->warnings->len > WARN_MAX || c->warnings_dropped) {
    guint dropped = c->warnings_dropped;
    if (m->warnings->len > WARN_MAX) {
      dropped += m->warnings->len - WARN_MAX;
      g_ptr_array_set_size(m->warnings, WARN_MAX);
    }
    ib_message_warn(m, "limit_warnings", "%u more warnings were dropped", dropped);
  }
}

ib_status
mime_parse(const char *raw, size_t len, const mime_limits *limits, ib_message **msg_out)
{
  ib_status st = IB_ERR_NOT_MAIL;
  ib_message *m = NULL;
  repair_buf rb = {0};
  ctx c = {0};
  GByteArray *arr = NULL;
  GMimeStream *stream = NULL;
  GMimeParser *parser = NULL;
  GMimeMessage *gm = NULL;

  *msg_out = NULL;
  if (!raw || len == 0)
    goto done;
  m = ib_message_new();
  hash_sha256_hex(raw, len, m->raw_sha256);

  st = repair_input(raw, len, m, &rb);
  if (st != IB_OK)
    goto done;
  if (rb.len > G_MAXUINT) {
    ib_message_warn(m, "limit_input", "input longer than %u bytes was cut", G_MAXUINT);
    rb.len = G_MAXUINT;
  }
  ctx_init(&c, m, limits);
  size_t body_at = scan_headers(&c, rb.data, rb.len);
  c.top_header_end = (gint64)body_at;

  /* GMime reads the caller's bytes in place: the array only borrows them and is
   * emptied again before it is freed (see done:). */
  arr = g_byte_array_new_take((guint8 *)rb.data, rb.len);
  stream = g_mime_stream_mem_new_with_byte_array(arr);
  g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
  parser = g_mime_parser_new_with_stream(stream);
  c.constructing = TRUE;
  gm = g_mime_parser_construct_message(parser, c.opts);
  c.constructing = FALSE;

  fill_envelope(&c);
  src s = {rb.data, rb.len};
  if (gm) {
    fill_body(&c, gm, &s);
  } else if (body_at < rb.len) {
    m->text = repair_text_to_utf8(rb.data + body_at, rb.len - body_at, NULL, FALSE, "body", m);
    warn(&c, "malformed_message", "GMime could not parse the message; body kept as text");
  }
  finish(&c);
  *msg_out = m;
  m = NULL;
  st = IB_OK;

done:
  if (gm)
    g_object_unref(gm);
  if (parser)
    g_object_unref(parser);
  if (stream)
    g_object_unref(stream);
  if (arr) {
    (void)g_byte_array_steal(arr, NULL);
    g_byte_array_unref(arr);
  }
  ctx_clear(&c);
  repair_buf_clear(&rb);
  ib_message_free(m);
  return st;
}
