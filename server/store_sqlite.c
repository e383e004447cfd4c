#include "store.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "db.h"
#include "embedded.h"
#include "fold.h"
#include "log.h"
#include "metrics.h"
#include "store_sqlite.h"

/* ---- Migrations -------------------------------------------------------------------- */

static int
migration_number(const char *name)
{
  /* "sqlite/NNN_name.sql" */
  const char *base = strchr(name, '/');
  base = base ? base + 1 : name;
  return (int)g_ascii_strtoll(base, NULL, 10);
}

/* The schema version: meta's "schema_version" row, 0 for a new database (no meta table). */
static ib_status
schema_version(ib_db *db, const char *path, int *version_out, char **error_out)
{
  static const char sql_table[] =
      "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'";
  static const char sql_version[] = "SELECT value FROM meta WHERE key = 'schema_version'";
  *version_out = 0;
  sqlite3_stmt *st = db_stmt(db, sql_table);
  int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
  if (st)
    sqlite3_reset(st);
  if (rc == SQLITE_ROW) {
    st = db_stmt(db, sql_version);
    rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW)
      *version_out = (int)g_ascii_strtoll((const char *)sqlite3_column_text(st, 0), NULL, 10);
    if (st)
      sqlite3_reset(st);
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    *error_out = g_strdup_printf("cannot read the schema version of %s: %s", path,
                                 sqlite3_errmsg(db_handle(db)));
    return IB_ERR_STORAGE;
  }
  return IB_OK;
}

/* Apply one embedded migration file and record its number, in one transaction. The SQL is
 * our own file, compiled in; nothing of it comes from input. */
static ib_status
apply_migration(ib_db *db, const ib_embedded_file *f, int n, char **error_out)
{
  static const char sql_record[] =
      "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)";
  char *err = NULL;
  int rc = sqlite3_exec(db_handle(db), "BEGIN IMMEDIATE", NULL, NULL, &err);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db_handle(db), (const char *)f->data, NULL, NULL, &err);
  if (rc == SQLITE_OK) {
    sqlite3_stmt *st = db_stmt(db, sql_record);
    char num[16];
    g_snprintf(num, sizeof num, "%d", n);
    if (st) {
      sqlite3_bind_text(st, 1, num, -1, SQLITE_TRANSIENT);
      rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db_handle(db));
      sqlite3_reset(st);
    } else {
      rc = SQLITE_ERROR;
    }
  }
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db_handle(db), "COMMIT", NULL, NULL, &err);
  if (rc != SQLITE_OK) {
    *error_out = g_strdup_printf("cannot apply migration %s: %s", f->name,
                                 err ? err : sqlite3_errmsg(db_handle(db)));
    sqlite3_free(err);
    sqlite3_exec(db_handle(db), "ROLLBACK", NULL, NULL, NULL);
    return db_status(rc) == IB_ERR_STORAGE ? IB_ERR_STORAGE : IB_ERR_INTERNAL;
  }
  log_info("applied migration %s", f->name);
  return IB_OK;
}

static ib_status
migrate(ib_db *db, const char *path, char **error_out)
{
  int current = 0;
  ib_status st = schema_version(db, path, &current, error_out);
  if (st != IB_OK)
    return st;
  int newest = 0;
  for (const ib_embedded_file *f = ib_embedded_files; f->name; f++)
    if (g_str_has_prefix(f->name, "sqlite/") && g_str_has_suffix(f->name, ".sql"))
      newest = MAX(newest, migration_number(f->name));
  if (current > newest) {
    *error_out = g_strdup_printf("database %s has schema version %d, newer than this inboxd "
                                 "knows (%d): upgrade inboxd or use another --db",
                                 path, current, newest);
    return IB_ERR_UNSUPPORTED;
  }
  /* ib_embedded_files is sorted by name, and names start with zero-padded numbers. */
  for (const ib_embedded_file *f = ib_embedded_files; f->name && st == IB_OK; f++) {
    if (!g_str_has_prefix(f->name, "sqlite/") || !g_str_has_suffix(f->name, ".sql"))
      continue;
    int n = migration_number(f->name);
    if (n > current)
      st = apply_migration(db, f, n, error_out);
  }
  return st;
}

/* ---- Writer thread ----------------------------------------------------------------- */

/* Queue the message for the full-text index (text folded by store_prepare()); the rows
 * go to the index (store_search.c) once the group has committed. */
static ib_status
index_message(ib_tx *tx, int64_t id, const store_prepared *p)
{
  search_row *r = g_new0(search_row, 1);
  r->id = id;
  r->subject = g_strdup(p->fts_subject);
  r->body = g_strdup(p->fts_body);
  r->names = g_strdup(p->fts_names);
  g_ptr_array_add(tx->search, r);
  return IB_OK;
}

/* Run the cached statement SQL (no bindings, no rows): BEGIN, SAVEPOINT and friends. */
static int
exec_cached(ib_db *db, const char *sql)
{
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return SQLITE_ERROR;
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";
static const char sql_savepoint[] = "SAVEPOINT job";
static const char sql_release[] = "RELEASE job";
static const char sql_rollback_to[] = "ROLLBACK TO job";

static void
sqlite_run_batch(ib_store *s, GPtrArray *batch)
{
  sqlite3 *h = db_handle(s->writer);
  ib_tx tx = {.store = s, .db = s->writer};
  clock_rfc3339(clock_now_ms(), tx.now, sizeof tx.now);
  tx.search = g_ptr_array_new_with_free_func(search_row_free);

  int rc = exec_cached(s->writer, sql_begin);
  if (rc != SQLITE_OK) {
    log_error("cannot begin a write transaction: %s", sqlite3_errmsg(h));
    for (guint i = 0; i < batch->len; i++)
      ((job *)g_ptr_array_index(batch, i))->status = IB_ERR_STORAGE;
    g_ptr_array_unref(tx.search);
    return;
  }
  int aborted = 0;
  for (guint i = 0; i < batch->len && !aborted; i++) {
    job *j = g_ptr_array_index(batch, i);
    /* A savepoint per job, so one failing job does not take the others with it. */
    if (exec_cached(s->writer, sql_savepoint) != SQLITE_OK) {
      aborted = 1;
      break;
    }
    tx.job_search = tx.search->len;
    j->status = j->fn(&tx, j->arg);
    if (sqlite3_get_autocommit(h)) {
      /* SQLite rolled the whole transaction back (disk full, I/O error): every job in
       * this group is lost, including those that had succeeded. */
      aborted = 1;
      break;
    }
    if (j->status != IB_OK) {
      exec_cached(s->writer, sql_rollback_to);
      g_ptr_array_set_size(tx.search, tx.job_search);
    }
    exec_cached(s->writer, sql_release);
  }
  if (!aborted) {
    rc = exec_cached(s->writer, sql_commit);
    if (rc != SQLITE_OK) {
      log_error("cannot commit %u jobs: %s", batch->len, sqlite3_errmsg(h));
      aborted = 1;
    }
  } else {
    log_error("write transaction of %u jobs aborted: %s", batch->len, sqlite3_errmsg(h));
  }
  if (!aborted)
    search_add(s, tx.search);
  g_ptr_array_unref(tx.search);
  if (aborted) {
    if (!sqlite3_get_autocommit(h))
      exec_cached(s->writer, sql_rollback);
    for (guint i = 0; i < batch->len; i++) {
      job *j = g_ptr_array_index(batch, i);
      if (j->status == IB_OK || j->status == IB_ERR_INTERNAL)
        j->status = IB_ERR_STORAGE;
    }
    return;
  }
  if (tx.last_seq)
    store_notify_commit(s, tx.last_seq);
}

/* ---- Checkpoints ------------------------------------------------------------------- */

/* The writer never checkpoints inside its commit (that would add a checkpoint, and its
 * fsync, to some requests' latency): each time the WAL has grown by checkpoint_frames
 * it wakes the checkpoint thread, which checkpoints passively on its own connection. Not
 * after every commit: pages written again and again (index roots, a busy ticket) are
 * then copied once per checkpoint instead of once per commit.
 *
 * SQLite starts the WAL over only when a write transaction begins with every frame
 * already copied and no reader still using the WAL, which never happens under a steady
 * load: each commit adds frames while the checkpoint copies older ones, and the WAL (and
 * the index readers search it with) grows without bound, hundreds of megabytes a minute.
 * Past wal_restart_frames the writer, once its batch is answered and the checkpoint
 * thread's last run ended within half a checkpoint of the end, copies the rest itself
 * and waits (WAL_RESTART_WAIT_MS at first) for the readers of older snapshots to finish,
 * so that its next transaction starts the WAL over. */
#define WAL_RESTART_WAIT_MS 10

/* After a restart the WAL file keeps its size unless it outgrew this. */
#define WAL_SIZE_LIMIT "134217728"

/* The WAL starts over: what was counted in the old one no longer applies. Writer. */
static void
wal_started_over(ib_store *s)
{
  s->wal_frames = 0;
  s->wal_asked_at = 0;
  s->wal_restart_tried = 0;
  s->wal_restart_tries = 0;
  pthread_mutex_lock(&s->lock);
  s->wal_generation++;
  s->checkpoint_done = 0;
  pthread_mutex_unlock(&s->lock);
}

static int
wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
  ib_store *s = arg;
  if (frames < s->wal_frames)
    wal_started_over(s); /* without the writer's catch-up: a checkpoint when idle */
  s->wal_frames = frames;
  if (frames - s->wal_asked_at >= s->checkpoint_frames && s->checkpoint_started) {
    s->wal_asked_at = frames;
    pthread_mutex_lock(&s->lock);
    s->checkpoint_wanted = 1;
    pthread_cond_signal(&s->checkpoint_wake);
    pthread_mutex_unlock(&s->lock);
  }
  return SQLITE_OK;
}

