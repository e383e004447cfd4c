/* tnef.c: winmail.dat with libytnef. libytnef reports malformed input with printf on
 * stdout (which would corrupt "inboxd parse" output and the JSON log lines), fails the
 * whole stream on limits real Outlook mail exceeds (a subject over 100 bytes in the MAPI
 * properties, an icon over 10000 bytes), and older versions read out of bounds. So
 * sanitize() checks the framing first and hands libytnef a rebuilt stream holding only
 * the attributes and MAPI properties we read, each within libytnef's limits. */
#include "tnef.h"

#include <stdio.h>
#include <string.h>

/* libytnef's headers #define BYTE, WORD, DWORD...: keep them last and local. */
#include <ytnef.h>

/* TNEF attribute ids (the type in the high word, as libytnef matches them). */
#define ATT_BODY 0x0002800Cu
#define ATT_ATTACH_TITLE 0x00018010u
#define ATT_ATTACH_DATA 0x0006800Fu
#define ATT_ATTACH_RENDDATA 0x00069002u
#define ATT_MAPI_PROPS 0x00069003u
#define ATT_ATTACHMENT 0x00069005u
#define ATT_OEM_CODEPAGE 0x00069007u
#define ATT_TNEF_VERSION 0x00089006u

/* MAPI property ids. */
#define PID_BODY 0x1000u
#define PID_BODY_HTML 0x1013u
#define PID_ATTACH_DATA 0x3701u
#define PID_ATTACH_LONG_FILENAME 0x3707u
#define PID_ATTACH_MIME_TAG 0x370Eu

#define TNEF_SIGNATURE 0x223E9F78u

/* Limits libytnef 2.0 enforces by printing an error and failing the whole stream: an
 * attachment title or a subject over 100 bytes, a body over 100000, a MAPI value over
 * 512 KiB, a Unicode value over 100000 bytes. What exceeds them is left out instead. */
#define YTNEF_MAX_TITLE 100u
#define YTNEF_MAX_BODY 100000u
#define YTNEF_MAX_MAPI_VALUE 0x7FFFFu
#define YTNEF_MAX_UNICODE 100000u

static guint32
le32(const guint8 *p)
{
  return (guint32)p[0] | (guint32)p[1] << 8 | (guint32)p[2] << 16 | (guint32)p[3] << 24;
}

static guint16
le16(const guint8 *p)
{
  return (guint16)(p[0] | p[1] << 8);
}

static void
put32(GByteArray *b, guint32 v)
{
  guint8 x[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};
  g_byte_array_append(b, x, 4);
}

/* A bounds-checked reader over one attribute's data. */
typedef struct reader {
  const guint8 *d;
  size_t len, pos;
} reader;

static gboolean
need(const reader *r, size_t n)
{
  return r->pos <= r->len && n <= r->len - r->pos;
}

static gboolean
skip_padded(reader *r, guint32 n)
{
  size_t padded = (size_t)n + ((n % 4) ? 4 - n % 4 : 0);
  if (!need(r, n))
    return FALSE;
  r->pos = padded <= r->len - r->pos ? r->pos + padded : r->len;
  return TRUE;
}

/* Is the property worth keeping: one of the few we read, single-valued, plain id, a
 * value within libytnef's limits? */
static gboolean
wanted(guint32 id, guint32 type, guint32 vlen)
{
  guint32 pid = PROP_ID(id);
  if (pid != PID_BODY && pid != PID_BODY_HTML && pid != PID_ATTACH_DATA &&
      pid != PID_ATTACH_LONG_FILENAME && pid != PID_ATTACH_MIME_TAG)
    return FALSE;
  if (vlen == 0 || vlen > YTNEF_MAX_MAPI_VALUE)
    return FALSE;
  return type == PT_STRING8 || type == PT_BINARY || type == PT_OBJECT ||
         (type == PT_UNICODE && vlen <= YTNEF_MAX_UNICODE);
}

/* Walk a MAPI property block (MS-OXTNEF 2.1.3.4) and copy the properties we want into a
 * new block; NULL when the block is malformed or holds none of them. */
