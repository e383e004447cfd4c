/* classify.c: complaint, bounce, auto-reply, reply or new — checked in that order.
 *
 * Bounces need a machine signal: a delivery-status report, X-Failed-Recipients, a known
 * MTA text opening the body (not under a forward prefix from a person), a MAILER-DAEMON
 * or null sender (or Microsoft's NDR header) together with a bounce subject or failure
 * wording, or a postmaster sender with a bounce subject. A person who writes
 * "undeliverable" (or forwards a bounce) has none of these, so stays new/reply. From the signal on,
 * the recipients, status codes and the returned message's Message-ID are read from the report
 * fields, or else from the texts of Exim, qmail, Yahoo, Exchange/Microsoft 365, Gmail, Postfix and
 * Sendmail. */
#include "classify.h"

#include <string.h>

#include "dsn.h"
#include "fold.h"
#include "html2text.h"
#include "subject.h"

/* Body bytes the text heuristics look at; bounce texts say what matters up front. */
#define BODY_SCAN_BYTES (512 * 1024)
/* Header bytes read from an attached message (its header block only). */
#define ATTACHED_HEADER_BYTES (64 * 1024)
/* Recipients kept per bounce: real bounces list a few; a hostile text must not make the
 * (linear) duplicate check quadratic. */
#define MAX_BOUNCE_RCPTS 200
/* Markers tried per text, and lines read after one: a header block or a server answer
 * is short, and hostile texts must not make overlapping blocks quadratic. */
#define MAX_MARKERS 8
#define MAX_BLOCK_LINES 400
/* A body signature counts on its own only as the first non-blank line of the body: MTAs
 * open with it, while people who paste or quote one write something before it. */
#define SIGNATURE_LINES 1

/* ------------------------------------------------------------------------------------ */
/* Small text helpers (ASCII case-insensitive, UTF-8 safe: needles are ASCII).           */