static void
sqlite_after_batch(ib_store *s)
{
  if (s->wal_frames < s->wal_restart_frames)
    return;
  /* After a try that readers foiled, the next waits until the WAL grew a little. */
  if (s->wal_restart_tried && s->wal_frames - s->wal_restart_tried < s->checkpoint_frames / 4)
    return;
  if (s->checkpoint_started) {
    pthread_mutex_lock(&s->lock);
    /* Readers of older snapshots keep the checkpoint thread from copying the last
     * frames: past twice the threshold, go ahead anyway (RESTART waits for them). */
    int near =
        !s->checkpoint_running && (s->wal_frames - s->checkpoint_done <= s->checkpoint_frames / 2 ||
                                   s->wal_frames >= 2 * s->wal_restart_frames);
    pthread_mutex_unlock(&s->lock);
    if (!near)
      return;
  } /* else no checkpoint thread: the writer copies the whole WAL */
  /* Each try that readers foil waits twice as long as the one before (readers that
   * never pause, each reading for milliseconds, would foil short waits for ever). */
  int wait_ms = WAL_RESTART_WAIT_MS << MIN(s->wal_restart_tries, 5);
  sqlite3 *h = db_handle(s->writer);
  sqlite3_busy_timeout(h, wait_ms);
  int rc = sqlite3_wal_checkpoint_v2(h, "main", SQLITE_CHECKPOINT_RESTART, NULL, NULL);
  sqlite3_busy_timeout(h, s->busy_ms);
  if (rc == SQLITE_OK) {
    wal_started_over(s); /* RESTART's promise: the next transaction starts it over */
  } else {
    s->wal_restart_tried = s->wal_frames;
    s->wal_restart_tries++;
    if (rc != SQLITE_BUSY)
      log_warn("cannot checkpoint the WAL: %s", sqlite3_errmsg(h));
  }
}

/* Sync the database file under DB (the checkpoint thread's connection). */
static void
sync_database(ib_db *db)
{
  sqlite3_file *f = NULL;
  if (sqlite3_file_control(db_handle(db), "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
      !f || !f->pMethods)
    return;
  int rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK)
    log_warn("cannot sync the database file: %s", sqlite3_errstr(rc));
}

