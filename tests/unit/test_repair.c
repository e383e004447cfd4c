/* test_repair.c: each workaround of repair.c, that it fires on the broken input it is
 * for, leaves good input alone, and says so in the warnings. */
#include <glib.h>
#include <string.h>

#include "check.h"
#include "mime.h"
#include "repair.h"

static guint
count_warnings(const ib_message *m, const char *code)
{
  size_t n = strlen(code);
  guint hits = 0;
  for (guint i = 0; i < m->warnings->len; i++) {
    const char *w = g_ptr_array_index(m->warnings, i);
    if (strncmp(w, code, n) == 0 && w[n] == ':')
      hits++;
  }
  return hits;
}

/* repair_input on S; returns the repaired bytes as a new string and frees the rest. */
static char *
input(const char *s, ib_message *m, ib_status *st_out)
{
  repair_buf rb;
  ib_status st = repair_input(s, strlen(s), m, &rb);
  if (st_out)
    *st_out = st;
  char *out = st == IB_OK ? g_strndup(rb.data, rb.len) : NULL;
  repair_buf_clear(&rb);
  return out;
}

static void
test_input(void)
{
  ib_message *m = ib_message_new();
  ib_status st;

  /* good mail: same bytes, borrowed, no warning */
  const char *good = "From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n";
  repair_buf rb;
  CHECK_INT(repair_input(good, strlen(good), m, &rb), IB_OK);
  CHECK(rb.data == good && rb.owned == NULL && rb.len == strlen(good));
  repair_buf_clear(&rb);
  CHECK_INT(m->warnings->len, 0);

  char *out = input("", m, &st);
  CHECK_INT(st, IB_ERR_NOT_MAIL);
  out = input("\r\n \t\r\n", m, &st);
  CHECK_INT(st, IB_ERR_NOT_MAIL);
  out = input("\x01\x02\x03\x04\x05garbage\x06\x07\x08", m, &st);
  CHECK_INT(st, IB_ERR_NOT_MAIL);
  ib_message *scratch = ib_message_new();
  out = input("From root@example.org Mon Jan  6 10:00:00 2025\n\n", scratch, &st);
  CHECK_INT(st, IB_ERR_NOT_MAIL);
  ib_message_free(scratch);

  out = input("Subject: a\rFrom: b@example.org\r\rbody\r", m, NULL);
  CHECK_STR(out, "Subject: a\nFrom: b@example.org\n\nbody\n");
  CHECK_INT(count_warnings(m, "bare_cr_line_endings"), 1);
  g_free(out);

  out = input("From root@example.org Mon Jan  6 10:00:00 2025\nSubject: a\n\nb\n", m, NULL);
  CHECK_STR(out, "Subject: a\n\nb\n");
  CHECK_INT(count_warnings(m, "mbox_from_line"), 1);
  g_free(out);
  /* "From :" with a blank before the colon is an (obsolete) header, not mbox */
  out = input("From : a@example.org\n\nb\n", m, NULL);
  CHECK_STR(out, "From : a@example.org\n\nb\n");
  CHECK_INT(count_warnings(m, "mbox_from_line"), 1);
  g_free(out);

  out = input("\n\nSubject: a\n\nb\n", m, NULL);
  CHECK_STR(out, "Subject: a\n\nb\n");
  CHECK_INT(count_warnings(m, "leading_blank_lines"), 1);
  g_free(out);

  out = input("just text\nmore text\n", m, NULL);
  CHECK_STR(out, "\njust text\nmore text\n");
  CHECK_INT(count_warnings(m, "no_headers"), 1);
  g_free(out);

  out = input("Subject: a\r\nFrom: b@example.org\r\nHello\r\n", m, NULL);
  CHECK_STR(out, "Subject: a\r\nFrom: b@example.org\r\n\r\nHello\r\n");
  CHECK_INT(count_warnings(m, "missing_blank_line"), 1);
  g_free(out);
  /* a bad line followed by more fields is no missing blank line */
  out = input("Subject: a\nnot a field\nFrom: b@example.org\n\nbody\n", m, NULL);
  CHECK_STR(out, "Subject: a\nnot a field\nFrom: b@example.org\n\nbody\n");
  CHECK_INT(count_warnings(m, "missing_blank_line"), 1);
  g_free(out);

  out = input("Subject: a\r\n\r\nline\nline\r\n", m, NULL);
  CHECK_INT(count_warnings(m, "mixed_line_endings"), 1);
  g_free(out);
  ib_message_free(m);
}

static void
test_field_name(void)
{
  size_t colon = 0;
  CHECK_INT(repair_field_name_len("Subject: x", 10, &colon), 7);
  CHECK_INT(colon, 7);
  CHECK_INT(repair_field_name_len("Subject : x", 11, &colon), 7);
  CHECK_INT(colon, 8);
  CHECK_INT(repair_field_name_len("X-Empty:", 8, NULL), 7);
  CHECK_INT(repair_field_name_len("no colon here", 13, NULL), 0);
  CHECK_INT(repair_field_name_len("two words: x", 12, NULL), 0);
  CHECK_INT(repair_field_name_len(": x", 3, NULL), 0);
  CHECK_INT(repair_field_name_len(" Subject: x", 11, NULL), 0);
}