static GByteArray *
filter_mapi(const guint8 *d, size_t len)
{
  reader r = {d, len, 0};
  if (!need(&r, 4))
    return NULL;
  guint32 count = le32(d);
  r.pos = 4;
  if (count > len / 4)
    return NULL;
  GByteArray *keep = g_byte_array_new();
  guint32 kept = 0;
  for (guint32 i = 0; i < count; i++) {
    size_t start = r.pos;
    if (!need(&r, 4))
      goto bad;
    guint32 id = le32(d + r.pos);
    r.pos += 4;
    gboolean named = PROP_ID(id) >= 0x8000;
    if (named) {
      if (!need(&r, 20))
        goto bad;
      guint32 kind = le32(d + r.pos + 16);
      r.pos += 20;
      if (kind == 0) { /* id by number */
        if (!need(&r, 4))
          goto bad;
        r.pos += 4;
      } else { /* id by name: length and UTF-16 string */
        if (!need(&r, 4))
          goto bad;
        guint32 nlen = le32(d + r.pos);
        r.pos += 4;
        if (!skip_padded(&r, nlen))
          goto bad;
      }
    }
    guint32 type = PROP_TYPE(id), values = 1;
    gboolean multi = (type & MV_FLAG) != 0;
    if (multi) {
      type &= ~(guint32)MV_FLAG;
      if (!need(&r, 4))
        goto bad;
      values = le32(d + r.pos);
      r.pos += 4;
      if (values > len)
        goto bad;
    }
    guint32 vlen = 0;
    for (guint32 v = 0; v < values; v++) {
      switch (type) {
      case PT_BINARY:
      case PT_OBJECT:
      case PT_STRING8:
      case PT_UNICODE:
        if (!multi) { /* a count of 1 before the single value */
          if (!need(&r, 4) || le32(d + r.pos) != 1)
            goto bad;
          r.pos += 4;
        }
        if (!need(&r, 4))
          goto bad;
        vlen = le32(d + r.pos);
        r.pos += 4;
        if (!skip_padded(&r, vlen))
          goto bad;
        break;
      case PT_I2:
      case PT_BOOLEAN:
      case PT_LONG:
      case PT_R4:
      case PT_ERROR:
        if (!need(&r, 4))
          goto bad;
        r.pos += 4;
        break;
      case PT_DOUBLE:
      case PT_CURRENCY:
      case PT_APPTIME:
      case PT_I8:
      case PT_SYSTIME:
        if (!need(&r, 8))
          goto bad;
        r.pos += 8;
        break;
      case PT_CLSID:
        if (!need(&r, 16))
          goto bad;
        r.pos += 16;
        break;
      default:
        goto bad;
      }
    }
    if (!named && !multi && wanted(id, type, vlen)) {
      g_byte_array_append(keep, d + start, (guint)(r.pos - start));
      kept++;
    }
  }
  if (r.pos != len || kept == 0)
    goto bad;
  GByteArray *out = g_byte_array_sized_new(keep->len + 4);
  put32(out, kept);
  g_byte_array_append(out, keep->data, keep->len);
  g_byte_array_unref(keep);
  return out;

bad:
  g_byte_array_unref(keep);
  return NULL;
}

static void
add_attribute(GByteArray *out, guint8 level, guint32 id, const guint8 *data, guint32 size)
{
  g_byte_array_append(out, &level, 1);
  put32(out, id);
  put32(out, size);
  g_byte_array_append(out, data, size);
  guint16 sum = 0;
  for (guint32 i = 0; i < size; i++)
    sum = (guint16)(sum + data[i]);
  guint8 s[2] = {sum & 0xff, sum >> 8};
  g_byte_array_append(out, s, 2);
}

/* Check the TNEF framing (signature, key, then attributes of level, id, length, data
 * and a 16-bit sum of the data, up to the end) and build the stream libytnef gets: only
 * the attributes we read, within libytnef's limits, MAPI blocks cut down to the
 * properties we read. libytnef never sees anything else, so none of its print-and-fail
 * paths (or its older out-of-bounds reads) can be reached. NULL when the framing is
 * broken. */