static void *
checkpoint_main(void *arg)
{
  ib_store *s = arg;
  pthread_setname_np(pthread_self(), "wal-checkpoint");
  ib_db *db = s->checkpointer;
  int synced = 0; /* frames copied and synced in this generation of the WAL */
  unsigned seen = 0;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (!s->checkpoint_wanted && !s->stopping)
      pthread_cond_wait(&s->checkpoint_wake, &s->lock);
    if (s->stopping)
      break;
    s->checkpoint_wanted = 0;
    s->checkpoint_running = 1;
    unsigned generation = s->wal_generation;
    pthread_mutex_unlock(&s->lock);
    if (generation != seen) {
      seen = generation;
      synced = 0;
    }
    /* A checkpoint that ends before the WAL's end (all of them under load) writes pages
     * into the database file without syncing it: the one that reaches the end syncs
     * them all, before the WAL may start over. That is the writer's catch-up, and
     * syncing a whole WAL's worth there took 35-80 ms and slowed the commits meanwhile;
     * so each run syncs what it copied. Near the restart a run also copies (and syncs)
     * what the writer added meanwhile, while that is more than a few batches' worth: the
     * less is left, the shorter the catch-up (3-5 ms). */
    int log_frames = 0, done_frames = 0, rc;
    for (int pass = 0, before = -1; pass < 4; pass++) {
      rc = sqlite3_wal_checkpoint_v2(db_handle(db), NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                     &done_frames);
      if (rc != SQLITE_OK) {
        if (rc != SQLITE_BUSY)
          log_warn("cannot checkpoint the WAL: %s", sqlite3_errmsg(db_handle(db)));
        break;
      }
      if (done_frames > synced) {
        sync_database(db);
        synced = done_frames;
      }
      if (log_frames + s->checkpoint_frames < s->wal_restart_frames ||
          (before >= 0 && log_frames - before <= s->checkpoint_frames / 8))
        break;
      before = log_frames;
    }
    pthread_mutex_lock(&s->lock);
    s->checkpoint_running = 0;
    /* Not if the WAL started over meanwhile: these counts were the old one's. */
    if (rc == SQLITE_OK && generation == s->wal_generation)
      s->checkpoint_done = done_frames;
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* ---- Open / close ------------------------------------------------------------------ */

static ib_status
load_secret(ib_store *s, char **error_out)
{
  sqlite3_stmt *st = db_stmt(s->writer, "SELECT value FROM meta WHERE key = 'reply_secret'");
  if (st && sqlite3_step(st) == SQLITE_ROW)
    s->reply_secret = g_strdup((const char *)sqlite3_column_text(st, 0));
  if (st)
    sqlite3_reset(st);
  if (!s->reply_secret) {
    *error_out = g_strdup_printf("database %s has no reply secret", s->path);
    return IB_ERR_STORAGE;
  }
  return IB_OK;
}

static ib_status
sqlite_open(ib_store *s, char **error_out)
{
  pthread_mutex_init(&s->readers_lock, NULL);
  s->readers = g_ptr_array_new();
  /* Read connections outlive their threads (HTTP workers stop before the store closes)
   * and are all closed by store_close(). */
  pthread_key_create(&s->reader_key, NULL);
  s->reader_key_made = 1;

  ib_status st = db_open_writer(s->path, s->busy_ms, &s->writer, error_out);
  if (st == IB_OK)
    st = migrate(s->writer, s->path, error_out);
  if (st == IB_OK)
    st = load_secret(s, error_out);
  if (st == IB_OK)
    st = search_open(s, error_out);
  if (st != IB_OK) {
    search_close(s);
    db_close(s->writer);
    s->writer = NULL;
    return st;
  }
  sqlite3_wal_autocheckpoint(db_handle(s->writer), 0);
  db_exec(s->writer, "PRAGMA journal_size_limit=" WAL_SIZE_LIMIT);
  sqlite3_wal_hook(db_handle(s->writer), wal_hook, s);
  /* Without a checkpoint thread the writer checkpoints past wal_restart_frames. */
  char *err = NULL;
  if (db_open(s->path, s->busy_ms, &s->checkpointer, &err) != IB_OK) {
    log_error("no checkpoint thread: %s", err);
    g_free(err);
    return IB_OK;
  }
  pthread_cond_init(&s->checkpoint_wake, NULL);
  s->checkpoint_started = pthread_create(&s->checkpoint_thread, NULL, checkpoint_main, s) == 0;
  if (!s->checkpoint_started) {
    pthread_cond_destroy(&s->checkpoint_wake);
    db_close(s->checkpointer);
    s->checkpointer = NULL;
  }
  return IB_OK;
}

static void
sqlite_close(ib_store *s)
{
  search_close(s);
  if (s->checkpoint_started) {
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->checkpoint_wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->checkpoint_thread, NULL);
    pthread_cond_destroy(&s->checkpoint_wake);
    db_close(s->checkpointer);
    s->checkpointer = NULL;
  }
  if (s->reader_key_made) {
    pthread_key_delete(s->reader_key);
    for (guint i = 0; i < s->readers->len; i++)
      db_close(g_ptr_array_index(s->readers, i));
    g_ptr_array_unref(s->readers);
    pthread_mutex_destroy(&s->readers_lock);
  }
  if (s->writer) {
    /* Best effort: another process may hold the database; do not wait for it. */
    sqlite3_busy_timeout(db_handle(s->writer), 0);
    sqlite3_wal_checkpoint_v2(db_handle(s->writer), NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    db_close(s->writer);
  }
}

/* One writer owns the database (BEGIN IMMEDIATE): nothing to lock. */
static ib_status
sqlite_lock_message_ids(ib_tx *tx, const ib_message *msg)
{
  return IB_OK;
}

ib_db *
store_reader(ib_store *s)
{
  ib_db *db = pthread_getspecific(s->reader_key);
  if (db)
    return db;
  char *err = NULL;
  if (db_open(s->path, s->busy_ms, &db, &err) != IB_OK) {
    log_error("%s", err);
    g_free(err);
    return NULL;
  }
  if (search_attach(s, db) != IB_OK) {
    db_close(db);
    return NULL;
  }
  pthread_setspecific(s->reader_key, db);
  pthread_mutex_lock(&s->readers_lock);
  g_ptr_array_add(s->readers, db);
  pthread_mutex_unlock(&s->readers_lock);
  return db;
}

/* ---- Small helpers ----------------------------------------------------------------- */

void
store_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

json_t *
store_column_json_string(sqlite3_stmt *st, int i)
{
  const char *s = (const char *)sqlite3_column_text(st, i);
  return s ? json_string(s) : json_null();
}

ib_status
store_step_row(sqlite3_stmt *st)
{
  int step = sqlite3_step(st);
  return step == SQLITE_ROW ? IB_OK : step == SQLITE_DONE ? IB_ERR_NOT_FOUND : db_status(step);
}

ib_status
store_step_done(ib_db *db, sqlite3_stmt *st, const char *what)
{
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE)
    return IB_OK;
  log_error("cannot %s: %s", what, sqlite3_errmsg(db_handle(db)));
  return db_status(rc);
}

/* ---- Transaction operations (writer thread) ------------------------------------------ */

