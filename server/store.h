/* store.h: durable storage of tickets, messages, raw bytes, attachments and events, in
 * SQLite (WAL; a file path) or PostgreSQL (a postgresql:// URI; several inboxd nodes on
 * one database). The only module that speaks SQL; nothing else knows which backend runs.
 *
 * Writes go through one writer thread that runs every waiting job inside one
 * transaction and commits them together (group commit, synchronous=FULL): a job's done
 * callback runs only after the commit that made it durable, or with an error status
 * when it was not committed. Reads run on per-thread read connections and see the
 * last commit. */
#ifndef INBOXD_STORE_H
#define INBOXD_STORE_H

#include <glib.h>
#include <jansson.h>
#include <stdint.h>

#include "message.h"
#include "status.h"

typedef struct ib_store ib_store;
typedef struct ib_tx ib_tx; /* the writer's open transaction, lent to a job */

typedef struct store_options {
  int commit_batch;           /* most jobs per transaction (default 256) */
  int busy_timeout_ms;        /* how long to wait for a lock held by another process */
  const char *public_url;     /* base for attachment URLs ("" or NULL: relative URLs) */
  int pool_size;              /* PostgreSQL: read connections at most (default 8) */
  int64_t lease_ms;           /* PostgreSQL: a node's claim on a delivery lasts this long
                                 (default 60000); after that, if the node died, any node sends it */
  const char *attachment_dir; /* attachment bytes as files named by SHA-256 in this
                                 (shared) directory; NULL: in the database */
  int search_catch_up;        /* SQLite: at open, index again the messages missing from the
                                 full-text index (a crash between its commit and the
                                 message's, a deleted index file). The server sets it;
                                 `inboxd ingest`, one message per process, does not. */
  int checkpoint_frames;      /* SQLite: checkpoint each time the WAL grows by this many
                                 frames (default 2000) */
  int wal_restart_frames;     /* SQLite: past this many frames the writer makes the WAL
                                 start over (default 8 * checkpoint_frames) */
} store_options;

/* 1 when TARGET (a --db value) names a PostgreSQL database (postgresql:// or
 * postgres://), 0 for an SQLite file. */
int store_is_postgres(const char *target);

/* Open (create, migrate) the database at PATH (an SQLite file, or a PostgreSQL URI) and
 * start the writer thread. Returns IB_OK,
 * IB_ERR_STORAGE (cannot open or write), or IB_ERR_UNSUPPORTED (the database was made by a
 * newer inboxd). On failure *ERROR_OUT gets a new message (g_free). *STORE_OUT is new:
 * release it with store_close(). OPTS may be NULL. */
ib_status store_open(const char *path, const store_options *opts, ib_store **store_out,
                     char **error_out);

/* Finish every submitted job, stop the writer, checkpoint the WAL and close every
 * connection. Call after all other threads using the store have stopped. */
void store_close(ib_store *store);

/* ---- Writes ---------------------------------------------------------------------- */

/* A job runs on the writer thread inside a savepoint of the group transaction. Return
 * IB_OK to keep its changes; any other status rolls back this job only. */
typedef ib_status (*store_job_fn)(ib_tx *tx, void *arg);

/* Called on the writer thread after the commit (IB_OK) or with the job's failure, or
 * IB_ERR_STORAGE when the group transaction could not commit. Must not block. */
typedef void (*store_done_fn)(void *arg, ib_status status);

/* Queue JOB(tx, JOB_ARG); DONE(DONE_ARG, status) follows exactly once (DONE may be NULL). */
void store_submit(ib_store *store, store_job_fn job, void *job_arg, store_done_fn done,
                  void *done_arg);

/* Run JOB and wait for its commit. Returns the status DONE would have seen. */
ib_status store_run(ib_store *store, store_job_fn job, void *arg);

/* Called after every successful commit that added events, with the newest event sequence
 * number: on the writer thread, and (PostgreSQL) on a listener thread for the commits of
 * other nodes. Several listeners (the change feed, the forwarder) may
 * register, up to four; set them before traffic starts. Must not block. */
typedef void (*store_commit_fn)(void *arg, int64_t last_seq);
void store_on_commit(ib_store *store, store_commit_fn fn, void *arg);

/* Stop calling the commit listeners; when this returns none is running, so they may be
 * freed. Commits of other nodes can arrive at any time (PostgreSQL): call it before
 * stopping what registered them. NULL is a no-op. */
void store_forget_listeners(ib_store *store);

/* Called inside the transaction for every event appended (store_add_event), so a
 * subscriber (the forwarder's outbox) can add rows that commit or roll back with it.
 * A status other than IB_OK fails the job. Set before traffic starts. */
