/* test_subject.c: subject_normalize(), subject_key(), subject_ticket_tag(),
 * subject_has_reply_prefix() on many mixed, multilingual and hostile subjects. */
#include <glib.h>

#include "check.h"
#include "subject.h"

static void
check_norm(const char *in, const char *want, int line)
{
  char *got = subject_normalize(in);
  check_count++;
  if (strcmp(got, want) != 0) {
    check_failures++;
    fprintf(stderr, "%s:%d: subject_normalize(\"%s\")\n  got:  \"%s\"\n  want: \"%s\"\n", __FILE__,
            line, in ? in : "(null)", got, want);
  }
  g_free(got);
}
#define NORM(in, want) check_norm((in), (want), __LINE__)

static void
test_prefixes(void)
{
  NORM("Re: Printer broken", "Printer broken");
  NORM("RE: Printer broken", "Printer broken");
  NORM("re: Printer broken", "Printer broken");
  NORM("Re:Printer broken", "Printer broken");
  NORM("Re[2]: Printer broken", "Printer broken");
  NORM("Re(3): Printer broken", "Printer broken");
  NORM("Fwd: Printer broken", "Printer broken");
  NORM("Fw: Printer broken", "Printer broken");
  NORM("FW: Printer broken", "Printer broken");
  NORM("FWD: Printer broken", "Printer broken");
  NORM("AW: Drucker defekt", "Drucker defekt");
  NORM("WG: Drucker defekt", "Drucker defekt");
  NORM("SV: Skrivaren", "Skrivaren");
  NORM("VS: Skrivaren", "Skrivaren");
  NORM("VB: Skrivaren", "Skrivaren");
  NORM("Ynt: Yazıcı bozuk", "Yazıcı bozuk");
  NORM("YNT: Yazıcı bozuk", "Yazıcı bozuk");
  NORM("İlt: Yazıcı bozuk", "Yazıcı bozuk");
  NORM("İLT: Yazıcı bozuk", "Yazıcı bozuk");
  NORM("ILT: Yazıcı bozuk", "Yazıcı bozuk");
  NORM("RV: Impresora rota", "Impresora rota");
  NORM("Réf. : Imprimante", "Imprimante");
  NORM("Réf.: Imprimante", "Imprimante");
  NORM("Réf. Imprimante", "Imprimante");
  NORM("Ref: Imprimante", "Imprimante");
  NORM("RE : Imprimante", "Imprimante");
  NORM("TR : Imprimante", "Imprimante");
  NORM("TR: Imprimante", "Imprimante");
  NORM("RE\xc2\xa0: Imprimante", "Imprimante");
  NORM("回复: 打印机坏了", "打印机坏了");
  NORM("回复：打印机坏了", "打印机坏了");
  NORM("回覆：印表機壞了", "印表機壞了");
  NORM("答复：打印机坏了", "打印机坏了");
  NORM("转发：打印机坏了", "打印机坏了");
  NORM("轉寄：印表機壞了", "印表機壞了");
  NORM("Antw: Printer kapot", "Printer kapot");
  NORM("Doorst: Printer kapot", "Printer kapot");
  NORM("Odp: Drukarka", "Drukarka");
  NORM("PD: Drukarka", "Drukarka");
  NORM("RES: Impressora", "Impressora");
  NORM("ENC: Impressora", "Impressora");
  NORM("ΑΠ: Εκτυπωτής", "Εκτυπωτής");
  /* Full-width letters and colon, as some CJK mailers write them. */
  NORM("ＲＥ：打印机", "打印机");
}

static void
test_repeated_and_mixed(void)
{
  NORM("Re: Re: Re: Printer broken", "Printer broken");
  NORM("RE: AW: Fwd: WG: Printer broken", "Printer broken");
  NORM("Re: [EXT] RE: Fw: Printer broken", "Printer broken");
  NORM("[External] Re: Printer broken", "Printer broken");
  NORM("[EXT] [SPAM] Re: Printer broken", "Printer broken");
  NORM("[support-list] Re: [support-list] Printer broken", "Printer broken");
  NORM("【通知】回复：打印机", "打印机");
  NORM("Re:Re:Fwd:Printer", "Printer");
  NORM("  Re:   Fwd:    Printer    broken  ", "Printer broken");
  NORM("Re: TR: SV: Ynt: 回复：Odp: RV: Printer", "Printer");
  NORM("Fwd: Printer broken (fwd)", "Printer broken");
}

static void
test_not_prefixes(void)
{
  /* Words that only look like prefixes, or prefixes not at the start, stay. */
  NORM("Regarding: the invoice", "Regarding: the invoice");
  NORM("Re the invoice", "Re the invoice");
  NORM("Invoice Re: March", "Invoice Re: March");
  NORM("Question about Fwd: headers", "Question about Fwd: headers");
  NORM("Trouble: printer", "Trouble: printer");
  NORM("Reply needed", "Reply needed");
  NORM("Svar: Skrivaren", "Svar: Skrivaren");
  NORM("回复打印机", "回复打印机");
  NORM("Price [list] inside", "Price [list] inside");
  NORM("[unterminated Re: x", "[unterminated Re: x");
  NORM("Re: [#12 Printer", "[#12 Printer");
}