static ib_status
sqlite_find_duplicate(ib_tx *tx, const ib_message *m, const store_prepared *prep,
                      const char *event_id, store_msg_ref *ref_out)
{
  static const char sql_by_content[] =
      "SELECT id, ticket_id, classification FROM messages "
      "WHERE rfc_message_id = ?1 AND raw_sha256 = ?2 AND envelope_to = ?3";
  static const char sql_by_event[] = "SELECT id, ticket_id, classification FROM messages "
                                     "WHERE provider = ?1 AND event_id = ?2";
  const char *env = prep->envelope_key;
  sqlite3_stmt *st = db_stmt(tx->db, sql_by_content);
  ib_status result = IB_ERR_NOT_FOUND;
  if (!st) {
    result = IB_ERR_INTERNAL;
    goto done;
  }
  sqlite3_bind_text(st, 1, m->message_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, m->raw_sha256, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, env, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && event_id && m->provider) {
    if (rc != SQLITE_DONE)
      goto failed;
    sqlite3_reset(st);
    st = db_stmt(tx->db, sql_by_event);
    if (!st) {
      result = IB_ERR_INTERNAL;
      goto done;
    }
    sqlite3_bind_text(st, 1, m->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, event_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  if (rc == SQLITE_ROW) {
    ref_out->message_id = sqlite3_column_int64(st, 0);
    ref_out->ticket_id = sqlite3_column_int64(st, 1);
    g_strlcpy(ref_out->classification, (const char *)sqlite3_column_text(st, 2),
              sizeof ref_out->classification);
    result = IB_OK;
  } else if (rc != SQLITE_DONE) {
    goto failed;
  }
  sqlite3_reset(st);
  goto done;
failed:
  log_error("cannot look up duplicates of %s: %s", m->message_id,
            sqlite3_errmsg(db_handle(tx->db)));
  result = db_status(rc);
  sqlite3_reset(st);
done:
  return result;
}

static ib_status
sqlite_create_ticket(ib_tx *tx, const ib_message *m, const char *status, int64_t *ticket_out)
{
  static const char sql[] = "INSERT INTO tickets (subject, customer_name, customer_address, "
                            "created_at, updated_at, status) VALUES (?1, ?2, ?3, ?4, ?4, ?5)";
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  store_bind_text_or_null(st, 1, m->subject);
  store_bind_text_or_null(st, 2, m->from ? m->from->name : NULL);
  store_bind_text_or_null(st, 3, m->from ? m->from->address : NULL);
  sqlite3_bind_text(st, 4, tx->now, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, status, -1, SQLITE_STATIC);
  ib_status rc = store_step_done(tx->db, st, "create a ticket");
  if (rc == IB_OK)
    *ticket_out = sqlite3_last_insert_rowid(db_handle(tx->db));
  return rc;
}

/* Large blobs (a 20 MB scan) are not bound as a value, which SQLite would copy whole into
 * a record in memory: the row gets a zeroblob of the right size, then the bytes are
 * written into it a chunk at a time through incremental blob I/O. */
#define BLOB_INLINE_MAX (256 * 1024)
#define BLOB_CHUNK (1024 * 1024)

static void
bind_blob_or_zero(sqlite3_stmt *st, int i, const void *data, size_t len)
{
  if (len > BLOB_INLINE_MAX)
    sqlite3_bind_zeroblob64(st, i, len);
  else
    sqlite3_bind_blob64(st, i, data ? data : "", len, SQLITE_STATIC);
}

/* Fill the zeroblob that bind_blob_or_zero() left in TABLE.COLUMN of ROWID. */
static ib_status
fill_blob(ib_tx *tx, const char *table, const char *column, int64_t rowid, const void *data,
          size_t len)
{
  if (len <= BLOB_INLINE_MAX)
    return IB_OK;
  sqlite3 *h = db_handle(tx->db);
  sqlite3_blob *blob = NULL;
  int rc = sqlite3_blob_open(h, "main", table, column, rowid, 1, &blob);
  for (size_t off = 0; rc == SQLITE_OK && off < len; off += BLOB_CHUNK) {
    size_t n = MIN((size_t)BLOB_CHUNK, len - off);
    rc = sqlite3_blob_write(blob, (const char *)data + off, (int)n, (int)off);
  }
  int close_rc = sqlite3_blob_close(blob);
  if (rc == SQLITE_OK)
    rc = close_rc;
  if (rc != SQLITE_OK) {
    log_error("cannot write %zu bytes into %s: %s", len, table, sqlite3_errmsg(h));
    return db_status(rc);
  }
  return IB_OK;
}

static ib_status
insert_attachments(ib_tx *tx, int64_t message_id, const ib_message *m)
{
  static const char sql[] =
      "INSERT INTO attachments (message_id, position, filename, content_type, size, sha256, "
      "content_id, disposition, data, in_file) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
  const char *dir = tx->store->attachment_dir;
  for (guint i = 0; i < m->attachments->len; i++) {
    const ib_attachment *a = g_ptr_array_index(m->attachments, i);
    gsize len = 0;
    const void *data = a->data ? g_bytes_get_data(a->data, &len) : NULL;
    /* The file is durable before the row that names it commits. */
    if (dir) {
      ib_status frc = store_file_put(dir, a->sha256, data, len);
      if (frc != IB_OK)
        return frc;
    }
    sqlite3_stmt *st = db_stmt(tx->db, sql);
    if (!st)
      return IB_ERR_INTERNAL;
    sqlite3_bind_int64(st, 1, message_id);
    sqlite3_bind_int(st, 2, (int)i);
    store_bind_text_or_null(st, 3, a->filename);
    sqlite3_bind_text(st, 4, a->content_type ? a->content_type : "application/octet-stream", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)len);
    sqlite3_bind_text(st, 6, a->sha256, -1, SQLITE_STATIC);
    store_bind_text_or_null(st, 7, a->content_id);
    sqlite3_bind_text(st, 8, a->disposition == IB_DISP_INLINE ? "inline" : "attachment", -1,
                      SQLITE_STATIC);
    bind_blob_or_zero(st, 9, dir ? "" : data, dir ? 0 : len);
    sqlite3_bind_int(st, 10, dir ? 1 : 0);
    ib_status rc = store_step_done(tx->db, st, "store an attachment");
    if (rc == IB_OK && !dir)
      rc = fill_blob(tx, "attachments", "data", sqlite3_last_insert_rowid(db_handle(tx->db)), data,
                     len);
    if (rc != IB_OK)
      return rc;
  }
  return IB_OK;
}

static ib_status
sqlite_insert_message(ib_tx *tx, int64_t ticket_id, const ib_message *m, const store_prepared *prep,
                      GBytes *raw, int rebuilt, const char *event_id, int64_t *message_out)
{
  static const char sql_msg[] =
      "INSERT INTO messages (ticket_id, direction, classification, provider, rfc_message_id, "
      "raw_sha256, envelope_to, event_id, from_address, snippet, doc, created_at, "
      "thread_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
  static const char sql_raw[] =
      "INSERT INTO raw_messages (message_id, rebuilt, bytes) VALUES (?1, ?2, ?3)";
  static const char sql_ticket[] =
      "UPDATE tickets SET message_count = message_count + 1, last_message_id = ?2, "
      "updated_at = ?3, version = version + 1 WHERE id = ?1";
  if (!prep->doc_text)
    return IB_ERR_NOMEM;
  ib_status rc = IB_ERR_INTERNAL;
  sqlite3_stmt *st = db_stmt(tx->db, sql_msg);
  if (!st)
    return rc;
  sqlite3_bind_int64(st, 1, ticket_id);
  sqlite3_bind_text(st, 2, m->direction ? m->direction : "inbound", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, ib_class_str(m->classification), -1, SQLITE_STATIC);
  store_bind_text_or_null(st, 4, m->provider);
  sqlite3_bind_text(st, 5, m->message_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, m->raw_sha256, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, prep->envelope_key, -1, SQLITE_STATIC);
  store_bind_text_or_null(st, 8, event_id);
  store_bind_text_or_null(st, 9, m->from ? m->from->address : NULL);
  sqlite3_bind_text(st, 10, prep->snippet, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 11, prep->doc_text, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 12, tx->now, -1, SQLITE_STATIC);
  store_bind_text_or_null(st, 13, m->thread_reason);
  if ((rc = store_step_done(tx->db, st, "store a message")) != IB_OK)
    return rc;
  int64_t id = sqlite3_last_insert_rowid(db_handle(tx->db));

  if (raw) {
    gsize len = 0;
    const void *data = g_bytes_get_data(raw, &len);
    if (!(st = db_stmt(tx->db, sql_raw)))
      return IB_ERR_INTERNAL;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, rebuilt ? 1 : 0);
    bind_blob_or_zero(st, 3, data, len);
    if ((rc = store_step_done(tx->db, st, "store raw bytes")) != IB_OK ||
        (rc = fill_blob(tx, "raw_messages", "bytes", id, data, len)) != IB_OK)
      return rc;
  }
  if ((rc = insert_attachments(tx, id, m)) != IB_OK || (rc = index_message(tx, id, prep)) != IB_OK)
    return rc;
  if (!(st = db_stmt(tx->db, sql_ticket)))
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, ticket_id);
  sqlite3_bind_int64(st, 2, id);
  sqlite3_bind_text(st, 3, tx->now, -1, SQLITE_STATIC);
  if ((rc = store_step_done(tx->db, st, "update a ticket")) != IB_OK)
    return rc;
  *message_out = id;
  return IB_OK;
}

static ib_status
sqlite_add_event(ib_tx *tx, const char *type, int64_t ticket_id, int64_t message_id)
{
  static const char sql[] =
      "INSERT INTO events (type, ticket_id, message_id, at) VALUES (?1, ?2, ?3, ?4)";
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, ticket_id);
  if (message_id)
    sqlite3_bind_int64(st, 3, message_id);
  else
    sqlite3_bind_null(st, 3);
  sqlite3_bind_text(st, 4, tx->now, -1, SQLITE_STATIC);
  ib_status rc = store_step_done(tx->db, st, "append an event");
  if (rc != IB_OK)
    return rc;
  tx->last_seq = sqlite3_last_insert_rowid(db_handle(tx->db));
  if (tx->store->on_event)
    rc =
        tx->store->on_event(tx->store->on_event_arg, tx, tx->last_seq, type, ticket_id, message_id);
  return rc;
}

/* ---- Reads ----------------------------------------------------------------------------- */

static ib_status
sqlite_ping(ib_store *s)
{
  ib_db *db = store_reader(s);
  if (!db)
    return IB_ERR_STORAGE;
  sqlite3_stmt *st = db_stmt(db, "SELECT 1 FROM meta LIMIT 1");
  if (!st)
    return IB_ERR_STORAGE;
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? IB_OK : IB_ERR_STORAGE;
}

#define TICKET_COLUMNS                                                                             \
  "t.id, t.subject, t.status, t.customer_name, t.customer_address, t.created_at, "                 \
  "t.updated_at, t.message_count, t.tags, t.version, m.id, m.direction, m.snippet, "               \
  "m.created_at"

