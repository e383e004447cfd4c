/* store_search.c: the SQLite backend's full-text index (FTS5), kept in a database file of
 * its own next to the main one ("<db>.search") and written by a thread of its own.
 *
 * Indexing is the costliest step of a write: measured with tests/bench/run.sh, the
 * writer spent about 40% of its time in FTS5 and ingest ran a third faster without it.
 * Nothing in a 2xx depends on it, so it is off the commit path: the writer hands each
 * committed group's rows (folded on the HTTP workers by store_prepare()) to this
 * thread, which writes them in its own transactions on its own file, in parallel with
 * the writer's next group. A second file, because SQLite has one writer per database:
 * an indexer writing into the main file would stall the writer.
 *
 * What that keeps:
 * - Read your writes. A search first waits (at most SEARCH_WAIT_MS) until every message
 *   this process committed before the search began is indexed, and the catch-up below
 *   has finished, so a client that got its 2xx finds the message at once. While the
 *   index cannot be written (disk full), searches do not wait and miss the newest
 *   messages until it recovers; during a long catch-up they answer after SEARCH_WAIT_MS
 *   from what is indexed so far.
 * - Nothing is lost from the index. It is derived data: with search_catch_up (the
 *   server), messages of the main file missing from the index (the process died between
 *   the two commits, the index file was deleted, an upgrade from the index inside the
 *   main file) are indexed again at start, from their stored documents, in the
 *   background. Rows are inserted only when their id is not indexed yet, so two
 *   processes (the server and `inboxd ingest`) never index a message twice.
 * - The index file uses synchronous=NORMAL: a power cut may lose its last transactions,
 *   never its consistency, and the next start indexes those messages again. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "store_sqlite.h"

#define SEARCH_WAIT_MS 2000
/* Rows kept while the index cannot be written; past that they are dropped and indexed
 * again at the next start (catch-up). */
#define SEARCH_QUEUE_MAX 200000
#define CATCH_UP_CHUNK 256
/* The indexer gathers rows this long before it writes them, unless a search waits for
 * them: FTS5 writes a segment, and merges segments, per transaction, so a few larger
 * transactions cost far less I/O than one per group of the writer. */
#define SEARCH_GATHER_MS 50

/* The same table as schema/sqlite/003_search.sql had in the main file (moved by 008).
 * Text is folded by inboxd (fold_text: case, ı/ß/ø...) and the tokenizer removes
 * diacritics, so "sikayet" finds "şikayet". Contentless: the text lives in
 * messages.doc; rowid = messages.id. */
static const char sql_schema[] =
    "CREATE VIRTUAL TABLE IF NOT EXISTS search.message_search USING fts5("
    "  subject, body, names, content = '', tokenize = 'unicode61 remove_diacritics 2')";

struct search_index {
  char *path; /* <db>.search */
  ib_db *db;  /* the indexer's connection: the main file, the index attached as "search" */
  pthread_t thread;
  int started;

  GMutex lock;
  GCond wake;            /* rows queued, or stopping */
  GCond indexed;         /* `done` moved, or `failing` was set */
  GPtrArray *queue;      /* of search_row*, in commit order */
  int64_t handed;        /* newest message id handed over by the writer */
  int64_t done;          /* newest of those written to the index */
  int64_t catch_up_upto; /* catch-up looks at ids up to this (newest at open), 0: none */
  int catching_up;       /* until the catch-up has finished: searches wait for it too */
  int failing;           /* the last write failed: searches do not wait */
  int urgent;            /* a search waits for the queued rows */
  int dropped;           /* rows were dropped while failing (logged once) */
  int stopping;
};

void
search_row_free(gpointer p)
{
  search_row *r = p;
  g_free(r->subject);
  g_free(r->body);
  g_free(r->names);
  g_free(r);
}

static char *
index_path(const ib_store *s)
{
  return g_strconcat(s->path, ".search", NULL);
}

ib_status
search_attach(ib_store *s, ib_db *db)
{
  char *path = index_path(s);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db_handle(db), "ATTACH DATABASE ?1 AS search", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  ib_status res = IB_OK;
  if (rc != SQLITE_DONE && rc != SQLITE_OK) {
    log_error("cannot open the search index %s: %s", path, sqlite3_errmsg(db_handle(db)));
    res = db_status(rc);
    if (res == IB_OK)
      res = IB_ERR_STORAGE;
  }
  g_free(path);
  return res;
}

/* ---- Writing ----------------------------------------------------------------------- */

