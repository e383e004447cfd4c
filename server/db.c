#include "db.h"

#include <glib.h>

#include "log.h"
#include "walvfs.h"

struct ib_db {
  sqlite3 *handle;
  GHashTable *stmts; /* const char *sql (pointer) -> sqlite3_stmt* */
};

ib_status
db_status(int rc)
{
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_DONE:
  case SQLITE_ROW:
    return IB_OK;
  case SQLITE_CONSTRAINT:
    return IB_ERR_CONFLICT;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
  case SQLITE_FULL:
  case SQLITE_IOERR:
  case SQLITE_READONLY:
  case SQLITE_NOMEM:
  case SQLITE_CANTOPEN:
  case SQLITE_PROTOCOL:
  case SQLITE_NOLFS:
    return IB_ERR_STORAGE;
  default:
    return IB_ERR_INTERNAL;
  }
}

static void
finalize_stmt(gpointer p)
{
  sqlite3_finalize(p);
}

static ib_status
open_with(const char *path, const char *vfs, int busy_ms, ib_db **db_out, char **error_out)
{
  *db_out = NULL;
  sqlite3 *h = NULL;
  int rc = sqlite3_open_v2(path, &h,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
  if (rc != SQLITE_OK) {
    if (error_out)
      *error_out = g_strdup_printf("cannot open database %s: %s", path,
                                   h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
    sqlite3_close(h);
    return IB_ERR_STORAGE;
  }
  sqlite3_busy_timeout(h, busy_ms);
  sqlite3_extended_result_codes(h, 1);
  ib_db *db = g_new0(ib_db, 1);
  db->handle = h;
  db->stmts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, finalize_stmt);
  static const char pragmas[] = "PRAGMA journal_mode=WAL;"
                                "PRAGMA synchronous=FULL;"
                                "PRAGMA foreign_keys=ON;"
                                "PRAGMA temp_store=MEMORY;";
  char *err = NULL;
  rc = sqlite3_exec(h, pragmas, NULL, NULL, &err);
  if (rc != SQLITE_OK) {
    if (error_out)
      *error_out = g_strdup_printf("cannot configure database %s: %s", path, err ? err : "?");
    sqlite3_free(err);
    db_close(db);
    return IB_ERR_STORAGE;
  }
  *db_out = db;
  return IB_OK;
}

ib_status
db_open(const char *path, int busy_ms, ib_db **db_out, char **error_out)
{
  return open_with(path, NULL, busy_ms, db_out, error_out);
}

ib_status
db_open_writer(const char *path, int busy_ms, ib_db **db_out, char **error_out)
{
  return open_with(path, walvfs_install() == 0 ? WALVFS_NAME : NULL, busy_ms, db_out, error_out);
}

void
db_close(ib_db *db)
{
  if (!db)
    return;
  g_hash_table_destroy(db->stmts);
  sqlite3_close(db->handle);
  g_free(db);
}

sqlite3 *
db_handle(ib_db *db)
{
  return db->handle;
}

sqlite3_stmt *
db_stmt(ib_db *db, const char *sql)
{
  sqlite3_stmt *st = g_hash_table_lookup(db->stmts, sql);
  if (st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
  }
  int rc = sqlite3_prepare_v3(db->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (rc != SQLITE_OK) {
    log_error("cannot prepare statement: %s: %.80s", sqlite3_errmsg(db->handle), sql);
    return NULL;
  }
  g_hash_table_insert(db->stmts, (gpointer)sql, st);
  return st;
}

ib_status
db_exec(ib_db *db, const char *sql)
{
  char *err = NULL;
  int rc = sqlite3_exec(db->handle, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) {
    log_error("cannot run %.40s: %s", sql, err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return db_status(rc);
  }
  return IB_OK;
}
