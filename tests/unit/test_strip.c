/* test_strip.c: reply stripping against the corpus in fixtures/replies/ (see its
 * README.md), plus targeted checks of the line classifiers and the edge cases. */
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "message.h"
#include "quote.h"
#include "strip.h"

/* The exact-match rate reached on our own corpus; the test fails below it. Raise it,
 * never lower it: a case that regresses is a bug, not a new normal. */
#define STRIP_MIN_MATCH_PERCENT 100.0

static char *
corpus_dir(void)
{
  const char *src = g_getenv("INBOXD_SOURCE_DIR");
  return g_build_filename(src ? src : ".", "fixtures", "replies", NULL);
}

static char *
read_file(const char *dir, const char *name)
{
  char *path = g_build_filename(dir, name, NULL);
  char *data = NULL;
  if (!g_file_get_contents(path, &data, NULL, NULL))
    fprintf(stderr, "cannot read %s\n", path);
  g_free(path);
  return data;
}

/* Print a line diff of WANT and GOT (longest common subsequence; bodies are small). */
static void
print_diff(const char *want, const char *got)
{
  char **a = g_strsplit(want, "\n", -1), **b = g_strsplit(got, "\n", -1);
  gsize n = g_strv_length(a), m = g_strv_length(b);
  guint *lcs = g_new0(guint, (n + 1) * (m + 1));
#define LCS(i, j) lcs[(i) * (m + 1) + (j)]
  for (gsize i = n; i-- > 0;)
    for (gsize j = m; j-- > 0;)
      LCS(i, j) =
          strcmp(a[i], b[j]) == 0 ? LCS(i + 1, j + 1) + 1 : MAX(LCS(i + 1, j), LCS(i, j + 1));
  gsize i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && strcmp(a[i], b[j]) == 0) {
      fprintf(stderr, "    |%s\n", a[i]);
      i++, j++;
    } else if (j < m && (i == n || LCS(i, j + 1) >= LCS(i + 1, j))) {
      fprintf(stderr, "  + |%s\n", b[j++]);
    } else {
      fprintf(stderr, "  - |%s\n", a[i++]);
    }
  }
#undef LCS
  g_free(lcs);
  g_strfreev(a);
  g_strfreev(b);
}

/* A .txt case: strip_text() must give the .expected file exactly (its final newline
 * is the file's, not the text's). */
static gboolean
run_text_case(const char *dir, const char *name)
{
  char *base = g_strndup(name, strlen(name) - strlen(".txt"));
  char *expected_name = g_strconcat(base, ".expected", NULL);
  char *body = read_file(dir, name), *want = read_file(dir, expected_name);
  gboolean ok = FALSE;

  if (body && want) {
    gsize len = strlen(want);
    if (len > 0 && want[len - 1] == '\n')
      want[len - 1] = '\0';
    char *got = strip_text(body);
    ok = strcmp(got, want) == 0;
    if (!ok) {
      fprintf(stderr, "MISMATCH %s (- want, + got):\n", name);
      print_diff(want, got);
    }
    g_free(got);
  }
  g_free(base);
  g_free(expected_name);
  g_free(body);
  g_free(want);
  return ok;
}

/* A .html case: .expect.json says whether strip_html() strips anything ("stripped"),
 * which strings must remain in its output ("keep") and which must be gone ("drop"). */
static gboolean
run_html_case(const char *dir, const char *name)
{
  char *base = g_strndup(name, strlen(name) - strlen(".html"));
  char *expect_name = g_strconcat(base, ".expect.json", NULL);
  char *expect_path = g_build_filename(dir, expect_name, NULL);
  char *body = read_file(dir, name);
  json_error_t err;
  json_t *expect = json_load_file(expect_path, 0, &err);
  gboolean ok = FALSE;
  char *got = NULL;

  if (!body || !expect) {
    fprintf(stderr, "cannot load %s: %s\n", expect_path, expect ? "" : err.text);
    goto done;
  }
  got = strip_html(body);
  gboolean want_stripped = json_is_true(json_object_get(expect, "stripped"));
  ok = (got != NULL) == want_stripped;
  if (!ok)
    fprintf(stderr, "MISMATCH %s: stripped %s, want %s\n", name, got ? "yes" : "no",
            want_stripped ? "yes" : "no");
  const char *out = got ? got : body;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(expect, "keep"), i, v)
  {
    if (!strstr(out, json_string_value(v))) {
      fprintf(stderr, "MISMATCH %s: lost \"%s\"\n", name, json_string_value(v));
      ok = FALSE;
    }
  }
  json_array_foreach(json_object_get(expect, "drop"), i, v)
  {
    if (strstr(out, json_string_value(v))) {
      fprintf(stderr, "MISMATCH %s: kept \"%s\"\n", name, json_string_value(v));
      ok = FALSE;
    }
  }
  if (!ok)
    fprintf(stderr, "  output: %s\n", got ? got : "NULL");

