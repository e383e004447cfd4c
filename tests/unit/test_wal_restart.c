/* test_wal_restart: under a steady write load (the writer never idle) and readers
 * reading back to back, the SQLite WAL keeps starting over instead of growing without
 * bound, and nothing written is lost. Small thresholds (store_options) make the cycle
 * short; the server's defaults follow the same code. */
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "store.h"

#define CHECKPOINT_FRAMES 50
#define RESTART_FRAMES 200
#define THREADS 4
#define READERS 2
#define JOBS_PER_THREAD 400
#define EVENTS_PER_JOB 20
#define FRAME_BYTES (24 + 4096)

static char *dir;
static int64_t ticket_id;
static gint readers_stop;

static ib_status
add_events_run(ib_tx *tx, void *arg)
{
  (void)arg;
  for (int i = 0; i < EVENTS_PER_JOB; i++) {
    ib_status st = store_add_event(tx, "message.received", ticket_id, 0);
    if (st != IB_OK)
      return st;
  }
  return IB_OK;
}

static gpointer
writer_client(gpointer arg)
{
  ib_store *s = arg;
  int failed = 0;
  for (int i = 0; i < JOBS_PER_THREAD; i++)
    failed += store_run(s, add_events_run, NULL) != IB_OK;
  return GINT_TO_POINTER(failed);
}

/* Short reads, one after the other, each its own snapshot: as the dashboard's API calls
 * and the search indexer read while messages come in. Returns the number of reads. */
static gpointer
reader_client(gpointer arg)
{
  const char *path = arg;
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  long reads = 0;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "SELECT count(*), max(at) FROM events", -1, &q, NULL) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    while (!g_atomic_int_get(&readers_stop)) {
      while (sqlite3_step(q) == SQLITE_ROW)
        ;
      sqlite3_reset(q);
      reads++;
    }
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return GSIZE_TO_POINTER(reads);
}

/* The WAL header's checkpoint sequence number: SQLite adds one each time the WAL starts
 * over (https://www.sqlite.org/fileformat2.html#walformat, offset 12, big-endian). */
static long
wal_restarts(const char *wal)
{
  FILE *f = fopen(wal, "rb");
  unsigned char h[32];
  long n = -1;
  if (f && fread(h, 1, sizeof h, f) == sizeof h)
    n = (long)h[12] << 24 | (long)h[13] << 16 | (long)h[14] << 8 | (long)h[15];
  if (f)
    fclose(f);
  return n;
}

static void
test_wal_starts_over_under_steady_load(void)
{
  char *path = g_build_filename(dir, "wal.db", NULL);
  char *wal = g_strconcat(path, "-wal", NULL);
  store_options o = {.checkpoint_frames = CHECKPOINT_FRAMES, .wal_restart_frames = RESTART_FRAMES};
  ib_store *s = NULL;
  char *err = NULL;
  CHECK_INT(store_open(path, &o, &s, &err), IB_OK);
  g_free(err);
  if (!s)
    return;

  sqlite3 *db = NULL;
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  CHECK_INT(sqlite3_exec(db,
                         "INSERT INTO tickets (subject, created_at, updated_at) VALUES "
                         "('wal', '2025-01-06T10:00:00.000Z', '2025-01-06T10:00:00.000Z')",
                         NULL, NULL, NULL),
            SQLITE_OK);
  ticket_id = sqlite3_last_insert_rowid(db);
  sqlite3_close(db);

  /* Several clients, each waiting for its commit before the next: the writer always has
   * a job queued, so the checkpoint thread never finds the WAL idle. */
  GThread *r[READERS], *t[THREADS];
  for (int i = 0; i < READERS; i++)
    r[i] = g_thread_new("reader", reader_client, path);
  for (int i = 0; i < THREADS; i++)
    t[i] = g_thread_new("client", writer_client, s);
  int failed = 0;
  for (int i = 0; i < THREADS; i++)
    failed += GPOINTER_TO_INT(g_thread_join(t[i]));
  CHECK_INT(failed, 0);
  g_atomic_int_set(&readers_stop, 1);
  for (int i = 0; i < READERS; i++)
    CHECK(GPOINTER_TO_SIZE(g_thread_join(r[i])) > 0);

  /* Before the store closes (its close checkpoints and removes the WAL). The file never
   * shrinks, so its size is the largest the WAL was; it must hold a few checkpoints'
   * worth, not every frame written (several thousand). */
  GStatBuf st;
  CHECK_INT(g_stat(wal, &st), 0);
  long frames = (long)(st.st_size - 32) / FRAME_BYTES;
  fprintf(stderr, "WAL: %ld frames at most, started over %ld times\n", frames, wal_restarts(wal));
  CHECK(frames <= 5 * RESTART_FRAMES);
  CHECK(wal_restarts(wal) >= 3);

  /* Every event is there, and the database is sound. */
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt *q = NULL;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE ticket_id = ?", -1, &q, NULL);
  sqlite3_bind_int64(q, 1, ticket_id);
  CHECK_INT(sqlite3_step(q), SQLITE_ROW);
  CHECK_INT(sqlite3_column_int64(q, 0), THREADS * JOBS_PER_THREAD * EVENTS_PER_JOB);
  sqlite3_finalize(q);
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL);
  CHECK_INT(sqlite3_step(q), SQLITE_ROW);
  CHECK_STR((const char *)sqlite3_column_text(q, 0), "ok");
  sqlite3_finalize(q);
  sqlite3_close(db);

  store_close(s);
  g_free(wal);
  g_free(path);
}

int
main(void)
{
  dir = g_dir_make_tmp("inboxd-wal-XXXXXX", NULL);
  test_wal_starts_over_under_steady_load();
  check_remove_dir(dir);
  return check_done();
}
