/* store_pg.c: the PostgreSQL backend (store_internal.h), for several inboxd nodes on one
 * database: connections (the writer's, a bounded read pool, the LISTEN connection),
 * migrations under an advisory lock, the writer's group transaction, and the
 * transaction operations of store.h.
 *
 * What differs from SQLite, where one writer owns the file:
 * - Duplicates are caught by unique constraints. A job that hits one (another node stored
 *   the same message first) is rolled back to its savepoint and run again at once: it
 *   then finds the stored row and answers "duplicate".
 * - store_lock_message_ids() takes a transaction advisory lock on a hash of every
 *   Message-ID a message carries, in sorted order, so related messages arriving at two
 *   nodes at once are threaded one after the other and never split a conversation.
 * - Events get their seq at the end of the group, under a transaction advisory lock held
 *   to the commit: seq order is commit order on every node, so a reader that has seen seq
 *   N can never miss an earlier one. Deliveries are written with them, and NOTIFY wakes
 *   the change feed and the forwarder of every node.
 * - A job chosen as a deadlock victim is rolled back to its savepoint and run again in
 *   the next group, after this group's commit has released its locks. */
#include "store_pg.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "embedded.h"
#include "log.h"

#define CONNECT_TIMEOUT_S 5
#define OPEN_WAIT_MS 30000 /* at start, wait this long for the database to answer */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define UNIQUE_RERUNS 3 /* a job re-run after unique violations at most this often */
#define REQUEUE_MAX 5   /* a deadlock victim is tried again this often at most */
#define NOTIFY_CHANNEL "inboxd_events"

/* ---- Connections -------------------------------------------------------------------- */

static int64_t
next_backoff(int64_t cur)
{
  return cur <= 0 ? BACKOFF_FIRST_MS : MIN(cur * 2, BACKOFF_MAX_MS);
}

/* Settings of every connection: the writer's lock waits are bounded like SQLite's busy
 * timeout, so a stuck lock becomes a 503 instead of a hung request. */
static ib_status
configure_conn(ib_store *s, pg_conn *c)
{
  static const char sql[] = "SELECT set_config('lock_timeout', $1, false), "
                            "set_config('statement_timeout', '0', false)";
  pg_params p = {0};
  char ms[24];
  g_snprintf(ms, sizeof ms, "%d", s->busy_ms);
  pg_text(&p, ms);
  PGresult *r = pg_query(c, sql, &p, 0);
  ib_status st = pg_check(c, r, "configure a connection");
  PQclear(r);
  return st;
}

static ib_status
connect_one(ib_store *s, pg_conn **out, char **error_out)
{
  ib_status st = pg_connect(s->path, CONNECT_TIMEOUT_S, out, error_out);
  if (st == IB_OK && (st = configure_conn(s, *out)) != IB_OK) {
    pg_close(*out);
    *out = NULL;
    if (error_out)
      *error_out = g_strdup("cannot configure a PostgreSQL connection");
  }
  return st;
}

pg_conn *
pg_pool_get(ib_store *s)
{
  pg_backend *b = s->pg;
  pg_conn *c = NULL;
  int64_t deadline = clock_mono_ms() + s->busy_ms;
  pthread_mutex_lock(&b->pool_lock);
  for (;;) {
    if (b->idle->len) {
      c = g_ptr_array_steal_index_fast(b->idle, b->idle->len - 1);
      /* A server that restarted closed its side: notice it now (a non-blocking read)
       * rather than fail the caller's query. */
      if (!PQconsumeInput(pg_handle(c)) || !pg_alive(c)) {
        pg_close(c);
        c = NULL;
        b->open--;
        continue;
      }
      break;
    }
    if (b->open < s->pool_size) {
      if (clock_mono_ms() < b->pool_retry_mono)
        break; /* the database was unreachable a moment ago: answer 503 now */
      b->open++;
      pthread_mutex_unlock(&b->pool_lock);
      char *err = NULL;
      ib_status st = connect_one(s, &c, &err);
      pthread_mutex_lock(&b->pool_lock);
      if (st != IB_OK) {
        b->open--;
        b->pool_backoff_ms = next_backoff(b->pool_backoff_ms);
        b->pool_retry_mono = clock_mono_ms() + b->pool_backoff_ms;
        log_error("%s (next try in %" G_GINT64_FORMAT " ms)", err ? err : "cannot connect",
                  b->pool_backoff_ms);
        g_free(err);
        c = NULL;
        pthread_cond_broadcast(&b->pool_free);
      } else {
        b->pool_backoff_ms = 0;
      }
      break;
    }
    /* Every connection is lent: wait for one, as long as a lock wait may last. */
    int64_t left = deadline - clock_mono_ms();
    if (left <= 0) {
      log_warn("no free database connection within %d ms (--db-pool %d)", s->busy_ms, s->pool_size);
      break;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + MIN(left, 100) * 1000000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&b->pool_free, &b->pool_lock, &ts);
  }
  pthread_mutex_unlock(&b->pool_lock);
  return c;
}

void
pg_pool_put(ib_store *s, pg_conn *c)
{
  if (!c)
    return;
  pg_backend *b = s->pg;
  int alive = pg_alive(c) && PQtransactionStatus(pg_handle(c)) == PQTRANS_IDLE;
  if (!alive) {
    pg_close(c);
    c = NULL;
  }
  pthread_mutex_lock(&b->pool_lock);
  if (c)
    g_ptr_array_add(b->idle, c);
  else
    b->open--;
  pthread_cond_signal(&b->pool_free);
  pthread_mutex_unlock(&b->pool_lock);
}

/* The writer's connection, (re)connected with back-off; NULL while the database cannot
 * be reached. */
