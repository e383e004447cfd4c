/* store_internal.h: what the store_*.c files share. Only they include it: everything
 * that speaks SQL lives in server/store*.c.
 *
 * The store has one API (store.h, outbox.h) and two backends behind it: SQLite
 * (store_sqlite*.c, the embedded default) and PostgreSQL (store_pg*.c, several nodes on
 * one database). store.c owns what both share: the job queue and the writer thread that
 * hands each group of jobs to the backend's run_batch, the commit and event listeners,
 * store_prepare(), and one dispatcher per public function that calls the backend's entry
 * of store_ops. Nothing outside store*.c knows which backend runs. */
#ifndef INBOXD_STORE_INTERNAL_H
#define INBOXD_STORE_INTERNAL_H

#include <pthread.h>

#include "outbox.h"
#include "store.h"

#define STORE_COMMIT_LISTENERS 4

typedef struct job {
  store_job_fn fn;
  void *arg;
  store_done_fn done;
  void *done_arg;
  ib_status status;
  int requeue;  /* the backend asks to run it again in a later group (a deadlock victim) */
  int requeued; /* how often that happened */
} job;

/* What store_prepare() computes off the writer thread. */
struct store_prepared {
  char *envelope_key;
  char *snippet;
  char *doc_text; /* the stored document: see store_doc_expand() */
  char *fts_subject, *fts_body, *fts_names;
};

/* Turn a stored document (DOC, borrowed, changed in place) back into the message's own.
 * stripped_text / stripped_html are most often the start of text / html (a first message,
 * a reply written above the quote): then the stored document holds their length in bytes
 * instead of a second copy of the body, and this puts the string back. Older documents
 * hold both strings and are left as they are. classification, thread_reason and
 * created_at are stored as null: the read path fills them from their columns. */
void store_doc_expand(json_t *doc);

/* The folded text of one message for the full-text index: SUBJECT, the newly written
 * BODY (stripped text, else the text) and the sender's NAMES. New strings. Any thread;
 * store_prepare() and the SQLite index's catch-up (store_search.c) share it. */
void store_search_text(const char *subject, const char *stripped_text, const char *text,
                       const char *from_name, const char *from_address, char **subject_out,
                       char **body_out, char **names_out);

typedef struct search_index search_index; /* store_search.c */

typedef struct ib_db ib_db;     /* SQLite connection (db.h) */
typedef struct pg_conn pg_conn; /* PostgreSQL connection (pg.h) */
typedef struct pg_backend pg_backend;

struct ib_tx {
  ib_store *store;
  char now[32];     /* one timestamp for the whole group */
  int64_t last_seq; /* newest event added in this transaction, 0 if none */

  /* SQLite */
  ib_db *db;
  GPtrArray *search; /* of search_row*: full-text rows of the group, handed to the index
                        (store_search.c) once the group has committed */
  guint job_search;  /* rows added before the current job (rolled back with it) */

  /* PostgreSQL */
  pg_conn *pg;
  GPtrArray *events; /* of pg_event*: written, with their deliveries, at the group's end */
  guint job_events;  /* events added before the current job (rolled back with it) */
  GArray *promotes;  /* of int64_t tickets whose next delivery may be due at commit */
  guint job_promotes;
  int keys_locked; /* a job of this group took Message-ID locks */
  int lock_busy;   /* the current job found a Message-ID lock taken: run it later */
};

