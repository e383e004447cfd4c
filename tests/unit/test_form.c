/* test_form.c: multipart/form-data and urlencoded decoding (parsers/form.c), including
 * the malformed shapes a fuzzer or a hostile sender produces. */
#include <glib.h>
#include <string.h>

#include "check.h"
#include "form.h"

static form *
parse_ok(const char *ctype, const char *body, size_t len)
{
  form *f = NULL;
  char *why = NULL;
  ib_status st = form_parse(ctype, body, len, NULL, &f, &why);
  if (st != IB_OK)
    fprintf(stderr, "unexpected %s: %s\n", ib_status_str(st), why ? why : "?");
  CHECK_INT(st, IB_OK);
  CHECK(why == NULL);
  g_free(why);
  return f;
}

static ib_status
parse_err(const char *ctype, const char *body, size_t len, const form_limits *lim,
          const char *why_contains)
{
  form *f = (form *)1;
  char *why = NULL;
  ib_status st = form_parse(ctype, body, len, lim, &f, &why);
  CHECK(st != IB_OK);
  CHECK(f == NULL);
  CHECK(why != NULL);
  if (why && why_contains && !strstr(why, why_contains)) {
    fprintf(stderr, "error \"%s\" lacks \"%s\"\n", why, why_contains);
    CHECK(0);
  }
  g_free(why);
  return st;
}

#define CHECK_VALUE(ff, want)                                                                      \
  do {                                                                                             \
    const form_field *f_ = (ff);                                                                   \
    CHECK(f_ != NULL);                                                                             \
    if (f_) {                                                                                      \
      CHECK_INT(f_->len, sizeof(want) - 1);                                                        \
      CHECK(f_->len == sizeof(want) - 1 && memcmp(f_->value, want, f_->len) == 0);                 \
    }                                                                                              \
  } while (0)

static void
test_multipart_basic(void)
{
  static const char body[] =
      "preamble to ignore\r\n"
      "--xYzZY\r\n"
      "Content-Disposition: form-data; name=\"subject\"\r\n"
      "\r\n"
      "Order 1234\r\n"
      "--xYzZY\r\n"
      "Content-Disposition: form-data; name=\"text\"\r\n"
      "\r\n"
      "line one\r\nline two\r\n\r\n"
      "--xYzZY\r\n"
      "Content-Disposition: form-data; name=\"attachment1\"; filename=\"a \\\"q\\\".bin\"\r\n"
      "Content-Type: application/octet-stream\r\n"
      "\r\n"
      "\x00\x01\r\n--xYzZ not a boundary\r\n\xff"
      "\r\n--xYzZY\r\n"
      "Content-Disposition: form-data; name=\"empty\"\r\n"
      "\r\n"
      "\r\n--xYzZY--\r\n"
      "epilogue --xYzZY\r\n";
  form *f = parse_ok("multipart/form-data; boundary=xYzZY", body, sizeof body - 1);
  if (!f)
    return;
  CHECK_INT(form_size(f), 4);
  CHECK_VALUE(form_first(f, "subject"), "Order 1234");
  CHECK_VALUE(form_first(f, "text"), "line one\r\nline two\r\n");
  const form_field *att = form_first(f, "attachment1");
  CHECK_VALUE(att, "\x00\x01\r\n--xYzZ not a boundary\r\n\xff");
  CHECK_STR(att->filename, "a \"q\".bin");
  CHECK_STR(att->content_type, "application/octet-stream");
  CHECK(form_first(f, "subject")->filename == NULL);
  CHECK(form_first(f, "subject")->content_type == NULL);
  CHECK_VALUE(form_first(f, "empty"), "");
  /* Values point into the body: no copy. */
  CHECK(att->value > body && att->value < body + sizeof body);
  CHECK(form_first(f, "Subject") == NULL); /* names are case-sensitive */
  char *s = form_dup_value(f, "subject");
  CHECK_STR(s, "Order 1234");
  g_free(s);
  CHECK(form_dup_value(f, "nope") == NULL);
  form_free(f);
}

