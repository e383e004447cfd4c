/* store_sqlite_outbox.c: the SQLite SQL of the forwarder's outbox (outbox.h). */
#include "outbox.h"

#include <string.h>

#include "clock.h"
#include "jsonout.h"
#include "log.h"
#include "store_sqlite.h"

/* The store's per-event hook: one delivery row, in the event's transaction. ARG is the
 * skip mask. */
ib_status
sqlite_outbox_on_event(void *arg, ib_tx *tx, int64_t seq, const char *type, int64_t ticket_id,
                       int64_t message_id)
{
  static const char sql_class[] = "SELECT classification, loop_suspect FROM messages WHERE id = ?1";
  static const char sql_insert[] =
      "INSERT INTO deliveries (seq, id, type, ticket_id, message_id, status, attempts, "
      "next_attempt_at, created_at, ticket) "
      "VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, "
      "CASE WHEN EXISTS (SELECT 1 FROM deliveries WHERE ticket_id = ?4 "
      "AND status IN ('pending', 'delivering')) THEN NULL ELSE ?6 END, ?7, ?8)";
  unsigned mask = GPOINTER_TO_UINT(arg);
  ib_db *db = store_tx_db(tx);
  if (outbox_skipped(mask, type, 0))
    return IB_OK;
  if (message_id) {
    /* Skipped classifications, and messages of a suspected mail loop (thread.c). */
    sqlite3_stmt *st = db_stmt(db, sql_class);
    if (!st)
      return IB_ERR_INTERNAL;
    sqlite3_bind_int64(st, 1, message_id);
    int step = sqlite3_step(st);
    int skip =
        step == SQLITE_ROW && (sqlite3_column_int(st, 1) ||
                               outbox_skipped(mask, (const char *)sqlite3_column_text(st, 0), 1));
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
      return db_status(step);
    if (skip)
      return IB_OK;
  }

  json_t *ticket = NULL;
  char *ticket_text = NULL;
  char id[32];
  ib_status rc = store_ticket_doc(db, ticket_id, &ticket);
  if (rc == IB_ERR_NOT_FOUND) {
    /* Never refuse mail over the outbox: the event goes out with "ticket": null. */
    log_warn("event %" G_GINT64_FORMAT " names ticket %" G_GINT64_FORMAT
             ", which does not exist; forwarding it without one",
             seq, ticket_id);
    ticket = json_null();
  } else if (rc != IB_OK) {
    goto done;
  }
  rc = IB_ERR_NOMEM;
  if (!(ticket_text = jsonout_dumps(ticket, NULL)))
    goto done;
  if ((rc = outbox_new_delivery_id(id, sizeof id)) != IB_OK)
    goto done;
  sqlite3_stmt *st = db_stmt(db, sql_insert);
  rc = IB_ERR_INTERNAL;
  if (!st)
    goto done;
  sqlite3_bind_int64(st, 1, seq);
  sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, ticket_id);
  if (message_id)
    sqlite3_bind_int64(st, 5, message_id);
  else
    sqlite3_bind_null(st, 5);
  sqlite3_bind_int64(st, 6, clock_now_ms());
  sqlite3_bind_text(st, 7, store_now(tx), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 8, ticket_text, -1, SQLITE_STATIC);
  rc = store_step_done(db, st, "record a delivery");
done:
  free(ticket_text);
  json_decref(ticket);
  return rc;
}

static ib_status
set_meta(ib_db *db, const char *key, const char *value)
{
  static const char sql[] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
  return store_step_done(db, st, "record the outbox settings");
}

ib_status
sqlite_outbox_set_config(ib_tx *tx, int enabled, const char *skip)
{
  ib_status rc = set_meta(store_tx_db(tx), "outbox.enabled", enabled ? "1" : "0");
  if (rc == IB_OK)
    rc = set_meta(store_tx_db(tx), "outbox.skip", skip);
  return rc;
}