static void
test_header_utf8(void)
{
  ib_message *m = ib_message_new();
  char *v = repair_header_to_utf8("caf\xc3\xa9", 5, "Subject", m);
  CHECK_STR(v, "caf\xc3\xa9");
  CHECK_INT(m->warnings->len, 0);
  g_free(v);
  v = repair_header_to_utf8("caf\xe9 \x93q\x94", 8, "Subject", m);
  CHECK_STR(v, "caf\xc3\xa9 \xe2\x80\x9cq\xe2\x80\x9d");
  CHECK_INT(count_warnings(m, "header_8bit"), 1);
  g_free(v);
  v = repair_header_to_utf8("a\0b", 3, "X-Nul", m);
  CHECK_STR(v, "ab");
  CHECK_INT(count_warnings(m, "nul_bytes"), 1);
  g_free(v);
  ib_message_free(m);
}

static void
test_text_utf8(void)
{
  static const struct {
    const char *bytes, *charset, *want, *warning;
  } cases[] = {
      {"plain\r\ntext\r\n", NULL, "plain\ntext\n", NULL},
      {"plain", "US-ASCII", "plain", NULL},
      {"\xc3\xa9t\xc3\xa9", NULL, "\xc3\xa9t\xc3\xa9", "charset_missing"},
      {"\xe9t\xe9", NULL, "\xc3\xa9t\xc3\xa9", "charset_missing"},
      {"\xe9t\xe9", "us-ascii", "\xc3\xa9t\xc3\xa9", "charset_mismatch"},
      {"\xe9t\xe9", "utf-8", "\xc3\xa9t\xc3\xa9", "charset_mismatch"},
      {"\xc3\xa9t\xe9", "utf-8", "\xc3\xa9t\xef\xbf\xbd", "charset_invalid_bytes"},
      {"\xe9t\xe9", "\"ISO-8859-1\"", "\xc3\xa9t\xc3\xa9", NULL},
      {"\x93q\x94", "iso-8859-1", "\xe2\x80\x9cq\xe2\x80\x9d", "charset_superset"},
      {"\xde", "iso-8859-9", "\xc5\x9e", NULL},
      {"\xf0\xd2\xc9\xd7\xc5\xd4", "koi8-r", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
       NULL},
      {"\x83\x65\x83\x58\x83\x67", "Shift_JIS", "\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88", NULL},
      {"\x1b$B$H$j\x1b(B", "iso-2022-jp", "\xe3\x81\xa8\xe3\x82\x8a", NULL},
      {"\xc4\xe3\xba\xc3", "gb2312", "\xe4\xbd\xa0\xe5\xa5\xbd", NULL},
      {"\xe9t\xe9", "x-unknown", "\xc3\xa9t\xc3\xa9", "charset_unknown"},
      {"old\rmac\r", "us-ascii", "old\nmac\n", NULL},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    ib_message *m = ib_message_new();
    char *got = repair_text_to_utf8(cases[i].bytes, strlen(cases[i].bytes), cases[i].charset, FALSE,
                                    "body", m);
    CHECK_STR(got, cases[i].want);
    if (cases[i].warning)
      CHECK_INT(count_warnings(m, cases[i].warning), 1);
    else
      CHECK_INT(m->warnings->len, 0);
    g_free(got);
    ib_message_free(m);
  }

  /* NUL bytes are dropped, but UTF-16 keeps its zero bytes until decoded */
  ib_message *m = ib_message_new();
  char *got = repair_text_to_utf8("a\0b\0", 4, "utf-8", FALSE, "body", m);
  CHECK_STR(got, "ab");
  CHECK_INT(count_warnings(m, "nul_bytes"), 1);
  g_free(got);
  got = repair_text_to_utf8("h\0i\0", 4, "utf-16le", FALSE, "body", m);
  CHECK_STR(got, "hi");
  CHECK_INT(count_warnings(m, "nul_bytes"), 1);
  g_free(got);

  /* HTML without MIME charset: its <meta> decides */
  const char *html = "<meta charset=\"windows-1251\"><p>\xcf\xf0\xe8\xe2\xe5\xf2</p>";
  got = repair_text_to_utf8(html, strlen(html), NULL, TRUE, "html", m);
  CHECK(strstr(got, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82") != NULL);
  CHECK(count_warnings(m, "charset_missing") == 1);
  g_free(got);
  ib_message_free(m);
}

static void
test_date(void)
{
  ib_message *m = ib_message_new();
  GDateTime *dt = repair_date("2025-01-06T10:00:00+01:00", m);
  CHECK(dt != NULL);
  if (dt) {
    CHECK_INT(g_date_time_to_unix(dt), 1736154000);
    g_date_time_unref(dt);
  }
  CHECK_INT(count_warnings(m, "date_iso8601"), 1);
  dt = repair_date("2025-01-06 09:00:00", m); /* no zone: UTC */
  CHECK(dt != NULL);
  if (dt) {
    CHECK_INT(g_date_time_to_unix(dt), 1736154000);
    g_date_time_unref(dt);
  }
  CHECK(repair_date("Mon, 6 Jan 2025 10:00:00 +0100", m) == NULL);
  CHECK(repair_date("2025-13-45T99:00:00Z", m) == NULL);
  CHECK(repair_date("", m) == NULL);
  CHECK_INT(count_warnings(m, "date_iso8601"), 2);
  ib_message_free(m);
}

static void
test_msgids_base64(void)
{
  ib_message *m = ib_message_new();
  CHECK(repair_msgid_list("<a@x> <b@x>", "References", m) == NULL);
  CHECK(repair_msgid_list("<a,1@x> <b@x>", "References", m) == NULL);
  char *v = repair_msgid_list("<a@x>,<b,2@x>, <c@x>", "References", m);
  CHECK_STR(v, "<a@x> <b,2@x>  <c@x>");
  g_free(v);
  CHECK_INT(count_warnings(m, "references_commas"), 1);

  CHECK_INT(repair_check_base64("aGVs\r\nbG8=\r\n", 12, "part", m), 0);
  CHECK_INT(count_warnings(m, "bad_base64"), 0);
  CHECK_INT(repair_check_base64("aGVs*bG8!", 9, "part", m), 2);
  CHECK_INT(count_warnings(m, "bad_base64"), 1);
  /* Every byte value, alone and in a run of 101: exactly the alphabet, padding, CR, LF,
   * space and tab pass. */
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789+/=\r\n \t";
  for (int c = 0; c < 256; c++) {
    char run[101];
    memset(run, c, sizeof run);
    size_t want = c != 0 && strchr(alphabet, c) ? 0 : 1;
    CHECK_INT(repair_check_base64(run, 1, "part", m), want);
    CHECK_INT(repair_check_base64(run, sizeof run, "part", m), want * sizeof run);
  }
  ib_message_free(m);
}

static void
test_rfc2047_padding(void)
{
  CHECK(repair_rfc2047_padding("plain text") == NULL);
  CHECK(repair_rfc2047_padding("=?UTF-8?B?SGVsbG8=?=") == NULL);
  CHECK(repair_rfc2047_padding("=?UTF-8?B?SGVsbG8=?= text =?UTF-8?B?IHdvcmxk?=") == NULL);
  CHECK(repair_rfc2047_padding("=?UTF-8?B?SGVs?= =?UTF-8?B?bG8=?=") == NULL);
  char *v = repair_rfc2047_padding("Re: =?UTF-8?B?SGVsbG8=?= =?utf-8?b?IHf2?= =?utf-8?q?x?=");
  CHECK_STR(v, "Re: =?UTF-8?Q?Hello?= =?utf-8?Q?=20w=F6?= =?utf-8?q?x?=");
  g_free(v);
}

static void
test_multipart_boundary(void)
{
  const char *raw = "Content-Type: multipart/mixed\n\npreamble\n--guess\nContent-Type: "
                    "text/plain\n\none\n--guess\nContent-Type: text/plain\n\ntwo\n--guess--\n";
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, strlen(raw));
  GMimeParser *parser = g_mime_parser_new_with_stream(stream);
  GMimeObject *part = g_mime_parser_construct_part(parser, NULL);
  CHECK(GMIME_IS_MULTIPART(part));
  CHECK_INT(g_mime_multipart_get_count(GMIME_MULTIPART(part)), 0);
  ib_message *m = ib_message_new();
  const char *base = NULL;
  size_t len = 0;
  GMimeObject *fixed = repair_multipart(GMIME_MULTIPART(part), NULL, m, &base, &len);
  CHECK(fixed != NULL && GMIME_IS_MULTIPART(fixed));
  if (fixed) {
    CHECK_INT(g_mime_multipart_get_count(GMIME_MULTIPART(fixed)), 2);
    CHECK(base != NULL && len > 0 && g_strstr_len(base, (gssize)len, "--guess") != NULL);
    g_object_unref(fixed);
  }
  CHECK_INT(count_warnings(m, "multipart_boundary_guessed"), 1);
  g_object_unref(part);
  g_object_unref(parser);
  g_object_unref(stream);

  /* no delimiter line that repeats: nothing to guess */
  raw = "Content-Type: multipart/mixed\n\n--only-once\nContent-Type: text/plain\n\nx\n";
  stream = g_mime_stream_mem_new_with_buffer(raw, strlen(raw));
  parser = g_mime_parser_new_with_stream(stream);
  part = g_mime_parser_construct_part(parser, NULL);
  CHECK(repair_multipart(GMIME_MULTIPART(part), NULL, m, &base, &len) == NULL);
  CHECK_INT(count_warnings(m, "multipart_boundary_guessed"), 1);
  g_object_unref(part);
  g_object_unref(parser);
  g_object_unref(stream);
  ib_message_free(m);
}

int
main(void)
{
  mime_init();
  test_input();
  test_field_name();
  test_header_utf8();
  test_text_utf8();
  test_date();
  test_msgids_base64();
  test_rfc2047_padding();
  test_multipart_boundary();
  mime_shutdown();
  return check_done();
}
