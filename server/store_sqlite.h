/* store_sqlite.h: what the SQLite backend's files (store_sqlite*.c) share. */
#ifndef INBOXD_STORE_SQLITE_H
#define INBOXD_STORE_SQLITE_H

#include "db.h"
#include "store_internal.h"

/* The calling thread's read connection, opened on first use (closed by store_close()).
 * NULL when it cannot be opened (logged). */
ib_db *store_reader(ib_store *s);

/* One message's row of the full-text index (text folded by store_prepare()). */
typedef struct search_row {
  int64_t id;
  char *subject, *body, *names;
} search_row;

void search_row_free(gpointer p);

/* store_search.c: the full-text index, in its own file "<db>.search", written by its own
 * thread. search_open() creates it and starts the thread (catching up with the main file
 * when s->search_catch_up); search_close() writes what is queued and stops it. */
ib_status search_open(ib_store *s, char **error_out);
void search_close(ib_store *s);
/* Attach the index to DB as schema "search" (every connection that searches). */
ib_status search_attach(ib_store *s, ib_db *db);
/* Queue the rows (search_row*, ascending ids) of a committed group: moves them out of
 * ROWS. Writer thread. */
void search_add(ib_store *s, GPtrArray *rows);
/* Wait (bounded) until every message handed over so far is indexed: call before a
 * search, so that a search sees every message acknowledged before it began. */
void search_wait(ib_store *s);

/* Bind S (borrowed until the statement is reset) or NULL. */
void store_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);

/* Column I as a JSON string, or null. New reference. */
json_t *store_column_json_string(sqlite3_stmt *st, int i);

/* Step ST expecting one row: IB_OK with the row current (the caller reads it, then
 * resets ST), IB_ERR_NOT_FOUND when there is none, else the error's status. */
ib_status store_step_row(sqlite3_stmt *st);

/* Step ST expecting SQLITE_DONE, then reset it; log "cannot WHAT" and convert otherwise. */
ib_status store_step_done(ib_db *db, sqlite3_stmt *st, const char *what);

/* Ticket ID's public document read on DB (a reader, or the writer inside a job: then it
 * sees the job's own changes). *DOC_OUT is new. IB_ERR_NOT_FOUND when there is none. */
ib_status store_ticket_doc(ib_db *db, int64_t id, json_t **doc_out);

/* The writer's connection inside a job. */
static inline ib_db *
store_tx_db(ib_tx *tx)
{
  return tx->db;
}

/* store_sqlite_conversation.c (contracts in store.h) */
ib_status sqlite_ticket_of_message_id(ib_tx *tx, const char *msgid, int64_t *ticket_out);
ib_status sqlite_ticket_brief_get(ib_tx *tx, int64_t ticket, store_ticket_brief *out);
ib_status sqlite_is_participant(ib_tx *tx, int64_t ticket, const char *address, int *yes_out);
ib_status sqlite_add_participant(ib_tx *tx, int64_t ticket, const char *address, const char *role);
ib_status sqlite_count_automatic(ib_tx *tx, const char *address, const char *since, int cap,
                                 int *count_out);
ib_status sqlite_flag_loop(ib_tx *tx, int64_t message_id);
ib_status sqlite_add_suppression(ib_tx *tx, const char *address, const char *reason,
                                 const char *status, const char *diagnostic, int64_t message_id);
ib_status sqlite_thread_ids(ib_tx *tx, int64_t ticket, GPtrArray *ids_out, char **last_inbound_out);
ib_status sqlite_suppressions(ib_store *s, json_t **doc_out);
ib_status sqlite_replay_check(ib_tx *tx, const char *provider, const char *token, int64_t expires);

/* store_sqlite_outbox.c (contracts in outbox.h) */
ib_status sqlite_outbox_on_event(void *arg, ib_tx *tx, int64_t seq, const char *type,
                                 int64_t ticket_id, int64_t message_id);
ib_status sqlite_outbox_set_config(ib_tx *tx, int enabled, const char *skip);
ib_status sqlite_outbox_get_config(ib_store *s, int *enabled_out, char **skip_out);
ib_status sqlite_outbox_claim(ib_tx *tx, int64_t now_ms, int max, GPtrArray *out,
                              int64_t *next_due_out);
ib_status sqlite_outbox_finish(ib_tx *tx, const outbox_result *r, int64_t now_ms);
ib_status sqlite_outbox_recover(ib_tx *tx, int *count_out);
ib_status sqlite_outbox_retry(ib_tx *tx, const char *id, int64_t now_ms, json_t **doc_out,
                              const char **reason_out);
ib_status sqlite_outbox_next_due(ib_store *s, int64_t *due_out);
ib_status sqlite_outbox_list(ib_store *s, const char *status, int limit, int oldest_first,
                             json_t **doc_out);
ib_status sqlite_outbox_stats_get(ib_store *s, outbox_stats *out);

#endif