/* A ticket document from a row of TICKET_COLUMNS. */
static json_t *
ticket_from_row(sqlite3_stmt *st)
{
  json_t *tags = json_loads((const char *)sqlite3_column_text(st, 8), 0, NULL);
  json_t *last = json_null();
  if (sqlite3_column_type(st, 10) != SQLITE_NULL)
    last = json_pack("{s:I, s:o, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 10),
                     "direction", store_column_json_string(st, 11), "snippet",
                     store_column_json_string(st, 12), "at", store_column_json_string(st, 13));
  return json_pack("{s:I, s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:I, s:o, s:o}", "id",
                   (json_int_t)sqlite3_column_int64(st, 0), "subject",
                   store_column_json_string(st, 1), "status", store_column_json_string(st, 2),
                   "customer", "name", store_column_json_string(st, 3), "address",
                   store_column_json_string(st, 4), "created_at", store_column_json_string(st, 5),
                   "updated_at", store_column_json_string(st, 6), "message_count",
                   (json_int_t)sqlite3_column_int64(st, 7), "last_message", last, "tags",
                   tags ? tags : json_array());
}

ib_status
store_ticket_doc(ib_db *db, int64_t id, json_t **doc_out)
{
  static const char sql[] = "SELECT " TICKET_COLUMNS " FROM tickets t "
                            "LEFT JOIN messages m ON m.id = t.last_message_id "
                            "WHERE t.id = ?1";
  *doc_out = NULL;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, id);
  ib_status rc = store_step_row(st);
  if (rc == IB_OK) {
    *doc_out = ticket_from_row(st);
    if (!*doc_out)
      rc = IB_ERR_NOMEM;
  }
  sqlite3_reset(st);
  return rc;
}

#define MESSAGE_COLUMNS "id, ticket_id, doc, classification, thread_reason, created_at"

/* The public document of a stored message (a row of MESSAGE_COLUMNS): ids first, then the stored
 * document, with attachment ids and URLs filled from ATT_IDS (ids in position order). */
static json_t *
message_from_row(ib_store *s, sqlite3_stmt *row, GArray *att_ids)
{
  int64_t id = sqlite3_column_int64(row, 0);
  int64_t ticket_id = sqlite3_column_int64(row, 1);
  json_t *doc = json_loads((const char *)sqlite3_column_text(row, 2), 0, NULL);
  if (!doc)
    return NULL;
  store_doc_expand(doc);
  /* The fields only the writer knew (see store_prepare()). */
  json_object_set_new(doc, "classification", store_column_json_string(row, 3));
  json_object_set_new(doc, "thread_reason", store_column_json_string(row, 4));
  json_object_set_new(doc, "created_at", store_column_json_string(row, 5));
  json_t *out = json_pack("{s:I, s:I}", "id", (json_int_t)id, "ticket_id", (json_int_t)ticket_id);
  const char *key;
  json_t *value;
  json_object_foreach(doc, key, value) json_object_set(out, key, value);
  json_t *atts = json_object_get(out, "attachments");
  size_t i;
  json_t *att;
  json_array_foreach(atts, i, att)
  {
    if (i >= att_ids->len)
      break;
    int64_t aid = g_array_index(att_ids, int64_t, i);
    char *url = g_strdup_printf("%s/api/attachments/%" G_GINT64_FORMAT, s->public_url, aid);
    /* "id" first, as in DESIGN.md. */
    json_t *copy = json_pack("{s:I}", "id", (json_int_t)aid);
    json_object_update(copy, att);
    json_object_set_new(copy, "url", json_string(url));
    json_array_set_new(atts, i, copy);
    g_free(url);
  }
  json_decref(doc);
  return out;
}

static GArray *
attachment_ids(ib_db *db, int64_t message_id)
{
  static const char sql[] = "SELECT id FROM attachments WHERE message_id = ?1 ORDER BY position";
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(int64_t));
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return ids;
  sqlite3_bind_int64(st, 1, message_id);
  while (sqlite3_step(st) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    g_array_append_val(ids, id);
  }
  sqlite3_reset(st);
  return ids;
}

static ib_status
read_begin(ib_db *db)
{
  return db_exec(db, "BEGIN") == IB_OK ? IB_OK : IB_ERR_STORAGE;
}

static void
read_end(ib_db *db)
{
  if (!sqlite3_get_autocommit(db_handle(db)))
    sqlite3_exec(db_handle(db), "COMMIT", NULL, NULL, NULL);
}

static ib_status
sqlite_ticket_thread(ib_store *s, int64_t id, json_t **doc_out, int64_t *version_out)
{
  static const char sql_ticket[] = "SELECT " TICKET_COLUMNS " FROM tickets t "
                                   "LEFT JOIN messages m ON m.id = t.last_message_id "
                                   "WHERE t.id = ?1";
  static const char sql_msgs[] = "SELECT " MESSAGE_COLUMNS " FROM messages "
                                 "WHERE ticket_id = ?1 ORDER BY id";
  *doc_out = NULL;
  ib_db *db = store_reader(s);
  if (!db || read_begin(db) != IB_OK)
    return IB_ERR_STORAGE;
  ib_status rc = IB_ERR_INTERNAL;
  int step;
  json_t *ticket = NULL, *messages = NULL;
  sqlite3_stmt *st = db_stmt(db, sql_ticket);
  if (!st)
    goto done;
  sqlite3_bind_int64(st, 1, id);
  if ((rc = store_step_row(st)) != IB_OK) {
    sqlite3_reset(st);
    goto done;
  }
  ticket = ticket_from_row(st);
  if (version_out)
    *version_out = sqlite3_column_int64(st, 9);
  sqlite3_reset(st);

  rc = IB_ERR_INTERNAL;
  messages = json_array();
  st = db_stmt(db, sql_msgs);
  if (!st)
    goto done;
  sqlite3_bind_int64(st, 1, id);
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t mid = sqlite3_column_int64(st, 0);
    GArray *ids = attachment_ids(db, mid);
    json_t *msg = message_from_row(s, st, ids);
    g_array_unref(ids);
    if (msg)
      json_array_append_new(messages, msg);
  }
  sqlite3_reset(st);
  if (step != SQLITE_DONE) {
    rc = db_status(step);
    goto done;
  }
  *doc_out = json_pack("{s:O, s:O}", "ticket", ticket, "messages", messages);
  rc = *doc_out ? IB_OK : IB_ERR_NOMEM;
done:
  read_end(db);
  json_decref(ticket);
  json_decref(messages);
  return rc;
}

/* The ticket list with its status, customer and tag filters written out (FILTERS, TAG):
 * SQLite plans a statement once, and with "?1 IS NULL OR t.status = ?1" that plan scans
 * every ticket in activity order, however few have the status, the customer or the tag
 * asked for. The page of ids is picked first, so the rows sorted for a customer with many
 * tickets are ids, and only the page's rows are read in full and joined with their last
 * message. The cursor is a row value and updated_since a plain comparison, which SQLite
 * reads as the two ends of a range of the activity indexes: a page deep in the list costs
 * what the first one does, and a poll for what changed since a moment ago reads only that. */
#define LIST_TICKETS_SQL(FILTERS, SEARCH, TAG)                                                     \
  "SELECT " TICKET_COLUMNS " FROM ("                                                               \
  "SELECT t.id FROM tickets t WHERE " FILTERS " AND " SEARCH " AND " TAG " "                       \
  "AND (t.updated_at, t.id) < (?3, ?4) "                                                           \
  "AND t.updated_at > ?8 "                                                                         \
  "ORDER BY t.updated_at DESC, t.id DESC LIMIT ?5) AS page "                                       \
  "JOIN tickets t ON t.id = page.id LEFT JOIN messages m ON m.id = t.last_message_id "             \
  "ORDER BY t.updated_at DESC, t.id DESC"