static pg_conn *
writer_conn(ib_store *s)
{
  pg_backend *b = s->pg;
  if (b->writer && PQconsumeInput(pg_handle(b->writer)) && pg_alive(b->writer))
    return b->writer;
  if (b->writer) {
    log_warn("lost the database connection of the writer; reconnecting");
    pg_close(b->writer);
    b->writer = NULL;
  }
  if (clock_mono_ms() < b->writer_retry_mono)
    return NULL;
  char *err = NULL;
  if (connect_one(s, &b->writer, &err) != IB_OK) {
    b->writer_backoff_ms = next_backoff(b->writer_backoff_ms);
    b->writer_retry_mono = clock_mono_ms() + b->writer_backoff_ms;
    log_error("%s (next try in %" G_GINT64_FORMAT " ms)", err ? err : "cannot connect",
              b->writer_backoff_ms);
    g_free(err);
    return NULL;
  }
  b->writer_backoff_ms = 0;
  log_info("the writer is connected to the database again");
  return b->writer;
}

/* ---- Change notifications (LISTEN) ------------------------------------------------------ */

static int
stopping(ib_store *s)
{
  pthread_mutex_lock(&s->lock);
  int stop = s->stopping;
  pthread_mutex_unlock(&s->lock);
  return stop;
}

/* The newest committed seq, so that listeners catch up after a (re)connection. */
static void
announce_latest(ib_store *s, pg_conn *c)
{
  static const char sql[] = "SELECT COALESCE(MAX(seq), 0) FROM events";
  PGresult *r = pg_query(c, sql, NULL, 0);
  if (pg_check(c, r, "read the newest event") == IB_OK && PQntuples(r) == 1) {
    int64_t seq = pg_int_at(r, 0, 0);
    if (seq > 0)
      store_notify_commit(s, seq);
  }
  PQclear(r);
}

/* Every commit on any node NOTIFYs inboxd_events with its newest seq; this thread
 * passes that to the commit listeners (the change feed, the forwarder) of this node. */
static void *
listener_main(void *arg)
{
  ib_store *s = arg;
  pg_conn *c = NULL;
  int64_t backoff = 0;
  while (!stopping(s)) {
    if (!c) {
      if (connect_one(s, &c, NULL) != IB_OK ||
          pg_exec(c, "LISTEN " NOTIFY_CHANNEL, "listen for commits") != IB_OK) {
        pg_close(c);
        c = NULL;
        backoff = next_backoff(backoff);
        for (int64_t waited = 0; waited < backoff && !stopping(s); waited += 100)
          g_usleep(100 * 1000);
        continue;
      }
      backoff = 0;
      announce_latest(s, c);
    }
    struct pollfd pfd = {.fd = PQsocket(pg_handle(c)), .events = POLLIN};
    int n = poll(&pfd, 1, 200);
    if (n < 0 && errno != EINTR)
      log_warn("cannot wait for notifications: %s", g_strerror(errno));
    if (n > 0 && !PQconsumeInput(pg_handle(c))) {
      log_warn("lost the notification connection; reconnecting");
      pg_close(c);
      c = NULL;
      continue;
    }
    int64_t newest = 0;
    PGnotify *note;
    while ((note = PQnotifies(pg_handle(c)))) {
      newest = MAX(newest, g_ascii_strtoll(note->extra, NULL, 10));
      PQfreemem(note);
    }
    if (newest > 0)
      store_notify_commit(s, newest);
  }
  pg_close(c);
  return NULL;
}

/* ---- Migrations ---------------------------------------------------------------------- */

static int
migration_number(const char *name)
{
  const char *base = strchr(name, '/');
  base = base ? base + 1 : name;
  return (int)g_ascii_strtoll(base, NULL, 10);
}

static ib_status
schema_version(pg_conn *c, int *version_out, char **error_out)
{
  static const char sql_table[] = "SELECT to_regclass('meta') IS NOT NULL";
  static const char sql_version[] = "SELECT value FROM meta WHERE key = 'schema_version'";
  *version_out = 0;
  PGresult *r = pg_query(c, sql_table, NULL, 0);
  ib_status st = pg_check(c, r, "look for the schema");
  int exists = st == IB_OK && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  if (st == IB_OK && exists) {
    r = pg_query(c, sql_version, NULL, 0);
    st = pg_check(c, r, "read the schema version");
    if (st == IB_OK && PQntuples(r) == 1)
      *version_out = (int)pg_int_at(r, 0, 0);
    PQclear(r);
  }
  if (st != IB_OK)
    *error_out = g_strdup("cannot read the schema version");
  return st;
}

static ib_status
apply_migration(pg_conn *c, const ib_embedded_file *f, int n, char **error_out)
{
  static const char sql_record[] = "INSERT INTO meta (key, value) VALUES ('schema_version', $1) "
                                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
  ib_status st = pg_exec(c, "BEGIN", "begin a migration");
  PGresult *r = NULL;
  if (st == IB_OK) {
    r = PQexec(pg_handle(c), (const char *)f->data);
    st = pg_check(c, r, NULL);
    if (st != IB_OK)
      *error_out = g_strdup_printf("cannot apply migration %s: %s", f->name,
                                   r ? PQresultErrorMessage(r) : PQerrorMessage(pg_handle(c)));
    PQclear(r);
  }
  if (st == IB_OK) {
    pg_params p = {0};
    pg_int(&p, n);
    r = pg_query(c, sql_record, &p, 0);
    st = pg_check(c, r, "record the schema version");
    PQclear(r);
  }
  if (st == IB_OK)
    st = pg_exec(c, "COMMIT", "commit a migration");
  if (st != IB_OK) {
    if (!*error_out)
      *error_out = g_strdup_printf("cannot apply migration %s", f->name);
    pg_exec(c, "ROLLBACK", NULL);
    return st;
  }
  log_info("applied migration %s", f->name);
  return IB_OK;
}

