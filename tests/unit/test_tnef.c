/* test_tnef.c: tnef_unpack() on TNEF streams built here, on damaged ones (which must be
 * refused before libytnef prints anything to stdout), and on random mutations. */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tnef.h"

static void
put32(GByteArray *b, guint32 v)
{
  guint8 x[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};
  g_byte_array_append(b, x, 4);
}

static void
put16(GByteArray *b, guint16 v)
{
  guint8 x[2] = {v & 0xff, v >> 8};
  g_byte_array_append(b, x, 2);
}

static void
attribute(GByteArray *b, guint8 level, guint32 id, const void *data, guint32 len)
{
  g_byte_array_append(b, &level, 1);
  put32(b, id);
  put32(b, len);
  g_byte_array_append(b, data, len);
  guint16 sum = 0;
  for (guint32 i = 0; i < len; i++)
    sum = (guint16)(sum + ((const guint8 *)data)[i]);
  put16(b, sum);
}

/* A MAPI block with one PT_STRING8 property ID holding S. */
static GByteArray *
mapi_string8(guint32 id, const char *s)
{
  GByteArray *m = g_byte_array_new();
  guint32 len = (guint32)strlen(s) + 1;
  put32(m, 1);
  put32(m, (id << 16) | 0x001E);
  put32(m, 1);
  put32(m, len);
  g_byte_array_append(m, (const guint8 *)s, len);
  while (m->len % 4)
    g_byte_array_append(m, (const guint8 *)"", 1);
  return m;
}

/* Signature, key, version, then one attachment NAME with DATA (and, when LONG_NAME is
 * set, its long file name as a MAPI property) and a body. */
static GByteArray *
build(const char *name, const char *long_name, const char *data, const char *body)
{
  GByteArray *b = g_byte_array_new();
  put32(b, 0x223E9F78);
  put16(b, 0x0001);
  guint8 version[4] = {0, 0, 1, 0};
  attribute(b, 1, 0x00089006, version, 4);
  if (body)
    attribute(b, 1, 0x0002800C, body, (guint32)strlen(body));
  guint8 rend[14] = {1, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0};
  attribute(b, 2, 0x00069002, rend, sizeof rend);
  attribute(b, 2, 0x00018010, name, (guint32)strlen(name) + 1);
  attribute(b, 2, 0x0006800F, data, (guint32)strlen(data));
  if (long_name) {
    GByteArray *m = mapi_string8(0x3707, long_name);
    attribute(b, 2, 0x00069005, m->data, m->len);
    g_byte_array_unref(m);
  }
  return b;
}

/* Run tnef_unpack with stdout redirected to a file; *PRINTED_OUT gets whether anything
 * was written there. */
static ib_status
unpack_quiet(const guint8 *data, size_t len, tnef_result **out, gboolean *printed_out)
{
  fflush(stdout);
  char *path = NULL;
  int fd = g_file_open_tmp("tnef-stdout-XXXXXX", &path, NULL);
  int saved = dup(STDOUT_FILENO);
  dup2(fd, STDOUT_FILENO);
  ib_status st = tnef_unpack(data, len, out);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  *printed_out = lseek(fd, 0, SEEK_END) > 0;
  if (*printed_out) {
    char *text = NULL;
    g_file_get_contents(path, &text, NULL, NULL);
    fprintf(stderr, "libytnef printed: %s", text ? text : "?");
    g_free(text);
  }
  close(fd);
  g_unlink(path);
  g_free(path);
  return st;
}