done:
  json_decref(expect);
  g_free(got);
  g_free(body);
  g_free(base);
  g_free(expect_name);
  g_free(expect_path);
  return ok;
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_corpus(void)
{
  char *dir = corpus_dir();
  GDir *d = g_dir_open(dir, 0, NULL);
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  int total = 0, exact = 0, text_cases = 0, html_cases = 0;

  CHECK(d != NULL);
  for (const char *name; d && (name = g_dir_read_name(d));)
    if (g_str_has_suffix(name, ".txt") || g_str_has_suffix(name, ".html"))
      g_ptr_array_add(names, g_strdup(name));
  if (d)
    g_dir_close(d);
  g_ptr_array_sort(names, compare_names);

  for (guint i = 0; i < names->len; i++) {
    const char *name = names->pdata[i];
    gboolean html = g_str_has_suffix(name, ".html");
    total++;
    html ? html_cases++ : text_cases++;
    if (html ? run_html_case(dir, name) : run_text_case(dir, name))
      exact++;
  }
  double rate = total ? 100.0 * exact / total : 0.0;
  fprintf(stderr, "strip exact-match: %d/%d = %.1f%% (%d text, %d html cases)\n", exact, total,
          rate, text_cases, html_cases);
  CHECK(total >= 60);
  CHECK(rate >= STRIP_MIN_MATCH_PERCENT);

  g_ptr_array_free(names, TRUE);
  g_free(dir);
}

static void
report_entry(const char *entry)
{
  fprintf(stderr, "table entry not in quote_norm() form: \"%s\"\n", entry);
}

static gboolean
attribution(const char *line, gboolean loose)
{
  char *norm = quote_norm(line, -1);
  gboolean hit = quote_is_attribution(norm, loose);
  g_free(norm);
  return hit;
}

static gboolean
footer(const char *line)
{
  char *norm = quote_norm(line, -1);
  gboolean hit = quote_is_mobile_footer(norm);
  g_free(norm);
  return hit;
}