/* The reply secret, made once per database (by whichever node migrates first). */
static ib_status
load_secret(ib_store *s, pg_conn *c, char **error_out)
{
  static const char sql_add[] =
      "INSERT INTO meta (key, value) VALUES ('reply_secret', $1) ON CONFLICT DO NOTHING";
  static const char sql_get[] = "SELECT value FROM meta WHERE key = 'reply_secret'";
  unsigned char raw[32];
  if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
    *error_out = g_strdup_printf("cannot make a reply secret: %s", g_strerror(errno));
    return IB_ERR_IO;
  }
  char hex[2 * sizeof raw + 1];
  for (size_t i = 0; i < sizeof raw; i++)
    g_snprintf(hex + 2 * i, 3, "%02x", raw[i]);
  pg_params p = {0};
  pg_text(&p, hex);
  PGresult *r = pg_query(c, sql_add, &p, 0);
  ib_status st = pg_check(c, r, "store the reply secret");
  PQclear(r);
  if (st == IB_OK) {
    r = pg_query(c, sql_get, NULL, 0);
    st = pg_check(c, r, "read the reply secret");
    if (st == IB_OK && PQntuples(r) == 1)
      s->reply_secret = g_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
  }
  if (!s->reply_secret) {
    *error_out = g_strdup("the database has no reply secret");
    return IB_ERR_STORAGE;
  }
  return IB_OK;
}

/* Under a session advisory lock, so that nodes starting together migrate one at a time
 * (the others then find the schema current). */
static ib_status
migrate(ib_store *s, pg_conn *c, char **error_out)
{
  static const char sql_lock[] = "SELECT pg_advisory_lock($1, $2)";
  static const char sql_unlock[] = "SELECT pg_advisory_unlock($1, $2)";
  pg_params p = {0};
  pg_int(&p, PG_LOCK_CLASS);
  pg_int(&p, PG_LOCK_MIGRATE);
  PGresult *r = pg_query(c, sql_lock, &p, 0);
  ib_status st = pg_check(c, r, "lock the schema");
  PQclear(r);
  if (st != IB_OK) {
    *error_out = g_strdup("cannot lock the schema for migrations");
    return st;
  }
  int current = 0, newest = 0;
  st = schema_version(c, &current, error_out);
  for (const ib_embedded_file *f = ib_embedded_files; f->name; f++)
    if (g_str_has_prefix(f->name, "postgres/") && g_str_has_suffix(f->name, ".sql"))
      newest = MAX(newest, migration_number(f->name));
  if (st == IB_OK && current > newest) {
    *error_out = g_strdup_printf("the database has schema version %d, newer than this inboxd "
                                 "knows (%d): upgrade inboxd or use another --db",
                                 current, newest);
    st = IB_ERR_UNSUPPORTED;
  }
  for (const ib_embedded_file *f = ib_embedded_files; f->name && st == IB_OK; f++) {
    if (!g_str_has_prefix(f->name, "postgres/") || !g_str_has_suffix(f->name, ".sql"))
      continue;
    int n = migration_number(f->name);
    if (n > current)
      st = apply_migration(c, f, n, error_out);
  }
  if (st == IB_OK)
    st = load_secret(s, c, error_out);
  r = pg_query(c, sql_unlock, &p, 0);
  PQclear(r);
  return st;
}

/* ---- Open / close ----------------------------------------------------------------------- */

/* The URI without its password, for logs. New. */
static char *
safe_target(const char *uri)
{
  const char *scheme_end = strstr(uri, "://");
  const char *at = strchr(uri, '@');
  if (!scheme_end || !at)
    return g_strdup(uri);
  const char *colon = memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3));
  if (!colon)
    return g_strdup(uri);
  return g_strdup_printf("%.*s:***%s", (int)(colon - uri), uri, at);
}

static ib_status
pg_open(ib_store *s, char **error_out)
{
  pg_backend *b = g_new0(pg_backend, 1);
  s->pg = b;
  b->lease_ms = s->lease_ms;
  unsigned char rnd[4];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
    memset(rnd, 0, sizeof rnd);
  char host[24] = "";
  gethostname(host, sizeof host - 1);
  g_snprintf(b->node, sizeof b->node, "%s/%d/%02x%02x%02x%02x", host, (int)getpid(), rnd[0], rnd[1],
             rnd[2], rnd[3]);
  pthread_mutex_init(&b->pool_lock, NULL);
  pthread_cond_init(&b->pool_free, NULL);
  b->idle = g_ptr_array_new();

  /* Nodes usually start with (or before) their database: wait for it a little. */
  int64_t deadline = clock_mono_ms() + OPEN_WAIT_MS;
  int64_t backoff = 0;
  ib_status st;
  char *shown = safe_target(s->path);
  for (;;) {
    char *err = NULL;
    st = connect_one(s, &b->writer, &err);
    if (st == IB_OK || clock_mono_ms() + backoff >= deadline) {
      if (st != IB_OK)
        *error_out = g_strdup_printf("%s (%s)", err ? err : "cannot connect", shown);
      g_free(err);
      break;
    }
    backoff = next_backoff(backoff);
    log_warn("%s; retrying in %" G_GINT64_FORMAT " ms", err ? err : "cannot connect", backoff);
    g_free(err);
    g_usleep((gulong)backoff * 1000);
  }
  if (st == IB_OK)
    st = migrate(s, b->writer, error_out);
  if (st != IB_OK) {
    g_free(shown);
    return st;
  }
  log_info("using PostgreSQL %s as node %s (pool %d, delivery lease %" G_GINT64_FORMAT " ms)",
           shown, b->node, s->pool_size, b->lease_ms);
  g_free(shown);
  b->listener_started = pthread_create(&b->listener, NULL, listener_main, s) == 0;
  if (!b->listener_started)
    log_warn("cannot start the notification listener: commits of other nodes wake this one "
             "only through polling");
  return IB_OK;
}

