/* tnef.c: winmail.dat with libytnef. libytnef trusts lengths in places and reports
 * errors with printf on stdout (which would corrupt "inboxd parse" output), so
 * check_stream() walks the framing the way libytnef will and refuses anything that
 * would send it down one of those paths. */
#include "tnef.h"

#include <stdio.h>
#include <string.h>

/* libytnef's headers #define BYTE, WORD, DWORD...: keep them last and local. */
#include <ytnef.h>

/* TNEF attribute ids (level-independent, type in the high word) that we check. */
#define ATT_MAPI_PROPS 0x00069003u
#define ATT_ATTACHMENT 0x00069005u
#define ATT_TNEF_VERSION 0x00089006u
#define ATT_RECIP_TABLE 0x00069004u
#define ATT_SENT_FOR 0x00060001u

/* MAPI property ids. */
#define PID_BODY 0x1000u
#define PID_BODY_HTML 0x1013u
#define PID_ATTACH_DATA 0x3701u
#define PID_ATTACH_LONG_FILENAME 0x3707u
#define PID_ATTACH_MIME_TAG 0x370Eu

#define TNEF_SIGNATURE 0x223E9F78u

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

/* Mirror libytnef's TNEFFillMapi: every read it makes must be in bounds, every count
 * within its sanity limits, every type one it knows, and the block consumed exactly. */
static gboolean
check_mapi(const guint8 *d, size_t len)
{
  reader r = {d, len, 0};
  if (!need(&r, 4))
    return FALSE;
  guint32 count = le32(d);
  r.pos = 4;
  if (count > 1000)
    return FALSE;
  for (guint32 i = 0; i < count; i++) {
    if (!need(&r, 4))
      return FALSE;
    guint32 id = le32(d + r.pos);
    r.pos += 4;
    if (PROP_ID(id) >= 0x8000) {
      if (!need(&r, 20))
        return FALSE;
      guint32 names = le32(d + r.pos + 16);
      r.pos += 20;
      if (names > 0) {
        if (names > (len - r.pos) / 4)
          return FALSE;
        for (guint32 k = 0; k < names; k++) {
          if (!need(&r, 4))
            return FALSE;
          guint32 nlen = le32(d + r.pos);
          r.pos += 4;
          if (nlen > 100 || !need(&r, nlen))
            return FALSE;
          r.pos += nlen + ((nlen % 4) ? 4 - nlen % 4 : 0);
        }
      } else {
        if (!need(&r, 4))
          return FALSE;
        r.pos += 4;
      }
    }
    guint32 type = PROP_TYPE(id), values = 1;
    gboolean multi = (type & MV_FLAG) != 0;
    if (multi) {
      type -= MV_FLAG;
      if (!need(&r, 4))
        return FALSE;
      values = le32(d + r.pos);
      r.pos += 4;
    }
    if (values == 0 || values > 1000)
      return FALSE;
    for (guint32 v = 0; v < values; v++) {
      switch (type) {
      case PT_BINARY:
      case PT_OBJECT:
      case PT_STRING8:
      case PT_UNICODE: {
        if (!multi) {
          if (!need(&r, 4))
            return FALSE;
          r.pos += 4;
        }
        if (!need(&r, 4))
          return FALSE;
        guint32 vlen = le32(d + r.pos);
        r.pos += 4;
        if (!need(&r, vlen) || (type == PT_UNICODE && vlen > 100000))
          return FALSE;
        r.pos += vlen + ((vlen % 4) ? 4 - vlen % 4 : 0);
        break;
      }
      case PT_I2:
        if (!need(&r, 2))
          return FALSE;
        r.pos += 4;
        break;
      case PT_BOOLEAN:
      case PT_LONG:
      case PT_R4:
      case PT_CURRENCY:
      case PT_APPTIME:
      case PT_ERROR:
        if (!need(&r, 4))
          return FALSE;
        r.pos += 4;
        break;
      case PT_DOUBLE:
      case PT_I8:
      case PT_SYSTIME:
        if (!need(&r, 8))
          return FALSE;
        r.pos += 8;
        break;
      case PT_CLSID:
        if (!need(&r, 16))
          return FALSE;
        r.pos += 16;
        break;
      default:
        return FALSE;
      }
    }
  }
  return r.pos == len;
}

static gboolean
check_sent_for(const guint8 *d, size_t len)
{
  reader r = {d, len, 0};
  while (r.pos < len) {
    for (int field = 0; field < 2; field++) {
      if (!need(&r, 2))
        return FALSE;
      guint16 n = le16(d + r.pos);
      r.pos += 2;
      if (!need(&r, n))
        return FALSE;
      r.pos += n;
    }
  }
  return TRUE;
}

/* The TNEF framing: signature, key, then attributes (level byte, id, length, data,
 * 16-bit sum of the data) up to the end. */
static gboolean
check_stream(const guint8 *d, size_t len)
{
  if (len < 6 || le32(d) != TNEF_SIGNATURE)
    return FALSE;
  size_t pos = 6;
  unsigned attrs = 0;
  while (len - pos >= 9) {
    guint32 id = le32(d + pos + 1), size = le32(d + pos + 5);
    pos += 9;
    if (size == 0 || size > len - pos || len - pos - size < 2)
      return FALSE;
    const guint8 *data = d + pos;
    guint16 sum = 0;
    for (guint32 i = 0; i < size; i++)
      sum = (guint16)(sum + data[i]);
    if (sum != le16(data + size))
      return FALSE;
    switch (id) {
    case ATT_MAPI_PROPS:
    case ATT_ATTACHMENT:
      if (!check_mapi(data, size))
        return FALSE;
      break;
    case ATT_TNEF_VERSION:
    case ATT_RECIP_TABLE:
      if (size < 4)
        return FALSE;
      break;
    case ATT_SENT_FOR:
      if (!check_sent_for(data, size))
        return FALSE;
      break;
    default:
      break;
    }
    pos += size + 2;
    attrs++;
  }
  return attrs > 0;
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
      out = g_convert_with_fallback(p, (gssize)len, "UTF-8", "CP1252", "\xEF\xBF\xBD", NULL,
                                    NULL, NULL);
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
  if (!data || len > G_MAXINT32 || !check_stream(data, len))
    return IB_ERR_INVALID;

  TNEFStruct tnef;
  TNEFInitialize(&tnef);
  tnef.Debug = 0;
  /* TNEFParseMemory only reads MEMORY; its prototype just lacks the const. */
  int rc = TNEFParseMemory((BYTE *)data, (long)len, &tnef);
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
  return st;
}
