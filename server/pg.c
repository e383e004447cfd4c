#include "pg.h"

#include <glib.h>
#include <string.h>

#include "log.h"

struct pg_conn {
  PGconn *handle;
  GHashTable *stmts; /* const char *sql (pointer) -> statement name (g_free) */
  unsigned next_stmt;
  pg_failure failure;
};

static void
on_notice(void *arg, const char *message)
{
  log_debug("postgresql: %s", message);
}

ib_status
pg_connect(const char *uri, int connect_timeout_s, pg_conn **conn_out, char **error_out)
{
  *conn_out = NULL;
  char timeout[16];
  g_snprintf(timeout, sizeof timeout, "%d", connect_timeout_s > 0 ? connect_timeout_s : 5);
  /* The URI's own settings win over these defaults (expand_dbname, later keys override:
   * so the defaults come first). */
  const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
  const char *values[] = {timeout, "inboxd", uri, NULL};
  PGconn *h = PQconnectdbParams(keys, values, 1);
  if (!h || PQstatus(h) != CONNECTION_OK) {
    if (error_out) {
      char *msg = g_strdup(h ? PQerrorMessage(h) : "out of memory");
      *error_out = g_strdup_printf("cannot connect to PostgreSQL: %s", g_strstrip(msg));
      g_free(msg);
    }
    PQfinish(h);
    return IB_ERR_STORAGE;
  }
  PQsetNoticeProcessor(h, on_notice, NULL);
  pg_conn *c = g_new0(pg_conn, 1);
  c->handle = h;
  c->stmts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
  *conn_out = c;
  return IB_OK;
}

void
pg_close(pg_conn *c)
{
  if (!c)
    return;
  PQfinish(c->handle);
  g_hash_table_destroy(c->stmts);
  g_free(c);
}

PGconn *
pg_handle(pg_conn *c)
{
  return c->handle;
}

int
pg_alive(pg_conn *c)
{
  return c && PQstatus(c->handle) == CONNECTION_OK;
}

static int
room(pg_params *p)
{
  if (p->n >= PG_MAX_PARAMS) {
    log_error("too many statement parameters (bug)");
    return 0;
  }
  return 1;
}

void
pg_text(pg_params *p, const char *s)
{
  if (!room(p))
    return;
  p->values[p->n] = s;
  p->lengths[p->n] = 0;
  p->formats[p->n] = 0;
  p->n++;
}

void
pg_int(pg_params *p, int64_t v)
{
  if (!room(p))
    return;
  g_snprintf(p->ints[p->n], sizeof p->ints[p->n], "%" G_GINT64_FORMAT, v);
  p->values[p->n] = p->ints[p->n];
  p->lengths[p->n] = 0;
  p->formats[p->n] = 0;
  p->n++;
}

void
pg_bytes(pg_params *p, const void *data, size_t len)
{
  if (!room(p))
    return;
  p->values[p->n] = data ? data : "";
  p->lengths[p->n] = (int)len;
  p->formats[p->n] = 1;
  p->n++;
}

static void
remember_failure(pg_conn *c, const PGresult *r)
{
  ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) {
    c->failure = PG_FAIL_NONE;
    return;
  }
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (state && strcmp(state, "23505") == 0)
    c->failure = PG_FAIL_UNIQUE;
  else if (state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0))
    c->failure = PG_FAIL_RETRY;
  else
    c->failure = PG_FAIL_OTHER;
}

PGresult *
pg_query(pg_conn *c, const char *sql, const pg_params *p, int binary)
{
  const char *name = g_hash_table_lookup(c->stmts, sql);
  int n = p ? p->n : 0;
  if (!name) {
    char *made = g_strdup_printf("s%u", c->next_stmt++);
    PGresult *r = PQprepare(c->handle, made, sql, n, NULL);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
      remember_failure(c, r);
      g_free(made);
      return r; /* the error result */
    }
    PQclear(r);
    g_hash_table_insert(c->stmts, (gpointer)sql, made);
    name = made;
  }
  PGresult *r = PQexecPrepared(c->handle, name, n, p ? p->values : NULL, p ? p->lengths : NULL,
                               p ? p->formats : NULL, binary);
  remember_failure(c, r);
  return r;
}

PGresult *
pg_query_custom(pg_conn *c, const char *sql, const pg_params *p, int binary)
{
  int n = p ? p->n : 0;
  PGresult *r = PQexecParams(c->handle, sql, n, NULL, p ? p->values : NULL, p ? p->lengths : NULL,
                             p ? p->formats : NULL, binary);
  remember_failure(c, r);
  return r;
}

ib_status
pg_check(pg_conn *c, const PGresult *r, const char *what)
{
  if (!r) {
    if (what)
      log_error("cannot %s: %s", what, PQerrorMessage(c->handle));
    return PQstatus(c->handle) == CONNECTION_OK ? IB_ERR_NOMEM : IB_ERR_STORAGE;
  }
  ExecStatusType es = PQresultStatus(r);
  if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK)
    return IB_OK;
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  ib_status st = IB_ERR_INTERNAL;
  if (PQstatus(c->handle) != CONNECTION_OK || !state)
    st = IB_ERR_STORAGE;
  else if (strcmp(state, "23505") == 0)
    st = IB_ERR_CONFLICT;
  else if (g_str_has_prefix(state, "08") || g_str_has_prefix(state, "40") ||
           g_str_has_prefix(state, "53") || g_str_has_prefix(state, "57") ||
           g_str_has_prefix(state, "58") || strcmp(state, "55P03") == 0 ||
           strcmp(state, "25P02") == 0)
    st = IB_ERR_STORAGE;
  if (what && !(st == IB_ERR_CONFLICT && c->failure == PG_FAIL_UNIQUE)) {
    char *msg = g_strdup(PQresultErrorMessage(r));
    log_error("cannot %s: %s", what, g_strstrip(msg));
    g_free(msg);
  }
  return st;
}

ib_status
pg_exec(pg_conn *c, const char *sql, const char *what)
{
  PGresult *r = PQexec(c->handle, sql);
  remember_failure(c, r);
  ib_status st = pg_check(c, r, what);
  PQclear(r);
  return st;
}

pg_failure
pg_last_failure(pg_conn *c)
{
  return c->failure;
}

int64_t
pg_int_at(const PGresult *r, int row, int col)
{
  if (PQgetisnull(r, row, col))
    return 0;
  return g_ascii_strtoll(PQgetvalue(r, row, col), NULL, 10);
}

json_t *
pg_json_string_at(const PGresult *r, int row, int col)
{
  if (PQgetisnull(r, row, col))
    return json_null();
  json_t *s = json_string(PQgetvalue(r, row, col));
  return s ? s : json_null();
}
