/* test_classify.c: classify_message() on messages built in memory (every signal, the
 * DSN/ARF fields, the MTA texts, the false positives), the dsn.h helpers, and then every
 * fixtures/classify/<case>.eml through parse_message(), reporting the accuracy. */
#include <glib.h>
#include <jansson.h>

#include "check.h"
#include "classify.h"
#include "dsn.h"
#include "parse.h"

/* ---------------------------------------------------------------------------------- */
/* Building messages.                                                                  */

static void
hdr(ib_message *m, const char *name, const char *value)
{
  ib_header *h = g_new0(ib_header, 1);
  h->name = g_strdup(name);
  h->value = g_strdup(value);
  g_ptr_array_add(m->headers, h);
}

/* A message from FROM (address) with SUBJECT and TEXT (each may be NULL). */
static ib_message *
mk(const char *from, const char *subject, const char *text)
{
  ib_message *m = ib_message_new();
  m->message_id = g_strdup("test@example.org");
  if (from) {
    m->from = ib_addr_new(NULL, from);
    hdr(m, "From", from);
  }
  if (subject) {
    m->subject = g_strdup(subject);
    hdr(m, "Subject", subject);
  }
  m->text = g_strdup(text);
  return m;
}

static void
attach(ib_message *m, const char *type, const char *data)
{
  ib_attachment *a = g_new0(ib_attachment, 1);
  a->content_type = g_strdup(type);
  a->data = g_bytes_new(data, strlen(data));
  a->size = strlen(data);
  g_ptr_array_add(m->attachments, a);
}

static ib_class
classify(ib_message *m)
{
  classify_message(m);
  return m->classification;
}

static const ib_bounce_rcpt *
rcpt(const ib_message *m, guint i)
{
  if (!m->bounce || i >= m->bounce->recipients->len)
    return NULL;
  return g_ptr_array_index(m->bounce->recipients, i);
}

#define RCPT_FIELD(m, i, field) (rcpt((m), (i)) ? rcpt((m), (i))->field : "<no recipient>")

/* ---------------------------------------------------------------------------------- */
/* dsn.h                                                                               */

static void
test_dsn_fields(void)
{
  GPtrArray *f = dsn_fields_parse("\n\nReporting-MTA: dns; mx.example.org\r\n"
                                  "Arrival-Date: Mon, 6 Jan 2025\r\n"
                                  "   \r\n"
                                  "Final-Recipient: rfc822; a@example.net\n"
                                  "Diagnostic-Code: smtp; 550 5.1.1 user\n"
                                  "\tunknown,\n   really\n"
                                  "garbage line without colon\n"
                                  " continuation of nothing\n"
                                  "Status : 5.1.1\n",
                                  0);
  CHECK_INT(f->len, 5);
  CHECK_STR(dsn_fields_get(f, 0, "reporting-mta"), "dns; mx.example.org");
  CHECK_STR(dsn_fields_get(f, 1, "Final-Recipient"), "rfc822; a@example.net");
  CHECK_STR(dsn_fields_get(f, 1, "Reporting-MTA"), NULL);
  CHECK_STR(dsn_fields_get(f, -1, "Diagnostic-Code"), "smtp; 550 5.1.1 user unknown, really");
  CHECK_STR(dsn_fields_get(f, 1, "Status"), "5.1.1");
  g_ptr_array_unref(f);

  f = dsn_fields_parse("From: a@example.org\nMessage-ID: <x@y>\n\nBody: not a header\n", 1);
  CHECK_INT(f->len, 2);
  CHECK_STR(dsn_fields_get(f, 0, "Message-Id"), "<x@y>");
  CHECK_STR(dsn_fields_get(f, -1, "Body"), NULL);
  g_ptr_array_unref(f);

  f = dsn_fields_parse(NULL, 0);
  CHECK_INT(f->len, 0);
  g_ptr_array_unref(f);
}

static void
test_dsn_values(void)
{
  char *s;
  CHECK_STR((s = dsn_strip_type("rfc822; a@example.net")), "a@example.net");
  g_free(s);
  CHECK_STR((s = dsn_strip_type("smtp;550  5.1.1\t user")), "550 5.1.1 user");
  g_free(s);
  CHECK_STR((s = dsn_strip_type("X-Postfix; connect to x[192.0.2.1]:25")),
            "connect to x[192.0.2.1]:25");
  g_free(s);
  CHECK_STR((s = dsn_strip_type("550 5.1.1 no type")), "550 5.1.1 no type");
  g_free(s);
  CHECK_STR(dsn_strip_type("smtp;   "), NULL);
  CHECK_STR(dsn_strip_type(NULL), NULL);

  CHECK_STR((s = dsn_address("RFC822; <Jane.Doe@Example.net>")), "Jane.Doe@Example.net");
  g_free(s);
  CHECK_STR((s = dsn_address("rfc822;a.b@example.net")), "a.b@example.net");
  g_free(s);
  CHECK_STR((s = dsn_address("a.b@example.net")), "a.b@example.net");
  g_free(s);
  CHECK_STR(dsn_address("rfc822; <>"), NULL);

  CHECK_STR((s = dsn_find_status("550 5.1.1 <a@b>: unknown")), "5.1.1");
  g_free(s);
  CHECK_STR((s = dsn_find_status("550-5.1.10 RESOLVER")), "5.1.10");
  g_free(s);
  CHECK_STR((s = dsn_find_status("status 4.4.7.")), "4.4.7");
  g_free(s);
  CHECK_STR((s = dsn_find_status("no mailbox (#5.1.1)")), "5.1.1");
  g_free(s);
  CHECK_STR(dsn_find_status("host 192.0.2.25 and 203.0.113.5 said nothing"), NULL);
  CHECK_STR(dsn_find_status("version 25.1.1 and 5.1.1000 and 3.1.1"), NULL);
  CHECK_STR(dsn_find_status("Exim 4.96"), NULL);
  CHECK_STR(dsn_find_status(NULL), NULL);

  CHECK_STR((s = dsn_status_from_smtp("host said: 550 unknown")), "5.0.0");
  g_free(s);
  CHECK_STR((s = dsn_status_from_smtp("451-greylisted")), "4.0.0");
  g_free(s);
  CHECK_STR(dsn_status_from_smtp("port 25 on 192.0.2.1, 4.4.1, x550, 5501"), NULL);

  CHECK_STR((s = dsn_msgid(" <abc.1@example.org> (comment)")), "abc.1@example.org");
  g_free(s);
  CHECK_STR((s = dsn_msgid("abc.2@example.org")), "abc.2@example.org");
  g_free(s);
  CHECK_STR(dsn_msgid("<>"), NULL);
  CHECK_STR(dsn_msgid(NULL), NULL);

  GPtrArray *l = dsn_address_list("\"Doe, Jane\" <jane@example.net>, bob@example.net (Bob),"
                                  " team: c@example.net, d@example.net;, nobody, <e@example.net>");
  CHECK_INT(l->len, 5);
  if (l->len == 5) {
    CHECK_STR(g_ptr_array_index(l, 0), "jane@example.net");
    CHECK_STR(g_ptr_array_index(l, 1), "bob@example.net");
    CHECK_STR(g_ptr_array_index(l, 2), "c@example.net");
    CHECK_STR(g_ptr_array_index(l, 3), "d@example.net");
    CHECK_STR(g_ptr_array_index(l, 4), "e@example.net");
  }
  g_ptr_array_unref(l);
}