static void
pg_close_backend(ib_store *s)
{
  pg_backend *b = s->pg;
  if (!b)
    return;
  if (b->listener_started)
    pthread_join(b->listener, NULL); /* store_close() has set s->stopping */
  pg_close(b->writer);
  for (guint i = 0; i < b->idle->len; i++)
    pg_close(g_ptr_array_index(b->idle, i));
  g_ptr_array_unref(b->idle);
  pthread_mutex_destroy(&b->pool_lock);
  pthread_cond_destroy(&b->pool_free);
  g_free(b);
  s->pg = NULL;
}

/* ---- The group transaction (writer thread) ------------------------------------------------ */

static void
pg_event_free(gpointer p)
{
  pg_event *e = p;
  g_free(e->type);
  g_free(e->delivery_ticket);
  g_free(e);
}

void
pg_tx_want_promote(ib_tx *tx, int64_t ticket_id)
{
  g_array_append_val(tx->promotes, ticket_id);
}

/* The group's last step: seqs for its events (in the order the jobs added them), their
 * deliveries, the deliveries due now, and the notification. The events lock is held from
 * here to the commit, so seq order is commit order across nodes. */
static ib_status
write_events(ib_tx *tx)
{
  static const char sql_lock[] = "SELECT pg_advisory_xact_lock($1, $2)";
  static const char sql_event[] =
      "INSERT INTO events (seq, type, ticket_id, message_id, at) "
      "VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM events), $1, $2, $3, $4) "
      "RETURNING seq";
  /* The event and its delivery in one statement (one round trip). */
  static const char sql_delivery[] =
      "WITH e AS (INSERT INTO events (seq, type, ticket_id, message_id, at) "
      "  VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM events), $1, $2, $3, $4) "
      "  RETURNING seq) "
      "INSERT INTO deliveries (seq, id, type, ticket_id, message_id, status, attempts, "
      "next_attempt_at, created_at, ticket) "
      "SELECT e.seq, $5, $1, $2, $3, 'pending', 0, "
      "CASE WHEN EXISTS (SELECT 1 FROM deliveries WHERE ticket_id = $2 "
      "AND status IN ('pending', 'delivering')) THEN NULL ELSE $6::bigint END, $4, $7 FROM e "
      "RETURNING seq";
  static const char sql_notify[] = "SELECT pg_notify('" NOTIFY_CHANNEL "', $1)";
  pg_conn *c = tx->pg;
  if (!tx->events->len && !tx->promotes->len)
    return IB_OK;
  pg_params p = {0};
  pg_int(&p, PG_LOCK_CLASS);
  pg_int(&p, PG_LOCK_EVENTS);
  PGresult *r = pg_query(c, sql_lock, &p, 0);
  ib_status st = pg_check(c, r, "lock the change feed");
  PQclear(r);
  int64_t now_ms = clock_now_ms();
  for (guint i = 0; st == IB_OK && i < tx->events->len; i++) {
    const pg_event *e = g_ptr_array_index(tx->events, i);
    char id[32];
    if (e->delivery_ticket && (st = outbox_new_delivery_id(id, sizeof id)) != IB_OK)
      break;
    pg_params q = {0};
    pg_text(&q, e->type);
    pg_int(&q, e->ticket_id);
    if (e->message_id)
      pg_int(&q, e->message_id);
    else
      pg_text(&q, NULL);
    pg_text(&q, tx->now);
    if (e->delivery_ticket) {
      pg_text(&q, id);
      pg_int(&q, now_ms);
      pg_text(&q, e->delivery_ticket);
    }
    const char *sql = e->delivery_ticket ? sql_delivery : sql_event;
    r = pg_query(c, sql, &q, 0);
    st = pg_check(c, r, "append an event");
    if (st == IB_OK && PQntuples(r) == 1)
      tx->last_seq = pg_int_at(r, 0, 0);
    else if (st == IB_OK)
      st = IB_ERR_INTERNAL;
    PQclear(r);
  }
  for (guint i = 0; st == IB_OK && i < tx->promotes->len; i++)
    st = pg_outbox_promote(c, g_array_index(tx->promotes, int64_t, i), now_ms);
  if (st == IB_OK && tx->last_seq) {
    pg_params n = {0};
    pg_int(&n, tx->last_seq);
    r = pg_query(c, sql_notify, &n, 0);
    st = pg_check(c, r, "notify the other nodes");
    PQclear(r);
  }
  return st;
}

static void
fail_all(GPtrArray *batch, ib_status st)
{
  for (guint i = 0; i < batch->len; i++) {
    job *j = g_ptr_array_index(batch, i);
    if (j->requeue || j->status == IB_OK || j->status == IB_ERR_INTERNAL)
      j->status = st;
    j->requeue = 0;
  }
}