static void
test_multipart_quoted_boundary_lf_and_duplicates(void)
{
  /* Quoted boundary with a space, bare-LF line ends, header case and folding, and a
   * duplicate name kept in order. */
  static const char body[] = "--a b'c\n"
                             "content-disposition: form-data;\n"
                             "\tname=token\n"
                             "\n"
                             "first\n"
                             "--a b'c  \n"
                             "CONTENT-DISPOSITION: form-data; name=\"token\"\n"
                             "\n"
                             "second\n"
                             "--a b'c\n"
                             "Content-Disposition: form-data; name=\"f\"; "
                             "filename*=UTF-8''%E2%82%AC%20rate.txt; filename=\"fallback.txt\"\n"
                             "Content-Type:text/plain;charset=iso-8859-1 \n"
                             "\n"
                             "x\n"
                             "--a b'c--";
  form *f = parse_ok("Multipart/Form-Data ; boundary=\"a b'c\"", body, sizeof body - 1);
  if (!f)
    return;
  CHECK_INT(form_size(f), 3);
  CHECK_INT(form_count(f, "token"), 2);
  GPtrArray *all = form_all(f, "token");
  CHECK_INT(all->len, 2);
  CHECK_VALUE((const form_field *)g_ptr_array_index(all, 0), "first");
  CHECK_VALUE((const form_field *)g_ptr_array_index(all, 1), "second");
  g_ptr_array_unref(all);
  const form_field *ff = form_first(f, "f");
  CHECK_STR(ff->filename, "\xe2\x82\xac rate.txt");
  CHECK_STR(ff->content_type, "text/plain;charset=iso-8859-1");
  CHECK_VALUE(ff, "x");
  CHECK_INT(form_count(f, "missing"), 0);
  all = form_all(f, "missing");
  CHECK_INT(all->len, 0);
  g_ptr_array_unref(all);
  form_free(f);
}

static void
test_multipart_empty_value_right_after_headers(void)
{
  /* The blank line's newline doubles as the delimiter's: an empty value. */
  static const char body[] = "--b\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n"
                             "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--b--";
  form *f = parse_ok("multipart/form-data; boundary=b", body, sizeof body - 1);
  if (!f)
    return;
  CHECK_INT(form_size(f), 2);
  CHECK_VALUE(form_first(f, "e"), "");
  CHECK_VALUE(form_first(f, "x"), "v");
  form_free(f);
  /* No fields at all. */
  f = parse_ok("multipart/form-data; boundary=b", "--b--\r\n", 7);
  if (f)
    CHECK_INT(form_size(f), 0);
  form_free(f);
}