/* Write ROWS in one transaction of the index. A plain BEGIN: IMMEDIATE would take the
 * main file's write lock as well.
 *
 * The "already indexed?" check is a statement of its own, and the insert a one-row
 * INSERT ... VALUES: an INSERT ... SELECT runs in a statement transaction, and FTS5 flushes
 * its pending terms to a new on-disk segment at every statement savepoint, i.e. once per
 * row. Plain inserts keep the terms in memory until COMMIT: one segment per transaction,
 * and half the indexer's work (callgrind, tests/bench/profile.py: 375,000 -> 183,000
 * instructions per message). */
static ib_status
write_rows(ib_db *db, GPtrArray *rows)
{
  static const char sql_exists[] = "SELECT 1 FROM search.message_search_docsize WHERE id = ?1";
  static const char sql_insert[] = "INSERT INTO search.message_search (rowid, subject, body, "
                                   "names) VALUES (?1, ?2, ?3, ?4)";
  if (db_exec(db, "BEGIN") != IB_OK)
    return IB_ERR_STORAGE;
  ib_status st = IB_OK;
  for (guint i = 0; i < rows->len && st == IB_OK; i++) {
    const search_row *r = g_ptr_array_index(rows, i);
    sqlite3_stmt *exists = db_stmt(db, sql_exists), *insert = db_stmt(db, sql_insert);
    if (!exists || !insert) {
      st = IB_ERR_INTERNAL;
      break;
    }
    sqlite3_bind_int64(exists, 1, r->id);
    st = store_step_row(exists);
    sqlite3_reset(exists);
    if (st == IB_OK)
      continue; /* indexed by another process (inboxd ingest) */
    if (st != IB_ERR_NOT_FOUND)
      break;
    sqlite3_bind_int64(insert, 1, r->id);
    sqlite3_bind_text(insert, 2, r->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(insert, 3, r->body, -1, SQLITE_STATIC);
    sqlite3_bind_text(insert, 4, r->names, -1, SQLITE_STATIC);
    st = store_step_done(db, insert, "index a message");
  }
  if (st == IB_OK)
    st = db_exec(db, "COMMIT");
  if (st != IB_OK && !sqlite3_get_autocommit(db_handle(db)))
    db_exec(db, "ROLLBACK");
  return st;
}

/* Sleep up to MS unless stopping. Called and returns with x->lock held. */
static void
wait_unless_stopping(search_index *x, int64_t ms)
{
  gint64 until = g_get_monotonic_time() + ms * G_TIME_SPAN_MILLISECOND;
  while (!x->stopping && g_cond_wait_until(&x->wake, &x->lock, until)) {
  }
}

/* ---- Catch-up ---------------------------------------------------------------------- */

static gint
compare_desc(gconstpointer a, gconstpointer b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* The ids up to UPTO of messages missing from the index, newest first. Message rows are
 * large (the document is in the row), so ids are read from the compact messages_ticket
 * index, never from the table; and when the index has as many rows as there are messages
 * (messages are never deleted), nothing is missing and nothing more is read. */
static ib_status
missing_ids(ib_db *db, int64_t upto, GArray *ids)
{
  static const char sql_count[] =
      "SELECT (SELECT count(*) FROM messages INDEXED BY messages_ticket WHERE id <= ?1) - "
      "(SELECT count(*) FROM search.message_search_docsize WHERE id <= ?1)";
  static const char sql_missing[] =
      "SELECT id FROM messages INDEXED BY messages_ticket WHERE id <= ?1 AND id NOT IN "
      "(SELECT id FROM search.message_search_docsize WHERE id <= ?1)";
  sqlite3_stmt *st = db_stmt(db, sql_count);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, upto);
  int rc = sqlite3_step(st);
  int64_t lacking = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW)
    return db_status(rc);
  if (lacking <= 0)
    return IB_OK;
  if (!(st = db_stmt(db, sql_missing)))
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, upto);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    g_array_append_val(ids, id);
  }
  sqlite3_reset(st);
  g_array_sort(ids, compare_desc);
  return rc == SQLITE_DONE ? IB_OK : db_status(rc);
}

