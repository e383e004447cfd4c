/* store_pg.h: what the PostgreSQL backend's files (store_pg.c: connections, the writer,
 * migrations, transaction operations; store_pg_read.c: reads and the outbox) share. */
#ifndef INBOXD_STORE_PG_H
#define INBOXD_STORE_PG_H

#include "pg.h"
#include "store_internal.h"

/* Two-integer advisory lock keys: (PG_LOCK_CLASS, PG_LOCK_*). Message-ID locks use the
 * one-bigint form, whose key space is separate. */
#define PG_LOCK_CLASS 0x696e6278 /* "inbx" */
#define PG_LOCK_MIGRATE 1
#define PG_LOCK_EVENTS 2

struct pg_backend {
  char node[40]; /* this process's name on claims: "<host>/<pid>/<random>" */
  int64_t lease_ms;

  pg_conn *writer;           /* writer thread only */
  int64_t writer_retry_mono; /* reconnect no earlier than this (clock_mono_ms) */
  int64_t writer_backoff_ms;

  pthread_mutex_t pool_lock;
  pthread_cond_t pool_free;
  GPtrArray *idle; /* of pg_conn* */
  int open;        /* connections made, idle or lent */
  int64_t pool_retry_mono;
  int64_t pool_backoff_ms;

  pthread_t listener;
  int listener_started;
};

/* A read connection from the pool (bounded by --db-pool), or NULL while the database
 * cannot be reached (no waiting: the caller answers 503). Give it back with pg_pool_put(). */
pg_conn *pg_pool_get(ib_store *s);
void pg_pool_put(ib_store *s, pg_conn *c);

/* Ticket ID's public document read on C. *DOC_OUT is new. IB_ERR_NOT_FOUND if none. */
ib_status pg_ticket_doc(pg_conn *c, int64_t id, json_t **doc_out);

/* An event appended inside a job, written with its seq at the end of the group. */
typedef struct pg_event {
  char *type;
  int64_t ticket_id, message_id;
  char *delivery_ticket; /* the ticket document for its delivery; NULL: no delivery */
} pg_event;

/* store_pg_read.c (contracts in store.h and outbox.h) */
ib_status pg_store_suppressions(ib_store *s, json_t **doc_out);
ib_status pg_store_ping(ib_store *s);
ib_status pg_store_ticket_thread(ib_store *s, int64_t id, json_t **doc_out, int64_t *version_out);
ib_status pg_store_list_tickets(ib_store *s, const ticket_query *q, json_t **doc_out,
                                int *has_next_out, char *next_at_out, size_t next_at_size,
                                int64_t *next_id_out);
ib_status pg_store_message(ib_store *s, int64_t id, json_t **doc_out);
ib_status pg_store_raw_size(ib_store *s, int64_t message_id, uint64_t *size_out);
ib_status pg_store_attachment_info_get(ib_store *s, int64_t id, store_attachment_info *out);
ib_status pg_store_blob_read(ib_store *s, store_blob_kind kind, int64_t id, uint64_t off, void *buf,
                             size_t len, size_t *got_out);
ib_status pg_store_events(ib_store *s, int64_t after, int limit, json_t **doc_out,
                          int64_t *last_seq_out);

ib_status pg_outbox_on_event(void *arg, ib_tx *tx, int64_t seq, const char *type, int64_t ticket_id,
                             int64_t message_id);
ib_status pg_outbox_set_config(ib_tx *tx, int enabled, const char *skip);
ib_status pg_outbox_get_config(ib_store *s, int *enabled_out, char **skip_out);
ib_status pg_outbox_claim(ib_tx *tx, int64_t now_ms, int max, GPtrArray *out,
                          int64_t *next_due_out);
ib_status pg_outbox_finish(ib_tx *tx, const outbox_result *r, int64_t now_ms);
ib_status pg_outbox_recover(ib_tx *tx, int *count_out);
ib_status pg_outbox_retry(ib_tx *tx, const char *id, int64_t now_ms, json_t **doc_out,
                          const char **reason_out);
ib_status pg_outbox_next_due(ib_store *s, int64_t *due_out);
ib_status pg_outbox_list(ib_store *s, const char *status, int limit, int oldest_first,
                         json_t **doc_out);
ib_status pg_outbox_stats_get(ib_store *s, outbox_stats *out);

/* Inside the group's last step, under the events lock: schedule the first open delivery
 * of TICKET_ID when none of its deliveries is active (store_pg_read.c). */
ib_status pg_outbox_promote(pg_conn *c, int64_t ticket_id, int64_t now_ms);

/* Remember that TICKET_ID's next delivery may have to be scheduled when this group
 * commits (store_pg.c; the promotion happens under the events lock). */
void pg_tx_want_promote(ib_tx *tx, int64_t ticket_id);

#endif