static const char *
skip_ws(const char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

static int
starts_ci(const char *s, const char *prefix)
{
  return g_ascii_strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Trimmed, white-space-collapsed, valid UTF-8 copy; NULL when empty. */
static char *
clean_dup(const char *s, gssize len)
{
  if (!s)
    return NULL;
  char *valid = g_utf8_make_valid(s, len);
  GString *out = g_string_new(NULL);
  int pending = 0;
  for (const char *p = valid; *p; p++) {
    if (g_ascii_isspace(*p)) {
      pending = out->len > 0;
      continue;
    }
    if (pending)
      g_string_append_c(out, ' ');
    pending = 0;
    g_string_append_c(out, *p);
  }
  g_free(valid);
  if (!out->len) {
    g_string_free(out, TRUE);
    return NULL;
  }
  return g_string_free(out, FALSE);
}

/* First token of a header value, lower case ("auto-replied; x=y" gives "auto-replied"). */
static char *
header_token(const ib_message *msg, const char *name)
{
  const char *v = ib_message_header(msg, name);
  if (!v)
    return NULL;
  v = skip_ws(v);
  size_t n = strcspn(v, " \t;,(");
  return n ? g_ascii_strdown(v, n) : NULL;
}

/* ------------------------------------------------------------------------------------ */
/* The body as lines.                                                                    */

typedef struct body {
  char *text;   /* at most BODY_SCAN_BYTES of msg->text (or text of msg->html) */
  char *lower;  /* TEXT with ASCII letters lower-cased, for phrase search */
  char *split;  /* TEXT with each line end replaced by NUL; LINES point into it */
  char **lines; /* the lines, CR removed, NULL-terminated */
  guint n;
} body;

static void
body_load(const ib_message *msg, body *b)
{
  memset(b, 0, sizeof *b);
  if (msg->text)
    b->text = g_strndup(msg->text, strnlen(msg->text, BODY_SCAN_BYTES));
  else if (msg->html)
    b->text = html2text(msg->html, strnlen(msg->html, (size_t)BODY_SCAN_BYTES * 4));
  else
    b->text = g_strdup("");
  /* One copy cut into lines in place, and one array of pointers: no allocation per line.
   * (g_strsplit would also call strstr once per line, which sanitizer builds make
   * quadratic: their strstr measures the whole rest of the text each time.) */
  b->lower = fold_ascii_lower(b->text, strlen(b->text));
  b->split = g_strdup(b->text);
  guint count = 1;
  for (const char *p = b->split; *p; p++)
    count += *p == '\n';
  b->lines = g_new(char *, count + 1);
  char *p = b->split;
  for (;;) {
    char *eol = strchr(p, '\n');
    if (eol)
      *eol = '\0';
    size_t len = strlen(p);
    if (len && p[len - 1] == '\r')
      p[len - 1] = '\0';
    b->lines[b->n++] = p;
    if (!eol)
      break;
    p = eol + 1;
  }
  b->lines[b->n] = NULL;
}

static void
body_clear(body *b)
{
  g_free(b->text);
  g_free(b->lower);
  g_free(b->split);
  g_free(b->lines);
  memset(b, 0, sizeof *b);
}

/* 1 when PHRASE occurs in the body, ASCII case-insensitively (as strcasestr in the C
 * locale), lower-casing the body once rather than once per phrase. */
static int
body_has(const body *b, const char *phrase)
{
  char buf[256];
  size_t n = strlen(phrase);
  if (n >= sizeof buf)
    return strcasestr(b->text, phrase) != NULL;
  for (size_t i = 0; i <= n; i++)
    buf[i] = g_ascii_tolower(phrase[i]);
  return strstr(b->lower, buf) != NULL;
}

static int
is_blank(const char *line)
{
  return *skip_ws(line) == '\0';
}

/* 1 when trimmed line T starts with one of PHRASES. */
static int
starts_any(const char *t, const char *const *phrases)
{
  for (const char *const *p = phrases; *p; p++)
    if (starts_ci(t, *p))
      return 1;
  return 0;
}

/* Index of the first unquoted line from FROM on that starts with one of PHRASES (after
 * blanks), or -1. */
static int
find_line(const body *b, guint from, const char *const *phrases)
{
  for (guint i = from; i < b->n; i++) {
    const char *t = skip_ws(b->lines[i]);
    if (*t != '>' && starts_any(t, phrases))
      return (int)i;
  }
  return -1;
}

static int
body_contains(const body *b, const char *const *phrases)
{
  for (const char *const *p = phrases; *p; p++)
    if (body_has(b, *p))
      return 1;
  return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Signals.                                                                              */

/* Local parts that only machines send from. Postmaster (WITH_POSTMASTER) is often a
 * person: as a bounce signal it needs a bounce subject, and it never makes an
 * auto-reply. */
static int
sender_is_mailer(const ib_message *msg, int with_postmaster)
{
  static const char *const locals[] = {"mailer-daemon", "mailer_daemon", "mailerdaemon",
                                       /* Exchange's fixed system mailbox for NDRs. */
                                       "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e", NULL};
  const char *addr = msg->from ? msg->from->address : NULL;
  if (addr) {
    const char *at = strchr(addr, '@');
    size_t n = at ? (size_t)(at - addr) : strlen(addr);
    for (const char *const *l = locals; *l; l++)
      if (n == strlen(*l) && g_ascii_strncasecmp(addr, *l, n) == 0)
        return 1;
    if (with_postmaster && n == strlen("postmaster") &&
        g_ascii_strncasecmp(addr, "postmaster", n) == 0)
      return 1;
  }
  const char *raw = ib_message_header(msg, "From");
  return raw && strcasestr(raw, "mailer-daemon") != NULL;
}

/* The null reverse-path: the adapter's envelope sender "", or the Return-Path "<>"
 * that the delivering MTA wrote. NULL means unknown and is no signal. */
static int
null_sender(const ib_message *msg)
{
  if (msg->envelope_from && *msg->envelope_from == '\0')
    return 1;
  const char *rp = ib_message_header(msg, "Return-Path");
  if (!rp)
    return 0;
  char *compact = clean_dup(rp, -1);
  int empty = compact && (strcmp(compact, "<>") == 0 || strcmp(compact, "< >") == 0);
  g_free(compact);
  return empty;
}

static const char *const bounce_subjects[] = {"Undelivered Mail Returned to Sender",
                                              "Undelivered Mail",
                                              "Undeliverable",
                                              "Mail delivery failed",
                                              "Mail Delivery Failure",
                                              "Delivery Status Notification",
                                              "Delivery Failure",
                                              "Delivery failed",
                                              "Delivery Notification: Delivery has failed",
                                              "Message delivery failure",
                                              "Failure notice",
                                              "Returned mail",
                                              "Mail System Error",
                                              "Nondeliverable",
                                              "Non-delivery",
                                              "Message not delivered",
                                              "Returned to sender",
                                              "Delayed Mail",
                                              "Delivery delayed",
                                              "Mail delivery delayed",
                                              "Warning: could not send message",
                                              "Unzustellbar",
                                              "Nicht zustellbar",
                                              "Non remis",
                                              "Non distribuable",
                                              "Non recapitabile",
                                              "No se puede entregar",
                                              "Onbestelbaar",
                                              "Não é possível entregar",
                                              "Teslim edilemedi",
                                              "Не доставлено",
                                              "Недоставленное сообщение",
                                              "无法投递",
                                              "無法傳遞",
                                              "配信不能",
                                              NULL};

static const char *const delay_subjects[] = {"Delivery Status Notification (Delay)",
                                             "Delayed Mail",
                                             "Delivery delayed",
                                             "Mail delivery delayed",
                                             "Warning: could not send message",
                                             "Warning: message",
                                             NULL};

/* Success notices share the bounce subjects' first words. */
static const char *const success_subject_words[] = {
    "(Success)", "(Relay)", "Delivered:", "Relayed:", "Successful", NULL};

static int
subject_says_success(const ib_message *msg)
{
  for (const char *const *w = success_subject_words; msg->subject && *w; w++)
    if (strcasestr(msg->subject, *w))
      return 1;
  return 0;
}

static int
subject_matches(const ib_message *msg, const char *const *list)
{
  if (!msg->subject)
    return 0;
  const char *s = skip_ws(msg->subject);
  for (const char *const *p = list; *p; p++)
    if (starts_ci(s, *p))
      return 1;
  return 0;
}

/* The opening lines of MTA bounce texts. SECOND, when set, must also appear somewhere
 * in the body: the opening alone is too common a phrase. */
typedef struct signature {
  const char *opening, *second;
} signature;

static const signature signatures[] = {
    {"This message was created automatically by mail delivery software", NULL}, /* Exim */
    {"Hi. This is the qmail-send program", NULL},
    {"Sorry, we were unable to deliver your message to the following address", NULL}, /* Yahoo */
    {"Delivery has failed to these recipients or groups", NULL},                      /* Exchange */
    {"Your message to", "Diagnostic information for administrators"}, /* Microsoft 365 */
    {"This is the mail system at host", "could not be delivered"},    /* Postfix */
    {"The original message was received at", "----- The following addresses had"}, /* Sendmail */
    {"** Address not found **", "wasn't delivered to"},                            /* Gmail */
    {"Address not found", "wasn't delivered to"},
    {"Your message wasn't delivered to", "The response from the remote server was"},
    {"Delivery to the following recipient failed permanently", NULL}, /* older Gmail */
    {"Delivery to the following recipients failed permanently", NULL},
    {"Delivery to the following recipient has been delayed", NULL},
    {"** Delivery incomplete **", "temporary problem delivering your message"},
    {"Delivery incomplete", "temporary problem delivering your message"},
};

/* 1 when one of the signatures opens the body (within its first SIGNATURE_LINES
 * non-blank, unquoted lines). */
static int
body_has_signature(const body *b)
{
  guint seen = 0;
  for (guint i = 0; i < b->n && seen < SIGNATURE_LINES; i++) {
    const char *t = skip_ws(b->lines[i]);
    if (!*t)
      continue;
    seen++;
    if (*t == '>')
      return 0;
    for (size_t s = 0; s < G_N_ELEMENTS(signatures); s++)
      if (starts_ci(t, signatures[s].opening) &&
          (!signatures[s].second || body_has(b, signatures[s].second)))
        return 1;
  }
  return 0;
}

static const char *const failure_words[] = {"could not be delivered",
                                            "couldn't be delivered",
                                            "wasn't delivered",
                                            "was not delivered",
                                            "undeliverable",
                                            "delivery failed",
                                            "delivery has failed",
                                            "permanent error",
                                            "permanent fatal error",
                                            "failed permanently",
                                            "user unknown",
                                            "mailbox unavailable",
                                            "delivery to the following",
                                            "not yet been delivered",
                                            "delivery attempts will continue",
                                            NULL};

static const char *const delay_words[] = {"THIS IS A WARNING ONLY",
                                          "WARNING MESSAGE ONLY",
                                          "has not yet been delivered",
                                          "Delivery attempts will continue",
                                          "has been delayed",
                                          "transient non-fatal errors",
                                          "temporary problem delivering",
                                          "will continue to be retried",
                                          "will retry until",
                                          NULL};

/* ------------------------------------------------------------------------------------ */
/* The returned message's headers.                                                       */

static GPtrArray *
attachment_headers(const ib_attachment *att)
{
  if (!att->data)
    return NULL;
  gsize size = 0;
  const char *data = g_bytes_get_data(att->data, &size);
  char *copy = g_strndup(data, MIN(size, (gsize)ATTACHED_HEADER_BYTES));
  char *valid = g_utf8_make_valid(copy, -1);
  GPtrArray *fields = dsn_fields_parse(valid, 1);
  g_free(copy);
  g_free(valid);
  return fields;
}

static int
is_returned_message_type(const char *type)
{
  static const char *const types[] = {"message/rfc822", "message/global", "text/rfc822-headers",
                                      "message/global-headers", NULL};
  for (const char *const *t = types; type && *t; t++)
    if (g_ascii_strcasecmp(type, *t) == 0)
      return 1;
  return 0;
}

static char *
msgid_of_block(const char *block)
{
  GPtrArray *fields = dsn_fields_parse(block, 1);
  char *id = dsn_msgid(dsn_fields_get(fields, 0, "Message-ID"));
  g_ptr_array_unref(fields);
  return id;
}

/* Lines that start the copy of the returned message in bounce texts. */
static const char *const copy_markers[] = {
    "------ This is a copy of the message",         /* Exim (whole message or headers) */
    "--- Below this line is a copy of the message", /* qmail, Yahoo */
    "Original message headers:",                    /* Exchange, Microsoft 365 */
    "----- Original message -----",
    "------ Original message ------",
    "----- Unsent message follows -----", /* Sendmail */
    "----- Original message follows -----",
    "----- Message header follows -----",
    "----- Transcript of session follows -----", /* Sendmail: ends the recipient list */
    NULL};

/* Message-ID of the header block that follows a copy marker in the body, or NULL. */
static char *
msgid_after_marker(const body *b)
{
  int tries = 0;
  for (int at = find_line(b, 0, copy_markers); at >= 0 && tries++ < MAX_MARKERS;
       at = find_line(b, (guint)at + 1, copy_markers)) {
    guint i = (guint)at + 1;
    while (i < b->n && is_blank(b->lines[i]))
      i++;
    GString *block = g_string_new(NULL);
    for (guint end = MIN(b->n, i + MAX_BLOCK_LINES); i < end && !is_blank(b->lines[i]); i++) {
      g_string_append(block, b->lines[i]);
      g_string_append_c(block, '\n');
    }
    char *id = msgid_of_block(block->str);
    g_string_free(block, TRUE);
    if (id)
      return id;
  }
  return NULL;
}

/* Message-ID of the message a report or bounce returns: from the report's header part,
 * an attached message or header part, a header block after a copy marker in the text,
 * or, last, any unquoted "Message-ID:" line of the text. */
static char *
original_msgid(const ib_message *msg, const body *b)
{
  char *id = msg->report.original_headers ? msgid_of_block(msg->report.original_headers) : NULL;
  for (guint i = 0; !id && i < msg->attachments->len; i++) {
    const ib_attachment *att = g_ptr_array_index(msg->attachments, i);
    if (!is_returned_message_type(att->content_type))
      continue;
    GPtrArray *fields = attachment_headers(att);
    if (fields) {
      id = dsn_msgid(dsn_fields_get(fields, 0, "Message-ID"));
      g_ptr_array_unref(fields);
    }
  }
  if (!id && b)
    id = msgid_after_marker(b);
  if (!id && b) {
    static const char *const mid[] = {"Message-ID:", NULL};
    int at = find_line(b, 1, mid);
    if (at >= 0)
      id = dsn_msgid(strchr(b->lines[at], ':') + 1);
  }
  if (id && !g_utf8_validate(id, -1, NULL)) {
    char *valid = g_utf8_make_valid(id, -1);
    g_free(id);
    id = valid;
  }
  return id;
}

/* ------------------------------------------------------------------------------------ */
/* Complaints.                                                                           */

static void
add_unique(GPtrArray *list, char *addr)
{
  if (!addr)
    return;
  if (list->len >= MAX_BOUNCE_RCPTS) {
    g_free(addr);
    return;
  }
  for (guint i = 0; i < list->len; i++)
    if (g_ascii_strcasecmp(g_ptr_array_index(list, i), addr) == 0) {
      g_free(addr);
      return;
    }
  g_ptr_array_add(list, addr);
}

/* RFC 5965 ARF: multipart/report; report-type=feedback-report (or its fields without
 * the right report-type, as some reporters send them). */
static ib_complaint *
complaint_from_arf(const ib_message *msg)
{
  const ib_report *r = &msg->report;
  int arf = r->report_type && g_ascii_strcasecmp(r->report_type, "feedback-report") == 0;
  GPtrArray *fields = dsn_fields_parse(r->status_fields, 0);
  if (!arf && !dsn_fields_get(fields, -1, "Feedback-Type")) {
    g_ptr_array_unref(fields);
    return NULL;
  }
  ib_complaint *c = g_new0(ib_complaint, 1);
  c->recipients = g_ptr_array_new_with_free_func(g_free);
  const char *type = dsn_fields_get(fields, -1, "Feedback-Type");
  if (type) {
    char *t = clean_dup(type, -1);
    if (t) {
      t[strcspn(t, " \t;(")] = '\0';
      c->feedback_type = g_ascii_strdown(t, -1);
      g_free(t);
    }
  }
  for (guint i = 0; i < fields->len; i++) {
    const dsn_field *f = g_ptr_array_index(fields, i);
    if (g_ascii_strcasecmp(f->name, "Original-Rcpt-To") == 0 ||
        g_ascii_strcasecmp(f->name, "Removal-Recipient") == 0)
      add_unique(c->recipients, dsn_address(f->value));
  }
  g_ptr_array_unref(fields);

  GPtrArray *orig = NULL;
  if (r->original_headers) {
    orig = dsn_fields_parse(r->original_headers, 1);
  } else {
    for (guint i = 0; !orig && i < msg->attachments->len; i++) {
      const ib_attachment *att = g_ptr_array_index(msg->attachments, i);
      if (is_returned_message_type(att->content_type))
        orig = attachment_headers(att);
    }
  }
  if (orig) {
    if (!c->recipients->len) {
      GPtrArray *to = dsn_address_list(dsn_fields_get(orig, 0, "To"));
      for (guint i = 0; i < to->len; i++)
        add_unique(c->recipients, g_strdup(g_ptr_array_index(to, i)));
      g_ptr_array_unref(to);
    }
    c->original_message_id = dsn_msgid(dsn_fields_get(orig, 0, "Message-ID"));
    g_ptr_array_unref(orig);
  }
  return c;
}

/* Microsoft's JMRP in its older non-ARF shape: the reported message attached whole, with
 * X-HmXmrOriginalRecipient (only Microsoft's feedback loop adds it) naming the
 * complainant. */
static ib_complaint *
complaint_from_jmrp(const ib_message *msg)
{
  for (guint i = 0; i < msg->attachments->len; i++) {
    const ib_attachment *att = g_ptr_array_index(msg->attachments, i);
    if (!att->content_type || g_ascii_strcasecmp(att->content_type, "message/rfc822") != 0)
      continue;
    GPtrArray *fields = attachment_headers(att);
    if (!fields)
      continue;
    const char *rcpt = dsn_fields_get(fields, 0, "X-HmXmrOriginalRecipient");
    if (!rcpt) {
      g_ptr_array_unref(fields);
      continue;
    }
    ib_complaint *c = g_new0(ib_complaint, 1);
    c->recipients = g_ptr_array_new_with_free_func(g_free);
    c->feedback_type = g_strdup("abuse");
    add_unique(c->recipients, dsn_address(rcpt));
    c->original_message_id = dsn_msgid(dsn_fields_get(fields, 0, "Message-ID"));
    g_ptr_array_unref(fields);
    return c;
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Bounce texts: recipients and diagnostics from the human-readable part.               */

/* 1 when [S, E) looks like one addr-spec. */
static int
looks_like_addr(const char *s, const char *e)
{
  size_t len = (size_t)(e - s);
  if (len < 3 || len > 320)
    return 0;
  const char *at = memchr(s, '@', len);
  if (!at || at == s || at == e - 1)
    return 0;
  for (const char *p = s; p < e; p++)
    if (g_ascii_isspace(*p) || strchr("<>()[],;:\"", *p))
      return 0;
  return 1;
}

/* If trimmed line T names a failed recipient, return its address (new) and point
 * *REST_OUT at what follows it on the line ("" when nothing). Shapes: "<a@x>: text"
 * (qmail, Yahoo, Postfix), "<a@x>" (Sendmail), "a@x" (Exim, Exchange, Gmail),
 * "Name (a@x)" (Exchange). */
static char *
rcpt_line(const char *t, const char **rest_out)
{
  *rest_out = "";
  if (t[0] == '<') {
    const char *gt = strchr(t, '>');
    if (!gt || !looks_like_addr(t + 1, gt))
      return NULL;
    if (gt[1] == ':') {
      *rest_out = gt + 2;
      return g_strndup(t + 1, gt - t - 1);
    }
    return *skip_ws(gt + 1) ? NULL : g_strndup(t + 1, gt - t - 1);
  }
  size_t len = strlen(t);
  /* html2text may render a mailto link after its text: "a@x <mailto:a@x>". */
  const char *mailto = strcasestr(t, " <mailto:");
  if (mailto && t[len - 1] == '>')
    len = (size_t)(mailto - t);
  while (len && (t[len - 1] == ' ' || t[len - 1] == ':'))
    len--;
  if (looks_like_addr(t, t + len))
    return g_strndup(t, len);
  if (len && t[len - 1] == ')' && !memchr(t, ':', len)) {
    const char *open = g_strrstr_len(t, len, "(");
    if (open && looks_like_addr(open + 1, t + len - 1))
      return g_strndup(open + 1, t + len - 1 - open - 1);
  }
  return NULL;
}

/* Sentences that name the recipient: "Your message wasn't delivered to a@x because",
 * "Your message to a@x couldn't be delivered." */
static char *
rcpt_sentence(const char *line)
{
  static const char *const leads[] = {"wasn't delivered to ", "Your message to ",
                                      "could not be delivered to ", NULL};
  for (const char *const *l = leads; *l; l++) {
    const char *p = strcasestr(line, *l);
    if (!p)
      continue;
    p = skip_ws(p + strlen(*l));
    if (*p == '<')
      p++;
    const char *e = p;
    while (*e && !g_ascii_isspace(*e) && *e != '>' && *e != ',')
      e++;
    while (e > p && (e[-1] == '.' || e[-1] == ':'))
      e--;
    if (looks_like_addr(p, e))
      return g_strndup(p, e - p);
  }
  return NULL;
}

static const char *const diag_markers[] = {"The response from the remote server was:",
                                           "The error that the other server returned was:",
                                           "The response was:",
                                           "Technical details of permanent failure:",
                                           "Technical details of temporary failure:",
                                           NULL};

/* Does trimmed line T begin with an SMTP reply code ("550 ", "#550 ", "550-")? Returns
 * the text from the code on, else NULL. */
static const char *
smtp_reply_start(const char *t)
{
  if (*t == '#')
    t++;
  if ((t[0] == '4' || t[0] == '5') && g_ascii_isdigit(t[1]) && g_ascii_isdigit(t[2]) &&
      (t[3] == ' ' || t[3] == '-' || t[3] == '\0'))
    return t;
  return NULL;
}

/* Pick the server's answer out of the lines that describe one recipient. New string or
 * NULL. */
static char *
refine_diagnostic(GPtrArray *lines)
{
  for (guint i = 0; i < lines->len; i++) {
    const char *p = strcasestr(g_ptr_array_index(lines, i), "Remote host said:");
    if (p)
      return clean_dup(p + strlen("Remote host said:"), -1);
  }
  for (guint i = 0; i < lines->len; i++) {
    const char *line = g_ptr_array_index(lines, i);
    const char *p = strcasestr(line, "Remote server returned '");
    if (p) {
      p += strlen("Remote server returned '");
      const char *q = strrchr(p, '\'');
      return clean_dup(p, q ? q - p : -1);
    }
  }
  GString *joined = g_string_new(NULL);
  int from_code = 0;
  for (guint i = 0; i < lines->len; i++) {
    char *line = g_strdup(skip_ws(g_ptr_array_index(lines, i)));
    const char *t = line;
    if (starts_ci(t, "(reason:")) { /* Sendmail: "(reason: 550 5.1.1 ...)" */
      char *inner = (char *)skip_ws(t + strlen("(reason:"));
      size_t n = strlen(inner);
      if (n && inner[n - 1] == ')')
        inner[n - 1] = '\0';
      t = inner;
    }
    const char *code = smtp_reply_start(t);
    if (code && !from_code) {
      g_string_truncate(joined, 0);
      from_code = 1;
      t = code;
    }
    g_string_append(joined, t);
    g_string_append_c(joined, ' ');
    g_free(line);
  }
  if (!from_code) { /* Postfix: "host mx.example.net[192.0.2.1] said: 550 ..." */
    const char *said = strcasestr(joined->str, " said: ");
    if (said)
      g_string_erase(joined, 0, said + strlen(" said: ") - joined->str);
  }
  /* Exchange wraps the answer in "#550 ... ##". */
  while (joined->len &&
         (joined->str[joined->len - 1] == '#' || joined->str[joined->len - 1] == ' '))
    g_string_truncate(joined, joined->len - 1);
  char *out = clean_dup(joined->str, -1);
  g_string_free(joined, TRUE);
  return out;
}

static ib_bounce_rcpt *
find_rcpt(GPtrArray *rcpts, const char *address)
{
  for (guint i = 0; i < rcpts->len; i++) {
    ib_bounce_rcpt *r = g_ptr_array_index(rcpts, i);
    if (r->address && g_ascii_strcasecmp(r->address, address) == 0)
      return r;
  }
  return NULL;
}

static char *
status_of(const char *diagnostic)
{
  char *st = dsn_find_status(diagnostic);
  return st ? st : dsn_status_from_smtp(diagnostic);
}

/* Add ADDRESS (stolen) with DIAGNOSTIC (stolen, may be NULL), or improve the entry that
 * is there: a diagnostic carrying a status code wins over one without. */
static void
merge_rcpt(GPtrArray *rcpts, char *address, char *diagnostic)
{
  char *valid = g_utf8_make_valid(address, -1);
  g_free(address);
  ib_bounce_rcpt *r = find_rcpt(rcpts, valid);
  if (!r && rcpts->len >= MAX_BOUNCE_RCPTS) {
    g_free(valid);
    g_free(diagnostic);
    return;
  }
  if (!r) {
    r = g_new0(ib_bounce_rcpt, 1);
    r->address = valid;
    g_ptr_array_add(rcpts, r);
  } else {
    g_free(valid);
  }
  if (!diagnostic)
    return;
  char *st = status_of(diagnostic);
  if (!r->diagnostic || (st && !r->status)) {
    g_free(r->diagnostic);
    g_free(r->status);
    r->diagnostic = diagnostic;
    r->status = st;
  } else {
    g_free(diagnostic);
    g_free(st);
  }
}

/* Read the recipients (and their diagnostics) of a bounce text into RCPTS. */
static void
scan_bounce_text(const body *b, GPtrArray *rcpts)
{
  int stop_at = find_line(b, 0, copy_markers);
  guint stop = stop_at < 0 ? b->n : (guint)stop_at;
  for (guint i = 0; i < stop; i++) {
    const char *t = skip_ws(b->lines[i]);
    if (!*t || *t == '>')
      continue;
    const char *rest = NULL;
    char *addr = rcpt_line(t, &rest);
    if (!addr) {
      addr = rcpt_sentence(t);
      if (addr)
        merge_rcpt(rcpts, addr, NULL);
      continue;
    }
    GPtrArray *block = g_ptr_array_new();
    if (*skip_ws(rest))
      g_ptr_array_add(block, (gpointer)skip_ws(rest));
    size_t indent = (size_t)(t - b->lines[i]);
    guint j = i + 1;
    for (; j < stop && j - i <= MAX_BLOCK_LINES; j++) {
      const char *u = skip_ws(b->lines[j]);
      if (!*u || starts_any(u, diag_markers))
        break;
      /* A deeper-indented line continues this recipient even when it starts with an
       * address (Postfix wraps "<a@x>: Recipient address rejected" that way). */
      if ((size_t)(u - b->lines[j]) <= indent) {
        const char *ignored;
        char *other = rcpt_line(u, &ignored);
        int is_rcpt = other != NULL;
        g_free(other);
        if (is_rcpt)
          break;
      }
      g_ptr_array_add(block, (gpointer)u);
    }
    merge_rcpt(rcpts, addr, block->len ? refine_diagnostic(block) : NULL);
    g_ptr_array_free(block, TRUE);
    i = j - 1;
  }

  /* Gmail-style texts give one server answer for the message after a marker line;
   * a later marker with a status code beats an earlier one without. */
  int tries = 0;
  for (int at = find_line(b, 0, diag_markers); at >= 0 && (guint)at < stop && tries++ < MAX_MARKERS;
       at = find_line(b, (guint)at + 1, diag_markers)) {
    guint i = (guint)at + 1;
    while (i < stop && is_blank(b->lines[i]))
      i++;
    GPtrArray *block = g_ptr_array_new();
    for (guint end = MIN(stop, i + MAX_BLOCK_LINES); i < end && !is_blank(b->lines[i]); i++)
      g_ptr_array_add(block, (gpointer)skip_ws(b->lines[i]));
    for (guint r = 0; r < rcpts->len && block->len; r++) {
      ib_bounce_rcpt *rc = g_ptr_array_index(rcpts, r);
      if (rc->diagnostic && rc->status)
        continue;
      char *diag = refine_diagnostic(block);
      char *st = status_of(diag);
      if (diag && (!rc->diagnostic || st)) {
        g_free(rc->diagnostic);
        g_free(rc->status);
        rc->diagnostic = diag;
        rc->status = st;
      } else {
        g_free(diag);
        g_free(st);
      }
    }
    g_ptr_array_free(block, TRUE);
  }
}

/* ------------------------------------------------------------------------------------ */
/* Bounces.                                                                              */

static int
status_class(const char *status)
{
  return status && (status[0] == '4' || status[0] == '5') ? status[0] - '0' : 0;
}

static int
is_failure_action(const char *action)
{
  return action && (strcmp(action, "failed") == 0 || strcmp(action, "delayed") == 0);
}

/* hard: a failed recipient with a 5.x.x status, or failed with nothing that says
 * otherwise (the MTA gave up). soft: only 4.x.x statuses or delays. */
static int
bounce_is_hard(const GPtrArray *rcpts, int delayed_text)
{
  if (!rcpts->len)
    return !delayed_text;
  for (guint i = 0; i < rcpts->len; i++) {
    const ib_bounce_rcpt *r = g_ptr_array_index(rcpts, i);
    if (!r->action || strcmp(r->action, "failed") != 0)
      continue;
    int cls = status_class(r->status);
    if (cls == 5 || cls == 0)
      return 1;
  }
  return 0;
}

/* The failure recipients of a delivery-status report; NULL when the report has no
 * recipient at all. *NOTIFICATION_OUT is set when it has recipients, none failed or
 * delayed (a "delivered"/"relayed"/"expanded" DSN). */
static GPtrArray *
dsn_failures(const ib_message *msg, int *notification_out)
{
  *notification_out = 0;
  GPtrArray *all = dsn_recipients_parse(msg->report.status_fields);
  if (!all->len) {
    g_ptr_array_unref(all);
    return NULL;
  }
  GPtrArray *failed = g_ptr_array_new_with_free_func(ib_bounce_rcpt_free);
  for (guint i = 0; i < all->len; i++) {
    ib_bounce_rcpt *r = g_ptr_array_index(all, i);
    if (failed->len < MAX_BOUNCE_RCPTS &&
        (is_failure_action(r->action) || (!r->action && status_class(r->status))))
      g_ptr_array_add(failed, g_ptr_array_steal_index(all, i--));
  }
  g_ptr_array_unref(all);
  if (!failed->len) {
    *notification_out = 1;
    g_ptr_array_unref(failed);
    return NULL;
  }
  for (guint i = 0; i < failed->len; i++) {
    ib_bounce_rcpt *r = g_ptr_array_index(failed, i);
    if (!r->action)
      r->action = g_strdup(status_class(r->status) == 4 ? "delayed" : "failed");
  }
  return failed;
}

static int
is_dsn_report(const ib_message *msg)
{
  const char *t = msg->report.report_type;
  if (t && (g_ascii_strcasecmp(t, "delivery-status") == 0 ||
            g_ascii_strcasecmp(t, "global-delivery-status") == 0))
    return 1;
  /* A report part with RFC 3464 fields under a wrong or missing report-type. */
  if (!msg->report.status_fields)
    return 0;
  GPtrArray *f = dsn_fields_parse(msg->report.status_fields, 0);
  int dsn = dsn_fields_get(f, -1, "Final-Recipient") && dsn_fields_get(f, -1, "Action");
  g_ptr_array_unref(f);
  return dsn;
}

/* Fill in status and action of recipients read from a bounce text. */
static void
complete_text_rcpts(GPtrArray *rcpts, int delayed)
{
  for (guint i = 0; i < rcpts->len; i++) {
    ib_bounce_rcpt *r = g_ptr_array_index(rcpts, i);
    if (!r->status)
      r->status = g_strdup(delayed ? "4.0.0" : "5.0.0");
    if (!r->action)
      r->action = g_strdup(status_class(r->status) == 4 && delayed ? "delayed" : "failed");
  }
}

typedef enum bounce_verdict { NOT_BOUNCE = 0, IS_BOUNCE, DSN_NOTIFICATION } bounce_verdict;

static bounce_verdict
classify_bounce(ib_message *msg, const body *b)
{
  int notification = 0;
  GPtrArray *rcpts = NULL;
  int report = is_dsn_report(msg);
  if (report) {
    rcpts = dsn_failures(msg, &notification);
    if (notification)
      return DSN_NOTIFICATION;
  }

  int delayed = subject_matches(msg, delay_subjects) || body_contains(b, delay_words);
  const char *xfailed = ib_message_header(msg, "X-Failed-Recipients");
  if (!rcpts) {
    /* MAILER-DAEMON or the null sender plus a bounce subject or failure wording; a
     * postmaster (often a person) only with a bounce subject. */
    int mailer = sender_is_mailer(msg, 0) || null_sender(msg) ||
                 ib_message_header(msg, "X-MS-Exchange-Message-Is-Ndr");
    int postmaster = !mailer && sender_is_mailer(msg, 1);
    int bounce_subject = subject_matches(msg, bounce_subjects) && !subject_says_success(msg);
    int worded = bounce_subject || body_contains(b, failure_words);
    /* A person forwarding a bounce ("Fwd: Undelivered Mail...") may have the MTA text
     * at the top of the body, but a forward prefix and no machine sender. */
    int mta_text =
        body_has_signature(b) && (mailer || postmaster || !subject_has_reply_prefix(msg->subject));
    if (!report && !xfailed && !mta_text && !(mailer && worded) && !(postmaster && bounce_subject))
      return NOT_BOUNCE;
    rcpts = g_ptr_array_new_with_free_func(ib_bounce_rcpt_free);
    scan_bounce_text(b, rcpts);
    GPtrArray *listed = dsn_address_list(xfailed);
    for (guint i = 0; i < listed->len; i++)
      merge_rcpt(rcpts, g_strdup(g_ptr_array_index(listed, i)), NULL);
    g_ptr_array_unref(listed);
    complete_text_rcpts(rcpts, delayed);
  }

  ib_bounce *bounce = g_new0(ib_bounce, 1);
  bounce->recipients = rcpts;
  bounce->hard = bounce_is_hard(rcpts, delayed);
  bounce->original_message_id = original_msgid(msg, b);
  msg->bounce = bounce;
  return IS_BOUNCE;
}

/* ------------------------------------------------------------------------------------ */
/* Auto-replies.                                                                         */

/* Out-of-office subjects, NFC + case-folded. A strong phrase may be followed by anything
 * but a letter or digit; a weak one only by ':', a dash, '(' or the end, since people
 * also write "Absence of invoice" or "Out of office hours support". */
static const char *const ooo_strong[] = {"automatic reply",
                                         "auto-reply",
                                         "autoreply",
                                         "auto reply",
                                         "auto-response",
                                         "auto response",
                                         "automatic response",
                                         "autoresponse",
                                         "out of office autoreply",
                                         "out of office reply",
                                         "autosvar",
                                         "automatisch antwoord",
                                         "automatische antwort",
                                         "abwesenheitsnotiz",
                                         "réponse automatique",
                                         "respuesta automática",
                                         "resposta automática",
                                         "risposta automatica",
                                         "otomatik yanıt",
                                         "otomatik yanit",
                                         "otomati\xcc\x87k yanit",
                                         "автоматический ответ",
                                         "автоответ",
                                         "automaattinen vastaus",
                                         "automatyczna odpowiedź",
                                         "automatická odpověď",
                                         "αυτόματη απάντηση",
                                         "自动回复",
                                         "自動回覆",
                                         "自動回复",
                                         "自動応答",
                                         "自動返信",
                                         "자동 응답",
                                         NULL};

static const char *const ooo_weak[] = {"out of office",
                                       "out of the office",
                                       "ooo",
                                       "absence",
                                       "abwesend",
                                       "abwesenheit",
                                       "fuera de la oficina",
                                       "fuori ufficio",
                                       "fuori sede",
                                       "afwezig",
                                       "ausente",
                                       "frånvaro",
                                       "poza biurem",
                                       "auto",
                                       "不在",
                                       "休假",
                                       NULL};

static int
phrase_at(const char *key, const char *phrase, int weak)
{
  if (!g_str_has_prefix(key, phrase))
    return 0;
  const char *p = key + strlen(phrase);
  if (!*p)
    return 1;
  gunichar c = g_utf8_get_char_validated(p, -1);
  if (!weak)
    return !g_unichar_isalnum(c);
  while (*p == ' ')
    p++;
  return *p == '\0' || *p == ':' || *p == '-' || *p == '(' || g_str_has_prefix(p, "：") ||
         g_str_has_prefix(p, "–") || g_str_has_prefix(p, "—");
}

static int
subject_is_out_of_office(const char *subject)
{
  if (!subject)
    return 0;
  char *nfc = g_utf8_normalize(subject, -1, G_NORMALIZE_DEFAULT_COMPOSE);
  if (!nfc)
    return 0;
  char *key = g_utf8_casefold(nfc, -1);
  g_free(nfc);
  /* Gateways put tags in front: "[EXT] Automatic reply: ...". */
  const char *p = key;
  for (;;) {
    p = skip_ws(p);
    const char *close = *p == '[' ? strchr(p, ']') : NULL;
    if (!close || close - p > 80)
      break;
    p = close + 1;
  }
  int hit = 0;
  for (const char *const *s = ooo_strong; *s && !hit; s++)
    hit = phrase_at(p, *s, 0);
  for (const char *const *s = ooo_weak; *s && !hit; s++)
    hit = phrase_at(p, *s, 1);
  g_free(key);
  return hit;
}

static int
header_is_set(const ib_message *msg, const char *name)
{
  char *tok = header_token(msg, name);
  int set = tok && strcmp(tok, "no") != 0 && strcmp(tok, "false") != 0 && strcmp(tok, "0") != 0;
  if (!tok && ib_message_header(msg, name))
    set = 1; /* present but empty: still set by an autoresponder */
  g_free(tok);
  return set;
}

static int
is_auto_reply(const ib_message *msg)
{
  char *tok = header_token(msg, "Auto-Submitted");
  int hit = tok && strcmp(tok, "no") != 0;
  g_free(tok);
  if (hit)
    return 1;
  if (header_is_set(msg, "X-Autoreply") || header_is_set(msg, "X-Autorespond") ||
      ib_message_header(msg, "X-MS-Exchange-Inbox-Rules-Loop") ||
      ib_message_header(msg, "List-Id") || ib_message_header(msg, "List-Unsubscribe"))
    return 1;
  const char *suppress = ib_message_header(msg, "X-Auto-Response-Suppress");
  if (suppress) {
    char **toks = g_strsplit_set(suppress, ", \t", -1);
    for (char **t = toks; *t && !hit; t++)
      hit = g_ascii_strcasecmp(*t, "All") == 0 || g_ascii_strcasecmp(*t, "OOF") == 0 ||
            g_ascii_strcasecmp(*t, "AutoReply") == 0;
    g_strfreev(toks);
    if (hit)
      return 1;
  }
  tok = header_token(msg, "Precedence");
  hit = tok && (strcmp(tok, "bulk") == 0 || strcmp(tok, "junk") == 0 ||
                strcmp(tok, "auto_reply") == 0 || strcmp(tok, "list") == 0);
  g_free(tok);
  if (hit)
    return 1;
  tok = header_token(msg, "X-Autogenerated");
  hit = tok && strcmp(tok, "reply") == 0;
  g_free(tok);
  if (hit)
    return 1;
  if (null_sender(msg) || sender_is_mailer(msg, 0))
    return 1;
  /* Read receipts (RFC 8098) and other reports that are not failures. */
  if (msg->report.report_type &&
      g_ascii_strcasecmp(msg->report.report_type, "disposition-notification") == 0)
    return 1;
  return subject_is_out_of_office(msg->subject);
}

/* ------------------------------------------------------------------------------------ */

void
classify_message(ib_message *msg)
{
  ib_bounce_free(msg->bounce);
  msg->bounce = NULL;
  ib_complaint_free(msg->complaint);
  msg->complaint = NULL;

  msg->complaint = complaint_from_arf(msg);
  if (!msg->complaint)
    msg->complaint = complaint_from_jmrp(msg);
  if (msg->complaint) {
    msg->classification = IB_CLASS_COMPLAINT;
    return;
  }

  body b;
  body_load(msg, &b);
  bounce_verdict v = classify_bounce(msg, &b);
  body_clear(&b);
  if (v == IS_BOUNCE) {
    msg->classification = IB_CLASS_BOUNCE;
    return;
  }
  if (v == DSN_NOTIFICATION || is_auto_reply(msg)) {
    msg->classification = IB_CLASS_AUTO_REPLY;
    return;
  }
  msg->classification = (msg->in_reply_to || msg->references->len) ? IB_CLASS_REPLY : IB_CLASS_NEW;
}
