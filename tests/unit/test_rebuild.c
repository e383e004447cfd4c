/* test_rebuild.c: raw MIME synthesized from parsed fields (parsers/rebuild.c). Each
 * output is read back with GMime to show it means what was put in, and the bytes are
 * checked for determinism and for the shapes and encodings promised in rebuild.h. */
#include <gmime/gmime.h>
#include <string.h>

#include "check.h"
#include "mime.h"
#include "rebuild.h"

static char *
finish_str(rebuild *rb)
{
  GBytes *b = rebuild_finish(rb);
  gsize len = 0;
  const char *d = g_bytes_get_data(b, &len);
  char *s = g_strndup(d, len);
  CHECK_INT(strlen(s), len);
  g_bytes_unref(b);
  return s;
}

static GMimeMessage *
reparse(const char *raw)
{
  GMimeStream *st = g_mime_stream_mem_new_with_buffer(raw, strlen(raw));
  GMimeParser *p = g_mime_parser_new_with_stream(st);
  GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
  g_object_unref(p);
  g_object_unref(st);
  CHECK(m != NULL);
  return m;
}

static int
count(const char *hay, const char *needle)
{
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

/* Every line ends with CRLF and none is longer than LIMIT (without the CRLF). */
static void
check_lines(const char *raw, size_t limit)
{
  const char *p = raw;
  while (*p) {
    const char *nl = strchr(p, '\n');
    CHECK(nl != NULL);
    if (!nl)
      return;
    CHECK(nl > p && nl[-1] == '\r');
    if ((size_t)(nl - p - 1) > limit) {
      fprintf(stderr, "line of %zu bytes: %.60s...\n", (size_t)(nl - p - 1), p);
      CHECK(0);
    }
    p = nl + 1;
  }
}

static char *
text_of(GMimeObject *o)
{
  CHECK(GMIME_IS_TEXT_PART(o));
  return GMIME_IS_TEXT_PART(o) ? g_mime_text_part_get_text(GMIME_TEXT_PART(o)) : NULL;
}

static void
test_text_only(void)
{
  rebuild *rb = rebuild_new();
  rebuild_add_header(rb, "From", "a@example.org");
  rebuild_add_header(rb, "Subject", "plain");
  rebuild_set_text(rb, "no newline at the end", 21);
  char *raw = finish_str(rb);
  CHECK(strstr(raw, "Content-Type: text/plain; charset=utf-8\r\n") != NULL);
  CHECK(strstr(raw, "multipart") == NULL);
  CHECK(strstr(raw, "MIME-Version: 1.0\r\n") != NULL);
  CHECK(strstr(raw, "Date:") == NULL); /* never the current date */
  check_lines(raw, 78);
  GMimeMessage *m = reparse(raw);
  char *t = text_of(g_mime_message_get_mime_part(m));
  CHECK_STR(t, "no newline at the end"); /* the soft break adds nothing */
  g_free(t);
  g_object_unref(m);
  g_free(raw);
  rebuild_free(rb);

  /* Line ends are normalized to CRLF; the text keeps its lines and its final newline. */
  rb = rebuild_new();
  rebuild_set_text(rb, "one\ntwo\r\nthree\rfour\n", 20);
  raw = finish_str(rb);
  check_lines(raw, 78);
  m = reparse(raw);
  t = text_of(g_mime_message_get_mime_part(m));
  CHECK_STR(t, "one\r\ntwo\r\nthree\r\nfour\r\n");
  g_free(t);
  g_object_unref(m);
  g_free(raw);
  rebuild_free(rb);
}

static void
test_encodings(void)
{
  /* Mostly non-ASCII text goes base64; long ASCII lines are wrapped by
   * quoted-printable soft breaks. */
  rebuild *rb = rebuild_new();
  const char *cjk = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad"
                    "\xe3\x82\xb9\xe3\x83\x88\n";
  rebuild_set_text(rb, cjk, strlen(cjk));
  GString *longline = g_string_new("<p>");
  for (int i = 0; i < 60; i++)
    g_string_append(longline, "word=value ");
  g_string_append(longline, "</p>");
  rebuild_set_html(rb, longline->str, longline->len);
  char *raw = finish_str(rb);
  check_lines(raw, 78);
  CHECK(strstr(raw, "Content-Type: multipart/alternative;") != NULL);
  CHECK(
      strstr(raw, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64") !=
      NULL);
  CHECK(strstr(raw, "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: "
                    "quoted-printable") != NULL);
  GMimeMessage *m = reparse(raw);
  GMimeMultipart *alt = GMIME_MULTIPART(g_mime_message_get_mime_part(m));
  CHECK_INT(g_mime_multipart_get_count(alt), 2);
  char *t = text_of(g_mime_multipart_get_part(alt, 0));
  CHECK_STR(t, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad"
               "\xe3\x82\xb9\xe3\x83\x88\r\n");
  g_free(t);
  t = text_of(g_mime_multipart_get_part(alt, 1));
  CHECK_STR(t, longline->str);
  g_free(t);
  g_object_unref(m);
  g_free(raw);
  g_string_free(longline, TRUE);
  rebuild_free(rb);
}

static void
test_headers(void)
{
  rebuild *rb = rebuild_new();
  rebuild_add_header(rb, "Received", "from a by b; Mon, 06 Jan 2025 10:00:00 +0000");
  rebuild_add_header(rb, "From", "old@example.org");
  rebuild_add_header(rb, "Subject", "first");
  rebuild_add_header(rb, "subject", "second");
  rebuild_add_header(rb, "Content-Type", "multipart/mixed; boundary=zzz");
  rebuild_add_header(rb, "MIME-Version", "1.0");
  rebuild_add_header(rb, "Content-Transfer-Encoding", "8bit");
  rebuild_add_header(rb, "Bad Name", "x");
  rebuild_add_header(rb, "Bad:Name", "x");
  rebuild_add_header(rb, "", "x");
  rebuild_add_header(rb, "X-Inject", "a\r\nBcc: victim@example.net\r\n\r\nbody");
  rebuild_set_header(rb, "from", "\"Doe, J\xc3\xbcrgen\" <jd@example.org>, Bob <bob@example.net>");
  rebuild_set_header(rb, "Subject",
                     "Gr\xc3\xbc\xc3\x9f"
                     "e aus K\xc3\xb6ln \xe2\x80\x93 a long subject "
                     "that needs more than one encoded word to carry it");
  rebuild_set_header(rb, "To", "Team: a@example.org, b@example.org;");
  rebuild_set_header(rb, "Cc", "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd <ivan@example.net>");
  CHECK(rebuild_has_header(rb, "TO"));
  CHECK(!rebuild_has_header(rb, "Content-Type"));
  rebuild_set_text(rb, "x", 1);
  char *raw = finish_str(rb);
  check_lines(raw, 78);
  CHECK_INT(count(raw, "Subject:"), 1);
  CHECK_INT(count(raw, "subject:"), 0);
  CHECK_INT(count(raw, "Content-Type:"), 1);
  CHECK_INT(count(raw, "MIME-Version:"), 1);
  CHECK_INT(count(raw, "Content-Transfer-Encoding:"), 1);
  CHECK_INT(count(raw, "Bad"), 0);
  CHECK_INT(count(raw, "\nBcc:"), 0);
  CHECK(strstr(raw, "X-Inject: a  Bcc: victim@example.net    body\r\n") != NULL);
  /* Order: Received first, then From where it was, Subject where "Subject" was. */
  const char *rec = strstr(raw, "Received:"), *from = strstr(raw, "From:"),
             *subj = strstr(raw, "Subject:");
  CHECK(rec && from && subj && rec < from && from < subj);
  /* Non-ASCII only as encoded words in the header block. */
  const char *end = strstr(raw, "\r\n\r\n");
  for (const char *p = raw; end && p < end; p++)
    CHECK((unsigned char)*p < 0x80);
  GMimeMessage *m = reparse(raw);
  CHECK_STR(g_mime_message_get_subject(m),
            "Gr\xc3\xbc\xc3\x9f"
            "e aus K\xc3\xb6ln \xe2\x80\x93 a long subject that needs more "
            "than one encoded word to carry it");
  InternetAddressList *fl = g_mime_message_get_from(m);
  CHECK_INT(internet_address_list_length(fl), 2);
  if (internet_address_list_length(fl) == 2) {
    InternetAddress *a = internet_address_list_get_address(fl, 0);
    CHECK_STR(internet_address_get_name(a), "Doe, J\xc3\xbcrgen");
    CHECK_STR(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)), "jd@example.org");
    a = internet_address_list_get_address(fl, 1);
    CHECK_STR(internet_address_get_name(a), "Bob");
  }
  InternetAddressList *cc = g_mime_message_get_cc(m);
  CHECK_INT(internet_address_list_length(cc), 1);
  if (internet_address_list_length(cc) == 1)
    CHECK_STR(internet_address_get_name(internet_address_list_get_address(cc, 0)),
              "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd");
  CHECK(strstr(raw, "To: Team: a@example.org, b@example.org;\r\n") != NULL);
  g_object_unref(m);
  g_free(raw);
  rebuild_free(rb);

  /* A long ASCII header is folded at blanks and unfolds to the same value. */
  rb = rebuild_new();
  GString *refs = g_string_new(NULL);
  for (int i = 0; i < 12; i++)
    g_string_append_printf(refs, "%s<msg-%d.abcdefgh@example.org>", i ? " " : "", i);
  rebuild_add_header(rb, "References", refs->str);
  char *nospace = g_strnfill(120, 'x');
  rebuild_add_header(rb, "X-Long-Word", nospace);
  rebuild_set_text(rb, "", 0);
  raw = finish_str(rb);
  m = reparse(raw);
  const char *v = g_mime_object_get_header((GMimeObject *)m, "References");
  char *unfolded = v ? g_strdup(v) : NULL;
  CHECK(unfolded && strstr(raw, "\r\n <msg-") != NULL);
  GMimeReferences *parsed = g_mime_references_parse(NULL, unfolded);
  CHECK_INT(g_mime_references_length(parsed), 12);
  g_mime_references_free(parsed);
  CHECK(strstr(raw, "X-Long-Word: xxxxxxxx") != NULL); /* one word: kept whole */
  g_free(unfolded);
  g_object_unref(m);
  g_free(raw);
  g_free(nospace);
  g_string_free(refs, TRUE);
  rebuild_free(rb);
}