/* The index rows of the messages IDS[FROM..TO) rebuilt from their stored documents. */
static ib_status
rows_from_docs(ib_db *db, const GArray *ids, guint from, guint to, GPtrArray *rows)
{
  static const char sql[] = "SELECT doc FROM messages WHERE id = ?1";
  for (guint i = from; i < to; i++) {
    sqlite3_stmt *st = db_stmt(db, sql);
    if (!st)
      return IB_ERR_INTERNAL;
    sqlite3_bind_int64(st, 1, g_array_index(ids, int64_t, i));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      json_t *doc = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
      store_doc_expand(doc); /* stripped_text may be stored as its length */
      json_t *from_obj = json_object_get(doc, "from");
      search_row *r = g_new0(search_row, 1);
      r->id = g_array_index(ids, int64_t, i);
      store_search_text(json_string_value(json_object_get(doc, "subject")),
                        json_string_value(json_object_get(doc, "stripped_text")),
                        json_string_value(json_object_get(doc, "text")),
                        json_string_value(json_object_get(from_obj, "name")),
                        json_string_value(json_object_get(from_obj, "address")), &r->subject,
                        &r->body, &r->names);
      json_decref(doc);
      g_ptr_array_add(rows, r);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return db_status(rc);
  }
  return IB_OK;
}

static ib_status write_queue(search_index *x);

/* Index every message up to x->catch_up_upto that the index lacks. Indexer thread. */
static void
catch_up(search_index *x)
{
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(int64_t));
  ib_status st = missing_ids(x->db, x->catch_up_upto, ids);
  if (st != IB_OK)
    log_warn("cannot compare the search index with the messages: %s", ib_status_str(st));
  if (ids->len)
    log_info("indexing %u messages missing from the search index %s", ids->len, x->path);
  int64_t started = clock_mono_ms();
  guint n = 0;
  for (guint i = 0; st == IB_OK && i < ids->len; i += CATCH_UP_CHUNK) {
    g_mutex_lock(&x->lock);
    int stop = x->stopping;
    g_mutex_unlock(&x->lock);
    if (stop)
      break;
    GPtrArray *rows = g_ptr_array_new_with_free_func(search_row_free);
    st = rows_from_docs(x->db, ids, i, MIN(i + CATCH_UP_CHUNK, ids->len), rows);
    if (st == IB_OK)
      st = write_rows(x->db, rows);
    if (st == IB_OK)
      n += rows->len;
    g_ptr_array_unref(rows);
    /* New mail keeps arriving during a long catch-up: index it between chunks, so the
     * queue stays small and fresh messages are searchable at once. */
    g_mutex_lock(&x->lock);
    if (x->queue->len)
      write_queue(x);
    g_mutex_unlock(&x->lock);
  }
  if (st != IB_OK)
    log_warn("search index catch-up stopped after %u messages: %s (again at the next start)", n,
             ib_status_str(st));
  else if (n)
    log_info("indexed %u messages in %lld ms", n, (long long)(clock_mono_ms() - started));
  g_array_unref(ids);
  g_mutex_lock(&x->lock);
  x->catching_up = 0;
  g_cond_broadcast(&x->indexed);
  g_mutex_unlock(&x->lock);
}

/* ---- The indexer thread ------------------------------------------------------------- */

/* Write every queued row in one transaction. On failure the rows go back in front of the
 * queue (unless that would pass SEARCH_QUEUE_MAX, or the index is stopping: then the next
 * start indexes them). Called and returns with x->lock held. */
static ib_status
write_queue(search_index *x)
{
  GPtrArray *rows = x->queue;
  x->queue = g_ptr_array_new_with_free_func(search_row_free);
  int stopping = x->stopping;
  g_mutex_unlock(&x->lock);
  ib_status st = write_rows(x->db, rows);
  g_mutex_lock(&x->lock);
  if (st == IB_OK) {
    x->done = ((search_row *)g_ptr_array_index(rows, rows->len - 1))->id;
    if (x->failing)
      log_info("the search index %s is written again", x->path);
    x->failing = 0;
    g_ptr_array_unref(rows);
  } else {
    if (!x->failing)
      log_warn("cannot write the search index %s: %s (retrying; searches miss the newest "
               "messages meanwhile)",
               x->path, ib_status_str(st));
    x->failing = 1;
    if (rows->len + x->queue->len <= SEARCH_QUEUE_MAX && !stopping) {
      g_ptr_array_extend_and_steal(rows, x->queue);
      x->queue = rows;
    } else {
      if (!x->dropped)
        log_warn("search index: %u rows dropped, indexed again at the next start", rows->len);
      x->dropped = 1;
      g_ptr_array_unref(rows);
    }
  }
  g_cond_broadcast(&x->indexed);
  return st;
}

