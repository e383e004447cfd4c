/* sqlite_ref.c: reference 3, what SQLite itself can commit durably on this disk.
 *
 * A fresh database in WAL mode with synchronous=FULL (an fsync of the WAL per commit,
 * as inboxd), one table with an integer key, a UNIQUE message-id text column and the raw
 * message as a BLOB; rows are the bytes of FILE, each with its own message id. BATCH
 * rows are inserted per transaction with one cached prepared statement, for SECONDS.
 *
 * usage: bench_sqlite_ref DB FILE BATCH SECONDS
 * Prints one JSON object: {"batch", "messages", "commits", "seconds", "rate"}. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
check(int rc, sqlite3 *db, const char *what)
{
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "bench_sqlite_ref: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
}

int
main(int argc, char **argv)
{
  if (argc != 5) {
    fprintf(stderr, "usage: bench_sqlite_ref DB FILE BATCH SECONDS\n");
    return 2;
  }
  const char *path = argv[1];
  int batch = (int)strtol(argv[3], NULL, 10);
  double seconds = strtod(argv[4], NULL);
  FILE *f = fopen(argv[2], "rb");
  if (!f || batch <= 0 || seconds <= 0) {
    fprintf(stderr, "bench_sqlite_ref: bad arguments\n");
    return 2;
  }
  static char raw[1 << 22];
  size_t len = fread(raw, 1, sizeof raw, f);
  fclose(f);

  sqlite3 *db = NULL;
  check(sqlite3_open(path, &db), db, "open");
  check(sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY,"
                     " message_id TEXT NOT NULL UNIQUE, raw BLOB NOT NULL);",
                     NULL, NULL, NULL),
        db, "setup");
  sqlite3_stmt *ins = NULL;
  check(sqlite3_prepare_v3(db, "INSERT INTO messages (message_id, raw) VALUES (?, ?)", -1,
                           SQLITE_PREPARE_PERSISTENT, &ins, NULL),
        db, "prepare");
  long long messages = 0, commits = 0;
  double t0 = now_s(), t1 = t0;
  char id[64];
  while (t1 - t0 < seconds) {
    check(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), db, "begin");
    for (int i = 0; i < batch; i++) {
      snprintf(id, sizeof id, "<ref-%lld@example.org>", messages++);
      sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
      sqlite3_bind_blob(ins, 2, raw, (int)len, SQLITE_STATIC);
      check(sqlite3_step(ins), db, "insert");
      sqlite3_reset(ins);
    }
    check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "commit");
    commits++;
    t1 = now_s();
  }
  sqlite3_finalize(ins);
  sqlite3_close(db);
  printf("{\"batch\":%d,\"messages\":%lld,\"commits\":%lld,\"seconds\":%.3f,\"rate\":%.1f}\n",
         batch, messages, commits, t1 - t0, (double)messages / (t1 - t0));
  return 0;
}