static void
test_classifiers(void)
{
  CHECK_INT(quote_tables_check(report_entry), 0);

  char *n = quote_norm("  Le 7 janv.\u00a02025, Jane a\tÉCRIT\u202f:  ", -1);
  CHECK_STR(n, "le 7 janv. 2025, jane a écrit:");
  g_free(n);
  n = quote_norm("差出人\uff1a Grüße", -1);
  CHECK_STR(n, "差出人: grüsse");
  g_free(n);
  n = quote_norm("\xff\xfeOn", 4);
  CHECK(g_utf8_validate(n, -1, NULL));
  g_free(n);

  /* Attributions: anchored, with the evidence a client writes. */
  CHECK(attribution("On Tue, Jan 7, 2025 at 10:00 AM Jane Doe <jane@example.org> wrote:", 0));
  CHECK(attribution("On 1/7/25 10:00 AM, Jane Doe wrote:", 0));
  CHECK(attribution("Am 07.01.2025 um 10:00 schrieb Jane Doe <jane@example.org>:", 0));
  CHECK(attribution("El mar, 7 ene 2025 a las 10:00, Jane (<jane@example.org>) escribió:", 0));
  CHECK(attribution("Op di 7 jan 2025 om 10:00 schreef Jane <jane@example.org>:", 0));
  CHECK(attribution("07.01.2025 10:00, Иван пишет:", 0));
  CHECK(attribution("在 2025年1月7日，10:00，Jane <jane@example.org> 写道：", 0));
  /* ... and not a customer's sentence. */
  CHECK(!attribution("On Monday I wrote:", 0));
  CHECK(!attribution("On Monday I wrote:", 1));
  CHECK(!attribution("On 3 January 2025 I wrote:", 0));
  CHECK(attribution("On 3 January 2025, Jane wrote:", 1));
  CHECK(!attribution("I wrote to you on 7 Jan 2025 at 10:00:", 0));
  CHECK(!attribution("On 7 Jan 2025 at 10:00 Jane wrote: please call me", 0));
  CHECK(!attribution("As I wrote on 2025-01-07: the invoice is wrong", 1));
  CHECK(!attribution("Here is what support@example.org sent me:", 1));
  CHECK(!attribution("> On Tue, Jan 7, 2025 at 10:00 AM Jane <jane@example.org> wrote:", 0));
  /* Loose shapes only count when the caller knows quoted lines follow. */
  CHECK(!attribution("Jane Doe <jane@example.org> wrote:", 0));
  CHECK(attribution("Jane Doe <jane@example.org> wrote:", 1));
  CHECK(attribution("вт, 7 янв. 2025 г. в 10:00, Jane <jane@example.org>:", 1));
  CHECK(!attribution("вт, 7 янв. 2025 г. в 10:00, Jane <jane@example.org>:", 0));

  char *sep = quote_norm("-----Original Message-----", -1);
  CHECK(quote_is_separator(sep));
  CHECK(!quote_is_forward_marker(sep));
  g_free(sep);
  sep = quote_norm("The original message is below.", -1);
  CHECK(!quote_is_separator(sep));
  g_free(sep);
  sep = quote_norm("---------- Forwarded message ---------", -1);
  CHECK(quote_is_forward_marker(sep));
  g_free(sep);
  sep = quote_norm("________________________________", -1);
  CHECK(quote_is_rule(sep));
  g_free(sep);

  const char *value = NULL;
  char *field = quote_norm("*Betreff:* AW: Rechnung", -1);
  CHECK_INT(quote_header_field(field, &value), QUOTE_FIELD_SUBJECT);
  CHECK_STR(value, "aw: rechnung");
  g_free(field);
  field = quote_norm("Note: call me back", -1);
  CHECK_INT(quote_header_field(field, NULL), QUOTE_FIELD_NONE);
  g_free(field);

  CHECK(footer("Sent from my iPhone"));
  CHECK(footer("Get Outlook for Android<https://aka.ms/AAb9ysg>"));
  CHECK(footer("Von meinem iPhone gesendet"));
  CHECK(footer("iPhone’umdan gönderildi"));
  CHECK(footer("Отправлено с iPhone"));
  CHECK(footer("从我的iPhone发送"));
  CHECK(!footer("Ich habe Ihnen die Rechnung per Mail gesendet."));
  CHECK(!footer("Sent from my account page, but the payment never went through."));
  CHECK(!footer("Sent from our warehouse on Monday"));

  char *v = quote_norm("Mit freundlichen Grüßen,", -1);
  CHECK(quote_is_valediction(v));
  g_free(v);
  v = quote_norm("Thanks for the quick fix!", -1);
  CHECK(!quote_is_valediction(v));
  g_free(v);

  CHECK(quote_is_contact("phone: +1 (555) 010-0199"));
  CHECK(quote_is_contact("jane@example.org"));
  CHECK(!quote_is_contact("jane doe"));
  CHECK(!quote_is_contact("order 4821"));
  CHECK(!quote_is_contact("order #48219930"));
  CHECK(!quote_is_contact("invoice 2025-0042-17"));
  CHECK(quote_is_contact("tel.: 030 1234567"));
  CHECK(quote_is_contact("+49 30 1234567"));
}

static void
check_text(const char *in, const char *want)
{
  char *got = strip_text(in);
  CHECK_STR(got, want);
  g_free(got);
}

