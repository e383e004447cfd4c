/* test_jsonout: jsonout_dumps() writes exactly what json_dumps(JSON_COMPACT |
 * JSON_ENCODE_ANY) writes, for every kind of value and for the document of every mail
 * fixture and reply fixture. */
#include <glib.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jsonout.h"
#include "parse.h"

/* Compare both writers on V (stolen), byte for byte and by length. */
static void
same(const char *what, json_t *v)
{
  char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  size_t len = 0;
  char *got = jsonout_dumps(v, &len);
  check_count++;
  if (!want || !got || strcmp(got, want) != 0 || len != strlen(want)) {
    check_failures++;
    fprintf(stderr, "%s: differs\n  got:  %s\n  want: %s\n", what, got ? got : "NULL",
            want ? want : "NULL");
  }
  free(want);
  free(got);
  json_decref(v);
}

static void
test_scalars(void)
{
  same("null", json_null());
  same("true", json_true());
  same("false", json_false());
  same("zero", json_integer(0));
  same("negative", json_integer(-42));
  same("max", json_integer(LLONG_MAX));
  same("min", json_integer(LLONG_MIN));
  same("real", json_real(3.25));
  same("real integral", json_real(5.0));
  same("real tiny", json_real(1e-300));
  same("real negative", json_real(-0.1));
  CHECK(jsonout_dumps(NULL, NULL) == NULL);
}

static void
test_strings(void)
{
  same("empty", json_string(""));
  same("plain", json_string("hello"));
  same("quotes and backslash", json_string("say \"hi\" \\ bye \\\" /slash/"));
  same("named escapes", json_string("a\bb\fc\nd\re\tf"));
  char ctl[40];
  for (int i = 1; i < 32; i++)
    ctl[i - 1] = (char)i;
  ctl[31] = 0x7f;
  ctl[32] = 'x';
  ctl[33] = '\0';
  same("every control character", json_string(ctl));
  same("embedded NUL", json_stringn("a\0b", 3));
  same("UTF-8", json_string("Şikayet – Straße ø 日本語 \xF0\x9F\x98\x80 \xE2\x80\xA8"));
  same("escape at the ends", json_string("\n middle \""));
  GString *big = g_string_new(NULL);
  for (int i = 0; i < 200000; i++)
    g_string_append(big, i % 97 == 0 ? "\"\n\x01" : "text ");
  same("long string", json_stringn(big->str, big->len));
  g_string_free(big, TRUE);
}

static void
test_containers(void)
{
  same("empty object", json_object());
  same("empty array", json_array());
  same("nested", json_pack("{s:[i, s, n, {s:b}], s:{}, s:[]}", "a", 1, "x", "k", 1, "b", "c"));
  json_t *o = json_object();
  json_object_set_new(o, "zeta", json_integer(1));
  json_object_set_new(o, "alpha", json_integer(2));
  json_object_set_new(o, "key \"quoted\"\n", json_string("v"));
  json_object_setn_new(o, "nul\0key", 7, json_true());
  json_object_set_new(o, "zeta", json_integer(3)); /* replaced: keeps its place */
  same("insertion order and key escapes", o);
  json_t *deep = json_integer(7);
  for (int i = 0; i < 500; i++) {
    json_t *a = json_array();
    json_array_append_new(a, deep);
    deep = a;
  }
  same("deep", deep);
}

/* The document of every fixture under fixtures/DIR with suffix SUFFIX. */
static int
test_fixture_documents(const char *dir_name, const char *suffix)
{
  const char *src = getenv("INBOXD_SOURCE_DIR");
  char *dir = g_build_filename(src ? src : ".", "fixtures", dir_name, NULL);
  GDir *d = g_dir_open(dir, 0, NULL);
  CHECK(d != NULL);
  const char *name;
  int n = 0;
  mime_limits limits;
  mime_limits_default(&limits);
  while (d && (name = g_dir_read_name(d)) != NULL) {
    if (!g_str_has_suffix(name, suffix))
      continue;
    char *path = g_build_filename(dir, name, NULL);
    char *raw = NULL;
    gsize len = 0;
    ib_message *m = NULL;
    if (g_file_get_contents(path, &raw, &len, NULL) &&
        parse_message(raw, len, NULL, &limits, &m) == IB_OK) {
      same(name, ib_message_to_json(m));
      n++;
    }
    ib_message_free(m);
    g_free(raw);
    g_free(path);
  }
  if (d)
    g_dir_close(d);
  g_free(dir);
  return n;
}

int
main(void)
{
  mime_init();
  test_scalars();
  test_strings();
  test_containers();
  CHECK(test_fixture_documents("mail", ".eml") >= 40);
  CHECK(test_fixture_documents("classify", ".eml") >= 40);
  return check_done();
}