static void
test_dsn_recipients(void)
{
  /* Two recipients with no blank line between them, Original- before Final-. */
  GPtrArray *r = dsn_recipients_parse("Reporting-MTA: dns; mx.example.org\n\n"
                                      "Original-Recipient: rfc822;alias@example.net\n"
                                      "Final-Recipient: rfc822; real@example.net\n"
                                      "Action: Failed (permanent)\n"
                                      "Status: 5.2.2 (mailbox full)\n"
                                      "Final-Recipient: rfc822; b@example.net\n"
                                      "Action: delayed\n"
                                      "Diagnostic-Code: smtp; 451 4.7.1 greylisted\n\n"
                                      "Original-Recipient: rfc822; only-original@example.net\n"
                                      "Action: failed\n"
                                      "Diagnostic-Code: smtp; 550 rejected\n");
  CHECK_INT(r->len, 3);
  if (r->len == 3) {
    ib_bounce_rcpt *a = g_ptr_array_index(r, 0), *b = g_ptr_array_index(r, 1),
                   *c = g_ptr_array_index(r, 2);
    CHECK_STR(a->address, "real@example.net");
    CHECK_STR(a->action, "failed");
    CHECK_STR(a->status, "5.2.2");
    CHECK_STR(a->diagnostic, NULL);
    CHECK_STR(b->address, "b@example.net");
    CHECK_STR(b->action, "delayed");
    CHECK_STR(b->status, "4.7.1");
    CHECK_STR(b->diagnostic, "451 4.7.1 greylisted");
    CHECK_STR(c->address, "only-original@example.net");
    CHECK_STR(c->status, "5.0.0");
  }
  g_ptr_array_unref(r);
  r = dsn_recipients_parse("Reporting-MTA: dns; x\n");
  CHECK_INT(r->len, 0);
  g_ptr_array_unref(r);
}

/* ---------------------------------------------------------------------------------- */
/* reply / new / auto-reply                                                            */

static void
test_reply_new(void)
{
  ib_message *m = mk("a@example.com", "Hello", "Hi");
  CHECK_INT(classify(m), IB_CLASS_NEW);
  m->in_reply_to = g_strdup("x@example.org");
  CHECK_INT(classify(m), IB_CLASS_REPLY);
  ib_message_free(m);
  m = mk("a@example.com", "Hello", "Hi");
  g_ptr_array_add(m->references, g_strdup("x@example.org"));
  CHECK_INT(classify(m), IB_CLASS_REPLY);
  CHECK(m->bounce == NULL && m->complaint == NULL);
  ib_message_free(m);
}

static void
check_header_auto(const char *name, const char *value, ib_class want, int line)
{
  ib_message *m = mk("person@example.com", "Hello", "Hi");
  m->in_reply_to = g_strdup("x@example.org");
  hdr(m, name, value);
  ib_class got = classify(m);
  check_count++;
  if (got != want) {
    check_failures++;
    fprintf(stderr, "%s:%d: %s: %s -> %s, want %s\n", __FILE__, line, name, value,
            ib_class_str(got), ib_class_str(want));
  }
  ib_message_free(m);
}
#define HDR_AUTO(n, v, w) check_header_auto((n), (v), (w), __LINE__)