static void
test_structure_and_parts(void)
{
  static const char bin[] = "\x00\x01\x02\xff\r\n--=_inboxd_m_ not a boundary\r\n";
  /* Text + html + inline + attachment: mixed(related(alternative(text, html), inline),
   * attachment). */
  rebuild *rb = rebuild_new();
  rebuild_set_text(rb, "t", 1);
  rebuild_set_html(rb, "<img src=\"cid:i1\">", 18);
  rebuild_add_part(rb, bin, sizeof bin - 1, "image/png; foo=bar", "pic.png", "<i1>");
  rebuild_add_part(rb, bin, sizeof bin - 1, "Text/Plain; Charset=\"ISO-8859-1\"", "a\r\nb\"c\\.txt",
                   NULL);
  rebuild_add_part(rb, "x", 1, "not a type", "\xe2\x82\xac-\xc3\xa4.bin", NULL);
  rebuild_add_part(rb, "", 0, NULL, NULL, "  ");
  char *raw = finish_str(rb);
  check_lines(raw, 78);
  CHECK(strstr(raw, "Content-Type: multipart/related; type=\"multipart/alternative\";") != NULL);
  CHECK(strstr(raw, "foo=bar") == NULL);
  CHECK(
      strstr(raw, "Content-Type: text/plain; charset=iso-8859-1;\r\n name=\"a  b\\\"c\\\\.txt\"") !=
      NULL);
  CHECK(strstr(raw, "filename*=UTF-8''%E2%82%AC-%C3%A4.bin") != NULL);
  GMimeMessage *m = reparse(raw);
  GMimeObject *top = g_mime_message_get_mime_part(m);
  CHECK(GMIME_IS_MULTIPART(top));
  GMimeMultipart *mixed = GMIME_MULTIPART(top);
  CHECK_INT(g_mime_multipart_get_count(mixed), 4);
  GMimeObject *rel = g_mime_multipart_get_part(mixed, 0);
  CHECK(g_mime_content_type_is_type(g_mime_object_get_content_type(rel), "multipart", "related"));
  GMimeMultipart *relm = GMIME_MULTIPART(rel);
  CHECK_INT(g_mime_multipart_get_count(relm), 2);
  GMimeObject *alt = g_mime_multipart_get_part(relm, 0);
  CHECK(
      g_mime_content_type_is_type(g_mime_object_get_content_type(alt), "multipart", "alternative"));
  GMimePart *pic = GMIME_PART(g_mime_multipart_get_part(relm, 1));
  CHECK_STR(g_mime_part_get_content_id(pic), "i1");
  CHECK_STR(g_mime_object_get_disposition((GMimeObject *)pic), "inline");
  GMimeStream *out = g_mime_stream_mem_new();
  g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(pic), out);
  GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
  CHECK(ba->len == sizeof bin - 1 && memcmp(ba->data, bin, ba->len) == 0);
  g_object_unref(out);
  GMimePart *txt = GMIME_PART(g_mime_multipart_get_part(mixed, 1));
  CHECK_STR(g_mime_part_get_filename(txt), "a  b\"c\\.txt");
  CHECK_STR(g_mime_object_get_disposition((GMimeObject *)txt), "attachment");
  GMimePart *eur = GMIME_PART(g_mime_multipart_get_part(mixed, 2));
  CHECK_STR(g_mime_part_get_filename(eur), "\xe2\x82\xac-\xc3\xa4.bin");
  CHECK(g_mime_content_type_is_type(g_mime_object_get_content_type((GMimeObject *)eur),
                                    "application", "octet-stream"));
  GMimePart *blank = GMIME_PART(g_mime_multipart_get_part(mixed, 3)); /* blank cid: attachment */
  CHECK(g_mime_part_get_content_id(blank) == NULL);
  g_object_unref(m);

  /* Deterministic, and content-dependent boundaries. */
  char *again = finish_str(rb);
  CHECK_STR(again, raw);
  g_free(again);
  rebuild_set_text(rb, "u", 1);
  again = finish_str(rb);
  CHECK(strcmp(again, raw) != 0);
  const char *b1 = strstr(raw, "=_inboxd_m_"), *b2 = strstr(again, "=_inboxd_m_");
  CHECK(b1 && b2 && strncmp(b1, b2, 35) != 0);
  g_free(again);
  g_free(raw);
  rebuild_free(rb);
}

