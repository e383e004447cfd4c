/* jsonout.c: jansson values to compact JSON text, fast (see jsonout.h). */
#include "jsonout.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *p;
  size_t len, cap;
  int failed;
} outbuf;

static int
reserve(outbuf *b, size_t n)
{
  if (b->failed)
    return 0;
  if (b->len + n + 1 <= b->cap)
    return 1;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->len + n + 1) {
    if (cap > SIZE_MAX / 2) {
      b->failed = 1;
      return 0;
    }
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (!p) {
    b->failed = 1;
    return 0;
  }
  b->p = p;
  b->cap = cap;
  return 1;
}

static void
put(outbuf *b, const char *s, size_t n)
{
  if (reserve(b, n)) {
    memcpy(b->p + b->len, s, n);
    b->len += n;
  }
}

static void
put_c(outbuf *b, char c)
{
  if (reserve(b, 1))
    b->p[b->len++] = c;
}

/* 1 for the bytes jansson escapes without JSON_ENSURE_ASCII / JSON_ESCAPE_SLASH. */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,         1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ['"'] = 1, ['\\'] = 1,
};

static void
put_string(outbuf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789ABCDEF";
  put_c(b, '"');
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  while (p < end && !b->failed) {
    const unsigned char *run = p;
    while (p < end && !needs_escape[*p])
      p++;
    put(b, (const char *)run, (size_t)(p - run));
    if (p == end || !reserve(b, 6))
      break;
    unsigned char c = *p++;
    char *o = b->p + b->len;
    *o++ = '\\';
    switch (c) {
    case '"':
    case '\\':
      *o++ = (char)c;
      break;
    case '\b':
      *o++ = 'b';
      break;
    case '\f':
      *o++ = 'f';
      break;
    case '\n':
      *o++ = 'n';
      break;
    case '\r':
      *o++ = 'r';
      break;
    case '\t':
      *o++ = 't';
      break;
    default:
      memcpy(o, "u00", 3);
      o[3] = hex[c >> 4];
      o[4] = hex[c & 15];
      o += 5;
    }
    b->len = (size_t)(o - b->p);
  }
  put_c(b, '"');
}

static void
put_integer(outbuf *b, json_int_t v)
{
  char tmp[24], *o = tmp + sizeof tmp;
  /* Unsigned arithmetic: the most negative value has no positive counterpart. */
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    *--o = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    *--o = '-';
  put(b, o, (size_t)(tmp + sizeof tmp - o));
}

static void
put_value(outbuf *b, const json_t *v)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    put_c(b, '{');
    int first = 1;
    for (void *it = json_object_iter((json_t *)v); it && !b->failed;
         it = json_object_iter_next((json_t *)v, it)) {
      if (!first)
        put_c(b, ',');
      first = 0;
      put_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
      put_c(b, ':');
      put_value(b, json_object_iter_value(it));
    }
    put_c(b, '}');
    break;
  }
  case JSON_ARRAY: {
    put_c(b, '[');
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n && !b->failed; i++) {
      if (i)
        put_c(b, ',');
      put_value(b, json_array_get(v, i));
    }
    put_c(b, ']');
    break;
  }
  case JSON_STRING:
    put_string(b, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    put_integer(b, json_integer_value(v));
    break;
  case JSON_REAL: {
    /* Rare (a spam score): jansson's own formatting, so the digits are the same. */
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text)
      put(b, text, strlen(text));
    else
      b->failed = 1;
    free(text);
    break;
  }
  case JSON_TRUE:
    put(b, "true", 4);
    break;
  case JSON_FALSE:
    put(b, "false", 5);
    break;
  case JSON_NULL:
    put(b, "null", 4);
    break;
  }
}

char *
jsonout_dumps(const json_t *v, size_t *len_out)
{
  if (!v)
    return NULL;
  outbuf b = {0};
  put_value(&b, v);
  if (!reserve(&b, 0)) {
    free(b.p);
    return NULL;
  }
  b.p[b.len] = '\0';
  if (len_out)
    *len_out = b.len;
  return b.p;
}