static void
test_auto_headers(void)
{
  HDR_AUTO("Auto-Submitted", "auto-replied", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("Auto-Submitted", "auto-generated (failure)", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("Auto-Submitted", "auto-notified; owner-email=\"a@b\"", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("auto-submitted", "No", IB_CLASS_REPLY);
  HDR_AUTO("Auto-Submitted", "no (sent by a person)", IB_CLASS_REPLY);
  HDR_AUTO("X-Autoreply", "yes", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("X-Autoreply", "no", IB_CLASS_REPLY);
  HDR_AUTO("X-Autorespond", "Order 12", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("X-Auto-Response-Suppress", "All", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("X-Auto-Response-Suppress", "DR, OOF, AutoReply", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("X-Auto-Response-Suppress", "DR, RN, NRN", IB_CLASS_REPLY);
  HDR_AUTO("Precedence", "bulk", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("Precedence", "Junk", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("Precedence", "list", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("Precedence", "auto_reply", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("Precedence", "first-class", IB_CLASS_REPLY);
  HDR_AUTO("List-Id", "Weekly <weekly.example.net>", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("List-Unsubscribe", "<mailto:u@example.net>", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("X-Autogenerated", "Reply", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("X-Autogenerated", "Forward", IB_CLASS_REPLY);
  HDR_AUTO("X-MS-Exchange-Inbox-Rules-Loop", "a@example.com", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("Return-Path", "<>", IB_CLASS_AUTO_REPLY);
  HDR_AUTO("Return-Path", "<a@example.com>", IB_CLASS_REPLY);
  HDR_AUTO("X-Unrelated", "auto-replied", IB_CLASS_REPLY);
}

static void
test_envelope(void)
{
  ib_message *m = mk("shop@example.net", "Thanks for your order", "Order 5 received");
  CHECK_INT(classify(m), IB_CLASS_NEW); /* NULL envelope sender: unknown, no signal */
  m->envelope_from = g_strdup("shop@example.net");
  CHECK_INT(classify(m), IB_CLASS_NEW);
  g_free(m->envelope_from);
  m->envelope_from = g_strdup("");
  CHECK_INT(classify(m), IB_CLASS_AUTO_REPLY);
  ib_message_free(m);
}

static void
check_subject(const char *subject, ib_class want, int line)
{
  ib_message *m = mk("person@example.com", subject, "text");
  ib_class got = classify(m);
  check_count++;
  if (got != want) {
    check_failures++;
    fprintf(stderr, "%s:%d: subject \"%s\" -> %s, want %s\n", __FILE__, line, subject,
            ib_class_str(got), ib_class_str(want));
  }
  ib_message_free(m);
}
#define SUBJ(s, w) check_subject((s), (w), __LINE__)

static void
test_auto_subjects(void)
{
  const ib_class A = IB_CLASS_AUTO_REPLY, N = IB_CLASS_NEW;
  SUBJ("Out of Office", A);
  SUBJ("Out of Office: Re: Order 12", A);
  SUBJ("OUT OF OFFICE AutoReply: x", A);
  SUBJ("Out of office - back Monday", A);
  SUBJ("Automatic reply: Invoice", A);
  SUBJ("Auto-Reply: Invoice", A);
  SUBJ("Autoreply", A);
  SUBJ("AutoReply: x", A);
  SUBJ("Auto Response", A);
  SUBJ("AUTO: Jan is out of the office", A);
  SUBJ("Abwesenheitsnotiz: Ihre Anfrage", A);
  SUBJ("Automatische Antwort: Rechnung", A);
  SUBJ("Absence : retour lundi", A);
  SUBJ("Réponse automatique : Votre commande", A);
  SUBJ("RÉPONSE AUTOMATIQUE: Votre commande", A);
  SUBJ("Respuesta automática: Pedido", A);
  SUBJ("Fuera de la oficina", A);
  SUBJ("Resposta automática: Pedido", A);
  SUBJ("Risposta automatica: Ordine", A);
  SUBJ("Automatisch antwoord: Bestelling", A);
  SUBJ("Otomatik yanıt: Sipariş", A);
  SUBJ("OTOMATİK YANIT: Sipariş", A);
  SUBJ("Автоматический ответ: Заказ", A);
  SUBJ("АВТООТВЕТ: Заказ", A);
  SUBJ("自动回复: 订单", A);
  SUBJ("自動応答: ご注文", A);
  SUBJ("不在：ご注文について", A);
  SUBJ("Autosvar: Beställning", A);
  SUBJ("Automaattinen vastaus: Tilaus", A);
  SUBJ("Automatyczna odpowiedź: Zamówienie", A);
  SUBJ("[EXT] Automatic reply: Invoice", A);
  SUBJ("  Automatic reply: Invoice", A);
  /* People. */
  SUBJ("Out of office hours support?", N);
  SUBJ("Absence of invoice 12", N);
  SUBJ("Re: Automatic reply: Invoice", N);
  SUBJ("Fwd: Out of Office", N);
  SUBJ("Autoreplying is broken in your app", N);
  SUBJ("Automatic replies do not work", N);
  SUBJ("Question about automatic reply settings", N);
  SUBJ("Autonomous driving", N);
  SUBJ("Automobile parts order", N);
  SUBJ("不在籍の確認", N);
}

/* ---------------------------------------------------------------------------------- */
/* Bounces from delivery-status reports.                                               */

static ib_message *
mk_dsn(const char *fields, const char *orig_headers)
{
  ib_message *m = mk("MAILER-DAEMON@mx.example.org", "Undelivered Mail Returned to Sender",
                     "This is the mail system at host mx.example.org.\n");
  m->report.report_type = g_strdup("delivery-status");
  m->report.status_fields = g_strdup(fields);
  m->report.original_headers = g_strdup(orig_headers);
  return m;
}

static void
test_dsn_bounces(void)
{
  ib_message *m = mk_dsn("Reporting-MTA: dns; mx.example.org\n\n"
                         "Final-Recipient: rfc822; a@example.net\n"
                         "Action: failed\nStatus: 5.1.1\n"
                         "Diagnostic-Code: smtp; 550 5.1.1 <a@example.net>: User\n"
                         "    unknown\n",
                         "From: s@example.org\nMessage-ID: <orig.1@example.org>\n");
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && m->bounce->hard);
  CHECK_INT(m->bounce ? m->bounce->recipients->len : 0, 1);
  CHECK_STR(RCPT_FIELD(m, 0, address), "a@example.net");
  CHECK_STR(RCPT_FIELD(m, 0, action), "failed");
  CHECK_STR(RCPT_FIELD(m, 0, status), "5.1.1");
  CHECK_STR(RCPT_FIELD(m, 0, diagnostic), "550 5.1.1 <a@example.net>: User unknown");
  CHECK_STR(m->bounce ? m->bounce->original_message_id : "", "orig.1@example.org");
  /* Classifying again replaces, never leaks or duplicates. */
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK_INT(m->bounce ? m->bounce->recipients->len : 0, 1);
  ib_message_free(m);

  /* Delayed: soft. */
  m = mk_dsn("Final-Recipient: rfc822; d@example.net\nAction: delayed\nStatus: 4.4.1\n", NULL);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && !m->bounce->hard);
  CHECK_STR(RCPT_FIELD(m, 0, action), "delayed");
  ib_message_free(m);

  /* Failed with a 4.x.x status (retry timeout): soft. */
  m = mk_dsn("Final-Recipient: rfc822; t@example.net\nAction: failed\nStatus: 4.4.7\n", NULL);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && !m->bounce->hard);
  ib_message_free(m);

  /* Failed without Status: the 5xx diagnostic decides, as 5.0.0. */
  m = mk_dsn("Final-Recipient: rfc822; n@example.net\nAction: failed\n"
             "Diagnostic-Code: smtp; 550 mailbox unavailable\n",
             NULL);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && m->bounce->hard);
  CHECK_STR(RCPT_FIELD(m, 0, status), "5.0.0");
  ib_message_free(m);

  /* Failed without Status but a 4xx diagnostic: soft. */
  m = mk_dsn("Final-Recipient: rfc822; n@example.net\nAction: failed\n"
             "Diagnostic-Code: smtp; 452 too many recipients\n",
             NULL);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && !m->bounce->hard);
  CHECK_STR(RCPT_FIELD(m, 0, status), "4.0.0");
  ib_message_free(m);

  /* Failed with nothing else: the MTA gave up, hard. */
  m = mk_dsn("Final-Recipient: rfc822; g@example.net\nAction: failed\n", NULL);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && m->bounce->hard);
  ib_message_free(m);

  /* One hard and one soft recipient: hard; the delivered one is left out. */
  m = mk_dsn("Final-Recipient: rfc822; ok@example.net\nAction: delivered\nStatus: 2.0.0\n\n"
             "Final-Recipient: rfc822; slow@example.net\nAction: delayed\nStatus: 4.2.0\n\n"
             "Final-Recipient: rfc822; gone@example.net\nAction: failed\nStatus: 5.1.1\n",
             NULL);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && m->bounce->hard);
  CHECK_INT(m->bounce ? m->bounce->recipients->len : 0, 2);
  CHECK_STR(RCPT_FIELD(m, 0, address), "slow@example.net");
  CHECK_STR(RCPT_FIELD(m, 1, address), "gone@example.net");
  ib_message_free(m);

  /* Only delivered/relayed/expanded: a notification, auto_reply. */
  m = mk_dsn("Final-Recipient: rfc822; ok@example.net\nAction: relayed\nStatus: 2.0.0\n\n"
             "Final-Recipient: rfc822; list@example.net\nAction: expanded\nStatus: 2.0.0\n",
             NULL);
  CHECK_INT(classify(m), IB_CLASS_AUTO_REPLY);
  CHECK(m->bounce == NULL);
  ib_message_free(m);

  /* RFC 3464 fields under a missing report-type still count. */
  m = mk_dsn("Final-Recipient: rfc822; x@example.net\nAction: failed\nStatus: 5.1.2\n", NULL);
  g_free(m->report.report_type);
  m->report.report_type = NULL;
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK_STR(RCPT_FIELD(m, 0, status), "5.1.2");
  ib_message_free(m);

  /* A delivery-status report whose fields are missing: bounce from the text. */
  m = mk_dsn(NULL, NULL);
  g_free(m->text);
  m->text = g_strdup("This is the mail system at host mx.example.org.\n\n"
                     "I'm sorry to have to inform you that your message could not\n"
                     "be delivered to one or more recipients.\n\n"
                     "<lost@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1\n"
                     "    <lost@example.net>: Recipient address rejected: User unknown (in\n"
                     "    reply to RCPT TO command)\n");
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK_STR(RCPT_FIELD(m, 0, address), "lost@example.net");
  CHECK_STR(RCPT_FIELD(m, 0, status), "5.1.1");
  CHECK_STR(RCPT_FIELD(m, 0, diagnostic), "550 5.1.1 <lost@example.net>: Recipient address "
                                          "rejected: User unknown (in reply to RCPT TO command)");
  CHECK_INT(m->bounce ? m->bounce->recipients->len : 0, 1);
  ib_message_free(m);

  /* Original Message-ID from an attached message when there is no header part. */
  m = mk_dsn("Final-Recipient: rfc822; a@example.net\nAction: failed\nStatus: 5.1.1\n", NULL);
  attach(m, "message/rfc822",
         "From: s@example.org\r\nMessage-Id:\r\n <att.7@example.org>\r\n"
         "\r\nMessage-ID: <body@wrong>\r\n");
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK_STR(m->bounce ? m->bounce->original_message_id : "", "att.7@example.org");
  ib_message_free(m);
}

/* ---------------------------------------------------------------------------------- */
/* Bounces from MTA texts.                                                             */

typedef struct text_case {
  const char *name, *from, *subject, *text;
  const char *address, *status, *diagnostic, *original_id, *action;
  int hard;
  guint count;
} text_case;

static const text_case text_cases[] = {
    {"exim", "Mailer-Daemon@mx.example.org", "Mail delivery failed: returning message to sender",
     "This message was created automatically by mail delivery software.\n\n"
     "A message that you sent could not be delivered to one or more of its\n"
     "recipients. This is a permanent error. The following address(es) failed:\n\n"
     "  a@example.net\n"
     "    host mx.example.net [192.0.2.5]\n"
     "    SMTP error from remote mail server after RCPT TO:<a@example.net>:\n"
     "    550 5.1.1 <a@example.net>: User unknown\n\n"
     "------ This is a copy of the message, including all the headers. ------\n\n"
     "Return-path: <s@example.org>\nMessage-ID: <exim.1@example.org>\nSubject: x\n\nbody\n",
     "a@example.net", "5.1.1", "550 5.1.1 <a@example.net>: User unknown", "exim.1@example.org",
     "failed", 1, 1},
    {"exim headers-only copy", "Mailer-Daemon@mx.example.org", "Mail delivery failed",
     "This message was created automatically by mail delivery software.\n\n"
     "A message that you sent could not be delivered to one or more of its\n"
     "recipients. This is a permanent error. The following address(es) failed:\n\n"
     "  b@example.net\n    Unrouteable address\n\n"
     "------ This is a copy of the message's headers. ------\n\n"
     "Message-ID: <exim.2@example.org>\n",
     "b@example.net", "5.0.0", "Unrouteable address", "exim.2@example.org", "failed", 1, 1},
    {"exim delay", "Mailer-Daemon@mx.example.org", "Warning: message 1t-2 delayed 24 hours",
     "This message was created automatically by mail delivery software.\n"
     "A message that you sent has not yet been delivered to one or more of its\n"
     "recipients after more than 24 hours on the queue on mx.example.org.\n\n"
     "The address to which the message has not yet been delivered is:\n\n"
     "  c@example.net\n    host mx.example.net [192.0.2.25]: Connection timed out\n\n"
     "No action is required on your part. Delivery attempts will continue for\nsome time.\n",
     "c@example.net", "4.0.0", "host mx.example.net [192.0.2.25]: Connection timed out", NULL,
     "delayed", 0, 1},
    {"qmail", "MAILER-DAEMON@mail.example.com", "failure notice",
     "Hi. This is the qmail-send program at mail.example.com.\n"
     "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
     "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
     "<d@example.net>:\n192.0.2.7 does not like recipient.\n"
     "Remote host said: 550 sorry, no such user (#5.1.1)\nGiving up on 192.0.2.7.\n\n"
     "--- Below this line is a copy of the message.\n\n"
     "Return-Path: <s@example.org>\nMessage-Id: <qmail.1@example.org>\n\nhi\n",
     "d@example.net", "5.1.1", "550 sorry, no such user (#5.1.1)", "qmail.1@example.org", "failed",
     1, 1},
    {"yahoo", "MAILER-DAEMON@yahoo.com", "Failure Notice",
     "Sorry, we were unable to deliver your message to the following address.\n\n"
     "<e@example.net>:\n"
     "Remote host said: 552 5.2.2 <e@example.net>: Mailbox full [RCPT_TO]\n\n"
     "--- Below this line is a copy of the message.\n\nMessage-ID: <y.1@example.org>\n",
     "e@example.net", "5.2.2", "552 5.2.2 <e@example.net>: Mailbox full [RCPT_TO]",
     "y.1@example.org", "failed", 1, 1},
    {"yahoo soft", "MAILER-DAEMON@yahoo.com", "Failure Notice",
     "Sorry, we were unable to deliver your message to the following address.\n\n"
     "<f@example.net>:\n"
     "Remote host said: 421 4.7.0 [TSS04] Messages temporarily deferred [RCPT_TO]\n",
     "f@example.net", "4.7.0", "421 4.7.0 [TSS04] Messages temporarily deferred [RCPT_TO]", NULL,
     "failed", 0, 1},
    {"exchange", "postmaster@example.com", "Undeliverable: Invoice",
     "Delivery has failed to these recipients or groups:\n\n"
     "Gina Lopez (g@example.com) <mailto:g@example.com>\n"
     "The e-mail address you entered couldn't be found.\n\n"
     "Diagnostic information for administrators:\n\n"
     "Generating server: EX1.example.com\n\n"
     "g@example.com\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\n"
     "Original message headers:\n\nReceived: from x\n by y\nMessage-ID: <ex.1@example.org>\n"
     "Subject: Invoice\n",
     "g@example.com", "5.1.1", "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
     "ex.1@example.org", "failed", 1, 1},
    {"microsoft 365", "postmaster@example.onmicrosoft.com", "Undeliverable: Quote",
     "Your message to h@example.net couldn't be delivered.\n\n"
     "h wasn't found at example.net.\n\n"
     "Diagnostic information for administrators:\n\n"
     "Generating server: AM0PR01MB0001.eurprd01.prod.exchangelabs.com\n\n"
     "h@example.net\n"
     "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient "
     "h@example.net not found by SMTP address lookup'\n\n"
     "Original message headers:\n\nMessage-ID: <m365.1@example.org>\n",
     "h@example.net", "5.1.10",
     "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient h@example.net not found by SMTP "
     "address lookup",
     "m365.1@example.org", "failed", 1, 1},
    {"gmail", "mailer-daemon@googlemail.com", "Delivery Status Notification (Failure)",
     "\n** Address not found **\n\n"
     "Your message wasn't delivered to i@example.net because the address couldn't be found, "
     "or is unable to receive mail.\n\n"
     "The response from the remote server was:\n"
     "550 5.1.1 <i@example.net>: Recipient address rejected: User unknown\n",
     "i@example.net", "5.1.1",
     "550 5.1.1 <i@example.net>: Recipient address rejected: User unknown", NULL, "failed", 1, 1},
    {"gmail legacy", "mailer-daemon@googlemail.com", "Delivery Status Notification (Failure)",
     "Delivery to the following recipient failed permanently:\n\n     j@example.net\n\n"
     "Technical details of permanent failure:\n"
     "Google tried to deliver your message, but it was rejected by the server for the "
     "recipient domain example.net by mx.example.net. [192.0.2.8].\n\n"
     "The error that the other server returned was:\n550 5.2.1 The account is disabled\n\n"
     "----- Original message -----\n\nMessage-ID: <g.1@example.org>\nSubject: x\n",
     "j@example.net", "5.2.1", "550 5.2.1 The account is disabled", "g.1@example.org", "failed", 1,
     1},
    {"gmail delay", "mailer-daemon@googlemail.com", "Delivery Status Notification (Delay)",
     "** Delivery incomplete **\n\n"
     "There was a temporary problem delivering your message to k@example.net. Gmail will "
     "retry for 46 more hours.\n\n"
     "The response from the remote server was:\n"
     "451 4.3.0 <k@example.net>: Temporary lookup failure\n",
     "k@example.net", "4.3.0", "451 4.3.0 <k@example.net>: Temporary lookup failure", NULL,
     "delayed", 0, 1},
    {"sendmail", "MAILER-DAEMON@smtp.example.com", "Returned mail: see transcript for details",
     "The original message was received at Sun, 19 Jan 2025 14:52:01 +0100\n"
     "from mail.example.org [198.51.100.9]\n\n"
     "   ----- The following addresses had permanent fatal errors -----\n"
     "<l@example.com>\n    (reason: 550 5.1.1 <l@example.com>... User unknown)\n\n"
     "   ----- Transcript of session follows -----\n"
     "550 5.1.1 <l@example.com>... User unknown\n",
     "l@example.com", "5.1.1", "550 5.1.1 <l@example.com>... User unknown", NULL, "failed", 1, 1},
    {"postfix text, two recipients", "MAILER-DAEMON@mx.example.org",
     "Undelivered Mail Returned to Sender",
     "This is the mail system at host mx.example.org.\n\n"
     "I'm sorry to have to inform you that your message could not\n"
     "be delivered to one or more recipients. It's attached below.\n\n"
     "<m@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1\n"
     "    <m@example.net>: Recipient address rejected: User unknown (in reply to\n"
     "    RCPT TO command)\n\n"
     "<n@example.net>: host mx.example.net[192.0.2.1] said: 452 4.2.2 Mailbox full\n"
     "    (in reply to RCPT TO command)\n",
     "m@example.net", "5.1.1",
     "550 5.1.1 <m@example.net>: Recipient address rejected: User unknown (in reply to RCPT TO "
     "command)",
     NULL, "failed", 1, 2},
    {"unknown MTA, mailer-daemon and subject", "mailer-daemon@mx.example.net", "Undeliverable mail",
     "Your mail could not be delivered to o@example.net.\n\n"
     "The mailbox does not exist.\n",
     "o@example.net", "5.0.0", NULL, NULL, "failed", 1, 1},
};

static void
test_text_bounces(void)
{
  for (size_t i = 0; i < G_N_ELEMENTS(text_cases); i++) {
    const text_case *c = &text_cases[i];
    ib_message *m = mk(c->from, c->subject, c->text);
    ib_class got = classify(m);
    check_count++;
    if (got != IB_CLASS_BOUNCE || !m->bounce) {
      check_failures++;
      fprintf(stderr, "%s:%d: text bounce \"%s\" classified %s\n", __FILE__, __LINE__, c->name,
              ib_class_str(got));
      ib_message_free(m);
      continue;
    }
    fprintf(stderr, "  text bounce: %s\n", c->name);
    CHECK_INT(m->bounce->recipients->len, c->count);
    CHECK_STR(RCPT_FIELD(m, 0, address), c->address);
    CHECK_STR(RCPT_FIELD(m, 0, status), c->status);
    CHECK_STR(RCPT_FIELD(m, 0, diagnostic), c->diagnostic);
    CHECK_STR(RCPT_FIELD(m, 0, action), c->action);
    CHECK_STR(m->bounce->original_message_id, c->original_id);
    CHECK_INT(m->bounce->hard, c->hard);
    ib_message_free(m);
  }

  /* The second Postfix recipient: soft status, but the bounce is hard because of the
   * first. */
  ib_message *m = mk(text_cases[12].from, text_cases[12].subject, text_cases[12].text);
  classify(m);
  CHECK_STR(RCPT_FIELD(m, 1, address), "n@example.net");
  CHECK_STR(RCPT_FIELD(m, 1, status), "4.2.2");
  CHECK_STR(RCPT_FIELD(m, 1, diagnostic), "452 4.2.2 Mailbox full (in reply to RCPT TO command)");
  ib_message_free(m);

  /* HTML-only bounce text. */
  m = mk("MAILER-DAEMON@mx.example.org", "Undeliverable: x", NULL);
  m->html = g_strdup("<html><body><p><b>Delivery has failed to these recipients or groups:</b></p>"
                     "<p><a href=\"mailto:p@example.com\">Pia (p@example.com)</a></p>"
                     "<p>Diagnostic information for administrators:</p>"
                     "<p>p@example.com<br>#550 5.1.1 not found ##</p></body></html>");
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK_STR(RCPT_FIELD(m, 0, address), "p@example.com");
  CHECK_STR(RCPT_FIELD(m, 0, status), "5.1.1");
  CHECK_INT(m->bounce ? m->bounce->recipients->len : 0, 1);
  ib_message_free(m);

  /* X-Failed-Recipients alone, from no daemon. */
  m = mk("relay@example.net", "Notice", "Some recipients failed.\n");
  hdr(m, "X-Failed-Recipients", "q@example.net,\"R, S\" <r@example.net>");
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK_INT(m->bounce ? m->bounce->recipients->len : 0, 2);
  CHECK_STR(RCPT_FIELD(m, 1, address), "r@example.net");
  CHECK_STR(RCPT_FIELD(m, 1, status), "5.0.0");
  ib_message_free(m);

  /* A null envelope sender plus bounce wording. */
  m = mk("noreply@example.net", "Delivery failure", "Your message could not be delivered.\n");
  m->envelope_from = g_strdup("");
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK_INT(m->bounce ? m->bounce->recipients->len : 1, 0);
  CHECK(m->bounce && m->bounce->hard);
  ib_message_free(m);

  /* MTA text without a daemon sender still counts (known signature on line 1). */
  m = mk("bounces@example.net", "Returned", text_cases[3].text);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  ib_message_free(m);

  /* Microsoft's NDR marker header with a bounce subject, from an ordinary address. */
  m = mk("it-notify@example.com", "Undeliverable: Quote", "Your message couldn't be delivered.\n");
  hdr(m, "X-MS-Exchange-Message-Is-Ndr", "");
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  ib_message_free(m);

  /* Postmaster with a bounce subject: bounce. */
  m = mk("postmaster@example.net", "Undeliverable: Re: your order",
         "The recipient s@example.net does not exist.\n");
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  ib_message_free(m);
}

static void
test_not_bounces(void)
{
  /* A person who writes about undeliverable mail. */
  ib_message *m = mk("greg@example.com", "Undeliverable: my mails to you?",
                     "Hi,\nDelivery has failed to these recipients or groups: that is what\n"
                     "I get, with 550 5.1.1. This message was created automatically by mail\n"
                     "delivery software, they say.\n");
  CHECK_INT(classify(m), IB_CLASS_NEW);
  CHECK(m->bounce == NULL);
  ib_message_free(m);

  /* The same as a reply stays a reply. */
  m = mk("greg@example.com", "Re: Mail delivery failed", "Why did I get mail delivery failed?\n");
  m->in_reply_to = g_strdup("x@example.org");
  CHECK_INT(classify(m), IB_CLASS_REPLY);
  ib_message_free(m);

  /* A forwarded bounce whose MTA text opens the body. */
  m = mk("hannah@example.com", "Fwd: Undelivered Mail Returned to Sender",
         "This is the mail system at host mail.example.com.\n\n"
         "your message could not be delivered\n\n<o@example.org>: 550 5.1.1 unknown\n");
  CHECK_INT(classify(m), IB_CLASS_NEW);
  ib_message_free(m);

  /* A pasted bounce after a line of their own. */
  m = mk("hannah@example.com", "Problem",
         "I got this:\nHi. This is the qmail-send program at mail.example.com.\n");
  CHECK_INT(classify(m), IB_CLASS_NEW);
  ib_message_free(m);

  /* A quoted MTA text. */
  m = mk("hannah@example.com", "Problem",
         "> This message was created automatically by mail delivery software.\n");
  CHECK_INT(classify(m), IB_CLASS_NEW);
  ib_message_free(m);

  /* A postmaster who is a person, mentioning bounces. */
  m = mk("postmaster@example.net", "Your SPF record",
         "Some of your mails could be undeliverable; delivery failed twice.\n");
  CHECK_INT(classify(m), IB_CLASS_NEW);
  ib_message_free(m);

  /* MAILER-DAEMON without any failure: an automatic message, not a bounce. */
  m = mk("MAILER-DAEMON@mx.example.org", "Postfix SMTP server: errors from x",
         "Transcript of session follows.\n");
  CHECK_INT(classify(m), IB_CLASS_AUTO_REPLY);
  CHECK(m->bounce == NULL);
  ib_message_free(m);

  /* A success notice that is no report: an automatic message, not a bounce. */
  m = mk("MAILER-DAEMON@mx.example.org", "Delivery Status Notification (Success)",
         "Your message was delivered to the following recipients: a@example.net\n");
  CHECK_INT(classify(m), IB_CLASS_AUTO_REPLY);
  ib_message_free(m);

  /* Read receipts are auto-replies. */
  m = mk("nina@example.com", "Read: x", "was read");
  m->report.report_type = g_strdup("disposition-notification");
  m->report.status_fields = g_strdup("Final-Recipient: rfc822;nina@example.com\n"
                                     "Disposition: manual-action/MDN-sent-manually; displayed\n");
  CHECK_INT(classify(m), IB_CLASS_AUTO_REPLY);
  ib_message_free(m);
}

/* ---------------------------------------------------------------------------------- */
/* Complaints.                                                                         */

static void
test_complaints(void)
{
  ib_message *m = mk("feedback@arf.example.net", "Abuse report", "This is an abuse report");
  m->report.report_type = g_strdup("feedback-report");
  m->report.status_fields = g_strdup("Feedback-Type: Fraud\nUser-Agent: x/1.0\nVersion: 1\n"
                                     "Original-Rcpt-To: <u1@example.net>\n"
                                     "Original-Rcpt-To: U1@example.net\n"
                                     "Original-Rcpt-To: u2@example.net\n");
  m->report.original_headers = g_strdup("To: someone@example.net\nMessage-ID: <n.1@example.org>\n");
  CHECK_INT(classify(m), IB_CLASS_COMPLAINT);
  CHECK(m->complaint != NULL);
  if (m->complaint) {
    CHECK_STR(m->complaint->feedback_type, "fraud");
    CHECK_INT(m->complaint->recipients->len, 2);
    CHECK_STR(g_ptr_array_index(m->complaint->recipients, 0), "u1@example.net");
    CHECK_STR(g_ptr_array_index(m->complaint->recipients, 1), "u2@example.net");
    CHECK_STR(m->complaint->original_message_id, "n.1@example.org");
  }
  CHECK(m->bounce == NULL);
  ib_message_free(m);

  /* No Original-Rcpt-To: the To of the original headers; from an attachment when the
   * report has no header part. The complaint wins over bounce signals. */
  m = mk("MAILER-DAEMON@example.net", "Undeliverable: complaint", "report");
  m->report.report_type = g_strdup("feedback-report");
  m->report.status_fields = g_strdup("Feedback-Type: abuse\n");
  attach(m, "message/rfc822",
         "From: n@example.org\nTo: \"A, B\" <ab@example.net>, c@example.net\n"
         "Message-ID: <n.2@example.org>\n\nbody\n");
  CHECK_INT(classify(m), IB_CLASS_COMPLAINT);
  if (m->complaint) {
    CHECK_INT(m->complaint->recipients->len, 2);
    CHECK_STR(m->complaint->original_message_id, "n.2@example.org");
  }
  ib_message_free(m);

  /* Feedback fields under a wrong report type still make a complaint; without any
   * original message the fields are NULL/empty. */
  m = mk("fbl@example.net", "Report", "x");
  m->report.report_type = g_strdup("unknown");
  m->report.status_fields = g_strdup("Feedback-Type: abuse\nUser-Agent: y\n");
  CHECK_INT(classify(m), IB_CLASS_COMPLAINT);
  if (m->complaint) {
    CHECK_INT(m->complaint->recipients->len, 0);
    CHECK_STR(m->complaint->original_message_id, NULL);
  }
  ib_message_free(m);

  /* Legacy JMRP. */
  m = mk("staff@hotmail.com", "complaint about message from 198.51.100.9", "report");
  attach(m, "message/rfc822",
         "X-HmXmrOriginalRecipient: <lee@hotmail.com>\n"
         "To: lee@hotmail.com\nMessage-ID: <n.3@example.org>\n\nbody\n");
  CHECK_INT(classify(m), IB_CLASS_COMPLAINT);
  if (m->complaint) {
    CHECK_STR(m->complaint->feedback_type, "abuse");
    CHECK_INT(m->complaint->recipients->len, 1);
    CHECK_STR(m->complaint->original_message_id, "n.3@example.org");
  }
  ib_message_free(m);

  /* A forwarded message/rfc822 from a person is no complaint. */
  m = mk("pat@example.com", "Fwd: spam I got", "see attached");
  attach(m, "message/rfc822", "To: pat@example.com\nMessage-ID: <n.4@example.org>\n\nbuy\n");
  CHECK_INT(classify(m), IB_CLASS_NEW);
  CHECK(m->complaint == NULL);
  ib_message_free(m);
}

/* ---------------------------------------------------------------------------------- */
/* Hostile input: bounded time and output.                                             */

static void
test_hostile(void)
{
  /* 40 000 distinct address lines after an MTA opening, plus as many X-Failed. */
  GString *text = g_string_new("Hi. This is the qmail-send program at x.example.net.\n\n");
  GString *failed = g_string_new(NULL);
  for (int i = 0; i < 40000; i++) {
    g_string_append_printf(text, "<user%d@example.net>:\nRemote host said: 550 5.1.1 no\n", i);
    if (i < 5000)
      g_string_append_printf(failed, "%sx%d@example.net", i ? ", " : "", i);
  }
  gint64 t0 = g_get_monotonic_time();
  ib_message *m = mk("MAILER-DAEMON@example.net", "failure notice", text->str);
  hdr(m, "X-Failed-Recipients", failed->str);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && m->bounce->recipients->len <= 200);
  ib_message_free(m);

  /* One enormous line, an enormous subject, and a report with thousands of groups. */
  g_string_truncate(text, 0);
  for (int i = 0; i < 300000; i++)
    g_string_append(text, "5.1.");
  m = mk("MAILER-DAEMON@example.net", text->str, text->str);
  classify(m);
  ib_message_free(m);
  g_string_truncate(text, 0);
  for (int i = 0; i < 5000; i++)
    g_string_append_printf(text,
                           "Final-Recipient: rfc822; r%d@example.net\nAction: failed\n"
                           "Status: 5.1.1\n\n",
                           i);
  m = mk_dsn(text->str, NULL);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  CHECK(m->bounce && m->bounce->recipients->len <= 200);
  ib_message_free(m);

  /* Marker lines without blank lines between them (overlapping blocks). */
  g_string_assign(text, "This message was created automatically by mail delivery software.\n");
  for (int i = 0; i < 20000; i++)
    g_string_append(text, i % 2 ? "The response was:\n"
                                : "--- Below this line is a copy of the message.\n");
  m = mk("MAILER-DAEMON@example.net", "failure notice", text->str);
  CHECK_INT(classify(m), IB_CLASS_BOUNCE);
  ib_message_free(m);
  gint64 ms = (g_get_monotonic_time() - t0) / 1000;
  fprintf(stderr, "hostile inputs classified in %lld ms\n", (long long)ms);
  g_string_free(text, TRUE);
  g_string_free(failed, TRUE);
}

/* ---------------------------------------------------------------------------------- */
/* Fixtures through the whole parse pipeline.                                           */

static char *
slurp(const char *path, gsize *len_out)
{
  char *data = NULL;
  if (!g_file_get_contents(path, &data, len_out, NULL))
    return NULL;
  return data;
}

static void
test_fixtures(void)
{
  const char *src = g_getenv("INBOXD_SOURCE_DIR");
  char *dir_path = g_build_filename(src ? src : ".", "fixtures", "classify", NULL);
  GDir *dir = g_dir_open(dir_path, 0, NULL);
  CHECK(dir != NULL);
  if (!dir) {
    g_free(dir_path);
    return;
  }
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  for (const char *n; (n = g_dir_read_name(dir));)
    if (g_str_has_suffix(n, ".eml"))
      g_ptr_array_add(names, g_strndup(n, strlen(n) - 4));
  g_dir_close(dir);
  g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);

  int total = 0, right = 0, details_wrong = 0;
  for (guint i = 0; i < names->len; i++) {
    const char *name = *(const char **)&g_ptr_array_index(names, i);
    char *eml = g_strdup_printf("%s/%s.eml", dir_path, name);
    char *want_path = g_strdup_printf("%s/%s.json", dir_path, name);
    gsize len = 0;
    char *raw = slurp(eml, &len);
    json_t *want = json_load_file(want_path, 0, NULL);
    if (!raw || !want) {
      check_count++;
      check_failures++;
      fprintf(stderr, "fixture %s: cannot read .eml or .json\n", name);
      goto next;
    }
    total++;
    ib_message *msg = NULL;
    ib_status st = parse_message(raw, len, NULL, NULL, &msg);
    CHECK_INT(st, IB_OK);
    if (st != IB_OK)
      goto next;
    json_t *got = ib_message_to_json(msg);
    const char *want_class = json_string_value(json_object_get(want, "classification"));
    const char *got_class = ib_class_str(msg->classification);
    if (want_class && strcmp(want_class, got_class) == 0) {
      right++;
    } else {
      fprintf(stderr, "fixture %s: classification %s, want %s\n", name, got_class,
              want_class ? want_class : "?");
    }
    static const char *const keys[] = {"bounce", "complaint"};
    for (size_t k = 0; k < G_N_ELEMENTS(keys); k++) {
      json_t *w = json_object_get(want, keys[k]);
      if (w && !json_equal(w, json_object_get(got, keys[k]))) {
        details_wrong++;
        char *g = json_dumps(json_object_get(got, keys[k]), JSON_COMPACT);
        char *e = json_dumps(w, JSON_COMPACT);
        fprintf(stderr, "fixture %s: %s\n  got:  %s\n  want: %s\n", name, keys[k], g, e);
        free(g);
        free(e);
      }
    }
    json_decref(got);
    ib_message_free(msg);
  next:
    g_free(raw);
    json_decref(want);
    g_free(eml);
    g_free(want_path);
  }
  fprintf(stderr, "classify accuracy: %d/%d\n", right, total);
  fprintf(stderr, "bounce/complaint details wrong: %d\n", details_wrong);
  CHECK(total >= 30);
  CHECK_INT(right, total);
  CHECK_INT(details_wrong, 0);
  g_ptr_array_unref(names);
  g_free(dir_path);
}

int
main(void)
{
  mime_init();
  test_dsn_fields();
  test_dsn_values();
  test_dsn_recipients();
  test_reply_new();
  test_auto_headers();
  test_envelope();
  test_auto_subjects();
  test_dsn_bounces();
  test_text_bounces();
  test_not_bounces();
  test_complaints();
  test_hostile();
  test_fixtures();
  mime_shutdown();
  return check_done();
}