static void
test_degenerate_shapes(void)
{
  /* Nothing at all: an empty text/plain message. */
  rebuild *rb = rebuild_new();
  char *raw = finish_str(rb);
  CHECK(strstr(raw, "Content-Type: text/plain; charset=utf-8") != NULL);
  GMimeMessage *m = reparse(raw);
  char *t = text_of(g_mime_message_get_mime_part(m));
  CHECK_STR(t, "");
  g_free(t);
  g_object_unref(m);
  g_free(raw);
  rebuild_free(rb);

  /* Only an attachment: the attachment is the whole body. */
  rb = rebuild_new();
  rebuild_add_part(rb, "PDF", 3, "application/pdf", "a.pdf", NULL);
  raw = finish_str(rb);
  CHECK(strstr(raw, "multipart") == NULL);
  CHECK(strstr(raw, "Content-Type: application/pdf;\r\n name=\"a.pdf\"") != NULL);
  CHECK(g_str_has_suffix(raw, "UERG\r\n"));
  g_free(raw);
  rebuild_free(rb);

  /* Inline parts without a body go to the mixed level, still inline. */
  rb = rebuild_new();
  rebuild_add_part(rb, "a", 1, "image/gif", "a.gif", "a@x");
  rebuild_add_part(rb, "b", 1, "image/gif", "b.gif", NULL);
  raw = finish_str(rb);
  CHECK(strstr(raw, "multipart/related") == NULL);
  CHECK(strstr(raw, "Content-Type: multipart/mixed;") != NULL);
  CHECK_INT(count(raw, "Content-Disposition: inline"), 1);
  g_free(raw);
  rebuild_free(rb);

  /* HTML with an inline image and no text: related(html, image), typed text/html. */
  rb = rebuild_new();
  rebuild_set_html(rb, "<b>x</b>", 8);
  rebuild_add_part(rb, "a", 1, "image/gif", NULL, "<a@x>");
  raw = finish_str(rb);
  CHECK(strstr(raw, "Content-Type: multipart/related; type=\"text/html\";") != NULL);
  CHECK(strstr(raw, "multipart/alternative") == NULL);
  CHECK(strstr(raw, "Content-ID: <a@x>") != NULL);
  g_free(raw);
  rebuild_free(rb);

  /* Invalid UTF-8 is repaired, never passed through. */
  rb = rebuild_new();
  rebuild_add_header(rb, "Subject", "bad \xff byte");
  rebuild_set_text(rb, "bad \xc3 text", 10);
  raw = finish_str(rb);
  m = reparse(raw);
  CHECK_STR(g_mime_message_get_subject(m), "bad \xef\xbf\xbd byte");
  t = text_of(g_mime_message_get_mime_part(m));
  CHECK_STR(t, "bad \xef\xbf\xbd text");
  g_free(t);
  g_object_unref(m);
  g_free(raw);
  rebuild_free(rb);
}

int
main(void)
{
  mime_init();
  test_text_only();
  test_encodings();
  test_headers();
  test_structure_and_parts();
  test_degenerate_shapes();
  mime_shutdown();
  return check_done();
}