static void
test_ticket_tag_dropped(void)
{
  NORM("Re: Printer broken [#42]", "Printer broken");
  NORM("[#42] Re: Printer broken", "Printer broken");
  NORM("Re: [#42] Re: Printer broken", "Printer broken");
  NORM("Printer [#42] broken", "Printer broken");
  NORM("Re: [#] Printer", "Printer"); /* not a ticket tag: a plain bracket tag */
  NORM("Re: [#4a2] Printer", "Printer");
}

static void
test_whitespace_and_unicode(void)
{
  NORM(NULL, "");
  NORM("", "");
  NORM("   ", "");
  NORM("Re:", "");
  NORM("Re: [EXT]", "");
  NORM("Printer\tbroken\r\n again", "Printer broken again");
  NORM("Printer\xc2\xa0\xc2\xa0"
       "broken",
       "Printer broken");
  NORM("Printer\xe3\x80\x80"
       "broken",
       "Printer broken");
  /* Decomposed é (e + U+0301) comes out composed (NFC). */
  NORM("Re: Cafe\xcc\x81", "Caf\xc3\xa9");
  /* Invalid UTF-8 is repaired, never passed on. */
  char *got = subject_normalize("Re: caf\xe9 ok");
  CHECK(g_utf8_validate(got, -1, NULL));
  CHECK(g_str_has_prefix(got, "caf"));
  CHECK(g_str_has_suffix(got, " ok"));
  g_free(got);
  /* Case is kept by normalize, folded by key. */
  NORM("RE: PRINTER Broken", "PRINTER Broken");
  char *k1 = subject_key("RE: PRINTER Broken [#7]");
  char *k2 = subject_key("printer broken");
  CHECK_STR(k1, k2);
  g_free(k1);
  g_free(k2);
  char *k3 = subject_key(NULL);
  CHECK_STR(k3, "");
  g_free(k3);
}

static void
test_ticket_tag(void)
{
  long long t = -1;
  CHECK_INT(subject_ticket_tag("Re: Printer broken [#42]", &t), 1);
  CHECK_INT(t, 42);
  t = -1;
  CHECK_INT(subject_ticket_tag("[#7] first [#9] second", &t), 1);
  CHECK_INT(t, 7);
  t = -1;
  CHECK_INT(subject_ticket_tag("[#0] zero then [#0012]", &t), 1);
  CHECK_INT(t, 12);
  t = -1;
  CHECK_INT(subject_ticket_tag("Re: Printer broken", &t), 0);
  CHECK_INT(t, -1);
  CHECK_INT(subject_ticket_tag("[#] [# 5] [#5 ] [#x5] #5", &t), 0);
  CHECK_INT(subject_ticket_tag(NULL, &t), 0);
  CHECK_INT(subject_ticket_tag("[#999999999999999999]", &t), 1);
  CHECK_INT(t, 999999999999999999LL);
  t = -1;
  CHECK_INT(subject_ticket_tag("[#9999999999999999999]", &t), 0); /* 19 digits */
  CHECK_INT(subject_ticket_tag("[#[#3]", &t), 1);
  CHECK_INT(t, 3);
  CHECK_INT(subject_ticket_tag("no tag [#12", NULL), 0);
  CHECK_INT(subject_ticket_tag("tag [#12]", NULL), 1);
}

static void
test_has_reply_prefix(void)
{
  CHECK_INT(subject_has_reply_prefix("Re: x"), 1);
  CHECK_INT(subject_has_reply_prefix("[EXT] FW: x"), 1);
  CHECK_INT(subject_has_reply_prefix("回复：x"), 1);
  CHECK_INT(subject_has_reply_prefix("[EXT] x"), 0);
  CHECK_INT(subject_has_reply_prefix("Undeliverable: Re: x"), 0);
  CHECK_INT(subject_has_reply_prefix("x"), 0);
  CHECK_INT(subject_has_reply_prefix(NULL), 0);
}

/* Subjects of 64 KiB made of tags, ticket-tag starts and prefixes stay fast. */
static void
test_hostile(void)
{
  static const char *const units[] = {"[a]", "[#", "[", "Re:", "回复：", "\xc2\xa0"};
  gint64 t0 = g_get_monotonic_time();
  for (size_t u = 0; u < G_N_ELEMENTS(units); u++) {
    GString *s = g_string_new(NULL);
    while (s->len < 64 * 1024)
      g_string_append(s, units[u]);
    g_string_append(s, " tail");
    char *n = subject_normalize(s->str);
    CHECK(g_utf8_validate(n, -1, NULL));
    g_free(n);
    long long t;
    subject_ticket_tag(s->str, &t);
    subject_has_reply_prefix(s->str);
    g_string_free(s, TRUE);
  }
  gint64 ms = (g_get_monotonic_time() - t0) / 1000;
  fprintf(stderr, "hostile subjects in %lld ms\n", (long long)ms);
  CHECK(ms < 3000);
}

int
main(void)
{
  test_prefixes();
  test_repeated_and_mixed();
  test_not_prefixes();
  test_ticket_tag_dropped();
  test_whitespace_and_unicode();
  test_ticket_tag();
  test_has_reply_prefix();
  test_hostile();
  return check_done();
}
