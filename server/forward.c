/* forward.c: the forwarder thread (forward.h). */
#include "forward.h"

#include <curl/curl.h>
#include <errno.h>
#include <glib.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "jsonout.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"

#define DEFAULT_CONCURRENCY 16
#define WINDOW_FACTOR 4       /* claimed ahead: in flight + ready <= concurrency * this */
#define IDLE_CHECK_MS 1000    /* look for rows other processes added ("inboxd ingest") */
#define STORAGE_RETRY_MS 1000 /* after a claim or a status update could not commit */
#define ERROR_SNIPPET 200     /* bytes of the receiver's answer kept in last_error */
#define FORWARD_NICE 5        /* CPU goes to ingestion and the API first */

/* ---- Policy --------------------------------------------------------------------------- */

forward_verdict
forward_classify(int responded, long status)
{
  if (!responded)
    return FORWARD_RETRY;
  if (status >= 200 && status < 300)
    return FORWARD_DELIVERED;
  if (status == 408 || status == 429)
    return FORWARD_RETRY;
  if (status >= 400 && status < 500)
    return FORWARD_REFUSED;
  /* 5xx, and what a webhook receiver should not answer (1xx left over, 3xx: redirects are
   * not followed with a signed body): keep trying, an operator can see it. */
  return FORWARD_RETRY;
}

int64_t
forward_backoff_ceiling(int64_t base_ms, int attempt)
{
  if (base_ms <= 0)
    return 0;
  if (base_ms >= FORWARD_BACKOFF_CAP_MS)
    return FORWARD_BACKOFF_CAP_MS;
  int64_t v = base_ms;
  for (int i = 1; i < attempt; i++) {
    v *= 2;
    if (v >= FORWARD_BACKOFF_CAP_MS)
      return FORWARD_BACKOFF_CAP_MS;
  }
  return v;
}

int64_t
forward_backoff_delay(int64_t base_ms, int attempt, double u)
{
  int64_t ceiling = forward_backoff_ceiling(base_ms, attempt);
  if (!(u > 0))
    u = 0;
  if (u >= 1)
    u = 0.999999999;
  /* Uniform over the integers 0..ceiling. */
  int64_t d = (int64_t)(u * (double)(ceiling + 1));
  return MIN(d, ceiling);
}

int
forward_retry_after(const char *value, int64_t now_ms, int64_t *delay_out)
{
  if (!value)
    return -1;
  while (*value == ' ' || *value == '\t')
    value++;
  if (!*value)
    return -1;
  if (g_ascii_isdigit(*value)) {
    const char *p = value;
    int64_t secs = 0;
    while (g_ascii_isdigit(*p)) {
      if (secs < FORWARD_BACKOFF_CAP_MS / 1000)
        secs = secs * 10 + (*p - '0');
      p++;
    }
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p)
      return -1;
    *delay_out = MIN(secs * 1000, FORWARD_BACKOFF_CAP_MS);
    return 0;
  }
  /* An HTTP-date: libcurl's parser takes the three formats of RFC 9110. */
  time_t when = curl_getdate(value, NULL);
  if (when == (time_t)-1)
    return -1;
  int64_t delay = (int64_t)when * 1000 - now_ms;
  *delay_out = CLAMP(delay, 0, FORWARD_BACKOFF_CAP_MS);
  return 0;
}

char *
forward_signature(const char *secret, int64_t t, const char *body, size_t len)
{
  char ts[24];
  g_snprintf(ts, sizeof ts, "%" G_GINT64_FORMAT, t);
  GHmac *h = g_hmac_new(G_CHECKSUM_SHA256, (const guchar *)secret, strlen(secret));
  g_hmac_update(h, (const guchar *)ts, (gssize)strlen(ts));
  g_hmac_update(h, (const guchar *)".", 1);
  g_hmac_update(h, (const guchar *)body, (gssize)len);
  char *sig = g_strdup_printf("t=%s,v1=%s", ts, g_hmac_get_string(h));
  g_hmac_unref(h);
  return sig;
}

/* ---- State ---------------------------------------------------------------------------- */