#define BY_STATUS "t.status = ?1"
#define BY_CUSTOMER "t.customer_address = ?2 COLLATE NOCASE"
#define FTS_IDS "(SELECT rowid FROM search.message_search WHERE message_search MATCH ?6)"
/* A search's tickets. With few matches, each matching message's row gives its ticket and
 * those tickets lead. With many, the list scans in activity order and checks each ticket's
 * messages (messages_ticket) against the matches, which SQLite collects once: a word in
 * one message of five fills a page after about five tickets a row. If the matches sit in
 * old tickets, that scan can read most of the list; past a budget it stops, and the
 * compact messages_ticket index is read whole instead ("+": not led by ids), at a cost
 * that does not depend on where the matches are. */
#define BY_SEARCH_FEW "t.id IN (SELECT ticket_id FROM messages WHERE id IN " FTS_IDS ")"
#define BY_SEARCH_SCAN                                                                             \
  "EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id AND +m.id IN " FTS_IDS ")"
#define BY_SEARCH_INDEX                                                                            \
  "+t.id IN (SELECT ticket_id FROM messages INDEXED BY messages_ticket WHERE id IN " FTS_IDS ")"
/* A tag few tickets have leads with its tickets (ticket_tags, kept by triggers); otherwise
 * each ticket the activity scan reaches is looked up there by primary key. */
#define BY_TAG_LEADS "t.id IN (SELECT ticket_id FROM ticket_tags WHERE tag = ?7)"
#define BY_TAG "EXISTS (SELECT 1 FROM ticket_tags WHERE tag = ?7 AND ticket_id = t.id)"
/* [status given][customer: none, its index leads, a plain filter] for one SEARCH and TAG
 * term. STATUS_INDEX is "+" when the tag leads, so the status index does not. */
#define LIST_TICKETS_VARIANTS(SEARCH, TAG, STATUS_INDEX)                                           \
  {                                                                                                \
    {LIST_TICKETS_SQL("?1 IS NULL AND ?2 IS NULL", SEARCH, TAG),                                   \
     LIST_TICKETS_SQL("?1 IS NULL AND " BY_CUSTOMER, SEARCH, TAG),                                 \
     LIST_TICKETS_SQL("?1 IS NULL AND +" BY_CUSTOMER, SEARCH, TAG)},                               \
    {                                                                                              \
      LIST_TICKETS_SQL(STATUS_INDEX BY_STATUS " AND ?2 IS NULL", SEARCH, TAG),                     \
          LIST_TICKETS_SQL("+" BY_STATUS " AND " BY_CUSTOMER, SEARCH, TAG),                        \
          LIST_TICKETS_SQL(STATUS_INDEX BY_STATUS " AND +" BY_CUSTOMER, SEARCH, TAG)               \
    }                                                                                              \
  }
/* [search: none, few matches, many scanned, many by index] for one TAG term. */
#define LIST_TICKETS_SEARCHES(TAG, STATUS_INDEX)                                                   \
  {                                                                                                \
    LIST_TICKETS_VARIANTS("?6 IS NULL", TAG, STATUS_INDEX),                                        \
        LIST_TICKETS_VARIANTS(BY_SEARCH_FEW, TAG, STATUS_INDEX),                                   \
        LIST_TICKETS_VARIANTS(BY_SEARCH_SCAN, TAG, STATUS_INDEX),                                  \
        LIST_TICKETS_VARIANTS(BY_SEARCH_INDEX, TAG, STATUS_INDEX)                                  \
  }
enum { SEARCH_NONE, SEARCH_FEW, SEARCH_SCAN, SEARCH_INDEX };
/* Measured on 78,000 messages (tests/bench/list_latency.py and the sqlite3 shell): reading
 * a matching message's row costs as much as the scan spends on this many tickets (5-7.7
 * us against 0.4-0.5). Reading messages_ticket whole takes 7-10 virtual machine steps a
 * message, and the scan about 40 a row of the page it finds (the sqlite3 shell's
 * ".stats vmstep"); SQLite runs both kinds at about the same rate. */
#define SCANNED_TICKETS_PER_MESSAGE_ROW 12
/* ... and as much as reading this many entries of messages_ticket (4.9 against 0.14 us). */
#define MESSAGE_ROW_COST_IN_INDEX_ENTRIES 35
#define INDEX_READ_STEPS_PER_MESSAGE 10
#define SCAN_STEPS_PER_PAGE_ROW 40
#define PROGRESS_STEPS 1000
/* A scan is never given up before this many progress calls (about 0.2 ms): on a small
 * database the index read costs no more, and starting over would only add. */
#define SCAN_BUDGET_MIN 10

/* The newest id of the table SQL_MAX ("SELECT max(id) FROM ...") reads; 0 when empty. */
static int64_t
newest_id(ib_db *db, const char *sql_max)
{
  sqlite3_stmt *st = db_stmt(db, sql_max);
  if (!st)
    return 0;
  int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return id;
}

/* Whether SQL_COUNT ("SELECT count(*) FROM (SELECT 1 ... ?1 ... LIMIT ?2)", and ?3 when it
 * has one) counts BOUND rows for TEXT and ARG3: the LIMIT stops the count there, so it
 * stays cheap. -1 on an error. */
static int
count_reaches(ib_db *db, const char *sql_count, const char *text, int64_t bound, int64_t arg3)
{
  sqlite3_stmt *st = db_stmt(db, sql_count);
  if (!st)
    return -1;
  sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, bound);
  if (sqlite3_bind_parameter_count(st) >= 3)
    sqlite3_bind_int64(st, 3, arg3);
  int rc = sqlite3_step(st);
  int reaches = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) >= bound : -1;
  sqlite3_reset(st);
  return reaches;
}

/* Whether an index should lead the ticket list for the VALUE that SQL_COUNT counts (as for
 * count_reaches) out of the table's rows. Led by it, the list reads and sorts all n rows
 * of VALUE; scanned in activity order instead, it reads about (tickets / n) rows per match,
 * PAGE matches in all. The index wins while n * n < PAGE * tickets. */
static int
index_leads(ib_db *db, const char *sql_count, const char *value, int page)
{
  static const char sql_max[] = "SELECT max(id) FROM tickets";
  double tickets = (double)newest_id(db, sql_max);
  return count_reaches(db, sql_count, value, (int64_t)sqrt((double)page * tickets) + 1, 0) != 1;
}

static int
customer_index_leads(ib_db *db, const char *customer, int page)
{
  static const char sql_count[] = "SELECT count(*) FROM (SELECT 1 FROM tickets "
                                  "WHERE customer_address = ?1 COLLATE NOCASE LIMIT ?2)";
  return index_leads(db, sql_count, customer, page);
}

static int
tag_index_leads(ib_db *db, const char *tag, int page)
{
  static const char sql_count[] =
      "SELECT count(*) FROM (SELECT 1 FROM ticket_tags WHERE tag = ?1 LIMIT ?2)";
  return index_leads(db, sql_count, tag, page);
}

/* How to find the tickets of the search FTS_QUERY for a page of PAGE rows.
 * - SEARCH_FEW when its matches are fewer than sqrt(PAGE x messages /
 *   SCANNED_TICKETS_PER_MESSAGE_ROW): reading their rows costs less than a scan that finds
 *   PAGE matching tickets, reading messages / matches tickets for each when the matches
 *   are spread over the list.
 * - SEARCH_SCAN when the newest quarter of the messages holds a page of matches: message
 *   ids follow time, and so, mostly, does the order of the list.
 * - Otherwise the matches are mostly old, where the scan would read most of the list:
 *   their rows while they are fewer than messages / MESSAGE_ROW_COST_IN_INDEX_ENTRIES,
 *   else messages_ticket whole (SEARCH_INDEX). */