static void
pg_run_batch(ib_store *s, GPtrArray *batch)
{
  /* One round trip between two jobs: a savepoint named "job" is open whenever a job
   * starts (ROLLBACK TO keeps it; RELEASE is followed by a new one). COMMIT ends what is
   * open. */
  static const char sql_begin[] = "BEGIN; SAVEPOINT job";
  static const char sql_commit[] = "COMMIT";
  static const char sql_next[] = "RELEASE SAVEPOINT job; SAVEPOINT job";
  static const char sql_rollback_to[] = "ROLLBACK TO SAVEPOINT job";
  pg_conn *c = writer_conn(s);
  if (!c) {
    for (guint i = 0; i < batch->len; i++)
      ((job *)g_ptr_array_index(batch, i))->status = IB_ERR_STORAGE;
    return;
  }
  ib_tx tx = {.store = s, .pg = c};
  clock_rfc3339(clock_now_ms(), tx.now, sizeof tx.now);
  tx.events = g_ptr_array_new_with_free_func(pg_event_free);
  tx.promotes = g_array_new(FALSE, FALSE, sizeof(int64_t));

  int aborted = pg_exec(c, sql_begin, "begin a write transaction") != IB_OK;
  for (guint i = 0; i < batch->len && !aborted; i++) {
    job *j = g_ptr_array_index(batch, i);
    for (int run = 0;; run++) {
      tx.job_events = tx.events->len;
      tx.job_promotes = tx.promotes->len;
      tx.lock_busy = 0;
      j->status = j->fn(&tx, j->arg);
      pg_failure why = pg_last_failure(c);
      if (j->status == IB_OK) {
        if (pg_exec(c, sql_next, "release a savepoint") != IB_OK)
          aborted = 1;
        break;
      }
      g_ptr_array_set_size(tx.events, tx.job_events);
      g_array_set_size(tx.promotes, tx.job_promotes);
      if (!pg_alive(c) || pg_exec(c, sql_rollback_to, "roll back a job") != IB_OK) {
        aborted = 1;
        break;
      }
      if (why == PG_FAIL_UNIQUE && run < UNIQUE_RERUNS)
        continue; /* another node stored it first: the job now finds it */
      if (tx.lock_busy)
        j->requeue = 1; /* first in the next group, where it may wait for the lock */
      else if (why == PG_FAIL_RETRY && j->requeued < REQUEUE_MAX)
        j->requeue = 1; /* a deadlock victim: again after this group has committed */
      break;
    }
  }
  if (!aborted && write_events(&tx) != IB_OK)
    aborted = 1;
  if (!aborted && pg_exec(c, sql_commit, "commit") != IB_OK)
    aborted = 1;
  if (aborted) {
    log_error("write transaction of %u jobs aborted", batch->len);
    if (pg_alive(c) && PQtransactionStatus(pg_handle(c)) != PQTRANS_IDLE)
      pg_exec(c, "ROLLBACK", NULL);
    fail_all(batch, IB_ERR_STORAGE);
    tx.last_seq = 0;
  }
  g_ptr_array_unref(tx.events);
  g_array_unref(tx.promotes);
  if (tx.last_seq)
    store_notify_commit(s, tx.last_seq);
}

/* ---- Transaction operations --------------------------------------------------------------- */

static gint
compare_i64(gconstpointer a, gconstpointer b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void
add_key(GArray *keys, const char *msgid)
{
  if (!msgid || !*msgid)
    return;
  guint8 digest[32];
  gsize len = sizeof digest;
  GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, (const guchar *)msgid, (gssize)strlen(msgid));
  g_checksum_get_digest(sum, digest, &len);
  g_checksum_free(sum);
  int64_t key = 0;
  memcpy(&key, digest, sizeof key);
  g_array_append_val(keys, key);
}

/* Deadlock-free across groups: only a group's first locking job waits for a lock (in
 * sorted order, holding no other); a later job of the group only tries, and when a key is
 * taken it is rolled back (which releases what it took) and runs first in the next group.
 * A group therefore never waits for a Message-ID lock while holding one. */
static ib_status
pg_lock_message_ids(ib_tx *tx, const ib_message *m)
{
  static const char sql_wait[] = "SELECT pg_advisory_xact_lock($1::bigint)";
  static const char sql_try[] = "SELECT pg_try_advisory_xact_lock($1::bigint)";
  GArray *keys = g_array_new(FALSE, FALSE, sizeof(int64_t));
  add_key(keys, m->message_id);
  add_key(keys, m->in_reply_to);
  for (guint i = 0; m->references && i < m->references->len; i++)
    add_key(keys, g_ptr_array_index(m->references, i));
  if (m->bounce)
    add_key(keys, m->bounce->original_message_id);
  if (m->complaint)
    add_key(keys, m->complaint->original_message_id);
  g_array_sort(keys, compare_i64);
  int wait = !tx->keys_locked;
  ib_status st = IB_OK;
  for (guint i = 0; i < keys->len && st == IB_OK; i++) {
    int64_t k = g_array_index(keys, int64_t, i);
    if (i > 0 && k == g_array_index(keys, int64_t, i - 1))
      continue;
    pg_params p = {0};
    pg_int(&p, k);
    const char *sql = wait ? sql_wait : sql_try;
    PGresult *r = pg_query(tx->pg, sql, &p, 0);
    st = pg_check(tx->pg, r, "lock a conversation");
    if (st == IB_OK && !wait && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
      tx->lock_busy = 1;
      st = IB_ERR_STORAGE;
    }
    PQclear(r);
  }
  if (keys->len)
    tx->keys_locked = 1;
  g_array_unref(keys);
  return st;
}

/* Run SQL with P; on one row copy what ROW wants. IB_ERR_NOT_FOUND when none. */
static ib_status
one_row(pg_conn *c, const char *sql, const pg_params *p, const char *what, PGresult **r_out)
{
  PGresult *r = pg_query(c, sql, p, 0);
  ib_status st = pg_check(c, r, what);
  if (st == IB_OK && PQntuples(r) == 0)
    st = IB_ERR_NOT_FOUND;
  if (st != IB_OK) {
    PQclear(r);
    r = NULL;
  }
  *r_out = r;
  return st;
}

static ib_status
pg_find_duplicate(ib_tx *tx, const ib_message *m, const store_prepared *prep, const char *event_id,
                  store_msg_ref *ref_out)
{
  static const char sql_by_content[] =
      "SELECT id, ticket_id, classification FROM messages "
      "WHERE rfc_message_id = $1 AND raw_sha256 = $2 AND envelope_to = $3";
  static const char sql_by_event[] = "SELECT id, ticket_id, classification FROM messages "
                                     "WHERE provider = $1 AND event_id = $2";
  pg_params p = {0};
  pg_text(&p, m->message_id);
  pg_text(&p, m->raw_sha256);
  pg_text(&p, prep->envelope_key);
  PGresult *r = NULL;
  ib_status st = one_row(tx->pg, sql_by_content, &p, "look up duplicates", &r);
  if (st == IB_ERR_NOT_FOUND && event_id && m->provider) {
    pg_params e = {0};
    pg_text(&e, m->provider);
    pg_text(&e, event_id);
    st = one_row(tx->pg, sql_by_event, &e, "look up duplicates", &r);
  }
  if (st == IB_OK) {
    ref_out->message_id = pg_int_at(r, 0, 0);
    ref_out->ticket_id = pg_int_at(r, 0, 1);
    g_strlcpy(ref_out->classification, PQgetvalue(r, 0, 2), sizeof ref_out->classification);
  }
  PQclear(r);
  return st;
}