typedef struct transfer {
  CURL *easy;
  outbox_delivery *d;
  char *body; /* jansson's malloc */
  struct curl_slist *headers;
  char errbuf[CURL_ERROR_SIZE];
  char answer[ERROR_SNIPPET + 1];
  size_t answer_len;
  int64_t started_mono;
} transfer;

struct forwarder {
  ib_store *store;
  char *url;
  char *secret;
  forward_options opts;
  CURLM *multi;
  pthread_t thread;
  int started;

  /* Shared with the writer thread (job callbacks) and wakers, under LOCK. */
  pthread_mutex_t lock;
  int stopping;
  int64_t grace_ms;
  int dirty;             /* new or promoted deliveries may be due */
  int claim_outstanding; /* a claim job is queued or running */
  GPtrArray *claimed;    /* of outbox_delivery*, committed claims not yet picked up */
  int claim_reported;    /* a claim finished: CLAIMED_DUE is news */
  int64_t claimed_due;   /* next due time reported by the last claim */
  int claim_failed;
  GPtrArray *unsaved; /* of outbox_result*, whose update did not commit */

  /* Forwarder thread only. */
  GQueue ready;         /* of outbox_delivery*, claimed, waiting for a connection */
  GPtrArray *active;    /* of transfer*, in flight */
  int want_claim;       /* new work may be due: claim as soon as there is room */
  GPtrArray *idle_easy; /* of CURL*, reused (their connections live in the multi) */
  GPtrArray *results;   /* of outbox_result*, to record */
  int64_t next_due;     /* wall ms; INT64_MAX: nothing scheduled */
  int64_t next_claim_mono;
  int64_t next_save_mono;
  int64_t next_idle_check_mono;
  GRand *rand;
};

static void
wake_locked(forwarder *fw)
{
  fw->dirty = 1;
  curl_multi_wakeup(fw->multi);
}

void
forward_wake(forwarder *fw)
{
  if (!fw)
    return;
  pthread_mutex_lock(&fw->lock);
  wake_locked(fw);
  pthread_mutex_unlock(&fw->lock);
}

/* Writer thread, after a commit that added events. */
static void
on_commit(void *arg, int64_t last_seq)
{
  forward_wake(arg);
}

/* ---- Jobs (writer thread) ------------------------------------------------------------- */

typedef struct claim_job {
  forwarder *fw;
  int max;
  GPtrArray *rows; /* of outbox_delivery* */
  int64_t next_due;
} claim_job;

static ib_status
claim_run(ib_tx *tx, void *arg)
{
  claim_job *j = arg;
  return outbox_claim(tx, clock_now_ms(), j->max, j->rows, &j->next_due);
}

static void
claim_done(void *arg, ib_status st)
{
  claim_job *j = arg;
  forwarder *fw = j->fw;
  pthread_mutex_lock(&fw->lock);
  fw->claim_outstanding = 0;
  if (st == IB_OK) {
    for (guint i = 0; i < j->rows->len; i++)
      g_ptr_array_add(fw->claimed, g_ptr_array_index(j->rows, i));
    g_ptr_array_set_free_func(j->rows, NULL); /* handed over */
    fw->claimed_due = j->next_due;
    fw->claim_reported = 1;
  } else {
    fw->claim_failed = 1;
  }
  curl_multi_wakeup(fw->multi);
  pthread_mutex_unlock(&fw->lock);
  g_ptr_array_unref(j->rows); /* frees what was not handed over */
  g_free(j);
}

typedef struct save_job {
  forwarder *fw;
  GPtrArray *results; /* of outbox_result* */
} save_job;

static ib_status
save_run(ib_tx *tx, void *arg)
{
  save_job *j = arg;
  int64_t now = clock_now_ms();
  for (guint i = 0; i < j->results->len; i++) {
    ib_status st = outbox_finish(tx, g_ptr_array_index(j->results, i), now);
    if (st != IB_OK)
      return st;
  }
  return IB_OK;
}

static void
save_done(void *arg, ib_status st)
{
  save_job *j = arg;
  forwarder *fw = j->fw;
  pthread_mutex_lock(&fw->lock);
  if (st == IB_OK) {
    fw->dirty = 1; /* the next delivery of those tickets may be due now */
  } else {
    log_error("cannot record %u delivery outcomes (%s); retrying", j->results->len,
              ib_status_str(st));
    for (guint i = 0; i < j->results->len; i++)
      g_ptr_array_add(fw->unsaved, g_ptr_array_index(j->results, i));
    g_ptr_array_set_free_func(j->results, NULL);
  }
  curl_multi_wakeup(fw->multi);
  pthread_mutex_unlock(&fw->lock);
  g_ptr_array_unref(j->results);
  g_free(j);
}