typedef struct store_ops {
  const char *name;
  /* Connect, migrate, set s->reply_secret and start the backend's own threads. On
   * failure release what was made and set *ERROR_OUT. */
  ib_status (*open)(ib_store *s, char **error_out);
  /* Release everything open() made. The writer thread has stopped. */
  void (*close)(ib_store *s);
  /* Run BATCH (of job*) in one transaction, set each job's status, and call
   * store_notify_commit() after a commit that added events. Writer thread. */
  void (*run_batch)(ib_store *s, GPtrArray *batch);
  /* Optional: housekeeping after a batch's jobs have been answered. Writer thread. */
  void (*after_batch)(ib_store *s);

  /* Transaction operations: see store.h. */
  ib_status (*lock_message_ids)(ib_tx *tx, const ib_message *msg);
  ib_status (*find_duplicate)(ib_tx *tx, const ib_message *msg, const store_prepared *prep,
                              const char *event_id, store_msg_ref *ref_out);
  ib_status (*create_ticket)(ib_tx *tx, const ib_message *msg, const char *status,
                             int64_t *ticket_out);
  ib_status (*insert_message)(ib_tx *tx, int64_t ticket_id, const ib_message *msg,
                              const store_prepared *prep, GBytes *raw, int rebuilt,
                              const char *event_id, int64_t *message_out);
  ib_status (*update_ticket)(ib_tx *tx, int64_t id, const char *status, const char *tags_json,
                             int *changed_out);
  ib_status (*add_event)(ib_tx *tx, const char *type, int64_t ticket_id, int64_t message_id);
  ib_status (*replay_check)(ib_tx *tx, const char *provider, const char *token, int64_t expires);
  ib_status (*ticket_of_message_id)(ib_tx *tx, const char *msgid, int64_t *ticket_out);
  ib_status (*ticket_brief_get)(ib_tx *tx, int64_t ticket, store_ticket_brief *out);
  ib_status (*is_participant)(ib_tx *tx, int64_t ticket, const char *address, int *yes_out);
  ib_status (*add_participant)(ib_tx *tx, int64_t ticket, const char *address, const char *role);
  ib_status (*count_automatic)(ib_tx *tx, const char *address, const char *since, int cap,
                               int *count_out);
  ib_status (*flag_loop)(ib_tx *tx, int64_t message_id);
  ib_status (*add_suppression)(ib_tx *tx, const char *address, const char *reason,
                               const char *status, const char *diagnostic, int64_t message_id);
  ib_status (*thread_ids)(ib_tx *tx, int64_t ticket, GPtrArray *ids_out, char **last_inbound_out);

  /* Reads: see store.h. */
  ib_status (*suppressions)(ib_store *s, json_t **doc_out);
  ib_status (*ping)(ib_store *s);
  ib_status (*ticket_thread)(ib_store *s, int64_t id, json_t **doc_out, int64_t *version_out);
  ib_status (*list_tickets)(ib_store *s, const ticket_query *q, json_t **doc_out, int *has_next_out,
                            char *next_at_out, size_t next_at_size, int64_t *next_id_out);
  ib_status (*message)(ib_store *s, int64_t id, json_t **doc_out);
  ib_status (*raw_size)(ib_store *s, int64_t message_id, uint64_t *size_out);
  ib_status (*attachment_info_get)(ib_store *s, int64_t id, store_attachment_info *out);
  ib_status (*blob_read)(ib_store *s, store_blob_kind kind, int64_t id, uint64_t off, void *buf,
                         size_t len, size_t *got_out);
  ib_status (*events)(ib_store *s, int64_t after, int limit, json_t **doc_out,
                      int64_t *last_seq_out);

  /* The outbox (outbox.h). on_event is the per-event hook outbox_configure() and
   * outbox_attach() install; set_config/get_config keep the settings in the database. */
  store_event_fn outbox_on_event;
  ib_status (*outbox_set_config)(ib_tx *tx, int enabled, const char *skip);
  ib_status (*outbox_get_config)(ib_store *s, int *enabled_out, char **skip_out);
  ib_status (*outbox_claim)(ib_tx *tx, int64_t now_ms, int max, GPtrArray *out,
                            int64_t *next_due_out);
  ib_status (*outbox_finish)(ib_tx *tx, const outbox_result *r, int64_t now_ms);
  ib_status (*outbox_recover)(ib_tx *tx, int *count_out);
  ib_status (*outbox_retry)(ib_tx *tx, const char *id, int64_t now_ms, json_t **doc_out,
                            const char **reason_out);
  ib_status (*outbox_next_due)(ib_store *s, int64_t *due_out);
  ib_status (*outbox_list)(ib_store *s, const char *status, int limit, int oldest_first,
                           json_t **doc_out);
  ib_status (*outbox_stats_get)(ib_store *s, outbox_stats *out);
} store_ops;

extern const store_ops store_sqlite_ops;
extern const store_ops store_pg_ops;

struct ib_store {
  const store_ops *ops;
  char *path; /* SQLite file or PostgreSQL URI */
  int commit_batch;
  int busy_ms;
  int pool_size;
  int64_t lease_ms;
  char *public_url;
  char *attachment_dir; /* NULL: attachment bytes in the database */
  char *reply_secret;

  pthread_t writer_thread;
  int writer_started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  GQueue queue; /* of job* */
  int stopping;

  pthread_mutex_t listeners_lock;
  int listeners_off; /* store_forget_listeners() was called */
  store_commit_fn on_commit[STORE_COMMIT_LISTENERS];
  void *on_commit_arg[STORE_COMMIT_LISTENERS];
  store_event_fn on_event;
  void *on_event_arg;

  /* SQLite (store_sqlite.c) */
  ib_db *writer;
  pthread_key_t reader_key;
  int reader_key_made;
  pthread_mutex_t readers_lock;
  GPtrArray *readers; /* of ib_db*, every open read connection */
  pthread_t checkpoint_thread;
  int checkpoint_started;
  int checkpoint_frames;   /* store_options.checkpoint_frames */
  int wal_restart_frames;  /* store_options.wal_restart_frames */
  ib_db *checkpointer;     /* the checkpoint thread's connection */
  int checkpoint_wanted;   /* under lock: the WAL grew by checkpoint_frames */
  int checkpoint_running;  /* under lock: the checkpoint thread is copying frames */
  int checkpoint_done;     /* under lock: frames copied when its last run ended */
  unsigned wal_generation; /* under lock: one more each time the WAL starts over */
  int wal_frames;          /* writer thread: frames in the WAL after the last commit */
  int wal_asked_at;        /* writer thread: wal_frames when it last woke the checkpointer */
  int wal_restart_tried;   /* writer thread: wal_frames at its last catch-up that failed */
  int wal_restart_tries;   /* writer thread: catch-ups that failed since the last restart */
  pthread_cond_t checkpoint_wake;
  search_index *search; /* the full-text index, in a file of its own */
  int search_catch_up;  /* store_options.search_catch_up */

  /* PostgreSQL (store_pg.c) */
  pg_backend *pg;
};

/* Tell every commit listener that events up to LAST_SEQ are committed. Any thread. */
void store_notify_commit(ib_store *s, int64_t last_seq);

/* The outbox's helpers shared by both backends (store_outbox.c). */
int outbox_skipped(unsigned mask, const char *name, int is_class);
ib_status outbox_new_delivery_id(char *buf, size_t size);

/* Attachments kept in --attachment-dir (store_files.c): write DATA (LEN bytes) as the
 * file named by its SHA256 (hex) under DIR, fsynced together with its directory before
 * this returns, unless it is there already. IB_OK or IB_ERR_STORAGE (logged). */
ib_status store_file_put(const char *dir, const char *sha256, const void *data, size_t len);

/* Read up to LEN bytes at OFF of the file of SHA256 under DIR into BUF. IB_OK with
 * *GOT_OUT, IB_ERR_NOT_FOUND, or IB_ERR_STORAGE. */
ib_status store_file_read(const char *dir, const char *sha256, uint64_t off, void *buf, size_t len,
                          size_t *got_out);

#endif
