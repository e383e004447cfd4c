/* outbox.h: the transactional outbox of the forwarder (schema/sqlite/002_outbox.sql),
 * implemented in store_outbox.c (SQL lives only in store*.c).
 *
 * Every event appended with store_add_event() gets its delivery row in the same
 * transaction (the store's per-event hook), unless --forward-skip excludes it. The row
 * holds a snapshot of the ticket document at event time; the message document is read
 * when the event is sent (messages do not change once stored).
 *
 * Per-ticket order: at most one delivery of a ticket is active (being sent, or pending
 * with a time for its next attempt); the later ones wait, unscheduled, and the next in
 * event order is promoted when the active one is delivered or fails for good. */
#ifndef INBOXD_OUTBOX_H
#define INBOXD_OUTBOX_H

#include <glib.h>
#include <jansson.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

/* ---- What is recorded ---------------------------------------------------------------- */

/* Parse a --forward-skip LIST (comma list of event types "message.created",
 * "ticket.created", "ticket.updated" and classifications "new", "reply", "auto_reply",
 * "bounce", "complaint"; NULL or "" skips nothing) into *MASK_OUT. Returns IB_OK, or
 * IB_ERR_INVALID with *ERROR_OUT (new, g_free) naming the unknown entry. */
ib_status outbox_skip_parse(const char *list, unsigned *mask_out, char **error_out);

/* For "inboxd serve": record in the database whether forwarding is ENABLED and which
 * events it skips (MASK from outbox_skip_parse()), so that other writers of the same
 * database ("inboxd ingest") follow the same rule, then install the per-event hook on
 * STORE when enabled. Call before traffic starts. IB_OK or IB_ERR_STORAGE (logged). */
ib_status outbox_configure(ib_store *store, int enabled, unsigned mask);

/* For other writers ("inboxd ingest"): install the per-event hook on STORE as the last
 * "inboxd serve" configured it (nothing when forwarding is off). IB_OK or IB_ERR_STORAGE. */
ib_status outbox_attach(ib_store *store);

/* ---- The forwarder's side (jobs run on the writer thread) ---------------------------- */

typedef struct outbox_delivery {
  int64_t seq; /* the event's seq */
  char id[32]; /* "dlv_" + 24 hex */
  char *type;  /* new (g_free) */
  int64_t ticket_id;
  int64_t message_id; /* 0: the event has no message */
  int attempts;       /* attempts finished before this one */
  char created_at[32];
  int64_t created_ms;
  char *ticket; /* the ticket document at event time, JSON text, new (g_free) */
} outbox_delivery;

/* Release D and its strings. NULL is a no-op. */
void outbox_delivery_free(outbox_delivery *d);

/* Inside a job: mark up to MAX pending deliveries that are due at NOW_MS (epoch ms) as
 * 'delivering', earliest due first, and append them to OUT (of outbox_delivery*, new:
 * outbox_delivery_free). *NEXT_DUE_OUT gets the earliest next attempt time left among
 * pending deliveries (epoch ms), or INT64_MAX when none is scheduled. Returns IB_OK or
 * a storage status (the claim then rolls back with the job). */
ib_status outbox_claim(ib_tx *tx, int64_t now_ms, int max, GPtrArray *out, int64_t *next_due_out);

typedef enum {
  OUTBOX_DELIVERED, /* the receiver answered 2xx */
  OUTBOX_RETRY,     /* try again at next_attempt_ms; the attempt counts */
  OUTBOX_FAILED,    /* given up: refused, or out of attempts; the attempt counts */
  OUTBOX_RELEASE,   /* not attempted after all (stopping): pending again, not counted */
} outbox_outcome;

typedef struct outbox_result {
  int64_t seq;
  int64_t ticket_id;
  outbox_outcome outcome;
  int http_status;         /* 0 when there was no HTTP response */
  char *error;             /* what went wrong (new, g_free), NULL when nothing did */
  int64_t next_attempt_ms; /* OUTBOX_RETRY and OUTBOX_RELEASE */
} outbox_result;

/* Release R and its error text. NULL is a no-op. */
void outbox_result_free(outbox_result *r);

/* Inside a job: record R for a delivery claimed by outbox_claim() and, when it leaves
 * the queue (delivered, failed), promote the next delivery of its ticket. NOW_MS is
 * the wall clock. Returns IB_OK or a storage status. */
ib_status outbox_finish(ib_tx *tx, const outbox_result *r, int64_t now_ms);

/* Inside a job: put every 'delivering' delivery back to 'pending' (a process that died
 * while sending them: they are sent again, with the same id). *COUNT_OUT (may be NULL)
 * gets how many. */
ib_status outbox_recover(ib_tx *tx, int *count_out);

/* Inside a job: an operator's retry of delivery ID. A delivered or failed one is queued
 * again with its attempts reset (behind any earlier open delivery of its ticket); a
 * pending one that waits for its backoff is due at once. Returns IB_OK with *DOC_OUT
 * (new) the delivery document after the change, IB_ERR_NOT_FOUND, or IB_ERR_CONFLICT
 * when it is being sent or waits for an earlier delivery of its ticket (*REASON_OUT then
 * gets a static sentence). */
ib_status outbox_retry(ib_tx *tx, const char *id, int64_t now_ms, json_t **doc_out,
                       const char **reason_out);

/* ---- Reads (any thread, its own read connection) -------------------------------------- */

/* *DUE_OUT: the earliest next attempt time (epoch ms) among pending deliveries, INT64_MAX
 * when none is scheduled. Returns IB_OK or a storage status. */
ib_status outbox_next_due(ib_store *store, int64_t *due_out);

/* {"deliveries": [delivery...]} with STATUS ("pending", "delivering", "delivered",
 * "failed"; NULL: any), at most LIMIT, by event order: newest first, or oldest first when
 * OLDEST_FIRST. *DOC_OUT is new. Returns IB_OK or a storage status. */
ib_status outbox_list(ib_store *store, const char *status, int limit, int oldest_first,
                      json_t **doc_out);

typedef struct outbox_stats {
  int64_t pending;        /* waiting or scheduled */
  int64_t delivering;     /* being sent */
  int64_t oldest_open_ms; /* created_at of the oldest open delivery (epoch ms); 0: none */
} outbox_stats;

/* Fill *OUT for the queue gauges of /metrics. Returns IB_OK or a storage status. */
ib_status outbox_stats_get(ib_store *store, outbox_stats *out);

#endif
