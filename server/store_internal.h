/* store_internal.h: what the store_*.c files share. Only they include it: everything
 * that speaks SQL lives in server/store*.c. */
#ifndef INBOXD_STORE_INTERNAL_H
#define INBOXD_STORE_INTERNAL_H

#include <pthread.h>

#include "db.h"
#include "store.h"

#define STORE_COMMIT_LISTENERS 4

typedef struct job {
  store_job_fn fn;
  void *arg;
  store_done_fn done;
  void *done_arg;
  ib_status status;
} job;

struct ib_tx {
  ib_store *store;
  ib_db *db;
  char now[32];     /* one timestamp for the whole group */
  int64_t last_seq; /* newest event added in this transaction, 0 if none */
  GPtrArray *search; /* of search_row*: full-text rows, written once after every job (FTS5
                        would flush a segment at each job's savepoint otherwise) */
  guint job_search; /* rows added before the current job (rolled back with it) */
};

struct ib_store {
  char *path;
  int commit_batch;
  int busy_ms;
  char *public_url;
  char *reply_secret;

  ib_db *writer;
  pthread_t writer_thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  GQueue queue; /* of job* */
  int stopping;

  pthread_key_t reader_key;
  pthread_mutex_t readers_lock;
  GPtrArray *readers; /* of ib_db*, every open read connection */

  pthread_t checkpoint_thread;
  int checkpoint_started;
  int checkpoint_wanted; /* under lock: the WAL grew past CHECKPOINT_FRAMES */
  pthread_cond_t checkpoint_wake;

  store_commit_fn on_commit[STORE_COMMIT_LISTENERS];
  void *on_commit_arg[STORE_COMMIT_LISTENERS];
  store_event_fn on_event;
  void *on_event_arg;
};

/* The calling thread's read connection, opened on first use (closed by store_close()).
 * NULL when it cannot be opened (logged). */
ib_db *store_reader(ib_store *s);

/* Bind S (borrowed until the statement is reset) or NULL. */
void store_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);

/* Column I as a JSON string, or null. New reference. */
json_t *store_column_json_string(sqlite3_stmt *st, int i);

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

#endif
