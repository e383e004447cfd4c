/* db.h: one SQLite connection with its cache of prepared statements. Used only by
 * store.c (the only code that speaks SQL). */
#ifndef INBOXD_DB_H
#define INBOXD_DB_H

#include <sqlite3.h>

#include "status.h"

typedef struct ib_db ib_db;

/* Open PATH (created when missing) with inboxd's pragmas (WAL, synchronous=FULL,
 * foreign keys, busy timeout BUSY_MS). Returns IB_OK or IB_ERR_STORAGE; *DB_OUT is new:
 * release it with db_close(). On failure *ERROR_OUT (may be NULL) gets a new message. */
ib_status db_open(const char *path, int busy_ms, ib_db **db_out, char **error_out);

/* db_open() for the one connection that writes the main file: through walvfs (a commit's
 * WAL frames in one write; see walvfs.h, which needs this synchronous=FULL), or through
 * the default VFS when that cannot be registered. */
ib_status db_open_writer(const char *path, int busy_ms, ib_db **db_out, char **error_out);

/* Finalize the cached statements and close. NULL is a no-op. */
void db_close(ib_db *db);

/* The underlying handle (borrowed). */
sqlite3 *db_handle(ib_db *db);

/* Return the cached statement for SQL (a string literal: the pointer is the cache key),
 * reset and with bindings cleared, or NULL when it does not prepare (logged). Borrowed:
 * valid until db_close(). */
sqlite3_stmt *db_stmt(ib_db *db, const char *sql);

/* Run SQL (no results, may hold several statements). IB_OK or IB_ERR_STORAGE (logged). */
ib_status db_exec(ib_db *db, const char *sql);

/* Map an SQLite result code to a status: BUSY/LOCKED/FULL/IOERR/READONLY/NOMEM/CANTOPEN are
 * IB_ERR_STORAGE (retry later), CONSTRAINT is IB_ERR_CONFLICT, the rest IB_ERR_INTERNAL. */
ib_status db_status(int rc);

#endif
