#include "thread.h"

#include <openssl/crypto.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "subject.h"

#define SIG_HEX 16

/* Lines about mail loops, at most one a second, each with the count of those left out:
 * a bounce storm flags hundreds of messages a second (every one is still stored with
 * loop_suspect set), and a line for each would flood the log from the writer's thread. */
#define LOOP_LOG_INTERVAL_MS 1000

static void
log_loop(int64_t message_id, const char *sender, int count, int window_minutes)
{
  static GMutex lock;
  static int64_t last_ms = -LOOP_LOG_INTERVAL_MS;
  static unsigned skipped;
  int64_t now = clock_mono_ms();
  g_mutex_lock(&lock);
  if (now - last_ms < LOOP_LOG_INTERVAL_MS) {
    skipped++;
    g_mutex_unlock(&lock);
    return;
  }
  unsigned before = skipped;
  skipped = 0;
  last_ms = now;
  g_mutex_unlock(&lock);
  char more[64] = "";
  if (before)
    g_snprintf(more, sizeof more, "; %u more such messages since the last line", before);
  log_warn("message %" G_GINT64_FORMAT " from %s: %d automatic messages in %d minutes, "
           "not forwarded (mail loop?)%s",
           message_id, sender, count, window_minutes, more);
}

char *
thread_signature(const char *secret, int64_t ticket)
{
  char id[24];
  g_snprintf(id, sizeof id, "%" G_GINT64_FORMAT, ticket);
  char *mac =
      g_compute_hmac_for_string(G_CHECKSUM_SHA256, (const guchar *)secret, strlen(secret), id, -1);
  mac[SIG_HEX] = '\0';
  return mac;
}

static int
signature_ok(const thread_options *opt, int64_t ticket, const char *sig, size_t len)
{
  if (len != SIG_HEX || ticket <= 0)
    return 0;
  char *want = thread_signature(opt->secret, ticket);
  char *given = g_ascii_strdown(sig, (gssize)len);
  int ok = CRYPTO_memcmp(want, given, SIG_HEX) == 0;
  g_free(given);
  g_free(want);
  return ok;
}

/* Parse "<digits>.<sig>" at P; returns the ticket and sets SIG and SIG_LEN, or 0. */
static int64_t
parse_ticket_sig(const char *p, const char *end, const char **sig, size_t *sig_len)
{
  const char *d = p;
  while (d < end && g_ascii_isdigit(*d))
    d++;
  if (d == p || d - p > 18 || d >= end || *d != '.')
    return 0;
  int64_t ticket = g_ascii_strtoll(p, NULL, 10);
  *sig = d + 1;
  const char *s = *sig;
  while (s < end && g_ascii_isxdigit(*s))
    s++;
  *sig_len = (size_t)(s - *sig);
  return ticket;
}

char *
thread_reply_address(const thread_options *opt, int64_t ticket)
{
  if (!opt->reply_domain || !*opt->reply_domain)
    return NULL;
  char *sig = thread_signature(opt->secret, ticket);
  char *addr = g_strdup_printf("reply+%" G_GINT64_FORMAT ".%s@%s", ticket, sig, opt->reply_domain);
  g_free(sig);
  return addr;
}

int
thread_parse_reply_address(const thread_options *opt, const char *address, int64_t *ticket_out)
{
  if (!address || !opt->reply_domain || !*opt->reply_domain)
    return 0;
  const char *at = strrchr(address, '@');
  if (!at || g_ascii_strcasecmp(at + 1, opt->reply_domain) != 0 ||
      g_ascii_strncasecmp(address, "reply+", 6) != 0)
    return 0;
  const char *sig;
  size_t sig_len;
  int64_t ticket = parse_ticket_sig(address + 6, at, &sig, &sig_len);
  if (sig + sig_len != at || !signature_ok(opt, ticket, sig, sig_len))
    return 0;
  *ticket_out = ticket;
  return 1;
}

char *
thread_new_message_id(const thread_options *opt, int64_t ticket, const char *fallback_domain)
{
  const char *domain = opt->reply_domain && *opt->reply_domain ? opt->reply_domain
                       : fallback_domain && *fallback_domain   ? fallback_domain
                                                               : "inboxd.invalid";
  char *sig = thread_signature(opt->secret, ticket);
  char *id = g_strdup_printf("t%" G_GINT64_FORMAT ".%s.%08x%08x@%s", ticket, sig, g_random_int(),
                             g_random_int(), domain);
  g_free(sig);
  return id;
}