ib_status
sqlite_outbox_get_config(ib_store *store, int *enabled_out, char **skip_out)
{
  static const char sql[] = "SELECT key, value FROM meta WHERE key IN ('outbox.enabled', "
                            "'outbox.skip')";
  *enabled_out = 0;
  *skip_out = NULL;
  ib_db *db = store_reader(store);
  if (!db)
    return IB_ERR_STORAGE;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(st, 0);
    const char *value = (const char *)sqlite3_column_text(st, 1);
    if (strcmp(key, "outbox.enabled") == 0) {
      *enabled_out = value && strcmp(value, "1") == 0;
    } else {
      g_free(*skip_out);
      *skip_out = g_strdup(value);
    }
  }
  sqlite3_reset(st);
  return step == SQLITE_DONE ? IB_OK : db_status(step);
}

/* ---- The forwarder's side ----------------------------------------------------------------- */

static ib_status
next_due(ib_db *db, int64_t *due_out)
{
  /* INDEXED BY and the exact terms of the partial indexes' WHERE clauses below keep the
   * planner off deliveries_status, which would walk every pending row. */
  static const char sql[] = "SELECT next_attempt_at FROM deliveries INDEXED BY deliveries_due "
                            "WHERE status = 'pending' AND next_attempt_at IS NOT NULL "
                            "ORDER BY next_attempt_at LIMIT 1";
  *due_out = INT64_MAX;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW)
    *due_out = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return step == SQLITE_ROW || step == SQLITE_DONE ? IB_OK : db_status(step);
}

ib_status
sqlite_outbox_claim(ib_tx *tx, int64_t now_ms, int max, GPtrArray *out, int64_t *next_due_out)
{
  static const char sql_due[] =
      "SELECT seq, id, type, ticket_id, message_id, attempts, created_at, ticket "
      "FROM deliveries INDEXED BY deliveries_due "
      "WHERE status = 'pending' AND next_attempt_at <= ?1 "
      "ORDER BY next_attempt_at, seq LIMIT ?2";
  static const char sql_claim[] =
      "UPDATE deliveries SET status = 'delivering' WHERE seq = ?1 AND status = 'pending'";
  ib_db *db = store_tx_db(tx);
  *next_due_out = INT64_MAX;
  guint first = out->len;
  sqlite3_stmt *st = db_stmt(db, sql_due);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, now_ms);
  sqlite3_bind_int(st, 2, max);
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    outbox_delivery *d = g_new0(outbox_delivery, 1);
    d->seq = sqlite3_column_int64(st, 0);
    g_strlcpy(d->id, (const char *)sqlite3_column_text(st, 1), sizeof d->id);
    d->type = g_strdup((const char *)sqlite3_column_text(st, 2));
    d->ticket_id = sqlite3_column_int64(st, 3);
    d->message_id = sqlite3_column_int64(st, 4); /* NULL reads as 0 */
    d->attempts = sqlite3_column_int(st, 5);
    g_strlcpy(d->created_at, (const char *)sqlite3_column_text(st, 6), sizeof d->created_at);
    if (clock_parse_rfc3339(d->created_at, &d->created_ms) != 0)
      d->created_ms = 0;
    d->ticket = g_strdup((const char *)sqlite3_column_text(st, 7));
    g_ptr_array_add(out, d);
  }
  sqlite3_reset(st);
  ib_status rc = step == SQLITE_DONE ? IB_OK : db_status(step);
  for (guint i = first; rc == IB_OK && i < out->len; i++) {
    outbox_delivery *d = g_ptr_array_index(out, i);
    st = db_stmt(db, sql_claim);
    if (!st) {
      rc = IB_ERR_INTERNAL;
      break;
    }
    sqlite3_bind_int64(st, 1, d->seq);
    rc = store_step_done(db, st, "claim a delivery");
  }
  if (rc == IB_OK)
    rc = next_due(db, next_due_out);
  if (rc != IB_OK) {
    while (out->len > first)
      outbox_delivery_free(g_ptr_array_steal_index(out, out->len - 1));
    log_error("cannot claim deliveries: %s", ib_status_str(rc));
  }
  return rc;
}