static GByteArray *
sanitize(const guint8 *d, size_t len)
{
  if (len < 6 || le32(d) != TNEF_SIGNATURE)
    return NULL;
  GByteArray *out = g_byte_array_sized_new((guint)len);
  g_byte_array_append(out, d, 6);
  size_t pos = 6;
  /* libytnef overwrites (and leaks) a second title, data or MAPI block of the same
   * attachment, or a second body: keep the first of each. Attachment attributes before
   * the first rendering record have no attachment to go to. */
  enum { SEEN_TITLE = 1, SEEN_DATA = 2, SEEN_MAPI = 4 };
  unsigned seen_att = 0, seen_msg = 0;
  gboolean in_attachment = FALSE;
  while (pos < len) {
    if (len - pos < 9)
      goto bad;
    guint8 level = d[pos];
    guint32 id = le32(d + pos + 1), size = le32(d + pos + 5);
    pos += 9;
    if (size == 0 || size > len - pos || len - pos - size < 2)
      goto bad;
    const guint8 *data = d + pos;
    guint16 sum = 0;
    for (guint32 i = 0; i < size; i++)
      sum = (guint16)(sum + data[i]);
    if (sum != le16(data + size))
      goto bad;
    pos += size + 2;
    unsigned *seen = NULL, bit = 0;
    gboolean keep = FALSE;
    switch (id) {
    case ATT_TNEF_VERSION:
      seen = &seen_msg, bit = 1, keep = size == 4;
      break;
    case ATT_OEM_CODEPAGE:
      seen = &seen_msg, bit = 2, keep = size >= 4 && size <= 64;
      break;
    case ATT_BODY:
      seen = &seen_msg, bit = 4, keep = size <= YTNEF_MAX_BODY;
      break;
    case ATT_MAPI_PROPS:
      seen = &seen_msg, bit = 8, keep = TRUE;
      break;
    case ATT_ATTACH_RENDDATA:
      in_attachment = TRUE;
      seen_att = 0;
      keep = TRUE;
      break;
    case ATT_ATTACH_TITLE:
      seen = &seen_att, bit = SEEN_TITLE, keep = in_attachment && size <= YTNEF_MAX_TITLE;
      break;
    case ATT_ATTACH_DATA:
      seen = &seen_att, bit = SEEN_DATA, keep = in_attachment;
      break;
    case ATT_ATTACHMENT:
      seen = &seen_att, bit = SEEN_MAPI, keep = in_attachment;
      break;
    default:
      break; /* subject, dates, icons, recipients...: not needed */
    }
    if (!keep || (seen && (*seen & bit)))
      continue;
    if (id == ATT_MAPI_PROPS || id == ATT_ATTACHMENT) {
      GByteArray *mapi = filter_mapi(data, size);
      if (!mapi)
        continue;
      add_attribute(out, level, id, mapi->data, mapi->len);
      g_byte_array_unref(mapi);
    } else {
      add_attribute(out, level, id, data, size);
    }
    if (seen)
      *seen |= bit;
  }
  return out;

bad:
  g_byte_array_unref(out);
  return NULL;
}