static void
test_valid(void)
{
  GByteArray *b = build("REPORT~1.PDF", "Quarterly report.pdf", "%PDF-1.4 data", "Body text\r\n");
  tnef_result *r = NULL;
  gboolean printed = TRUE;
  CHECK_INT(unpack_quiet(b->data, b->len, &r, &printed), IB_OK);
  CHECK(!printed);
  CHECK(r != NULL);
  if (r) {
    CHECK_INT(r->files->len, 1);
    tnef_file *f = g_ptr_array_index(r->files, 0);
    CHECK_STR(f->filename, "Quarterly report.pdf");
    CHECK_STR(f->content_type, "application/pdf");
    gsize len = 0;
    const char *d = g_bytes_get_data(f->data, &len);
    CHECK(len == 13 && memcmp(d, "%PDF-1.4 data", 13) == 0);
    CHECK_STR(r->text, "Body text\n");
    CHECK(r->html == NULL);
  }
  tnef_result_free(r);
  g_byte_array_unref(b);

  /* only the 8.3 title: that is the name, type from its extension */
  b = build("NOTES.TXT", NULL, "x", NULL);
  CHECK_INT(unpack_quiet(b->data, b->len, &r, &printed), IB_OK);
  CHECK(r && r->files->len == 1);
  if (r && r->files->len) {
    tnef_file *f = g_ptr_array_index(r->files, 0);
    CHECK_STR(f->filename, "NOTES.TXT");
    CHECK_STR(f->content_type, "text/plain");
  }
  CHECK(r && r->text == NULL);
  tnef_result_free(r);
  g_byte_array_unref(b);
}

static void
test_refused(void)
{
  GByteArray *good = build("A.BIN", "a.bin", "payload", "body");
  tnef_result *r = NULL;
  gboolean printed = FALSE;

  /* wrong signature, too short, truncated, a damaged checksum, a zero-length attribute */
  GByteArray *b = g_byte_array_new();
  g_byte_array_append(b, good->data, good->len);
  b->data[0] ^= 0xff;
  CHECK_INT(unpack_quiet(b->data, b->len, &r, &printed), IB_ERR_INVALID);
  CHECK(r == NULL && !printed);
  CHECK_INT(unpack_quiet(good->data, 4, &r, &printed), IB_ERR_INVALID);
  CHECK(!printed);
  CHECK_INT(unpack_quiet(good->data, good->len - 5, &r, &printed), IB_ERR_INVALID);
  CHECK(!printed);
  g_byte_array_set_size(b, 0);
  g_byte_array_append(b, good->data, good->len);
  b->data[good->len - 3] ^= 0x01; /* last data byte: checksum mismatch */
  CHECK_INT(unpack_quiet(b->data, b->len, &r, &printed), IB_ERR_INVALID);
  CHECK(!printed);
  g_byte_array_set_size(b, 6);
  attribute(b, 1, 0x0002800C, "", 0);
  CHECK_INT(unpack_quiet(b->data, b->len, &r, &printed), IB_ERR_INVALID);
  CHECK(!printed);

  /* attributes libytnef would choke on are left out, the stream still unpacks: a MAPI
   * block with an unknown property type, one with a huge count, a short version field */
  g_byte_array_set_size(b, 6);
  guint8 bad_type[16] = {1, 0, 0, 0, 0x99, 0x00, 0x07, 0x37, 1, 0, 0, 0, 0, 0, 0, 0};
  attribute(b, 2, 0x00069002, "\x01\0\0\0\0\0\0\0\0\0\0\0\0\0", 14);
  attribute(b, 2, 0x0006800F, "data", 4);
  attribute(b, 2, 0x00069005, bad_type, sizeof bad_type);
  guint8 big_count[8] = {0xff, 0xff, 0xff, 0x7f, 0x1e, 0x00, 0x07, 0x37};
  attribute(b, 1, 0x00069003, big_count, sizeof big_count);
  attribute(b, 1, 0x00089006, "\x01", 1);
  CHECK_INT(unpack_quiet(b->data, b->len, &r, &printed), IB_OK);
  CHECK(!printed);
  CHECK(r && r->files->len == 1);
  tnef_result_free(r);
  r = NULL;

  CHECK_INT(tnef_unpack(NULL, 0, &r), IB_ERR_INVALID);
  g_byte_array_unref(b);
  g_byte_array_unref(good);
}

/* Recompute every attribute checksum, so that damage inside the data reaches the
 * deeper checks (MAPI blocks) and libytnef itself. */
static void
fix_checksums(GByteArray *b)
{
  size_t pos = 6;
  while (b->len >= 9 && pos <= b->len - 9) {
    guint8 *p = b->data + pos;
    guint32 size = p[5] | p[6] << 8 | p[7] << 16 | (guint32)p[8] << 24;
    pos += 9;
    if (size > b->len - pos || b->len - pos - size < 2)
      return;
    guint16 sum = 0;
    for (guint32 i = 0; i < size; i++)
      sum = (guint16)(sum + b->data[pos + i]);
    b->data[pos + size] = sum & 0xff;
    b->data[pos + size + 1] = sum >> 8;
    pos += size + 2;
  }
}