static void
test_multipart_malformed(void)
{
  const char *ct = "multipart/form-data; boundary=zz";
  CHECK_INT(parse_err("multipart/form-data", "--zz--", 6, NULL, "boundary"), IB_ERR_INVALID);
  CHECK_INT(parse_err("multipart/form-data; boundary=\"\"", "--zz--", 6, NULL, "boundary"),
            IB_ERR_INVALID);
  CHECK_INT(parse_err(ct, "no boundary here", 16, NULL, "boundary"), IB_ERR_INVALID);
  CHECK_INT(parse_err(ct, "", 0, NULL, "boundary"), IB_ERR_INVALID);
  /* Missing final boundary. */
  static const char trunc[] = "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nval";
  CHECK_INT(parse_err(ct, trunc, sizeof trunc - 1, NULL, "final boundary"), IB_ERR_INVALID);
  /* Truncated inside the part header. */
  static const char hdr[] = "--zz\r\nContent-Disposition: form-data; name=\"a\"";
  CHECK_INT(parse_err(ct, hdr, sizeof hdr - 1, NULL, "truncated"), IB_ERR_INVALID);
  static const char hdr2[] = "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n";
  CHECK_INT(parse_err(ct, hdr2, sizeof hdr2 - 1, NULL, "truncated"), IB_ERR_INVALID);
  /* A part without a name / without Content-Disposition. */
  static const char noname[] = "--zz\r\nContent-Disposition: form-data\r\n\r\nv\r\n--zz--";
  CHECK_INT(parse_err(ct, noname, sizeof noname - 1, NULL, "name"), IB_ERR_INVALID);
  static const char nodisp[] = "--zz\r\nContent-Type: text/plain\r\n\r\nv\r\n--zz--";
  CHECK_INT(parse_err(ct, nodisp, sizeof nodisp - 1, NULL, "Content-Disposition"), IB_ERR_INVALID);
  /* Unterminated quoted name. */
  static const char q[] = "--zz\r\nContent-Disposition: form-data; name=\"abc\r\n\r\nv\r\n--zz--";
  form *f = NULL;
  ib_status st = form_parse(ct, q, sizeof q - 1, NULL, &f, NULL);
  CHECK(st == IB_OK || st == IB_ERR_INVALID);
  form_free(f);
  /* A "boundary" that only starts a longer word is not a delimiter. */
  static const char longer[] =
      "--zzz\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--zzz--";
  CHECK_INT(parse_err(ct, longer, sizeof longer - 1, NULL, NULL), IB_ERR_INVALID);
  /* NUL in a part header. */
  static const char nul[] =
      "--zz\r\nContent-Disposition: form-data; name=\"a\0b\"\r\n\r\nv\r\n--zz--";
  CHECK_INT(parse_err(ct, nul, sizeof nul - 1, NULL, "NUL"), IB_ERR_INVALID);
  /* Line break in the boundary parameter / overlong boundary. */
  char big[300];
  memset(big, 'b', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  char *bigct = g_strconcat("multipart/form-data; boundary=", big, NULL);
  CHECK_INT(parse_err(bigct, "x", 1, NULL, "boundary"), IB_ERR_INVALID);
  g_free(bigct);
}

static void
test_limits(void)
{
  form_limits lim;
  form_limits_default(&lim);
  CHECK_INT(lim.max_fields, 10000);
  lim.max_fields = 2;
  const char *ct = "multipart/form-data; boundary=zz";
  static const char three[] = "--zz\nContent-Disposition: form-data; name=a\n\n1\n"
                              "--zz\nContent-Disposition: form-data; name=b\n\n2\n"
                              "--zz\nContent-Disposition: form-data; name=c\n\n3\n--zz--\n";
  CHECK_INT(parse_err(ct, three, sizeof three - 1, &lim, "more than 2"), IB_ERR_LIMIT);
  CHECK_INT(parse_err("application/x-www-form-urlencoded", "a=1&b=2&c=3", 11, &lim, "more than 2"),
            IB_ERR_LIMIT);
  form *f = NULL;
  CHECK_INT(form_parse("application/x-www-form-urlencoded", "a=1&&b=2&", 9, &lim, &f, NULL), IB_OK);
  form_free(f);

  form_limits_default(&lim);
  lim.max_name_len = 4;
  static const char longname[] = "--zz\nContent-Disposition: form-data; name=abcde\n\nv\n--zz--";
  CHECK_INT(parse_err(ct, longname, sizeof longname - 1, &lim, "longer than 4"), IB_ERR_LIMIT);
  CHECK_INT(parse_err("application/x-www-form-urlencoded", "abcde=1", 7, &lim, "longer than 4"),
            IB_ERR_LIMIT);
  CHECK_INT(parse_err("application/x-www-form-urlencoded", "%61%62%63%64%65=1", 17, &lim,
                      "longer than 4"),
            IB_ERR_LIMIT);

  form_limits_default(&lim);
  lim.max_part_header_bytes = 64;
  GString *b = g_string_new("--zz\nContent-Disposition: form-data; name=a\nX-Pad: ");
  for (int i = 0; i < 100; i++)
    g_string_append_c(b, 'p');
  g_string_append(b, "\n\nv\n--zz--");
  CHECK_INT(parse_err(ct, b->str, b->len, &lim, "bytes of headers"), IB_ERR_LIMIT);
  g_string_free(b, TRUE);
}

static void
test_urlencoded(void)
{
  static const char body[] = "mandrill_events=%5B%7B%22a%22%3A1%7D%5D&x=a+b%20c&x=%zz%4&flag&"
                             "nul=%00%FF&=anon&%E2%82%AC=euro";
  form *f = parse_ok("application/x-www-form-urlencoded; charset=UTF-8", body, sizeof body - 1);
  if (!f)
    return;
  CHECK_INT(form_size(f), 7);
  CHECK_VALUE(form_first(f, "mandrill_events"), "[{\"a\":1}]");
  CHECK_INT(form_count(f, "x"), 2);
  CHECK_VALUE(form_at(f, 1), "a b c");
  CHECK_VALUE(form_at(f, 2), "%zz%4");
  CHECK_VALUE(form_first(f, "flag"), "");
  CHECK_VALUE(form_first(f, "nul"), "\x00\xff");
  CHECK_VALUE(form_first(f, ""), "anon");
  CHECK_VALUE(form_first(f, "\xe2\x82\xac"), "euro");
  CHECK(form_first(f, "x")->filename == NULL);
  CHECK(form_at(f, 7) == NULL);
  form_free(f);

  f = parse_ok("application/x-www-form-urlencoded", "", 0);
  if (f)
    CHECK_INT(form_size(f), 0);
  form_free(f);
  CHECK_INT(parse_err("application/x-www-form-urlencoded", "a%00b=1", 7, NULL, "NUL"),
            IB_ERR_INVALID);
}

static void
test_media_types(void)
{
  CHECK_INT(parse_err("application/json", "{}", 2, NULL, "not a form"), IB_ERR_UNSUPPORTED);
  CHECK_INT(parse_err(NULL, "{}", 2, NULL, "none"), IB_ERR_UNSUPPORTED);
  CHECK_INT(parse_err("multipart/form-dataX; boundary=a", "", 0, NULL, NULL), IB_ERR_UNSUPPORTED);
  CHECK_INT(parse_err("multipart/mixed; boundary=a", "", 0, NULL, NULL), IB_ERR_UNSUPPORTED);
}

/* Every prefix and a set of byte flips of a valid body must be handled without a
 * crash or a read out of bounds (the sanitizer build checks the latter); any prefix
 * shorter than the whole body lacks the final boundary and is refused. */
static void
test_truncations_and_flips(void)
{
  static const char body[] =
      "--xYzZY\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue a\r\n"
      "--xYzZY\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.txt\"\r\n"
      "Content-Type: text/plain\r\n\r\nfile\r\nbody\r\n--xYzZY--\r\n";
  size_t len = sizeof body - 1;
  size_t full_end = len - 2; /* after "--xYzZY--" */
  for (size_t n = 0; n <= len; n++) {
    char *copy = g_memdup2(body, n ? n : 1);
    form *f = NULL;
    ib_status st = form_parse("multipart/form-data; boundary=xYzZY", copy, n, NULL, &f, NULL);
    if (n >= full_end) {
      CHECK_INT(st, IB_OK);
      if (f)
        CHECK_INT(form_size(f), 2);
    } else {
      CHECK(st != IB_OK);
    }
    form_free(f);
    g_free(copy);
  }
  GRand *r = g_rand_new_with_seed(42);
  for (int i = 0; i < 4000; i++) {
    char *copy = g_memdup2(body, len);
    for (int k = 0; k < 3; k++)
      copy[g_rand_int_range(r, 0, (gint32)len)] =
          (char)"-\r\n\"=;:\\\0xa"[g_rand_int_range(r, 0, 11)];
    form *f = NULL;
    ib_status st = form_parse("multipart/form-data; boundary=xYzZY", copy, len, NULL, &f, NULL);
    CHECK(st == IB_OK || st == IB_ERR_INVALID);
    if (f) {
      for (size_t j = 0; j < form_size(f); j++) {
        const form_field *ff = form_at(f, j);
        CHECK(ff->value >= copy && ff->value + ff->len <= copy + len);
      }
    }
    form_free(f);
    f = NULL;
    st = form_parse("application/x-www-form-urlencoded", copy, len, NULL, &f, NULL);
    CHECK(st == IB_OK || st == IB_ERR_INVALID);
    form_free(f);
    g_free(copy);
  }
  g_rand_free(r);
}

int
main(void)
{
  test_multipart_basic();
  test_multipart_quoted_boundary_lf_and_duplicates();
  test_multipart_empty_value_right_after_headers();
  test_multipart_malformed();
  test_limits();
  test_urlencoded();
  test_media_types();
  test_truncations_and_flips();
  return check_done();
}