static ib_status
pg_create_ticket(ib_tx *tx, const ib_message *m, const char *status, int64_t *ticket_out)
{
  static const char sql[] = "INSERT INTO tickets (subject, customer_name, customer_address, "
                            "created_at, updated_at, status) VALUES ($1, $2, $3, $4, $4, $5) "
                            "RETURNING id";
  pg_params p = {0};
  pg_text(&p, m->subject);
  pg_text(&p, m->from ? m->from->name : NULL);
  pg_text(&p, m->from ? m->from->address : NULL);
  pg_text(&p, tx->now);
  pg_text(&p, status);
  PGresult *r = NULL;
  ib_status st = one_row(tx->pg, sql, &p, "create a ticket", &r);
  if (st == IB_OK)
    *ticket_out = pg_int_at(r, 0, 0);
  PQclear(r);
  return st == IB_ERR_NOT_FOUND ? IB_ERR_INTERNAL : st;
}

/* Search text as the SQLite index tokenizes it: letters, digits and marks; everything
 * else separates words (so an address is found by its parts). New. */
static char *
search_words(const char *folded)
{
  GString *out = g_string_sized_new(folded ? strlen(folded) : 0);
  for (const char *p = folded ? folded : ""; *p; p = g_utf8_next_char(p)) {
    gunichar ch = g_utf8_get_char(p);
    if (g_unichar_isalnum(ch) || g_unichar_ismark(ch))
      g_string_append_unichar(out, ch);
    else if (out->len && out->str[out->len - 1] != ' ')
      g_string_append_c(out, ' ');
  }
  return g_string_free(out, FALSE);
}

static ib_status
insert_attachments(ib_tx *tx, int64_t message_id, const ib_message *m)
{
  static const char sql[] =
      "INSERT INTO attachments (message_id, position, filename, content_type, size, sha256, "
      "content_id, disposition, in_file, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
  const char *dir = tx->store->attachment_dir;
  for (guint i = 0; i < m->attachments->len; i++) {
    const ib_attachment *a = g_ptr_array_index(m->attachments, i);
    gsize len = 0;
    const void *data = a->data ? g_bytes_get_data(a->data, &len) : NULL;
    ib_status st;
    /* The file is durable before the row that names it commits. */
    if (dir && (st = store_file_put(dir, a->sha256, data, len)) != IB_OK)
      return st;
    pg_params p = {0};
    pg_int(&p, message_id);
    pg_int(&p, i);
    pg_text(&p, a->filename);
    pg_text(&p, a->content_type ? a->content_type : "application/octet-stream");
    pg_int(&p, (int64_t)len);
    pg_text(&p, a->sha256);
    pg_text(&p, a->content_id);
    pg_text(&p, a->disposition == IB_DISP_INLINE ? "inline" : "attachment");
    pg_int(&p, dir ? 1 : 0);
    if (dir)
      pg_bytes(&p, "", 0);
    else
      pg_bytes(&p, data, len);
    PGresult *r = pg_query(tx->pg, sql, &p, 0);
    st = pg_check(tx->pg, r, "store an attachment");
    PQclear(r);
    if (st != IB_OK)
      return st;
  }
  return IB_OK;
}

static ib_status
pg_insert_message(ib_tx *tx, int64_t ticket_id, const ib_message *m, const store_prepared *prep,
                  GBytes *raw, int rebuilt, const char *event_id, int64_t *message_out)
{
  static const char sql_msg[] =
      "INSERT INTO messages (ticket_id, direction, classification, provider, rfc_message_id, "
      "raw_sha256, envelope_to, event_id, from_address, snippet, doc, created_at, "
      "thread_reason, search) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
      "to_tsvector('simple', inboxd_unaccent($14)) || to_tsvector('simple', inboxd_unaccent($15)) "
      "|| to_tsvector('simple', inboxd_unaccent($16))) RETURNING id";
  static const char sql_raw[] =
      "INSERT INTO raw_messages (message_id, rebuilt, bytes) VALUES ($1, $2, $3)";
  static const char sql_ticket[] =
      "UPDATE tickets SET message_count = message_count + 1, last_message_id = $2, "
      "updated_at = $3, version = version + 1 WHERE id = $1";
  if (!prep->doc_text)
    return IB_ERR_NOMEM;
  char *words[3] = {search_words(prep->fts_subject), search_words(prep->fts_body),
                    search_words(prep->fts_names)};
  pg_params p = {0};
  pg_int(&p, ticket_id);
  pg_text(&p, m->direction ? m->direction : "inbound");
  pg_text(&p, ib_class_str(m->classification));
  pg_text(&p, m->provider);
  pg_text(&p, m->message_id);
  pg_text(&p, m->raw_sha256);
  pg_text(&p, prep->envelope_key);
  pg_text(&p, event_id);
  pg_text(&p, m->from ? m->from->address : NULL);
  pg_text(&p, prep->snippet);
  pg_text(&p, prep->doc_text);
  pg_text(&p, tx->now);
  pg_text(&p, m->thread_reason);
  for (int i = 0; i < 3; i++)
    pg_text(&p, words[i]);
  PGresult *r = NULL;
  ib_status st = one_row(tx->pg, sql_msg, &p, "store a message", &r);
  for (int i = 0; i < 3; i++)
    g_free(words[i]);
  if (st != IB_OK)
    return st == IB_ERR_NOT_FOUND ? IB_ERR_INTERNAL : st;
  int64_t id = pg_int_at(r, 0, 0);
  PQclear(r);

  if (raw) {
    gsize len = 0;
    const void *data = g_bytes_get_data(raw, &len);
    pg_params q = {0};
    pg_int(&q, id);
    pg_int(&q, rebuilt ? 1 : 0);
    pg_bytes(&q, data, len);
    r = pg_query(tx->pg, sql_raw, &q, 0);
    st = pg_check(tx->pg, r, "store raw bytes");
    PQclear(r);
    if (st != IB_OK)
      return st;
  }
  if ((st = insert_attachments(tx, id, m)) != IB_OK)
    return st;
  pg_params t = {0};
  pg_int(&t, ticket_id);
  pg_int(&t, id);
  pg_text(&t, tx->now);
  r = pg_query(tx->pg, sql_ticket, &t, 0);
  st = pg_check(tx->pg, r, "update a ticket");
  PQclear(r);
  if (st == IB_OK)
    *message_out = id;
  return st;
}

