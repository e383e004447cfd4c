/* store_sqlite_conversation.c: the SQLite SQL of threading, participants, suppressions and agent
 * replies (store.h "Conversations"). */
#include <string.h>

#include "log.h"
#include "store_sqlite.h"

/* Run ST (bound) expecting at most one row; on a row call ROW(st, arg). Returns IB_OK,
 * IB_ERR_NOT_FOUND or a storage status. */
static ib_status
one_row(ib_db *db, sqlite3_stmt *st, void (*row)(sqlite3_stmt *, void *), void *arg,
        const char *what)
{
  int rc = sqlite3_step(st);
  ib_status result = IB_OK;
  if (rc == SQLITE_ROW) {
    if (row)
      row(st, arg);
  } else if (rc == SQLITE_DONE) {
    result = IB_ERR_NOT_FOUND;
  } else {
    log_error("cannot %s: %s", what, sqlite3_errmsg(db_handle(db)));
    result = db_status(rc);
  }
  sqlite3_reset(st);
  return result;
}

static void
row_int64(sqlite3_stmt *st, void *arg)
{
  *(int64_t *)arg = sqlite3_column_int64(st, 0);
}

ib_status
sqlite_ticket_of_message_id(ib_tx *tx, const char *msgid, int64_t *ticket_out)
{
  /* messages_dedupe's first column is rfc_message_id: this is an index lookup. */
  static const char sql[] = "SELECT ticket_id FROM messages WHERE rfc_message_id = ?1 "
                            "ORDER BY id DESC LIMIT 1";
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_text(st, 1, msgid, -1, SQLITE_STATIC);
  return one_row(tx->db, st, row_int64, ticket_out, "look up a Message-ID");
}

typedef struct brief_out {
  store_ticket_brief *b;
} brief_out;

static void
row_brief(sqlite3_stmt *st, void *arg)
{
  store_ticket_brief *b = arg;
  b->subject = g_strdup((const char *)sqlite3_column_text(st, 0));
  b->customer_name = g_strdup((const char *)sqlite3_column_text(st, 1));
  b->customer_address = g_strdup((const char *)sqlite3_column_text(st, 2));
  g_strlcpy(b->status, (const char *)sqlite3_column_text(st, 3), sizeof b->status);
}

ib_status
sqlite_ticket_brief_get(ib_tx *tx, int64_t ticket, store_ticket_brief *out)
{
  static const char sql[] =
      "SELECT subject, customer_name, customer_address, status FROM tickets WHERE id = ?1";
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, ticket);
  return one_row(tx->db, st, row_brief, out, "read a ticket");
}

ib_status
sqlite_is_participant(ib_tx *tx, int64_t ticket, const char *address, int *yes_out)
{
  static const char sql[] = "SELECT 1 FROM participants WHERE ticket_id = ?1 AND address = ?2";
  *yes_out = 0;
  if (!address)
    return IB_OK;
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, ticket);
  sqlite3_bind_text(st, 2, address, -1, SQLITE_STATIC);
  ib_status rc = one_row(tx->db, st, NULL, NULL, "look up a participant");
  if (rc == IB_OK)
    *yes_out = 1;
  return rc == IB_ERR_NOT_FOUND ? IB_OK : rc;
}

ib_status
sqlite_add_participant(ib_tx *tx, int64_t ticket, const char *address, const char *role)
{
  /* A customer or agent stays what they were when they also appear in Cc. */
  static const char sql[] = "INSERT INTO participants (ticket_id, address, role) "
                            "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
  if (!address || !*address)
    return IB_OK;
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, ticket);
  sqlite3_bind_text(st, 2, address, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
  return store_step_done(tx->db, st, "add a participant");
}

ib_status
sqlite_count_automatic(ib_tx *tx, const char *address, const char *since, int cap, int *count_out)
{
  /* Only "more than the limit" matters: stop counting there, so a bounce storm from one
   * MAILER-DAEMON costs the same per message however long it lasts. */
  static const char sql[] =
      "SELECT count(*) FROM (SELECT 1 FROM messages WHERE from_address = ?1 COLLATE NOCASE "
      "AND created_at >= ?2 AND classification IN ('auto_reply', 'bounce') LIMIT ?3)";
  *count_out = 0;
  if (!address)
    return IB_OK;
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, since, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, cap);
  int64_t n = 0;
  ib_status rc = one_row(tx->db, st, row_int64, &n, "count automatic messages");
  *count_out = (int)n;
  return rc == IB_ERR_NOT_FOUND ? IB_OK : rc;
}