static ib_status
recover_run(ib_tx *tx, void *arg)
{
  return outbox_recover(tx, arg);
}

/* ---- Transfers (forwarder thread) ------------------------------------------------------- */

static size_t
on_answer(char *data, size_t size, size_t n, void *arg)
{
  transfer *t = arg;
  size_t len = size * n;
  size_t room = ERROR_SNIPPET - t->answer_len;
  size_t take = MIN(room, len);
  memcpy(t->answer + t->answer_len, data, take);
  t->answer_len += take;
  t->answer[t->answer_len] = '\0';
  return len; /* read and drop the rest, so the connection can be reused */
}

static CURL *
easy_get(forwarder *fw)
{
  if (fw->idle_easy->len)
    return g_ptr_array_steal_index_fast(fw->idle_easy, fw->idle_easy->len - 1);
  CURL *e = curl_easy_init();
  if (!e)
    return NULL;
  curl_easy_setopt(e, CURLOPT_URL, fw->url);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)fw->opts.connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)fw->opts.timeout_ms);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
  return e;
}

static void
transfer_free(forwarder *fw, transfer *t)
{
  if (t->easy) {
    /* The idle handle must not point into T any more. */
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, NULL);
    g_ptr_array_add(fw->idle_easy, t->easy);
  }
  curl_slist_free_all(t->headers);
  free(t->body);
  outbox_delivery_free(t->d);
  g_free(t);
}

static void
add_result(forwarder *fw, const outbox_delivery *d, outbox_outcome outcome, int http_status,
           char *error, int64_t next_ms)
{
  outbox_result *r = g_new0(outbox_result, 1);
  r->seq = d->seq;
  r->ticket_id = d->ticket_id;
  r->outcome = outcome;
  r->http_status = http_status;
  r->error = error;
  r->next_attempt_ms = next_ms;
  g_ptr_array_add(fw->results, r);
}

/* The body of DESIGN.md "Forwarded events". New (free()), or NULL when the stored
 * message cannot be read now (*TRANSIENT_OUT = 1). */
static char *
build_body(forwarder *fw, const outbox_delivery *d, int *transient_out)
{
  *transient_out = 0;
  json_t *message = NULL;
  if (d->message_id) {
    ib_status st = store_message(fw->store, d->message_id, &message);
    if (st == IB_ERR_NOT_FOUND) {
      message = NULL;
    } else if (st != IB_OK) {
      *transient_out = 1;
      return NULL;
    }
  }
  json_t *ticket = d->ticket ? json_loads(d->ticket, 0, NULL) : NULL;
  json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", d->id, "type", d->type, "created_at",
                          d->created_at, "ticket", ticket ? ticket : json_null(), "message",
                          message ? message : json_null());
  char *body = doc ? jsonout_dumps(doc, NULL) : NULL;
  json_decref(doc);
  return body;
}

/* Append "NAME: VALUE" to *LIST; 0 when out of memory (the list is kept as it was). */
static int
header_add(struct curl_slist **list, const char *name, const char *value)
{
  char *line = g_strconcat(name, ": ", value, NULL);
  struct curl_slist *l = curl_slist_append(*list, line);
  g_free(line);
  if (!l)
    return 0;
  *list = l;
  return 1;
}

/* Start sending D (stolen). When it cannot start, D goes back to the queue without
 * counting an attempt: the receiver has not seen it. */