int
thread_parse_message_id(const thread_options *opt, const char *msgid, int64_t *ticket_out)
{
  if (!msgid || msgid[0] != 't')
    return 0;
  const char *end = strchr(msgid, '@');
  if (!end)
    return 0;
  const char *sig;
  size_t sig_len;
  int64_t ticket = parse_ticket_sig(msgid + 1, end, &sig, &sig_len);
  if (!ticket || sig[sig_len] != '.' || !signature_ok(opt, ticket, sig, sig_len))
    return 0;
  *ticket_out = ticket;
  return 1;
}

/* The ticket of a Message-ID: stored, or one of ours whose row is gone (signed). */
static ib_status
ticket_by_msgid(ib_tx *tx, const thread_options *opt, const char *msgid, int64_t *ticket_out)
{
  ib_status st = store_ticket_of_message_id(tx, msgid, ticket_out);
  int64_t t = 0;
  if (st != IB_ERR_NOT_FOUND || !thread_parse_message_id(opt, msgid, &t))
    return st;
  store_ticket_brief b;
  st = store_ticket_brief_get(tx, t, &b);
  store_ticket_brief_clear(&b);
  if (st == IB_OK)
    *ticket_out = t;
  return st;
}

static int
is_machine(const ib_message *m)
{
  return m->classification == IB_CLASS_AUTO_REPLY || m->classification == IB_CLASS_BOUNCE ||
         m->classification == IB_CLASS_COMPLAINT;
}

static ib_status
match_reply_address(ib_tx *tx, const thread_options *opt, const ib_message *m, int64_t *ticket_out)
{
  GPtrArray *lists[] = {m->to, m->cc};
  for (size_t l = 0; l < G_N_ELEMENTS(lists); l++)
    for (guint i = 0; i < lists[l]->len; i++) {
      const ib_addr *a = g_ptr_array_index(lists[l], i);
      if (thread_parse_reply_address(opt, a->address, ticket_out))
        return IB_OK;
    }
  for (guint i = 0; i < m->envelope_to->len; i++)
    if (thread_parse_reply_address(opt, g_ptr_array_index(m->envelope_to, i), ticket_out))
      return IB_OK;
  return IB_ERR_NOT_FOUND;
}

static ib_status
find_ticket(ib_tx *tx, const thread_options *opt, const ib_message *m, int64_t *ticket_out,
            const char **reason_out)
{
  ib_status st;
  if (m->in_reply_to) {
    st = ticket_by_msgid(tx, opt, m->in_reply_to, ticket_out);
    if (st != IB_ERR_NOT_FOUND) {
      *reason_out = "in_reply_to";
      return st;
    }
  }
  for (guint i = m->references->len; i-- > 0;) {
    st = ticket_by_msgid(tx, opt, g_ptr_array_index(m->references, i), ticket_out);
    if (st != IB_ERR_NOT_FOUND) {
      *reason_out = "references";
      return st;
    }
  }
  /* A bounce or complaint answers the message it returns. */
  const char *original = m->bounce      ? m->bounce->original_message_id
                         : m->complaint ? m->complaint->original_message_id
                                        : NULL;
  if (original) {
    st = ticket_by_msgid(tx, opt, original, ticket_out);
    if (st != IB_ERR_NOT_FOUND) {
      *reason_out = "in_reply_to";
      return st;
    }
  }
  if (match_reply_address(tx, opt, m, ticket_out) == IB_OK) {
    store_ticket_brief b;
    st = store_ticket_brief_get(tx, *ticket_out, &b);
    store_ticket_brief_clear(&b);
    if (st != IB_ERR_NOT_FOUND) {
      *reason_out = "reply_address";
      return st;
    }
  }
  long long tagged = 0;
  if (subject_ticket_tag(m->subject, &tagged) && m->from && m->from->address) {
    int member = 0;
    st = store_is_participant(tx, tagged, m->from->address, &member);
    if (st != IB_OK)
      return st;
    if (member) {
      *ticket_out = tagged;
      *reason_out = "subject_tag";
      return IB_OK;
    }
  }
  return IB_ERR_NOT_FOUND;
}