ib_status
sqlite_flag_loop(ib_tx *tx, int64_t message_id)
{
  static const char sql[] = "UPDATE messages SET loop_suspect = 1 WHERE id = ?1";
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, message_id);
  return store_step_done(tx->db, st, "flag a message");
}

ib_status
sqlite_add_suppression(ib_tx *tx, const char *address, const char *reason, const char *status,
                       const char *diagnostic, int64_t message_id)
{
  /* A hard bounce or complaint replaces what was there; a soft bounce never replaces
   * them. */
  static const char sql[] =
      "INSERT INTO suppressions (address, reason, status, diagnostic, message_id, at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
      "ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, status = excluded.status, "
      "diagnostic = excluded.diagnostic, message_id = excluded.message_id, at = excluded.at "
      "WHERE excluded.reason <> 'soft_bounce' OR suppressions.reason = 'soft_bounce'";
  if (!address || !*address)
    return IB_OK;
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
  store_bind_text_or_null(st, 3, status);
  store_bind_text_or_null(st, 4, diagnostic);
  sqlite3_bind_int64(st, 5, message_id);
  sqlite3_bind_text(st, 6, tx->now, -1, SQLITE_STATIC);
  return store_step_done(tx->db, st, "add a suppression");
}

ib_status
sqlite_thread_ids(ib_tx *tx, int64_t ticket, GPtrArray *ids_out, char **last_inbound_out)
{
  static const char sql[] =
      "SELECT rfc_message_id, direction FROM messages WHERE ticket_id = ?1 ORDER BY id";
  *last_inbound_out = NULL;
  sqlite3_stmt *st = db_stmt(tx->db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, ticket);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    g_ptr_array_add(ids_out, g_strdup(id));
    if (strcmp((const char *)sqlite3_column_text(st, 1), "inbound") == 0) {
      g_free(*last_inbound_out);
      *last_inbound_out = g_strdup(id);
    }
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    log_error("cannot read the thread of ticket %" G_GINT64_FORMAT ": %s", ticket,
              sqlite3_errmsg(db_handle(tx->db)));
    return db_status(rc);
  }
  return IB_OK;
}

ib_status
sqlite_suppressions(ib_store *s, json_t **doc_out)
{
  static const char sql[] = "SELECT address, reason, status, diagnostic, message_id, at "
                            "FROM suppressions ORDER BY at DESC, address";
  *doc_out = NULL;
  ib_db *db = store_reader(s);
  if (!db)
    return IB_ERR_STORAGE;
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return IB_ERR_INTERNAL;
  json_t *list = json_array();
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *mid = sqlite3_column_type(st, 4) == SQLITE_NULL
                      ? json_null()
                      : json_integer(sqlite3_column_int64(st, 4));
    json_array_append_new(list, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "address",
                                          store_column_json_string(st, 0), "reason",
                                          store_column_json_string(st, 1), "status",
                                          store_column_json_string(st, 2), "diagnostic",
                                          store_column_json_string(st, 3), "message_id", mid, "at",
                                          store_column_json_string(st, 5)));
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    json_decref(list);
    return db_status(rc);
  }
  *doc_out = json_pack("{s:o}", "suppressions", list);
  return IB_OK;
}

ib_status
sqlite_replay_check(ib_tx *tx, const char *provider, const char *token, int64_t expires)
{
  static const char sql_purge[] = "DELETE FROM replay_tokens WHERE expires_at < ?1";
  static const char sql_insert[] =
      "INSERT INTO replay_tokens (provider, token, expires_at) VALUES (?1, ?2, ?3) "
      "ON CONFLICT DO NOTHING";
  sqlite3_stmt *st = db_stmt(tx->db, sql_purge);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_int64(st, 1, g_get_real_time() / G_USEC_PER_SEC);
  ib_status rc = store_step_done(tx->db, st, "purge replay tokens");
  if (rc != IB_OK)
    return rc;
  st = db_stmt(tx->db, sql_insert);
  if (!st)
    return IB_ERR_INTERNAL;
  sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, token, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, expires);
  if ((rc = store_step_done(tx->db, st, "remember a replay token")) != IB_OK)
    return rc;
  return sqlite3_changes(db_handle(tx->db)) == 1 ? IB_OK : IB_ERR_CONFLICT;
}