static ib_status
pg_update_ticket(ib_tx *tx, int64_t id, const char *status, const char *tags_json, int *changed_out)
{
  static const char sql[] =
      "UPDATE tickets SET status = COALESCE($2::text, status), tags = COALESCE($3::text, tags), "
      "updated_at = $4, version = version + 1 WHERE id = $1 AND "
      "(status IS DISTINCT FROM COALESCE($2::text, status) "
      " OR tags IS DISTINCT FROM COALESCE($3::text, tags))";
  static const char sql_exists[] = "SELECT 1 FROM tickets WHERE id = $1";
  *changed_out = 0;
  pg_params e = {0};
  pg_int(&e, id);
  PGresult *r = NULL;
  ib_status st = one_row(tx->pg, sql_exists, &e, "read a ticket", &r);
  PQclear(r);
  if (st != IB_OK)
    return st;
  pg_params p = {0};
  pg_int(&p, id);
  pg_text(&p, status);
  pg_text(&p, tags_json);
  pg_text(&p, tx->now);
  r = pg_query(tx->pg, sql, &p, 0);
  st = pg_check(tx->pg, r, "update a ticket");
  if (st == IB_OK)
    *changed_out = g_ascii_strtoll(PQcmdTuples(r), NULL, 10) > 0;
  PQclear(r);
  return st;
}

static ib_status
pg_add_event(ib_tx *tx, const char *type, int64_t ticket_id, int64_t message_id)
{
  pg_event *e = g_new0(pg_event, 1);
  e->type = g_strdup(type);
  e->ticket_id = ticket_id;
  e->message_id = message_id;
  g_ptr_array_add(tx->events, e);
  /* The seq is given at the end of the group; the hook prepares the delivery now (the
   * ticket as it is at this event). */
  if (tx->store->on_event)
    return tx->store->on_event(tx->store->on_event_arg, tx, 0, type, ticket_id, message_id);
  return IB_OK;
}

static ib_status
pg_replay_check(ib_tx *tx, const char *provider, const char *token, int64_t expires)
{
  static const char sql_purge[] = "DELETE FROM replay_tokens WHERE expires_at < $1";
  static const char sql_insert[] =
      "INSERT INTO replay_tokens (provider, token, expires_at) VALUES ($1, $2, $3) "
      "ON CONFLICT DO NOTHING";
  pg_params p = {0};
  pg_int(&p, g_get_real_time() / G_USEC_PER_SEC);
  PGresult *r = pg_query(tx->pg, sql_purge, &p, 0);
  ib_status st = pg_check(tx->pg, r, "purge replay tokens");
  PQclear(r);
  if (st != IB_OK)
    return st;
  pg_params q = {0};
  pg_text(&q, provider);
  pg_text(&q, token);
  pg_int(&q, expires);
  r = pg_query(tx->pg, sql_insert, &q, 0);
  st = pg_check(tx->pg, r, "remember a replay token");
  int inserted = st == IB_OK && g_ascii_strtoll(PQcmdTuples(r), NULL, 10) == 1;
  PQclear(r);
  if (st != IB_OK)
    return st;
  return inserted ? IB_OK : IB_ERR_CONFLICT;
}

static ib_status
pg_ticket_of_message_id(ib_tx *tx, const char *msgid, int64_t *ticket_out)
{
  static const char sql[] = "SELECT ticket_id FROM messages WHERE rfc_message_id = $1 "
                            "ORDER BY id DESC LIMIT 1";
  pg_params p = {0};
  pg_text(&p, msgid);
  PGresult *r = NULL;
  ib_status st = one_row(tx->pg, sql, &p, "look up a Message-ID", &r);
  if (st == IB_OK)
    *ticket_out = pg_int_at(r, 0, 0);
  PQclear(r);
  return st;
}

static char *
dup_or_null(const PGresult *r, int row, int col)
{
  return PQgetisnull(r, row, col) ? NULL : g_strdup(PQgetvalue(r, row, col));
}

static ib_status
pg_ticket_brief_get(ib_tx *tx, int64_t ticket, store_ticket_brief *out)
{
  static const char sql[] =
      "SELECT subject, customer_name, customer_address, status FROM tickets WHERE id = $1";
  memset(out, 0, sizeof *out);
  pg_params p = {0};
  pg_int(&p, ticket);
  PGresult *r = NULL;
  ib_status st = one_row(tx->pg, sql, &p, "read a ticket", &r);
  if (st == IB_OK) {
    out->subject = dup_or_null(r, 0, 0);
    out->customer_name = dup_or_null(r, 0, 1);
    out->customer_address = dup_or_null(r, 0, 2);
    g_strlcpy(out->status, PQgetvalue(r, 0, 3), sizeof out->status);
  }
  PQclear(r);
  return st;
}

static ib_status
pg_is_participant(ib_tx *tx, int64_t ticket, const char *address, int *yes_out)
{
  static const char sql[] =
      "SELECT 1 FROM participants WHERE ticket_id = $1 AND lower(address) = lower($2)";
  *yes_out = 0;
  if (!address)
    return IB_OK;
  pg_params p = {0};
  pg_int(&p, ticket);
  pg_text(&p, address);
  PGresult *r = NULL;
  ib_status st = one_row(tx->pg, sql, &p, "look up a participant", &r);
  PQclear(r);
  if (st == IB_OK)
    *yes_out = 1;
  return st == IB_ERR_NOT_FOUND ? IB_OK : st;
}