static int
search_plan(ib_db *db, const char *fts_query, int page, int64_t *messages_out)
{
  static const char sql_max[] = "SELECT max(id) FROM messages";
  static const char sql_count[] = "SELECT count(*) FROM (SELECT 1 FROM search.message_search "
                                  "WHERE message_search MATCH ?1 LIMIT ?2)";
  static const char sql_count_after[] = "SELECT count(*) FROM (SELECT 1 FROM search.message_search "
                                        "WHERE message_search MATCH ?1 AND rowid > ?3 LIMIT ?2)";
  int64_t messages = *messages_out = newest_id(db, sql_max);
  double bound = sqrt((double)page * (double)messages / SCANNED_TICKETS_PER_MESSAGE_ROW);
  if (count_reaches(db, sql_count, fts_query, (int64_t)bound + 1, 0) != 1)
    return SEARCH_FEW;
  if (count_reaches(db, sql_count_after, fts_query, page, messages - messages / 4) != 0)
    return SEARCH_SCAN;
  return count_reaches(db, sql_count, fts_query, messages / MESSAGE_ROW_COST_IN_INDEX_ENTRIES + 1,
                       0) == 1
             ? SEARCH_INDEX
             : SEARCH_FEW;
}

/* The progress handler of a scan with a budget (in calls, PROGRESS_STEPS steps each):
 * non-zero interrupts the statement. */
static int
scan_over_budget(void *arg)
{
  int64_t *left = arg;
  return --*left < 0;
}

/* Run the ticket list statement SQL with Q's values; the page goes to LIST, has_next and
 * the cursor to the rest. With a BUDGET (> 0, in progress calls), a statement that runs
 * past it before its first row stops with IB_ERR_LIMIT and leaves LIST as it was. */
static ib_status
list_tickets_run(ib_db *db, const char *sql, const ticket_query *q, int64_t budget, json_t *list,
                 int *has_next_out, char *next_at_out, size_t next_at_size, int64_t *next_id_out)
{
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  store_bind_text_or_null(st, 1, q->status);
  store_bind_text_or_null(st, 2, q->customer);
  sqlite3_bind_text(st, 3, q->has_cursor ? q->cursor_updated_at : TICKET_QUERY_TIME_END, -1,
                    SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, q->has_cursor ? q->cursor_id : INT64_MAX);
  /* One row more than asked tells whether there is a next page. */
  sqlite3_bind_int(st, 5, q->limit + 1);
  store_bind_text_or_null(st, 6, q->fts_query);
  store_bind_text_or_null(st, 7, q->tag);
  /* No updated_since: before every ticket. */
  sqlite3_bind_text(st, 8, q->updated_since ? q->updated_since : "", -1, SQLITE_STATIC);
  int64_t left = budget;
  int watched = budget > 0;
  if (watched)
    sqlite3_progress_handler(db_handle(db), PROGRESS_STEPS, scan_over_budget, &left);
  int step, n = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (watched) {
      /* The page of ids is picked before the first row; the rest is bounded by it. */
      sqlite3_progress_handler(db_handle(db), 0, NULL, NULL);
      watched = 0;
    }
    if (n == q->limit) {
      *has_next_out = 1;
      break;
    }
    json_array_append_new(list, ticket_from_row(st));
    g_strlcpy(next_at_out, (const char *)sqlite3_column_text(st, 6), next_at_size);
    *next_id_out = sqlite3_column_int64(st, 0);
    n++;
  }
  if (watched)
    sqlite3_progress_handler(db_handle(db), 0, NULL, NULL);
  sqlite3_reset(st);
  if (step == SQLITE_INTERRUPT && left < 0)
    return IB_ERR_LIMIT;
  if (step != SQLITE_ROW && step != SQLITE_DONE) {
    log_error("cannot list tickets: %s", sqlite3_errmsg(db_handle(db)));
    return db_status(step);
  }
  return IB_OK;
}

static ib_status
sqlite_list_tickets(ib_store *s, const ticket_query *q, json_t **doc_out, int *has_next_out,
                    char *next_at_out, size_t next_at_size, int64_t *next_id_out)
{
  /* [tag: none, its index leads, a plain filter][search: enum above][status given]
   * [customer: none, its index leads, a plain filter]. An unused parameter stays in the
   * text (IS NULL), so every variant binds the same numbers; "+" keeps a term off the
   * indexes. */
  static const char *const sqls[3][4][2][3] = {
      LIST_TICKETS_SEARCHES("?7 IS NULL", ""),
      LIST_TICKETS_SEARCHES(BY_TAG_LEADS, "+"),
      LIST_TICKETS_SEARCHES(BY_TAG, ""),
  };
  *doc_out = NULL;
  *has_next_out = 0;
  ib_db *db = store_reader(s);
  if (!db)
    return IB_ERR_STORAGE;
  if (q->fts_query)
    search_wait(s);
  int by_tag = !q->tag ? 0 : tag_index_leads(db, q->tag, q->limit + 1) ? 1 : 2;
  /* When the tag leads, the customer is a filter on its tickets. */
  int by_customer = !q->customer                                                         ? 0
                    : by_tag != 1 && customer_index_leads(db, q->customer, q->limit + 1) ? 1
                                                                                         : 2;
  int64_t messages = 0;
  int by_search =
      !q->fts_query ? SEARCH_NONE : search_plan(db, q->fts_query, q->limit + 1, &messages);
  /* The scan may spend up to what reading messages_ticket whole would, and what finding
   * the page costs when the matches are spread over the list. */
  int64_t budget_steps =
      messages * INDEX_READ_STEPS_PER_MESSAGE + (int64_t)(q->limit + 1) * SCAN_STEPS_PER_PAGE_ROW;
  int64_t budget =
      by_search == SEARCH_SCAN ? MAX(budget_steps / PROGRESS_STEPS + 1, SCAN_BUDGET_MIN) : 0;
  json_t *list = json_array();
  ib_status st =
      list_tickets_run(db, sqls[by_tag][by_search][q->status != NULL][by_customer], q, budget, list,
                       has_next_out, next_at_out, next_at_size, next_id_out);
  if (st == IB_ERR_LIMIT) {
    metrics_add(METRIC_SEARCH_SCANS_ABANDONED, 1);
    st = list_tickets_run(db, sqls[by_tag][SEARCH_INDEX][q->status != NULL][by_customer], q, 0,
                          list, has_next_out, next_at_out, next_at_size, next_id_out);
  }
  if (st != IB_OK) {
    json_decref(list);
    return st;
  }
  *doc_out = json_pack("{s:o, s:n}", "tickets", list, "next_cursor");
  return IB_OK;
}

static ib_status
sqlite_update_ticket(ib_tx *tx, int64_t id, const char *status, const char *tags_json,
                     int *changed_out)
{
  static const char sql[] =
      "UPDATE tickets SET status = COALESCE(?2, status), tags = COALESCE(?3, tags), "
      "updated_at = ?4, version = version + 1 "
      "WHERE id = ?1 AND (status IS NOT COALESCE(?2, status) OR tags IS NOT COALESCE(?3, tags))";
  static const char sql_exists[] = "SELECT 1 FROM tickets WHERE id = ?1";
  *changed_out = 0;
  sqlite3_stmt *st = db_stmt(tx->db, sql_exists);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, id);
  ib_status found = store_step_row(st);
  sqlite3_reset(st);
  if (found != IB_OK)
    return found;
  st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, id);
  store_bind_text_or_null(st, 2, status);
  store_bind_text_or_null(st, 3, tags_json);
  sqlite3_bind_text(st, 4, tx->now, -1, SQLITE_STATIC);
  ib_status rc = store_step_done(tx->db, st, "update a ticket");
  if (rc == IB_OK)
    *changed_out = sqlite3_changes(db_handle(tx->db)) > 0;
  return rc;
}