/* Schedule the first open delivery of TICKET_ID (event order) when it waits and none of
 * the ticket's deliveries is active any more. */
static ib_status
promote_next(ib_db *db, int64_t ticket_id, int64_t now_ms)
{
  static const char sql[] =
      "UPDATE deliveries SET next_attempt_at = ?2 "
      "WHERE seq = (SELECT seq FROM deliveries WHERE ticket_id = ?1 "
      "             AND status IN ('pending', 'delivering') ORDER BY seq LIMIT 1) "
      "AND status = 'pending' AND next_attempt_at IS NULL "
      "AND NOT EXISTS (SELECT 1 FROM deliveries WHERE ticket_id = ?1 "
      "                AND status IN ('pending', 'delivering') "
      "                AND (status = 'delivering' OR next_attempt_at IS NOT NULL))";
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, ticket_id);
  sqlite3_bind_int64(st, 2, now_ms);
  return store_step_done(db, st, "schedule the next delivery of a ticket");
}

ib_status
sqlite_outbox_finish(ib_tx *tx, const outbox_result *r, int64_t now_ms)
{
  static const char sql_delivered[] =
      "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, last_status = ?2, "
      "last_error = NULL, next_attempt_at = NULL, delivered_at = ?3 "
      "WHERE seq = ?1 AND status = 'delivering'";
  static const char sql_failed[] =
      "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_status = ?2, "
      "last_error = ?3, next_attempt_at = NULL WHERE seq = ?1 AND status = 'delivering'";
  static const char sql_retry[] =
      "UPDATE deliveries SET status = 'pending', attempts = attempts + 1, last_status = ?2, "
      "last_error = ?3, next_attempt_at = ?4 WHERE seq = ?1 AND status = 'delivering'";
  static const char sql_release[] =
      "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2 "
      "WHERE seq = ?1 AND status = 'delivering'";
  ib_db *db = store_tx_db(tx);
  const char *sql = r->outcome == OUTBOX_DELIVERED ? sql_delivered
                    : r->outcome == OUTBOX_FAILED  ? sql_failed
                    : r->outcome == OUTBOX_RETRY   ? sql_retry
                                                   : sql_release;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, r->seq);
  if (r->outcome == OUTBOX_RELEASE) {
    sqlite3_bind_int64(st, 2, r->next_attempt_ms);
  } else {
    if (r->http_status)
      sqlite3_bind_int(st, 2, r->http_status);
    else
      sqlite3_bind_null(st, 2);
    if (r->outcome == OUTBOX_DELIVERED)
      sqlite3_bind_text(st, 3, store_now(tx), -1, SQLITE_STATIC);
    else
      store_bind_text_or_null(st, 3, r->error);
    if (r->outcome == OUTBOX_RETRY)
      sqlite3_bind_int64(st, 4, r->next_attempt_ms);
  }
  ib_status rc = store_step_done(db, st, "record a delivery attempt");
  if (rc == IB_OK && (r->outcome == OUTBOX_DELIVERED || r->outcome == OUTBOX_FAILED))
    rc = promote_next(db, r->ticket_id, now_ms);
  return rc;
}

ib_status
sqlite_outbox_recover(ib_tx *tx, int *count_out)
{
  static const char sql[] = "UPDATE deliveries SET status = 'pending' WHERE status = 'delivering'";
  ib_db *db = store_tx_db(tx);
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  ib_status rc = store_step_done(db, st, "resume the deliveries in flight");
  if (rc == IB_OK && count_out)
    *count_out = sqlite3_changes(db_handle(db));
  return rc;
}

/* ---- Documents ------------------------------------------------------------------------ */

#define DELIVERY_COLUMNS                                                                           \
  "seq, id, type, ticket_id, message_id, status, attempts, last_status, last_error, "              \
  "next_attempt_at, created_at, delivered_at"

static json_t *
column_int_or_null(sqlite3_stmt *st, int i)
{
  return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                   : json_integer(sqlite3_column_int64(st, i));
}