static void
start_transfer(forwarder *fw, outbox_delivery *d)
{
  transfer *t = g_new0(transfer, 1);
  t->d = d;
  int transient = 0;
  const char *problem = NULL;
  if (!(t->body = build_body(fw, d, &transient))) {
    problem = transient ? "cannot read its message now" : "cannot encode its body";
    goto done;
  }
  size_t len = strlen(t->body);
  char *sig =
      fw->secret ? forward_signature(fw->secret, clock_now_ms() / 1000, t->body, len) : NULL;
  int ok = header_add(&t->headers, "Content-Type", "application/json") &&
           header_add(&t->headers, "User-Agent", "inboxd/" INBOXD_VERSION) &&
           header_add(&t->headers, "Inboxd-Event", d->type) &&
           header_add(&t->headers, "Inboxd-Delivery", d->id) &&
           (!sig || header_add(&t->headers, "Inboxd-Signature", sig));
  /* No "Expect: 100-continue" round trip before the body. */
  struct curl_slist *more = ok ? curl_slist_append(t->headers, "Expect:") : NULL;
  if (more)
    t->headers = more;
  ok = more != NULL;
  g_free(sig);
  if (!ok || !(t->easy = easy_get(fw))) {
    problem = "out of memory";
    goto done;
  }
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  t->started_mono = clock_mono_ms();
  CURLMcode mc = curl_multi_add_handle(fw->multi, e);
  if (mc != CURLM_OK) {
    problem = curl_multi_strerror(mc);
    goto done;
  }
  g_ptr_array_add(fw->active, t);
  t = NULL;
done:
  if (t) {
    log_error("cannot send delivery %s (%s, message %" G_GINT64_FORMAT "): %s; retrying soon",
              d->id, d->type, d->message_id, problem);
    add_result(fw, d, OUTBOX_RELEASE, 0, NULL, clock_now_ms() + STORAGE_RETRY_MS);
    transfer_free(fw, t);
  }
}

/* A short, valid UTF-8, single-line description of what the receiver said. */
static char *
describe_answer(long status, const transfer *t)
{
  char *text = g_utf8_make_valid(t->answer, (gssize)t->answer_len);
  for (char *c = text; *c; c++)
    if ((unsigned char)*c < 0x20)
      *c = ' ';
  g_strstrip(text);
  char *out =
      *text ? g_strdup_printf("HTTP %ld: %s", status, text) : g_strdup_printf("HTTP %ld", status);
  g_free(text);
  return out;
}

