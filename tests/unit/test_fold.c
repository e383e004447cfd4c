/* test_fold.c: fold_ascii_lower() against g_ascii_strdown() on every byte value, and
 * fold_text() on ASCII, on the letters it maps and on text that is not valid UTF-8. */
#include <glib.h>

#include "check.h"
#include "fold.h"

static void
test_ascii_lower_every_byte(void)
{
  /* Every byte but NUL, at every offset of a run longer than a vector register, so the
   * vectorized loop and its scalar tail both see each value. */
  char in[300];
  for (int start = 0; start < 40; start++) {
    for (size_t i = 0; i < sizeof in; i++)
      in[i] = (char)(1 + (start + i) % 255);
    char *got = fold_ascii_lower(in, sizeof in);
    char *want = g_ascii_strdown(in, sizeof in);
    CHECK(memcmp(got, want, sizeof in) == 0);
    CHECK(got[sizeof in] == '\0');
    g_free(got);
    g_free(want);
  }
  char *empty = fold_ascii_lower("", 0);
  CHECK_STR(empty, "");
  g_free(empty);
  /* Only LEN bytes are read. */
  char *part = fold_ascii_lower("ABCdefGHI", 4);
  CHECK_STR(part, "abcd");
  g_free(part);
}

static void
test_fold_text(void)
{
  struct {
    const char *in, *want;
  } cases[] = {
      {"Printer BROKEN since Monday, ticket #42!", "printer broken since monday, ticket #42!"},
      {"", ""},
      {"Şikayet", "şikayet"},
      {"STRAẞE und Straße", "strasse und strasse"},
      {"IŞIK ılık", "işik ilik"},
      {"Øl, Æble, Łódź", "ol, aeble, lódź"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    char *got = fold_text(cases[i].in);
    CHECK_STR(got, cases[i].want);
    g_free(got);
  }
  char *null_text = fold_text(NULL);
  CHECK_STR(null_text, "");
  g_free(null_text);
  /* Not UTF-8: repaired, never cut short or passed through raw. */
  char *bad = fold_text("Caf\xe9 OK");
  CHECK(g_utf8_validate(bad, -1, NULL));
  CHECK(g_str_has_prefix(bad, "caf") && g_str_has_suffix(bad, " ok"));
  g_free(bad);
}

int
main(void)
{
  test_ascii_lower_every_byte();
  test_fold_text();
  return check_done();
}