ib_status
thread_assign(ib_tx *tx, const thread_options *opt, ib_message *msg, int64_t *ticket_out,
              int *created_out)
{
  const char *reason = "new";
  *created_out = 0;
  ib_status st = find_ticket(tx, opt, msg, ticket_out, &reason);
  if (st == IB_ERR_NOT_FOUND) {
    /* Out-of-office notes, bounces and complaints that answer nothing we know are kept,
     * but never open a customer ticket anyone has to work on. */
    st = store_create_ticket(tx, msg, is_machine(msg) ? "closed" : "open", ticket_out);
    *created_out = 1;
    reason = "new";
  }
  if (st != IB_OK)
    return st;
  g_free(msg->thread_reason);
  msg->thread_reason = g_strdup(reason);
  if (!is_machine(msg))
    msg->classification = *created_out ? IB_CLASS_NEW : IB_CLASS_REPLY;
  return IB_OK;
}

static ib_status
add_addresses(ib_tx *tx, const thread_options *opt, int64_t ticket, GPtrArray *list)
{
  for (guint i = 0; i < list->len; i++) {
    const ib_addr *a = g_ptr_array_index(list, i);
    int64_t t;
    /* Our own reply addresses are not people. */
    if (!a->address || thread_parse_reply_address(opt, a->address, &t))
      continue;
    ib_status st = store_add_participant(tx, ticket, a->address, "cc");
    if (st != IB_OK)
      return st;
  }
  return IB_OK;
}

static ib_status
suppress(ib_tx *tx, const ib_message *m, int64_t message_id)
{
  ib_status st = IB_OK;
  if (m->bounce && m->bounce->recipients) {
    for (guint i = 0; i < m->bounce->recipients->len && st == IB_OK; i++) {
      const ib_bounce_rcpt *r = g_ptr_array_index(m->bounce->recipients, i);
      int hard = r->status ? r->status[0] == '5' : m->bounce->hard;
      if (r->action && g_ascii_strcasecmp(r->action, "failed") != 0 &&
          g_ascii_strcasecmp(r->action, "delayed") != 0)
        continue;
      st = store_add_suppression(tx, r->address, hard ? "hard_bounce" : "soft_bounce", r->status,
                                 r->diagnostic, message_id);
    }
  }
  if (m->complaint && m->complaint->recipients) {
    for (guint i = 0; i < m->complaint->recipients->len && st == IB_OK; i++)
      st = store_add_suppression(tx, g_ptr_array_index(m->complaint->recipients, i), "complaint",
                                 NULL, m->complaint->feedback_type, message_id);
  }
  return st;
}

ib_status
thread_record(ib_tx *tx, const thread_options *opt, const ib_message *m, int64_t ticket,
              int created, int64_t message_id, int *status_changed_out, int *loop_out)
{
  *status_changed_out = 0;
  *loop_out = 0;
  ib_status st = IB_OK;
  int outbound = m->direction && strcmp(m->direction, "outbound") == 0;
  const char *sender = m->from ? m->from->address : NULL;

  if (outbound)
    return store_add_participant(tx, ticket, sender, "agent");
  if (!is_machine(m)) {
    if ((st = store_add_participant(tx, ticket, sender, created ? "customer" : "cc")) != IB_OK ||
        (st = add_addresses(tx, opt, ticket, m->cc)) != IB_OK)
      return st;
    if (created && (st = add_addresses(tx, opt, ticket, m->to)) != IB_OK)
      return st;
  }
  if ((st = suppress(tx, m, message_id)) != IB_OK)
    return st;

  if (m->classification == IB_CLASS_REPLY && !created) {
    /* A customer's answer puts the ticket back in the queue. */
    store_ticket_brief b;
    if ((st = store_ticket_brief_get(tx, ticket, &b)) != IB_OK)
      return st;
    int reopen = strcmp(b.status, "open") != 0;
    store_ticket_brief_clear(&b);
    if (reopen) {
      int changed = 0;
      if ((st = store_update_ticket(tx, ticket, "open", NULL, &changed)) != IB_OK)
        return st;
      *status_changed_out = changed;
    }
  }

  if (is_machine(m) && sender && opt->auto_limit > 0) {
    char since[32];
    clock_rfc3339(clock_now_ms() - (int64_t)opt->auto_window_minutes * 60000, since, sizeof since);
    int count = 0;
    if ((st = store_count_automatic(tx, sender, since, opt->auto_limit + 1, &count)) != IB_OK)
      return st;
    /* COUNT includes this message. */
    if (count > opt->auto_limit) {
      if ((st = store_flag_loop(tx, message_id)) != IB_OK)
        return st;
      *loop_out = 1;
      log_loop(message_id, sender, count, opt->auto_window_minutes);
    }
  }
  return IB_OK;
}