/* The operator's view of a delivery, from a row of DELIVERY_COLUMNS. */
static json_t *
delivery_from_row(sqlite3_stmt *st)
{
  json_t *next = json_null();
  if (sqlite3_column_type(st, 9) != SQLITE_NULL) {
    char at[32];
    next = json_string(clock_rfc3339(sqlite3_column_int64(st, 9), at, sizeof at));
  }
  return json_pack(
      "{s:o, s:o, s:I, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o}", "id",
      store_column_json_string(st, 1), "type", store_column_json_string(st, 2), "seq",
      (json_int_t)sqlite3_column_int64(st, 0), "ticket_id", column_int_or_null(st, 3), "message_id",
      column_int_or_null(st, 4), "status", store_column_json_string(st, 5), "attempts",
      sqlite3_column_int(st, 6), "last_status", column_int_or_null(st, 7), "last_error",
      store_column_json_string(st, 8), "next_attempt_at", next, "created_at",
      store_column_json_string(st, 10), "delivered_at", store_column_json_string(st, 11));
}

static ib_status
delivery_doc(ib_db *db, const char *id, json_t **doc_out)
{
  static const char sql[] = "SELECT " DELIVERY_COLUMNS " FROM deliveries WHERE id = ?1";
  *doc_out = NULL;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  ib_status rc = store_step_row(st);
  if (rc == IB_OK && !(*doc_out = delivery_from_row(st)))
    rc = IB_ERR_NOMEM;
  sqlite3_reset(st);
  return rc;
}

ib_status
sqlite_outbox_retry(ib_tx *tx, const char *id, int64_t now_ms, json_t **doc_out,
                    const char **reason_out)
{
  static const char sql_get[] = "SELECT seq, ticket_id, status, next_attempt_at "
                                "FROM deliveries WHERE id = ?1";
  /* Queued again, unscheduled; the later pending ones of its ticket step back behind
   * it, then the ticket's first open delivery is scheduled (when none is active). */
  static const char sql_requeue[] =
      "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
      "delivered_at = NULL WHERE seq = ?1";
  static const char sql_step_back[] =
      "UPDATE deliveries SET next_attempt_at = NULL WHERE ticket_id = ?1 "
      "AND status IN ('pending', 'delivering') AND status = 'pending' AND seq > ?2";
  static const char sql_now[] =
      "UPDATE deliveries SET attempts = 0, next_attempt_at = ?2 WHERE seq = ?1";
  ib_db *db = store_tx_db(tx);
  *doc_out = NULL;
  *reason_out = NULL;
  sqlite3_stmt *st = db_stmt(db, sql_get);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  ib_status found = store_step_row(st);
  if (found != IB_OK) {
    sqlite3_reset(st);
    return found;
  }
  int64_t seq = sqlite3_column_int64(st, 0);
  int64_t ticket_id = sqlite3_column_int64(st, 1);
  char status[16];
  g_strlcpy(status, (const char *)sqlite3_column_text(st, 2), sizeof status);
  int scheduled = sqlite3_column_type(st, 3) != SQLITE_NULL;
  sqlite3_reset(st);

  ib_status rc;
  if (strcmp(status, "delivering") == 0) {
    *reason_out = "the delivery is being sent right now";
    return IB_ERR_CONFLICT;
  }
  if (strcmp(status, "pending") == 0) {
    if (!scheduled) {
      *reason_out = "the delivery waits for an earlier delivery of its ticket; retry that one";
      return IB_ERR_CONFLICT;
    }
    if (!(st = db_stmt(db, sql_now)))
      return IB_ERR_INTERNAL;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, now_ms);
    rc = store_step_done(db, st, "reschedule a delivery");
  } else {
    if (!(st = db_stmt(db, sql_requeue)))
      return IB_ERR_INTERNAL;
    sqlite3_bind_int64(st, 1, seq);
    rc = store_step_done(db, st, "queue a delivery again");
    if (rc == IB_OK) {
      if (!(st = db_stmt(db, sql_step_back)))
        return IB_ERR_INTERNAL;
      sqlite3_bind_int64(st, 1, ticket_id);
      sqlite3_bind_int64(st, 2, seq);
      rc = store_step_done(db, st, "reorder the deliveries of a ticket");
    }
    if (rc == IB_OK)
      rc = promote_next(db, ticket_id, now_ms);
  }
  if (rc == IB_OK)
    rc = delivery_doc(db, id, doc_out);
  return rc;
}