static const struct {
  const char *ext, *type;
} types[] = {
    {"pdf", "application/pdf"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"rtf", "application/rtf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"7z", "application/x-7z-compressed"},
    {"xml", "application/xml"},
    {"json", "application/json"},
    {"txt", "text/plain"},
    {"log", "text/plain"},
    {"csv", "text/csv"},
    {"htm", "text/html"},
    {"html", "text/html"},
    {"ics", "text/calendar"},
    {"vcf", "text/vcard"},
    {"eml", "message/rfc822"},
    {"msg", "application/vnd.ms-outlook"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"png", "image/png"},
    {"gif", "image/gif"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"svg", "image/svg+xml"},
    {"webp", "image/webp"},
    {"mp3", "audio/mpeg"},
    {"wav", "audio/wav"},
    {"mp4", "video/mp4"},
};

const char *
tnef_guess_type(const char *filename)
{
  const char *dot = filename ? strrchr(filename, '.') : NULL;
  if (!dot || !dot[1])
    return "application/octet-stream";
  for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
    if (g_ascii_strcasecmp(dot + 1, types[i].ext) == 0)
      return types[i].type;
  return "application/octet-stream";
}

static void
tnef_file_free(gpointer p)
{
  tnef_file *f = p;
  if (!f)
    return;
  g_free(f->filename);
  g_free(f->content_type);
  if (f->data)
    g_bytes_unref(f->data);
  g_free(f);
}

void
tnef_result_free(tnef_result *r)
{
  if (!r)
    return;
  g_ptr_array_unref(r->files);
  g_free(r->text);
  g_free(r->html);
  g_free(r);
}

/* An 8-bit or UTF-8 string from the TNEF (LEN bytes, maybe NUL-terminated) as UTF-8:
 * UTF-8 when valid, else the OEM code page CODEPAGE (0: windows-1252). CR/LF -> LF. */
static char *
string_utf8(const BYTE *s, size_t len, unsigned codepage)
{
  const char *p = (const char *)s;
  const char *nul = memchr(p, '\0', len);
  if (nul)
    len = (size_t)(nul - p);
  char *out = NULL;
  if (g_utf8_validate_len(p, len, NULL)) {
    out = g_strndup(p, len);
  } else {
    char cp[16];
    g_snprintf(cp, sizeof cp, "CP%u", codepage ? codepage : 1252);
    out = g_convert_with_fallback(p, (gssize)len, "UTF-8", cp, "\xEF\xBF\xBD", NULL, NULL, NULL);
    if (!out)
      out = g_convert_with_fallback(p, (gssize)len, "UTF-8", "CP1252", "\xEF\xBF\xBD", NULL, NULL,
                                    NULL);
    if (!out)
      out = g_utf8_make_valid(p, (gssize)len);
  }
  char *w = out;
  for (char *r = out; *r; r++) {
    if (*r == '\r') {
      *w++ = '\n';
      if (r[1] == '\n')
        r++;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return out;
}

/* The first value of string property ID in PROPS (PT_UNICODE, already UTF-8 from
 * libytnef, or PT_STRING8), or NULL. */
static char *
mapi_string(MAPIProps *props, unsigned id, unsigned codepage)
{
  variableLength *v = MAPIFindProperty(props, PROP_TAG(PT_UNICODE, id));
  if (v == MAPI_UNDEFINED)
    v = MAPIFindProperty(props, PROP_TAG(PT_STRING8, id));
  if (v == MAPI_UNDEFINED || !v->data || v->size <= 0)
    return NULL;
  char *s = string_utf8(v->data, (size_t)v->size, codepage);
  if (!*s) {
    g_free(s);
    return NULL;
  }
  return s;
}

static variableLength *
mapi_binary(MAPIProps *props, unsigned id)
{
  variableLength *v = MAPIFindProperty(props, PROP_TAG(PT_BINARY, id));
  if (v == MAPI_UNDEFINED)
    v = MAPIFindProperty(props, PROP_TAG(PT_OBJECT, id));
  return v == MAPI_UNDEFINED || !v->data || v->size <= 0 ? NULL : v;
}

ib_status
tnef_unpack(const guint8 *data, size_t len, tnef_result **out)
{
  *out = NULL;
  GByteArray *clean = data && len <= G_MAXINT32 ? sanitize(data, len) : NULL;
  if (!clean)
    return IB_ERR_INVALID;

  TNEFStruct tnef;
  TNEFInitialize(&tnef);
  tnef.Debug = 0;
  int rc = TNEFParseMemory(clean->data, (long)clean->len, &tnef);
  ib_status st = IB_ERR_INVALID;
  tnef_result *r = NULL;
  if (rc != 0)
    goto done;

  unsigned codepage = 0;
  if (tnef.CodePage.size >= 4)
    codepage = le32(tnef.CodePage.data);

  r = g_new0(tnef_result, 1);
  r->files = g_ptr_array_new_with_free_func(tnef_file_free);
  for (Attachment *a = tnef.starting_attach.next; a; a = a->next) {
    const BYTE *bytes = a->FileData.data;
    size_t size = a->FileData.size > 0 ? (size_t)a->FileData.size : 0;
    if (!size || !bytes) {
      variableLength *obj = mapi_binary(&a->MAPI, PID_ATTACH_DATA);
      bytes = obj ? obj->data : NULL;
      size = obj ? (size_t)obj->size : 0;
    }
    char *name = mapi_string(&a->MAPI, PID_ATTACH_LONG_FILENAME, codepage);
    if (!name && a->Title.data && a->Title.size > 0) {
      name = string_utf8(a->Title.data, (size_t)a->Title.size, codepage);
      if (!*name) {
        g_free(name);
        name = NULL;
      }
    }
    if (!bytes && !name)
      continue;
    tnef_file *f = g_new0(tnef_file, 1);
    f->filename = name;
    char *mime = mapi_string(&a->MAPI, PID_ATTACH_MIME_TAG, codepage);
    f->content_type = g_ascii_strdown(mime ? mime : tnef_guess_type(name), -1);
    g_free(mime);
    f->data = g_bytes_new(bytes, bytes ? size : 0);
    g_ptr_array_add(r->files, f);
  }

  if (tnef.body.data && tnef.body.size > 0)
    r->text = string_utf8(tnef.body.data, (size_t)tnef.body.size, codepage);
  if (!r->text)
    r->text = mapi_string(&tnef.MapiProperties, PID_BODY, codepage);
  if (r->text && !*r->text) {
    g_free(r->text);
    r->text = NULL;
  }
  r->html = mapi_string(&tnef.MapiProperties, PID_BODY_HTML, codepage);
  if (!r->html) {
    variableLength *h = mapi_binary(&tnef.MapiProperties, PID_BODY_HTML);
    if (h)
      r->html = string_utf8(h->data, (size_t)h->size, codepage);
  }
  *out = r;
  r = NULL;
  st = IB_OK;

done:
  tnef_result_free(r);
  TNEFFree(&tnef);
  /* TNEFFree skips the list head, which holds whatever came before the first
   * attachment record. */
  TNEFFreeAttachment(&tnef.starting_attach);
  g_byte_array_unref(clean);
  return st;
}
