/* pg.h: one PostgreSQL connection (libpq) with its cache of prepared statements, and a
 * small parameter list. Used only by store_pg*.c (the only code that speaks SQL). */
#ifndef INBOXD_PG_H
#define INBOXD_PG_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct pg_conn pg_conn;

/* Connect to URI (a libpq connection URI) within CONNECT_TIMEOUT_S seconds. Returns IB_OK
 * or IB_ERR_STORAGE with *ERROR_OUT (new, g_free; may be NULL) saying why. *CONN_OUT is
 * new: release it with pg_close(). */
ib_status pg_connect(const char *uri, int connect_timeout_s, pg_conn **conn_out, char **error_out);

/* Close the connection and forget its statements. NULL is a no-op. */
void pg_close(pg_conn *c);

/* The libpq handle (borrowed). */
PGconn *pg_handle(pg_conn *c);

/* 1 while the connection is usable (not lost). */
int pg_alive(pg_conn *c);

#define PG_MAX_PARAMS 20

/* Parameters of one statement, in order ($1, $2, ...). Values are borrowed until the
 * statement ran, except integers, which are formatted into the list itself. */
typedef struct pg_params {
  int n;
  const char *values[PG_MAX_PARAMS];
  int lengths[PG_MAX_PARAMS];
  int formats[PG_MAX_PARAMS]; /* 1: binary (bytea) */
  char ints[PG_MAX_PARAMS][24];
} pg_params;

void pg_text(pg_params *p, const char *s); /* NULL: SQL NULL */
void pg_int(pg_params *p, int64_t v);
void pg_bytes(pg_params *p, const void *data, size_t len);

/* Run SQL (a string literal: the pointer is the cache key; prepared on first use on this
 * connection) with P (may be NULL). BINARY asks for binary result columns. Returns the
 * result (PQclear) or NULL when out of memory; check it with pg_check(). */
PGresult *pg_query(pg_conn *c, const char *sql, const pg_params *p, int binary);

/* As pg_query(), but unprepared: PostgreSQL plans SQL for P's values on every call. For a
 * statement whose best plan depends on them, such as a filter that is NULL or a value few
 * rows have: a prepared statement changes to one generic plan after five executions on a
 * connection, and a generic plan cannot use the index of "$1 IS NULL OR col = $1". */
PGresult *pg_query_custom(pg_conn *c, const char *sql, const pg_params *p, int binary);

/* Convert R's outcome: IB_OK for rows or a command; IB_ERR_CONFLICT for a unique
 * violation; IB_ERR_STORAGE for a lost connection, a deadlock, a lock timeout, a server
 * shutting down or out of resources (retry later); IB_ERR_INTERNAL otherwise. Logs
 * "cannot WHAT: <server message>" unless the status is IB_OK or WHAT is NULL. */
ib_status pg_check(pg_conn *c, const PGresult *r, const char *what);

/* Run SQL (a literal; several statements allowed, no parameters, not prepared) and
 * check it as pg_check() does. */
ib_status pg_exec(pg_conn *c, const char *sql, const char *what);

/* How the last failed statement on C failed (cleared by a successful one). */
typedef enum {
  PG_FAIL_NONE,
  PG_FAIL_UNIQUE, /* unique_violation: another transaction stored the same key */
  PG_FAIL_RETRY,  /* deadlock or serialization failure: run again later */
  PG_FAIL_OTHER,
} pg_failure;
pg_failure pg_last_failure(pg_conn *c);

/* Parse a result field as an integer (NULL field: 0). */
int64_t pg_int_at(const PGresult *r, int row, int col);

/* A result field as a JSON string, or null. New reference. */
json_t *pg_json_string_at(const PGresult *r, int row, int col);

#endif