static void
test_text_edges(void)
{
  check_text(NULL, "");
  check_text("", "");
  check_text(" \r\n\t\n", "");
  check_text("a\rb\r\rc", "a\nb\n\nc");
  check_text("\xef\xbb\xbfHello\n> old", "Hello");
  /* Two wrapped-attribution traps: a sentence above the attribution stays. */
  check_text("Fixed, thanks.\nOn Tue, Jan 7, 2025 at 10:00 AM Jane <jane@example.org> wrote:\n"
             "> old",
             "Fixed, thanks.");
  check_text("Jane <jane@example.org>, 7 Oca 2025 Sal, 10:00 tarihinde şunu yazdı:\n> eski\n"
             "Tamam.",
             "Tamam.");
  /* The two halves of a wrapped attribution, then unquoted history. */
  check_text("Ok.\n\nOn Tue, Jan 7, 2025 at 10:00 AM Jane <\njane@example.org> wrote:\n\nold text",
             "Ok.");
  /* Only a signature: the original comes back rather than nothing. */
  check_text("-- \nJane", "--\nJane");
  /* Invalid UTF-8 is repaired, never passed on. */
  char *got = strip_text("caf\xe9 ok\n> old");
  CHECK(g_utf8_validate(got, -1, NULL));
  CHECK(g_str_has_prefix(got, "caf"));
  g_free(got);
}

static void
test_html_edges(void)
{
  CHECK(strip_html(NULL) == NULL);
  CHECK(strip_html("") == NULL);
  CHECK(strip_html("<<<>>>&&&") == NULL);
  CHECK(strip_html("plain words, no markup") == NULL);

  /* A stale charset declaration must not garble UTF-8 nor survive. */
  char *got = strip_html("<html><head><meta charset=\"windows-1252\"></head><body>"
                         "<p>Grüße</p><blockquote type=\"cite\">alt</blockquote></body></html>");
  CHECK(got && strstr(got, "<p>Grüße</p>"));
  CHECK(got && !strstr(got, "windows-1252"));
  CHECK(got && !strstr(got, "alt"));
  g_free(got);

  /* Word's <o:p> marks keep their name (libxml2 drops the prefix). */
  got = strip_html("<p class=MsoNormal>Hi<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
                   "<blockquote type=cite>old</blockquote>");
  CHECK(got && strstr(got, "Hi<o:p></o:p></p>"));
  CHECK(got && !strstr(got, "<p></p>"));
  g_free(got);

  /* Deep nesting must neither overflow the stack nor fail. */
  GString *deep = g_string_new("<html><body><p>Top</p>");
  for (int i = 0; i < 5000; i++)
    g_string_append(deep, "<div>");
  g_string_append(deep, "<blockquote type=\"cite\">old</blockquote>");
  got = strip_html(deep->str);
  CHECK(got == NULL || !strstr(got, ">old<"));
  g_free(got);
  g_string_free(deep, TRUE);
}

static void
test_message(void)
{
  ib_message *m = ib_message_new();
  m->text = g_strdup("New text.\n\nOn Tue, Jan 7, 2025 at 10:00 AM Jane <jane@example.org> "
                     "wrote:\n> old text\n");
  m->html = g_strdup("<div>New text.</div><div class=\"gmail_quote\">On ... wrote:"
                     "<blockquote class=\"gmail_quote\">old text</blockquote></div>");
  strip_message(m);
  CHECK_STR(m->stripped_text, "New text.");
  CHECK(m->stripped_html && strstr(m->stripped_html, "New text."));
  CHECK(m->stripped_html && !strstr(m->stripped_html, "old text"));
  ib_message_free(m);

  /* Nothing to strip in the HTML: stripped_html is the HTML itself. */
  m = ib_message_new();
  m->html = g_strdup("<p>Hello</p>");
  strip_message(m);
  CHECK_STR(m->stripped_html, "<p>Hello</p>");
  CHECK(m->stripped_text != NULL);
  ib_message_free(m);

  m = ib_message_new();
  strip_message(m);
  CHECK(m->stripped_text == NULL && m->stripped_html == NULL);
  ib_message_free(m);
}