static void
finish_transfer(forwarder *fw, transfer *t, CURLcode res)
{
  outbox_delivery *d = t->d;
  long status = 0;
  if (res == CURLE_OK)
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  int64_t now = clock_now_ms();
  metrics_observe(METRIC_DELIVERY_ATTEMPT_TIME,
                  (double)(clock_mono_ms() - t->started_mono) / 1000.0);
  forward_verdict v = forward_classify(res == CURLE_OK && status > 0, status);
  int attempt = d->attempts + 1;
  char *error = NULL;
  if (v != FORWARD_DELIVERED)
    error = res == CURLE_OK
                ? describe_answer(status, t)
                : g_utf8_make_valid(t->errbuf[0] ? t->errbuf : curl_easy_strerror(res), -1);

  if (v == FORWARD_DELIVERED) {
    metrics_add(METRIC_DELIVERIES_DELIVERED, 1);
    if (d->created_ms)
      metrics_observe(METRIC_DELIVERY_LATENCY, (double)(now - d->created_ms) / 1000.0);
    log_debug("delivered %s (%s, ticket %" G_GINT64_FORMAT ") on attempt %d: HTTP %ld", d->id,
              d->type, d->ticket_id, attempt, status);
    add_result(fw, d, OUTBOX_DELIVERED, (int)status, NULL, 0);
  } else if (v == FORWARD_REFUSED || attempt >= fw->opts.max_attempts) {
    metrics_add(METRIC_DELIVERIES_FAILED, 1);
    if (v == FORWARD_RETRY) {
      char *why = g_strdup_printf("gave up after %d attempts: %s", attempt, error);
      g_free(error);
      error = why;
    }
    log_warn("delivery %s (%s, ticket %" G_GINT64_FORMAT ") failed: %s", d->id, d->type,
             d->ticket_id, error);
    add_result(fw, d, OUTBOX_FAILED, (int)status, error, 0);
  } else {
    int64_t delay = forward_backoff_delay(fw->opts.backoff_ms, attempt, g_rand_double(fw->rand));
    if (status == 429 || status == 503) {
      struct curl_header *h = NULL;
      int64_t asked = 0;
      if (curl_easy_header(t->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
          forward_retry_after(h->value, now, &asked) == 0)
        delay = MAX(delay, asked);
    }
    metrics_add(METRIC_DELIVERIES_RETRIED, 1);
    log_debug("delivery %s attempt %d: %s; next in %" G_GINT64_FORMAT " ms", d->id, attempt, error,
              delay);
    add_result(fw, d, OUTBOX_RETRY, (int)status, error, now + delay);
  }
  t->d = NULL;
  outbox_delivery_free(d);
  transfer_free(fw, t);
}

static void
harvest(forwarder *fw)
{
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(fw->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    transfer *t = NULL;
    CURL *e = msg->easy_handle;
    CURLcode res = msg->data.result;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
    curl_multi_remove_handle(fw->multi, e);
    g_ptr_array_remove_fast(fw->active, t);
    finish_transfer(fw, t, res);
  }
}

static void
save_results(forwarder *fw)
{
  if (!fw->results->len)
    return;
  save_job *j = g_new0(save_job, 1);
  j->fw = fw;
  j->results = fw->results;
  fw->results = g_ptr_array_new_with_free_func((GDestroyNotify)outbox_result_free);
  store_submit(fw->store, save_run, j, save_done, j);
}

static void
submit_claim(forwarder *fw, int max)
{
  claim_job *j = g_new0(claim_job, 1);
  j->fw = fw;
  j->max = max;
  j->rows = g_ptr_array_new_with_free_func((GDestroyNotify)outbox_delivery_free);
  j->next_due = INT64_MAX;
  pthread_mutex_lock(&fw->lock);
  fw->claim_outstanding = 1;
  pthread_mutex_unlock(&fw->lock);
  store_submit(fw->store, claim_run, j, claim_done, j);
}

/* Take what the writer thread and the wakers left for this thread. Returns STOPPING. */
static int
pick_up(forwarder *fw, int *claim_busy_out)
{
  int64_t now_mono = clock_mono_ms();
  pthread_mutex_lock(&fw->lock);
  int stopping = fw->stopping;
  if (fw->dirty)
    fw->want_claim = 1;
  fw->dirty = 0;
  *claim_busy_out = fw->claim_outstanding;
  for (guint i = 0; i < fw->claimed->len; i++)
    g_queue_push_tail(&fw->ready, g_ptr_array_index(fw->claimed, i));
  g_ptr_array_set_size(fw->claimed, 0);
  if (fw->claim_reported) {
    fw->next_due = fw->claimed_due;
    fw->claim_reported = 0;
  }
  if (fw->claim_failed) {
    fw->next_claim_mono = now_mono + STORAGE_RETRY_MS;
    fw->want_claim = 1;
    fw->claim_failed = 0;
  }
  if (fw->unsaved->len) {
    for (guint i = 0; i < fw->unsaved->len; i++)
      g_ptr_array_add(fw->results, g_ptr_array_index(fw->unsaved, i));
    g_ptr_array_set_size(fw->unsaved, 0);
    fw->next_save_mono = now_mono + STORAGE_RETRY_MS;
  }
  pthread_mutex_unlock(&fw->lock);
  return stopping;
}

static void
start_ready(forwarder *fw)
{
  while (fw->active->len < (guint)fw->opts.concurrency && !g_queue_is_empty(&fw->ready))
    start_transfer(fw, g_queue_pop_head(&fw->ready));
}

static void
run_loop(forwarder *fw)
{
  guint window = (guint)fw->opts.concurrency * WINDOW_FACTOR;
  for (;;) {
    int claim_busy = 0;
    if (pick_up(fw, &claim_busy))
      return;
    start_ready(fw);
    int running = 0;
    curl_multi_perform(fw->multi, &running);
    harvest(fw);
    start_ready(fw);

    int64_t now_mono = clock_mono_ms();
    int64_t now = clock_now_ms();
    if (fw->results->len && now_mono >= fw->next_save_mono)
      save_results(fw);

    /* Everything claimed and not yet recorded counts against the window, so memory stays
     * bounded even while outcomes cannot be written. */
    guint held = fw->active->len + fw->ready.length + fw->results->len;
    int can_claim = !claim_busy && held < window;
    if (can_claim && now_mono >= fw->next_claim_mono && !fw->want_claim && now < fw->next_due &&
        now_mono >= fw->next_idle_check_mono) {
      /* Rows written by another process ("inboxd ingest") do not wake us. */
      int64_t due = INT64_MAX;
      if (outbox_next_due(fw->store, &due) == IB_OK)
        fw->next_due = due;
      fw->next_idle_check_mono = now_mono + IDLE_CHECK_MS;
    }
    if (can_claim && now_mono >= fw->next_claim_mono && (fw->want_claim || now >= fw->next_due)) {
      fw->want_claim = 0;
      submit_claim(fw, (int)(window - held));
      can_claim = 0;
    }

    /* Sleep until curl needs us, a waker or a job callback calls, or the next timer:
     * the next due delivery (only when there is room to claim it), the end of a storage
     * back-off, a pending save, the idle check. */
    int64_t wait = IDLE_CHECK_MS;
    if (can_claim) {
      if (now_mono < fw->next_claim_mono)
        wait = MIN(wait, fw->next_claim_mono - now_mono);
      else if (fw->next_due != INT64_MAX)
        wait = MIN(wait, MAX(0, fw->next_due - now));
    }
    if (fw->results->len)
      wait = MIN(wait, MAX(0, fw->next_save_mono - now_mono));
    curl_multi_poll(fw->multi, NULL, 0, (int)wait, NULL);
  }
}

/* Stopping: finish what is in flight within the grace period, put everything else back
 * in the queue, and record it all before the store closes. */
static void
shut_down(forwarder *fw)
{
  int64_t deadline = clock_mono_ms() + fw->grace_ms;
  for (;;) {
    int claim_busy = 0;
    pick_up(fw, &claim_busy);
    while (!g_queue_is_empty(&fw->ready)) {
      outbox_delivery *d = g_queue_pop_head(&fw->ready);
      add_result(fw, d, OUTBOX_RELEASE, 0, NULL, clock_now_ms());
      outbox_delivery_free(d);
    }
    int running = 0;
    curl_multi_perform(fw->multi, &running);
    harvest(fw);
    int64_t left = deadline - clock_mono_ms();
    if ((fw->active->len == 0 && !claim_busy) || left <= 0)
      break;
    curl_multi_poll(fw->multi, NULL, 0, (int)MIN(left, 100), NULL);
  }
  if (fw->active->len)
    log_warn("stopping with %u deliveries in flight: they will be sent again", fw->active->len);
  while (fw->active->len) {
    transfer *t = g_ptr_array_steal_index_fast(fw->active, fw->active->len - 1);
    curl_multi_remove_handle(fw->multi, t->easy);
    add_result(fw, t->d, OUTBOX_RELEASE, 0, NULL, clock_now_ms());
    transfer_free(fw, t);
  }
  if (fw->results->len) {
    save_job j = {.fw = fw, .results = fw->results};
    ib_status st = store_run(fw->store, save_run, &j);
    if (st != IB_OK)
      log_error("cannot record %u delivery outcomes before stopping (%s); they are "
                "resumed at the next start",
                fw->results->len, ib_status_str(st));
    g_ptr_array_set_size(fw->results, 0);
  }
}

static void *
forward_main(void *arg)
{
  forwarder *fw = arg;
  /* On Linux a thread has its own nice value: when CPU is short, ingestion and the API
   * win, and forwarding catches up later (it is a queue). */
  if (setpriority(PRIO_PROCESS, (id_t)gettid(), FORWARD_NICE) != 0)
    log_debug("cannot lower the forwarder's priority: %s", g_strerror(errno));
  run_loop(fw);
  shut_down(fw);
  return NULL;
}

/* ---- Life cycle -------------------------------------------------------------------------- */

ib_status
forward_check_url(const char *url, char **error_out)
{
  *error_out = NULL;
  CURLU *u = curl_url();
  char *scheme = NULL;
  int ok = url && u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
           curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
           (g_ascii_strcasecmp(scheme, "http") == 0 || g_ascii_strcasecmp(scheme, "https") == 0);
  curl_free(scheme);
  curl_url_cleanup(u);
  if (!ok)
    *error_out = g_strdup_printf("--forward-url %s: expected an http:// or https:// URL",
                                 url ? url : "(none)");
  return ok ? IB_OK : IB_ERR_INVALID;
}

ib_status
forward_start(ib_store *store, const forward_options *opts, forwarder **fw_out, char **error_out)
{
  *fw_out = NULL;
  *error_out = NULL;
  if (forward_check_url(opts->url, error_out) != IB_OK)
    return IB_ERR_INVALID;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    *error_out = g_strdup("cannot initialise libcurl");
    return IB_ERR_INTERNAL;
  }
  int resumed = 0;
  ib_status st = store_run(store, recover_run, &resumed);
  if (st != IB_OK) {
    *error_out = g_strdup_printf("cannot resume the deliveries in flight: %s", ib_status_str(st));
    curl_global_cleanup();
    return st;
  }
  if (resumed)
    log_info("resuming %d deliveries that were in flight when inboxd stopped", resumed);

  forwarder *fw = g_new0(forwarder, 1);
  fw->store = store;
  fw->url = g_strdup(opts->url);
  fw->secret = opts->secret && *opts->secret ? g_strdup(opts->secret) : NULL;
  fw->opts = *opts;
  fw->opts.url = fw->url;
  fw->opts.secret = fw->secret;
  if (fw->opts.concurrency <= 0)
    fw->opts.concurrency = DEFAULT_CONCURRENCY;
  if (fw->opts.max_attempts < 1)
    fw->opts.max_attempts = 1;
  pthread_mutex_init(&fw->lock, NULL);
  fw->claimed = g_ptr_array_new();
  fw->unsaved = g_ptr_array_new();
  g_queue_init(&fw->ready);
  fw->active = g_ptr_array_new();
  fw->idle_easy = g_ptr_array_new_with_free_func((GDestroyNotify)curl_easy_cleanup);
  fw->results = g_ptr_array_new_with_free_func((GDestroyNotify)outbox_result_free);
  fw->next_due = INT64_MAX;
  fw->want_claim = 1; /* the backlog of the last run */
  fw->rand = g_rand_new();
  fw->multi = curl_multi_init();
  curl_multi_setopt(fw->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)fw->opts.concurrency);
  curl_multi_setopt(fw->multi, CURLMOPT_MAXCONNECTS, (long)fw->opts.concurrency);
  store_on_commit(store, on_commit, fw);
  if (pthread_create(&fw->thread, NULL, forward_main, fw) != 0) {
    *error_out = g_strdup("cannot start the forwarder thread");
    /* Registered with the store: freed by the caller after store_close(). */
    *fw_out = fw;
    return IB_ERR_INTERNAL;
  }
  fw->started = 1;
  log_info("forwarding events to %s (%s, %" G_GINT64_FORMAT
           " attempts, backoff from %" G_GINT64_FORMAT " ms)",
           fw->url, fw->secret ? "signed" : "unsigned", fw->opts.max_attempts, fw->opts.backoff_ms);
  *fw_out = fw;
  return IB_OK;
}