static ib_status
pg_add_participant(ib_tx *tx, int64_t ticket, const char *address, const char *role)
{
  static const char sql[] = "INSERT INTO participants (ticket_id, address, role) "
                            "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
  if (!address || !*address)
    return IB_OK;
  pg_params p = {0};
  pg_int(&p, ticket);
  pg_text(&p, address);
  pg_text(&p, role);
  PGresult *r = pg_query(tx->pg, sql, &p, 0);
  ib_status st = pg_check(tx->pg, r, "add a participant");
  PQclear(r);
  return st;
}

static ib_status
pg_count_automatic(ib_tx *tx, const char *address, const char *since, int cap, int *count_out)
{
  static const char sql[] =
      "SELECT count(*) FROM (SELECT 1 FROM messages WHERE lower(from_address) = lower($1) "
      "AND created_at >= $2 AND classification IN ('auto_reply', 'bounce') LIMIT $3) x";
  *count_out = 0;
  if (!address)
    return IB_OK;
  pg_params p = {0};
  pg_text(&p, address);
  pg_text(&p, since);
  pg_int(&p, cap);
  PGresult *r = NULL;
  ib_status st = one_row(tx->pg, sql, &p, "count automatic messages", &r);
  if (st == IB_OK)
    *count_out = (int)pg_int_at(r, 0, 0);
  PQclear(r);
  return st == IB_ERR_NOT_FOUND ? IB_OK : st;
}

static ib_status
pg_flag_loop(ib_tx *tx, int64_t message_id)
{
  static const char sql[] = "UPDATE messages SET loop_suspect = 1 WHERE id = $1";
  pg_params p = {0};
  pg_int(&p, message_id);
  PGresult *r = pg_query(tx->pg, sql, &p, 0);
  ib_status st = pg_check(tx->pg, r, "flag a message");
  PQclear(r);
  return st;
}

static ib_status
pg_add_suppression(ib_tx *tx, const char *address, const char *reason, const char *status,
                   const char *diagnostic, int64_t message_id)
{
  static const char sql[] =
      "INSERT INTO suppressions (address, reason, status, diagnostic, message_id, at) "
      "VALUES ($1, $2, $3, $4, $5, $6) "
      "ON CONFLICT (lower(address)) DO UPDATE SET reason = excluded.reason, "
      "status = excluded.status, diagnostic = excluded.diagnostic, "
      "message_id = excluded.message_id, at = excluded.at "
      "WHERE excluded.reason <> 'soft_bounce' OR suppressions.reason = 'soft_bounce'";
  if (!address || !*address)
    return IB_OK;
  pg_params p = {0};
  pg_text(&p, address);
  pg_text(&p, reason);
  pg_text(&p, status);
  pg_text(&p, diagnostic);
  pg_int(&p, message_id);
  pg_text(&p, tx->now);
  PGresult *r = pg_query(tx->pg, sql, &p, 0);
  ib_status st = pg_check(tx->pg, r, "add a suppression");
  PQclear(r);
  return st;
}

static ib_status
pg_thread_ids(ib_tx *tx, int64_t ticket, GPtrArray *ids_out, char **last_inbound_out)
{
  static const char sql[] =
      "SELECT rfc_message_id, direction FROM messages WHERE ticket_id = $1 ORDER BY id";
  *last_inbound_out = NULL;
  pg_params p = {0};
  pg_int(&p, ticket);
  PGresult *r = pg_query(tx->pg, sql, &p, 0);
  ib_status st = pg_check(tx->pg, r, "read the thread of a ticket");
  for (int i = 0; st == IB_OK && i < PQntuples(r); i++) {
    const char *id = PQgetvalue(r, i, 0);
    g_ptr_array_add(ids_out, g_strdup(id));
    if (strcmp(PQgetvalue(r, i, 1), "inbound") == 0) {
      g_free(*last_inbound_out);
      *last_inbound_out = g_strdup(id);
    }
  }
  PQclear(r);
  return st;
}

const store_ops store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close_backend,
    .run_batch = pg_run_batch,
    .lock_message_ids = pg_lock_message_ids,
    .find_duplicate = pg_find_duplicate,
    .create_ticket = pg_create_ticket,
    .insert_message = pg_insert_message,
    .update_ticket = pg_update_ticket,
    .add_event = pg_add_event,
    .replay_check = pg_replay_check,
    .ticket_of_message_id = pg_ticket_of_message_id,
    .ticket_brief_get = pg_ticket_brief_get,
    .is_participant = pg_is_participant,
    .add_participant = pg_add_participant,
    .count_automatic = pg_count_automatic,
    .flag_loop = pg_flag_loop,
    .add_suppression = pg_add_suppression,
    .thread_ids = pg_thread_ids,
    .suppressions = pg_store_suppressions,
    .ping = pg_store_ping,
    .ticket_thread = pg_store_ticket_thread,
    .list_tickets = pg_store_list_tickets,
    .message = pg_store_message,
    .raw_size = pg_store_raw_size,
    .attachment_info_get = pg_store_attachment_info_get,
    .blob_read = pg_store_blob_read,
    .events = pg_store_events,
    .outbox_on_event = pg_outbox_on_event,
    .outbox_set_config = pg_outbox_set_config,
    .outbox_get_config = pg_outbox_get_config,
    .outbox_claim = pg_outbox_claim,
    .outbox_finish = pg_outbox_finish,
    .outbox_recover = pg_outbox_recover,
    .outbox_retry = pg_outbox_retry,
    .outbox_next_due = pg_outbox_next_due,
    .outbox_list = pg_outbox_list,
    .outbox_stats_get = pg_outbox_stats_get,
};