static void *
indexer_main(void *arg)
{
  search_index *x = arg;
  pthread_setname_np(pthread_self(), "search-index");
  if (x->catch_up_upto > 0)
    catch_up(x);
  int64_t backoff = 0;
  g_mutex_lock(&x->lock);
  for (;;) {
    while (x->queue->len == 0 && !x->stopping)
      g_cond_wait(&x->wake, &x->lock);
    if (x->queue->len == 0)
      break; /* stopping, and everything is written */
    gint64 gather_until = g_get_monotonic_time() + SEARCH_GATHER_MS * G_TIME_SPAN_MILLISECOND;
    while (!x->urgent && !x->stopping && x->queue->len < SEARCH_QUEUE_MAX / 4 &&
           g_cond_wait_until(&x->wake, &x->lock, gather_until)) {
    }
    x->urgent = 0;
    if (write_queue(x) == IB_OK) {
      backoff = 0;
      continue;
    }
    if (x->stopping)
      break; /* the next start indexes what is left */
    backoff = backoff ? MIN(backoff * 2, 5000) : 100;
    wait_unless_stopping(x, backoff);
  }
  g_mutex_unlock(&x->lock);
  return NULL;
}

/* ---- API --------------------------------------------------------------------------- */

/* The newest message id of the main file. */
static int64_t
newest_message(ib_db *db)
{
  int64_t id = 0;
  sqlite3_stmt *st = db_stmt(db, "SELECT max(id) FROM messages");
  if (st && sqlite3_step(st) == SQLITE_ROW)
    id = sqlite3_column_int64(st, 0);
  if (st)
    sqlite3_reset(st);
  return id;
}

ib_status
search_open(ib_store *s, char **error_out)
{
  search_index *x = g_new0(search_index, 1);
  x->path = index_path(s);
  x->queue = g_ptr_array_new_with_free_func(search_row_free);
  g_mutex_init(&x->lock);
  g_cond_init(&x->wake);
  g_cond_init(&x->indexed);
  s->search = x;

  ib_status st = db_open(s->path, s->busy_ms, &x->db, error_out);
  if (st == IB_OK && (st = search_attach(s, x->db)) != IB_OK)
    *error_out = g_strdup_printf("cannot open the search index %s", x->path);
  if (st == IB_OK && (db_exec(x->db, "PRAGMA search.journal_mode=WAL") != IB_OK ||
                      db_exec(x->db, "PRAGMA search.synchronous=NORMAL") != IB_OK ||
                      db_exec(x->db, sql_schema) != IB_OK)) {
    *error_out = g_strdup_printf("cannot create the search index %s", x->path);
    st = IB_ERR_STORAGE;
  }
  if (st != IB_OK)
    return st;
  if (s->search_catch_up)
    x->catch_up_upto = newest_message(x->db);
  x->catching_up = x->catch_up_upto > 0;
  if (pthread_create(&x->thread, NULL, indexer_main, x) != 0) {
    *error_out = g_strdup("cannot start the search indexer thread");
    return IB_ERR_INTERNAL;
  }
  x->started = 1;
  return IB_OK;
}

void
search_close(ib_store *s)
{
  search_index *x = s->search;
  if (!x)
    return;
  if (x->started) {
    g_mutex_lock(&x->lock);
    x->stopping = 1;
    g_cond_broadcast(&x->wake);
    g_mutex_unlock(&x->lock);
    pthread_join(x->thread, NULL);
  }
  if (x->db) {
    sqlite3_busy_timeout(db_handle(x->db), 0);
    sqlite3_wal_checkpoint_v2(db_handle(x->db), "search", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    db_close(x->db);
  }
  g_ptr_array_unref(x->queue);
  g_mutex_clear(&x->lock);
  g_cond_clear(&x->wake);
  g_cond_clear(&x->indexed);
  g_free(x->path);
  g_free(x);
  s->search = NULL;
}

void
search_add(ib_store *s, GPtrArray *rows)
{
  search_index *x = s->search;
  if (rows->len == 0)
    return;
  g_mutex_lock(&x->lock);
  x->handed = ((search_row *)g_ptr_array_index(rows, rows->len - 1))->id;
  g_ptr_array_extend_and_steal(x->queue, g_ptr_array_ref(rows));
  g_cond_signal(&x->wake);
  g_mutex_unlock(&x->lock);
}

void
search_wait(ib_store *s)
{
  search_index *x = s->search;
  gint64 until = g_get_monotonic_time() + SEARCH_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  g_mutex_lock(&x->lock);
  int64_t target = x->handed;
  if (x->done < target) {
    x->urgent = 1;
    g_cond_signal(&x->wake);
  }
  while ((x->done < target || x->catching_up) && !x->failing && !x->stopping &&
         g_cond_wait_until(&x->indexed, &x->lock, until)) {
  }
  g_mutex_unlock(&x->lock);
}