void
forward_stop(forwarder *fw, int64_t grace_ms)
{
  if (!fw || !fw->started)
    return;
  pthread_mutex_lock(&fw->lock);
  fw->stopping = 1;
  fw->grace_ms = grace_ms;
  curl_multi_wakeup(fw->multi);
  pthread_mutex_unlock(&fw->lock);
  pthread_join(fw->thread, NULL);
  fw->started = 0;
}

void
forward_free(forwarder *fw)
{
  if (!fw)
    return;
  /* Claims and outcomes that came back after the thread ended (none once the store is
   * closed) were never sent: the next start resumes them. */
  g_ptr_array_set_free_func(fw->claimed, (GDestroyNotify)outbox_delivery_free);
  g_ptr_array_unref(fw->claimed);
  g_ptr_array_set_free_func(fw->unsaved, (GDestroyNotify)outbox_result_free);
  g_ptr_array_unref(fw->unsaved);
  g_queue_clear_full(&fw->ready, (GDestroyNotify)outbox_delivery_free);
  g_ptr_array_unref(fw->active);
  g_ptr_array_unref(fw->results);
  g_ptr_array_unref(fw->idle_easy);
  curl_multi_cleanup(fw->multi);
  g_rand_free(fw->rand);
  pthread_mutex_destroy(&fw->lock);
  g_free(fw->url);
  g_free(fw->secret);
  g_free(fw);
  curl_global_cleanup();
}