typedef ib_status (*store_event_fn)(void *arg, ib_tx *tx, int64_t seq, const char *type,
                                    int64_t ticket_id, int64_t message_id);
void store_on_event(ib_store *store, store_event_fn fn, void *arg);

/* The transaction's timestamp (RFC 3339, shared by every row of the group). Borrowed. */
const char *store_now(const ib_tx *tx);

/* What storing a message needs beyond the message itself (its serialized document, the
 * duplicate key, the snippet and the folded search text), computed on any thread before
 * the message goes to the writer, so the writer only writes. New: store_prepared_free(). */
typedef struct store_prepared store_prepared;
store_prepared *store_prepare(const ib_message *msg);
void store_prepared_free(store_prepared *prep);

/* Inside a job, before looking up anything of MSG: serialize against other writers of
 * the same database (other nodes) that handle a message sharing any Message-ID with MSG
 * (its own, In-Reply-To, References, the original of a bounce or complaint), until the
 * group commits. A no-op where one writer owns the database (SQLite). IB_OK or a
 * storage status. */
ib_status store_lock_message_ids(ib_tx *tx, const ib_message *msg);

/* Inside a job. The identity of a stored message, for duplicate answers. */
typedef struct store_msg_ref {
  int64_t ticket_id;
  int64_t message_id;
  char classification[16];
} store_msg_ref;

/* Find a stored message with MSG's Message-ID, raw bytes and envelope recipients, or the
 * same provider EVENT_ID (may be NULL). IB_OK and *REF_OUT when found, IB_ERR_NOT_FOUND
 * when not, IB_ERR_STORAGE on failure. */
ib_status store_find_duplicate(ib_tx *tx, const ib_message *msg, const store_prepared *prep,
                               const char *event_id, store_msg_ref *ref_out);

/* Create a ticket for MSG (subject, customer = its sender) with STATUS ("open", or
 * "closed" for a machine message nobody needs to answer) and return its id. */
ib_status store_create_ticket(ib_tx *tx, const ib_message *msg, const char *status,
                              int64_t *ticket_out);

/* Store MSG (document from PREP = store_prepare(MSG), RAW bytes, attachments) in
 * TICKET_ID and update the ticket's counters and activity. REBUILT marks synthesized raw
 * bytes. *MESSAGE_OUT gets its id. */
ib_status store_insert_message(ib_tx *tx, int64_t ticket_id, const ib_message *msg,
                               const store_prepared *prep, GBytes *raw, int rebuilt,
                               const char *event_id, int64_t *message_out);

/* Change ticket ID's STATUS and/or TAGS_JSON (a JSON array text), each NULL to keep.
 * *CHANGED_OUT = 1 when anything changed (then updated_at and the version move).
 * IB_ERR_NOT_FOUND when there is no such ticket. */
ib_status store_update_ticket(ib_tx *tx, int64_t id, const char *status, const char *tags_json,
                              int *changed_out);

/* Append an event of TYPE ("message.created", "ticket.created", "ticket.updated") to the
 * change feed. MESSAGE_ID may be 0. */
ib_status store_add_event(ib_tx *tx, const char *type, int64_t ticket_id, int64_t message_id);

/* Remember PROVIDER's replay TOKEN until EXPIRES (unix seconds). IB_OK when it was new,
 * IB_ERR_CONFLICT when it was seen before and has not expired. Expired tokens are
 * deleted on the way. */
ib_status store_replay_check(ib_tx *tx, const char *provider, const char *token, int64_t expires);

/* ---- Conversations (store_conversation.c; inside a job unless said otherwise) ---- */

/* The secret of signed reply addresses (hex), generated once per database. Borrowed for
 * the store's life. Any thread. */
const char *store_reply_secret(ib_store *store);

/* The ticket of the newest message stored with Message-ID MSGID (no <>), inbound or
 * outbound. IB_ERR_NOT_FOUND when there is none. */
ib_status store_ticket_of_message_id(ib_tx *tx, const char *msgid, int64_t *ticket_out);

typedef struct store_ticket_brief {
  char *subject, *customer_name, *customer_address; /* new, may be NULL */
  char status[16];
} store_ticket_brief;

/* What the threader and agent replies need of a ticket. IB_ERR_NOT_FOUND if none.
 * Release with store_ticket_brief_clear(). */
ib_status store_ticket_brief_get(ib_tx *tx, int64_t ticket, store_ticket_brief *out);
void store_ticket_brief_clear(store_ticket_brief *brief);

/* Participants: the customer, Cc'd addresses and agents of a ticket (case-insensitive). */
ib_status store_is_participant(ib_tx *tx, int64_t ticket, const char *address, int *yes_out);
ib_status store_add_participant(ib_tx *tx, int64_t ticket, const char *address, const char *role);