static ib_status
sqlite_message(ib_store *s, int64_t id, json_t **doc_out)
{
  static const char sql[] = "SELECT " MESSAGE_COLUMNS " FROM messages WHERE id = ?1";
  *doc_out = NULL;
  ib_db *db = store_reader(s);
  if (!db || read_begin(db) != IB_OK)
    return IB_ERR_STORAGE;
  ib_status rc = IB_ERR_INTERNAL;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (st) {
    sqlite3_bind_int64(st, 1, id);
    if ((rc = store_step_row(st)) == IB_OK) {
      GArray *ids = attachment_ids(db, id);
      *doc_out = message_from_row(s, st, ids);
      g_array_unref(ids);
      rc = *doc_out ? IB_OK : IB_ERR_INTERNAL;
    }
    sqlite3_reset(st);
  }
  read_end(db);
  return rc;
}

static ib_status
sqlite_raw_size(ib_store *s, int64_t message_id, uint64_t *size_out)
{
  static const char sql[] = "SELECT length(bytes) FROM raw_messages WHERE message_id = ?1";
  ib_db *db = store_reader(s);
  if (!db)
    return IB_ERR_STORAGE;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, message_id);
  ib_status rc = store_step_row(st);
  if (rc == IB_OK)
    *size_out = (uint64_t)sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return rc;
}

static ib_status
sqlite_attachment_info_get(ib_store *s, int64_t id, store_attachment_info *out)
{
  static const char sql[] =
      "SELECT size, filename, content_type, sha256 FROM attachments WHERE id = ?1";
  memset(out, 0, sizeof *out);
  ib_db *db = store_reader(s);
  if (!db)
    return IB_ERR_STORAGE;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, id);
  ib_status rc = store_step_row(st);
  if (rc == IB_OK) {
    out->size = (uint64_t)sqlite3_column_int64(st, 0);
    out->filename = g_strdup((const char *)sqlite3_column_text(st, 1));
    out->content_type = g_strdup((const char *)sqlite3_column_text(st, 2));
    g_strlcpy(out->sha256, (const char *)sqlite3_column_text(st, 3), sizeof out->sha256);
  }
  sqlite3_reset(st);
  return rc;
}

static ib_status
sqlite_blob_read(ib_store *s, store_blob_kind kind, int64_t id, uint64_t off, void *buf, size_t len,
                 size_t *got_out)
{
  static const char sql_file[] = "SELECT sha256 FROM attachments WHERE id = ?1 AND in_file = 1";
  *got_out = 0;
  ib_db *db = store_reader(s);
  if (!db)
    return IB_ERR_STORAGE;
  if (kind == STORE_BLOB_ATTACHMENT) {
    sqlite3_stmt *st = db_stmt(db, sql_file);
    if (!st)
      return IB_ERR_INTERNAL;
    sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    char sha[65] = "";
    if (step == SQLITE_ROW)
      g_strlcpy(sha, (const char *)sqlite3_column_text(st, 0), sizeof sha);
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
      return db_status(step);
    if (step == SQLITE_ROW) {
      if (!s->attachment_dir) {
        log_error("attachment %" G_GINT64_FORMAT " is kept in a directory, but no "
                  "--attachment-dir is set",
                  id);
        return IB_ERR_STORAGE;
      }
      return store_file_read(s->attachment_dir, sha, off, buf, len, got_out);
    }
  }
  sqlite3_blob *blob = NULL;
  const char *table = kind == STORE_BLOB_RAW ? "raw_messages" : "attachments";
  const char *column = kind == STORE_BLOB_RAW ? "bytes" : "data";
  int rc = sqlite3_blob_open(db_handle(db), "main", table, column, id, 0, &blob);
  if (rc != SQLITE_OK) {
    sqlite3_blob_close(blob);
    return rc == SQLITE_ERROR ? IB_ERR_NOT_FOUND : db_status(rc);
  }
  uint64_t size = (uint64_t)sqlite3_blob_bytes(blob);
  if (off < size) {
    size_t n = (size_t)MIN((uint64_t)len, size - off);
    rc = sqlite3_blob_read(blob, buf, (int)n, (int)off);
    if (rc == SQLITE_OK)
      *got_out = n;
  }
  sqlite3_blob_close(blob);
  return rc == SQLITE_OK ? IB_OK : db_status(rc);
}

static ib_status
sqlite_events(ib_store *s, int64_t after, int limit, json_t **doc_out, int64_t *last_seq_out)
{
  static const char sql[] = "SELECT seq, type, ticket_id, message_id, at FROM events "
                            "WHERE seq > ?1 ORDER BY seq LIMIT ?2";
  static const char sql_max[] = "SELECT COALESCE(MAX(seq), 0) FROM events";
  *doc_out = NULL;
  ib_db *db = store_reader(s);
  if (!db)
    return IB_ERR_STORAGE;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, after);
  sqlite3_bind_int(st, 2, limit);
  json_t *events = json_array();
  int64_t last = 0;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    last = sqlite3_column_int64(st, 0);
    json_t *msg_id = sqlite3_column_type(st, 3) == SQLITE_NULL
                         ? json_null()
                         : json_integer(sqlite3_column_int64(st, 3));
    json_array_append_new(events, json_pack("{s:I, s:o, s:I, s:o, s:o}", "seq", (json_int_t)last,
                                            "type", store_column_json_string(st, 1), "ticket_id",
                                            (json_int_t)sqlite3_column_int64(st, 2), "message_id",
                                            msg_id, "at", store_column_json_string(st, 4)));
  }
  sqlite3_reset(st);
  if (step != SQLITE_DONE) {
    json_decref(events);
    return db_status(step);
  }
  if (json_array_size(events) == 0) {
    st = db_stmt(db, sql_max);
    if (st && sqlite3_step(st) == SQLITE_ROW)
      last = sqlite3_column_int64(st, 0);
    if (st)
      sqlite3_reset(st);
  }
  *last_seq_out = last;
  *doc_out = json_pack("{s:o, s:I}", "events", events, "last_seq", (json_int_t)last);
  return IB_OK;
}

const store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .run_batch = sqlite_run_batch,
    .after_batch = sqlite_after_batch,
    .lock_message_ids = sqlite_lock_message_ids,
    .find_duplicate = sqlite_find_duplicate,
    .create_ticket = sqlite_create_ticket,
    .insert_message = sqlite_insert_message,
    .update_ticket = sqlite_update_ticket,
    .add_event = sqlite_add_event,
    .replay_check = sqlite_replay_check,
    .ticket_of_message_id = sqlite_ticket_of_message_id,
    .ticket_brief_get = sqlite_ticket_brief_get,
    .is_participant = sqlite_is_participant,
    .add_participant = sqlite_add_participant,
    .count_automatic = sqlite_count_automatic,
    .flag_loop = sqlite_flag_loop,
    .add_suppression = sqlite_add_suppression,
    .thread_ids = sqlite_thread_ids,
    .suppressions = sqlite_suppressions,
    .ping = sqlite_ping,
    .ticket_thread = sqlite_ticket_thread,
    .list_tickets = sqlite_list_tickets,
    .message = sqlite_message,
    .raw_size = sqlite_raw_size,
    .attachment_info_get = sqlite_attachment_info_get,
    .blob_read = sqlite_blob_read,
    .events = sqlite_events,
    .outbox_on_event = sqlite_outbox_on_event,
    .outbox_set_config = sqlite_outbox_set_config,
    .outbox_get_config = sqlite_outbox_get_config,
    .outbox_claim = sqlite_outbox_claim,
    .outbox_finish = sqlite_outbox_finish,
    .outbox_recover = sqlite_outbox_recover,
    .outbox_retry = sqlite_outbox_retry,
    .outbox_next_due = sqlite_outbox_next_due,
    .outbox_list = sqlite_outbox_list,
    .outbox_stats_get = sqlite_outbox_stats_get,
};