/* Random damage must never crash, read out of bounds (run under ASan) or print. */
static void
test_mutations(void)
{
  GByteArray *good = build("REPORT~1.PDF", "Quarterly report.pdf", "%PDF-1.4 data", "Body");
  GRand *rand = g_rand_new_with_seed(4711);
  int printed_any = 0, ok = 0;
  for (int i = 0; i < 3000; i++) {
    GByteArray *b = g_byte_array_new();
    g_byte_array_append(b, good->data, good->len);
    int flips = g_rand_int_range(rand, 1, 4);
    for (int k = 0; k < flips; k++)
      b->data[g_rand_int_range(rand, 0, (gint32)b->len)] = (guint8)g_rand_int_range(rand, 0, 256);
    if (i % 2)
      fix_checksums(b);
    else if (g_rand_boolean(rand))
      g_byte_array_set_size(b, (guint)g_rand_int_range(rand, 0, (gint32)b->len + 1));
    tnef_result *r = NULL;
    gboolean printed = FALSE;
    if (unpack_quiet(b->data, b->len, &r, &printed) == IB_OK)
      ok++;
    printed_any += printed;
    tnef_result_free(r);
    g_byte_array_unref(b);
  }
  CHECK_INT(printed_any, 0);
  CHECK(ok > 0);
  g_rand_free(rand);
  g_byte_array_unref(good);
}

/* What libytnef 2.0 refuses outright (and prints about): a subject over 100 bytes, an
 * icon over 10000, a body over 100000. Real Outlook mail has all three. */
static void
test_ytnef_limits(void)
{
  GByteArray *b = g_byte_array_new();
  put32(b, 0x223E9F78);
  put16(b, 0x0001);
  char *subject = g_strnfill(300, 's');
  attribute(b, 1, 0x00018004, subject, 300);
  char *body = g_strnfill(150000, 'b');
  attribute(b, 1, 0x0002800C, body, 150000);
  guint8 rend[14] = {1};
  attribute(b, 2, 0x00069002, rend, sizeof rend);
  attribute(b, 2, 0x00018010, "BIG.TXT", 8);
  attribute(b, 2, 0x0006800F, "content", 7);
  char *icon = g_strnfill(20000, 'i');
  attribute(b, 2, 0x00068011, icon, 20000);
  GByteArray *m = mapi_string8(0x0037, subject); /* PR_SUBJECT, 300 bytes */
  attribute(b, 1, 0x00069003, m->data, m->len);
  g_byte_array_unref(m);

  tnef_result *r = NULL;
  gboolean printed = TRUE;
  CHECK_INT(unpack_quiet(b->data, b->len, &r, &printed), IB_OK);
  CHECK(!printed);
  CHECK(r && r->files->len == 1);
  if (r && r->files->len) {
    tnef_file *f = g_ptr_array_index(r->files, 0);
    CHECK_STR(f->filename, "BIG.TXT");
    CHECK_INT(g_bytes_get_size(f->data), 7);
  }
  CHECK(r && r->text == NULL); /* the body was too long for libytnef */
  tnef_result_free(r);
  g_free(subject);
  g_free(body);
  g_free(icon);
  g_byte_array_unref(b);
}

static void
test_guess_type(void)
{
  CHECK_STR(tnef_guess_type("a.PDF"), "application/pdf");
  CHECK_STR(tnef_guess_type("sheet.xlsx"),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  CHECK_STR(tnef_guess_type("photo.jpeg"), "image/jpeg");
  CHECK_STR(tnef_guess_type("noext"), "application/octet-stream");
  CHECK_STR(tnef_guess_type("trailing."), "application/octet-stream");
  CHECK_STR(tnef_guess_type(NULL), "application/octet-stream");
}

int
main(void)
{
  test_valid();
  test_refused();
  test_mutations();
  test_ytnef_limits();
  test_guess_type();
  return check_done();
}