/* Automatic messages (auto_reply, bounce) from ADDRESS stored at or after SINCE, counted
 * up to CAP. */
ib_status store_count_automatic(ib_tx *tx, const char *address, const char *since, int cap,
                                int *count_out);

/* Mark a stored message as part of a suspected mail loop (not forwarded). */
ib_status store_flag_loop(ib_tx *tx, int64_t message_id);

/* Add or upgrade ADDRESS on the suppression list (REASON hard_bounce, soft_bounce or
 * complaint; a soft bounce never downgrades an entry). */
ib_status store_add_suppression(ib_tx *tx, const char *address, const char *reason,
                                const char *status, const char *diagnostic, int64_t message_id);

/* Message-IDs of ticket TICKET oldest first into IDS_OUT (char*, new), and the newest
 * inbound one into *LAST_INBOUND_OUT (new, NULL if none). */
ib_status store_thread_ids(ib_tx *tx, int64_t ticket, GPtrArray *ids_out, char **last_inbound_out);

/* {"suppressions": [...]} newest first (any thread). */
ib_status store_suppressions(ib_store *store, json_t **doc_out);

/* ---- Reads (any thread) -------------------------------------------------------------- */

/* IB_OK when the database answers a query, else IB_ERR_STORAGE. */
ib_status store_ping(ib_store *store);

/* {"ticket": ticket, "messages": [message...]} (oldest first). New reference.
 * IB_ERR_NOT_FOUND when there is no such ticket. *VERSION_OUT (may be NULL) gets a value
 * that changes whenever the document does (for ETags). */
ib_status store_ticket_thread(ib_store *store, int64_t id, json_t **doc_out, int64_t *version_out);

typedef struct ticket_query {
  const char *status;        /* NULL: any */
  const char *customer;      /* customer address, case-insensitive; NULL: any */
  int limit;                 /* 1..200 */
  const char *fts_query;     /* an FTS5 query from fold_search_query(); NULL: any */
  const char *tag;           /* tickets carrying this tag; NULL: any */
  const char *updated_since; /* RFC 3339 as the store writes it; NULL: any */
  int has_cursor;            /* continue after this position: */
  char cursor_updated_at[32];
  int64_t cursor_id;
} ticket_query;

/* What a backend binds for the cursor's time when there is none: after every timestamp
 * the store writes (ISO 8601 text), so "(updated_at, id) < (this, INT64_MAX)" keeps every
 * ticket and stays a range of the activity index. */
#define TICKET_QUERY_TIME_END "9999-12-31T23:59:59.999Z"

/* Tickets matching Q, newest activity first: {"tickets": [...], "next_cursor": null} with
 * the cursor left for the caller to encode: *NEXT_AT_OUT / *NEXT_ID_OUT are set (and
 * *HAS_NEXT_OUT = 1) when there may be more. */
ib_status store_list_tickets(ib_store *store, const ticket_query *q, json_t **doc_out,
                             int *has_next_out, char *next_at_out, size_t next_at_size,
                             int64_t *next_id_out);

/* One message document (new reference). IB_ERR_NOT_FOUND when there is none. */
ib_status store_message(ib_store *store, int64_t id, json_t **doc_out);

/* Size of the raw bytes of message ID, or of attachment ID (with its metadata). */
ib_status store_raw_size(ib_store *store, int64_t message_id, uint64_t *size_out);

typedef struct store_attachment_info {
  uint64_t size;
  char *filename;     /* new (g_free); may be NULL */
  char *content_type; /* new (g_free) */
  char sha256[65];
} store_attachment_info;

ib_status store_attachment_info_get(ib_store *store, int64_t id, store_attachment_info *out);
void store_attachment_info_clear(store_attachment_info *info);

/* Copy up to LEN bytes from offset OFF of a stored blob (raw message or attachment data)
 * into BUF; *GOT_OUT gets the count. Each call is its own short read, so a slow client
 * never holds a transaction open. */
typedef enum { STORE_BLOB_RAW, STORE_BLOB_ATTACHMENT } store_blob_kind;
ib_status store_blob_read(ib_store *store, store_blob_kind kind, int64_t id, uint64_t off,
                          void *buf, size_t len, size_t *got_out);

/* Events with seq > AFTER, oldest first, at most LIMIT: {"events": [...], "last_seq": N}.
 * last_seq is the newest seq returned, or the newest seq in the feed when none is. */
ib_status store_events(ib_store *store, int64_t after, int limit, json_t **doc_out,
                       int64_t *last_seq_out);

#endif