/* ---- Reads -------------------------------------------------------------------------------- */

ib_status
sqlite_outbox_next_due(ib_store *store, int64_t *due_out)
{
  *due_out = INT64_MAX;
  ib_db *db = store_reader(store);
  return db ? next_due(db, due_out) : IB_ERR_STORAGE;
}

ib_status
sqlite_outbox_list(ib_store *store, const char *status, int limit, int oldest_first,
                   json_t **doc_out)
{
  /* One statement per shape, so that a status filter walks deliveries_status. */
  static const char sql_any_new[] =
      "SELECT " DELIVERY_COLUMNS " FROM deliveries ORDER BY seq DESC LIMIT ?2";
  static const char sql_any_old[] =
      "SELECT " DELIVERY_COLUMNS " FROM deliveries ORDER BY seq LIMIT ?2";
  static const char sql_status_new[] = "SELECT " DELIVERY_COLUMNS " FROM deliveries "
                                       "WHERE status = ?1 ORDER BY seq DESC LIMIT ?2";
  static const char sql_status_old[] = "SELECT " DELIVERY_COLUMNS " FROM deliveries "
                                       "WHERE status = ?1 ORDER BY seq LIMIT ?2";
  *doc_out = NULL;
  ib_db *db = store_reader(store);
  if (!db)
    return IB_ERR_STORAGE;
  const char *sql = status ? (oldest_first ? sql_status_old : sql_status_new)
                           : (oldest_first ? sql_any_old : sql_any_new);
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  if (status)
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, limit);
  json_t *list = json_array();
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW)
    json_array_append_new(list, delivery_from_row(st));
  sqlite3_reset(st);
  if (step != SQLITE_DONE) {
    json_decref(list);
    return db_status(step);
  }
  *doc_out = json_pack("{s:o}", "deliveries", list);
  return *doc_out ? IB_OK : IB_ERR_NOMEM;
}

/* One statement, so the counts come from one snapshot: counted one state at a time, a
 * delivery the forwarder moved between the two counts was missed or counted twice. */
ib_status
sqlite_outbox_stats_get(ib_store *store, outbox_stats *out)
{
  /* The oldest open delivery from each state's first index entry (min over an IN list
   * would sort every open delivery). */
  static const char sql[] =
      "SELECT count(*) FILTER (WHERE status = 'pending'), "
      "count(*) FILTER (WHERE status = 'delivering'), "
      "(SELECT created_at FROM deliveries WHERE seq = (SELECT min(coalesce(p, d), coalesce(d, p)) "
      "  FROM (SELECT (SELECT min(seq) FROM deliveries WHERE status = 'pending') AS p, "
      "               (SELECT min(seq) FROM deliveries WHERE status = 'delivering') AS d))) "
      "FROM deliveries WHERE status IN ('pending', 'delivering')";
  memset(out, 0, sizeof *out);
  ib_db *db = store_reader(store);
  if (!db)
    return IB_ERR_STORAGE;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    out->pending = sqlite3_column_int64(st, 0);
    out->delivering = sqlite3_column_int64(st, 1);
    if (sqlite3_column_type(st, 2) != SQLITE_NULL &&
        clock_parse_rfc3339((const char *)sqlite3_column_text(st, 2), &out->oldest_open_ms) != 0)
      out->oldest_open_ms = 0;
  }
  sqlite3_reset(st);
  return step == SQLITE_ROW ? IB_OK : db_status(step);
}