static void
test_large_body(void)
{
  /* 20 000 lines of interleaved quotes and answers: linear, and every answer kept. */
  GString *body = g_string_new(NULL);
  for (int i = 0; i < 10000; i++)
    g_string_append_printf(body, "> question %d\nanswer %d\n", i, i);
  gint64 start = g_get_monotonic_time();
  char *got = strip_text(body->str);
  double ms = (double)(g_get_monotonic_time() - start) / 1000.0;
  fprintf(stderr, "strip_text: %zu bytes in %.1f ms\n", body->len, ms);
  CHECK(g_str_has_prefix(got, "answer 0\n\nanswer 1\n"));
  CHECK(g_str_has_suffix(got, "\n\nanswer 9999"));
  CHECK(strstr(got, "question") == NULL);
  g_free(got);
  g_string_free(body, TRUE);

  /* A 20 000-paragraph HTML body over a quote: linear as well. */
  GString *html = g_string_new("<html><body>");
  for (int i = 0; i < 20000; i++)
    g_string_append_printf(html, "<div><p>Paragraph %d of the answer.</p></div>", i);
  g_string_append(html, "<div class=\"gmail_quote\">On Tue, Jan 7, 2025 at 10:00 AM Jane "
                        "&lt;jane@example.org&gt; wrote:<blockquote>old</blockquote></div>");
  start = g_get_monotonic_time();
  got = strip_html(html->str);
  ms = (double)(g_get_monotonic_time() - start) / 1000.0;
  fprintf(stderr, "strip_html: %zu bytes in %.1f ms\n", html->len, ms);
  CHECK(got && strstr(got, "Paragraph 19999 of the answer."));
  CHECK(got && !strstr(got, ">old<"));
  g_free(got);
  g_string_free(html, TRUE);
}

/* quote_norm()'s shortcuts give what the long way gives: every character of the Basic
 * Multilingual Plane (and a few beyond) in a few positions of a line, and every line of
 * the corpus. */
static int
norm_agrees(const char *line)
{
  char *fast = quote_norm(line, -1), *slow = quote_norm_unicode(line, -1);
  int same = strcmp(fast, slow) == 0;
  check_count++;
  if (!same) {
    check_failures++;
    fprintf(stderr, "quote_norm(\"%s\") = \"%s\", the long way \"%s\"\n", line, fast, slow);
  }
  g_free(fast);
  g_free(slow);
  return same;
}

static void
test_norm_shortcuts(void)
{
  /* The character twice, between these: {before, between, after}. */
  static const char *const shapes[][3] = {{"", "", ""},        {"Ab ", " cD ", ""},
                                          {" x\t", "", "\f:"}, {"", " ", " :"},
                                          {"É", "ß", ""},      {"ЖЖ", "\v", "\u00a0"}};
  static const gunichar astral[] = {0x1F600, 0x10400, 0x1D400, 0x20000};
  int failed = 0;
  for (gunichar c = 1; c < 0x10000 + G_N_ELEMENTS(astral) && failed < 10; c++) {
    gunichar u = c < 0x10000 ? c : astral[c - 0x10000];
    if (u >= 0xD800 && u <= 0xDFFF)
      continue;
    char ch[8] = {0};
    g_unichar_to_utf8(u, ch);
    for (gsize i = 0; i < G_N_ELEMENTS(shapes); i++) {
      char *line = g_strconcat(shapes[i][0], ch, shapes[i][1], ch, shapes[i][2], NULL);
      failed += !norm_agrees(line);
      g_free(line);
    }
  }
  char *dir = corpus_dir();
  GDir *d = g_dir_open(dir, 0, NULL);
  const char *name;
  int lines = 0;
  while (d && (name = g_dir_read_name(d)) != NULL) {
    char *text = read_file(dir, name);
    char **v = text ? g_strsplit_set(text, "\r\n", -1) : NULL;
    for (gsize i = 0; v && v[i]; i++, lines++)
      norm_agrees(v[i]);
    g_strfreev(v);
    g_free(text);
  }
  if (d)
    g_dir_close(d);
  g_free(dir);
  CHECK(lines > 1000);
}

int
main(void)
{
  test_corpus();
  test_classifiers();
  test_norm_shortcuts();
  test_text_edges();
  test_html_edges();
  test_message();
  test_large_body();
  return check_done();
}
