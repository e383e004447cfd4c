/* store.c: what both backends share (store_internal.h): the job queue and the writer
 * thread, the listeners, store_prepare(), opening the backend a --db names, and one
 * dispatcher per function of store.h. */
#include "store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fold.h"
#include "jsonout.h"
#include "log.h"
#include "metrics.h"
#include "store_internal.h"

/* ---- Writer thread ----------------------------------------------------------------- */
static void
finish_jobs(ib_store *s, GPtrArray *batch)
{
  for (guint i = batch->len; i-- > 0;) {
    job *j = g_ptr_array_index(batch, i);
    if (j->requeue) {
      /* First in the next group, in the order it had. */
      j->requeue = 0;
      j->requeued++;
      pthread_mutex_lock(&s->lock);
      g_queue_push_head(&s->queue, j);
      pthread_mutex_unlock(&s->lock);
      g_ptr_array_index(batch, i) = NULL;
    }
  }
  for (guint i = 0; i < batch->len; i++) {
    job *j = g_ptr_array_index(batch, i);
    if (!j)
      continue;
    if (j->done)
      j->done(j->done_arg, j->status);
    g_free(j);
  }
  g_ptr_array_set_size(batch, 0);
}

static void *
writer_main(void *arg)
{
  ib_store *s = arg;
  pthread_setname_np(pthread_self(), "store-writer");
  GPtrArray *batch = g_ptr_array_new();
  for (;;) {
    pthread_mutex_lock(&s->lock);
    while (g_queue_is_empty(&s->queue) && !s->stopping)
      pthread_cond_wait(&s->wake, &s->lock);
    if (g_queue_is_empty(&s->queue) && s->stopping) {
      pthread_mutex_unlock(&s->lock);
      break;
    }
    while (!g_queue_is_empty(&s->queue) && (int)batch->len < s->commit_batch)
      g_ptr_array_add(batch, g_queue_pop_head(&s->queue));
    pthread_mutex_unlock(&s->lock);

    int64_t t0 = g_get_monotonic_time();
    s->ops->run_batch(s, batch);
    metrics_observe(METRIC_STORE_GROUP_TIME, (double)(g_get_monotonic_time() - t0) / 1e6);
    metrics_add(METRIC_STORE_GROUPS, 1);
    metrics_add(METRIC_STORE_JOBS, batch->len);
    finish_jobs(s, batch);
    if (s->ops->after_batch)
      s->ops->after_batch(s);
  }
  g_ptr_array_unref(batch);
  return NULL;
}

void
store_submit(ib_store *s, store_job_fn fn, void *arg, store_done_fn done, void *done_arg)
{
  job *j = g_new0(job, 1);
  j->fn = fn;
  j->arg = arg;
  j->done = done;
  j->done_arg = done_arg;
  pthread_mutex_lock(&s->lock);
  g_queue_push_tail(&s->queue, j);
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
}

typedef struct sync_wait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int finished;
  ib_status status;
} sync_wait;

static void
sync_done(void *arg, ib_status st)
{
  sync_wait *w = arg;
  pthread_mutex_lock(&w->lock);
  w->finished = 1;
  w->status = st;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

ib_status
store_run(ib_store *s, store_job_fn fn, void *arg)
{
  sync_wait w = {.finished = 0};
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.cond, NULL);
  store_submit(s, fn, arg, sync_done, &w);
  pthread_mutex_lock(&w.lock);
  while (!w.finished)
    pthread_cond_wait(&w.cond, &w.lock);
  pthread_mutex_unlock(&w.lock);
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.cond);
  return w.status;
}

void
store_on_commit(ib_store *s, store_commit_fn fn, void *arg)
{
  /* Under the lock: the listener thread of another node's commits may be reading. */
  pthread_mutex_lock(&s->listeners_lock);
  int i = 0;
  while (i < STORE_COMMIT_LISTENERS && s->on_commit[i])
    i++;
  if (i < STORE_COMMIT_LISTENERS) {
    s->on_commit[i] = fn;
    s->on_commit_arg[i] = arg;
  }
  pthread_mutex_unlock(&s->listeners_lock);
  if (i == STORE_COMMIT_LISTENERS)
    log_error("too many commit listeners (at most %d)", STORE_COMMIT_LISTENERS);
}

void
store_on_event(ib_store *s, store_event_fn fn, void *arg)
{
  s->on_event = fn;
  s->on_event_arg = arg;
}

const char *
store_now(const ib_tx *tx)
{
  return tx->now;
}

void
store_notify_commit(ib_store *s, int64_t last_seq)
{
  /* Held while the listeners run, so store_forget_listeners() can wait for them. */
  pthread_mutex_lock(&s->listeners_lock);
  for (int i = 0; !s->listeners_off && i < STORE_COMMIT_LISTENERS && s->on_commit[i]; i++)
    s->on_commit[i](s->on_commit_arg[i], last_seq);
  pthread_mutex_unlock(&s->listeners_lock);
}

void
store_forget_listeners(ib_store *s)
{
  if (!s)
    return;
  pthread_mutex_lock(&s->listeners_lock);
  s->listeners_off = 1;
  pthread_mutex_unlock(&s->listeners_lock);
}

const char *
store_reply_secret(ib_store *s)
{
  return s->reply_secret;
}

/* ---- Open / close ------------------------------------------------------------------ */

int
store_is_postgres(const char *target)
{
  return target &&
         (g_str_has_prefix(target, "postgresql://") || g_str_has_prefix(target, "postgres://"));
}

ib_status
store_open(const char *path, const store_options *opts, ib_store **store_out, char **error_out)
{
  *store_out = NULL;
  *error_out = NULL;
  ib_store *s = g_new0(ib_store, 1);
  s->ops = store_is_postgres(path) ? &store_pg_ops : &store_sqlite_ops;
  s->path = g_strdup(path);
  s->commit_batch = opts && opts->commit_batch > 0 ? opts->commit_batch : 256;
  s->busy_ms = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
  s->pool_size = opts && opts->pool_size > 0 ? opts->pool_size : 8;
  s->lease_ms = opts && opts->lease_ms > 0 ? opts->lease_ms : 60000;
  s->public_url = g_strdup(opts && opts->public_url ? opts->public_url : "");
  if (s->public_url[0] && g_str_has_suffix(s->public_url, "/"))
    s->public_url[strlen(s->public_url) - 1] = '\0';
  s->attachment_dir =
      opts && opts->attachment_dir && *opts->attachment_dir ? g_strdup(opts->attachment_dir) : NULL;
  s->search_catch_up = opts && opts->search_catch_up;
  s->checkpoint_frames = opts && opts->checkpoint_frames > 0 ? opts->checkpoint_frames : 2000;
  s->wal_restart_frames =
      opts && opts->wal_restart_frames > 0 ? opts->wal_restart_frames : 8 * s->checkpoint_frames;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->listeners_lock, NULL);
  pthread_cond_init(&s->wake, NULL);
  g_queue_init(&s->queue);

  ib_status st = s->ops->open(s, error_out);
  if (st != IB_OK) {
    store_close(s);
    return st;
  }
  if (pthread_create(&s->writer_thread, NULL, writer_main, s) != 0) {
    *error_out = g_strdup("cannot start the writer thread");
    store_close(s);
    return IB_ERR_INTERNAL;
  }
  s->writer_started = 1;
  *store_out = s;
  return IB_OK;
}

void
store_close(ib_store *s)
{
  if (!s)
    return;
  if (s->writer_started) {
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->writer_thread, NULL);
  }
  pthread_mutex_lock(&s->lock);
  s->stopping = 1;
  pthread_mutex_unlock(&s->lock);
  s->ops->close(s);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->listeners_lock);
  pthread_cond_destroy(&s->wake);
  g_free(s->public_url);
  g_free(s->attachment_dir);
  g_free(s->reply_secret);
  g_free(s->path);
  g_free(s);
}

/* ---- Prepared messages (any thread) ------------------------------------------------------ */

static gint
compare_strp(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, lower-cased, comma-joined envelope recipients: part of the duplicate key. */
static char *
envelope_key(const ib_message *m)
{
  GPtrArray *v = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < m->envelope_to->len; i++)
    g_ptr_array_add(v, g_ascii_strdown(g_ptr_array_index(m->envelope_to, i), -1));
  g_ptr_array_sort(v, compare_strp);
  g_ptr_array_add(v, NULL);
  char *key = g_strjoinv(",", (char **)v->pdata);
  g_ptr_array_unref(v);
  return key;
}

/* A one-line preview of what the sender wrote: whitespace collapsed, 160 characters. */
static char *
make_snippet(const ib_message *m)
{
  const char *src = m->stripped_text && *m->stripped_text ? m->stripped_text : m->text;
  if (!src)
    return g_strdup("");
  GString *out = g_string_new(NULL);
  int space = 0;
  glong chars = 0;
  for (const char *p = src; *p && chars < 160; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    if (g_unichar_isspace(c)) {
      space = out->len > 0;
      continue;
    }
    if (space) {
      g_string_append_c(out, ' ');
      chars++;
      space = 0;
    }
    g_string_append_unichar(out, c);
    chars++;
  }
  return g_string_free(out, FALSE);
}

/* When STRIPPED is the start of BODY, store its length under KEY in DOC instead of a
 * second copy of those bytes (store_doc_expand() undoes it). */
static void
store_prefix_once(json_t *doc, const char *key, const char *stripped, const char *body)
{
  if (!stripped || !body)
    return;
  size_t n = strlen(stripped);
  if (strlen(body) >= n && memcmp(body, stripped, n) == 0)
    json_object_set_new(doc, key, json_integer((json_int_t)n));
}

/* ---- Prepared messages (any thread) ------------------------------------------------------ */

store_prepared *
store_prepare(const ib_message *m)
{
  store_prepared *p = g_new0(store_prepared, 1);
  p->envelope_key = envelope_key(m);
  p->snippet = make_snippet(m);
  json_t *doc = ib_message_to_json(m);
  if (doc) {
    /* Known only once the writer threads the message; the read path fills them. */
    json_object_set_new(doc, "classification", json_null());
    json_object_set_new(doc, "thread_reason", json_null());
    json_object_set_new(doc, "created_at", json_null());
    store_prefix_once(doc, "stripped_text", m->stripped_text, m->text);
    store_prefix_once(doc, "stripped_html", m->stripped_html, m->html);
    p->doc_text = jsonout_dumps(doc, NULL);
    json_decref(doc);
  }
  store_search_text(m->subject, m->stripped_text, m->text, m->from ? m->from->name : NULL,
                    m->from ? m->from->address : NULL, &p->fts_subject, &p->fts_body,
                    &p->fts_names);
  return p;
}

void
store_doc_expand(json_t *doc)
{
  static const char *const pairs[][2] = {{"stripped_text", "text"}, {"stripped_html", "html"}};
  for (size_t i = 0; i < G_N_ELEMENTS(pairs); i++) {
    json_t *len = json_object_get(doc, pairs[i][0]), *body = json_object_get(doc, pairs[i][1]);
    if (!json_is_integer(len))
      continue;
    json_int_t n = json_integer_value(len);
    json_t *prefix = NULL;
    if (json_is_string(body) && n >= 0 && (size_t)n <= json_string_length(body))
      prefix = json_stringn(json_string_value(body), (size_t)n);
    json_object_set_new(doc, pairs[i][0], prefix ? prefix : json_null());
  }
}

void
store_search_text(const char *subject, const char *stripped_text, const char *text,
                  const char *from_name, const char *from_address, char **subject_out,
                  char **body_out, char **names_out)
{
  char *names =
      g_strdup_printf("%s %s", from_name ? from_name : "", from_address ? from_address : "");
  *subject_out = fold_text(subject);
  *body_out = fold_text(stripped_text && *stripped_text ? stripped_text : text);
  *names_out = fold_text(from_name || from_address ? names : NULL);
  g_free(names);
}

void
store_prepared_free(store_prepared *p)
{
  if (!p)
    return;
  g_free(p->envelope_key);
  g_free(p->snippet);
  free(p->doc_text); /* jansson's malloc */
  g_free(p->fts_subject);
  g_free(p->fts_body);
  g_free(p->fts_names);
  g_free(p);
}

/* ---- Dispatch to the backend ------------------------------------------------------------ */

ib_status
store_lock_message_ids(ib_tx *tx, const ib_message *msg)
{
  return tx->store->ops->lock_message_ids(tx, msg);
}

ib_status
store_find_duplicate(ib_tx *tx, const ib_message *msg, const store_prepared *prep,
                     const char *event_id, store_msg_ref *ref_out)
{
  return tx->store->ops->find_duplicate(tx, msg, prep, event_id, ref_out);
}

ib_status
store_create_ticket(ib_tx *tx, const ib_message *msg, const char *status, int64_t *ticket_out)
{
  return tx->store->ops->create_ticket(tx, msg, status, ticket_out);
}

ib_status
store_insert_message(ib_tx *tx, int64_t ticket_id, const ib_message *msg,
                     const store_prepared *prep, GBytes *raw, int rebuilt, const char *event_id,
                     int64_t *message_out)
{
  return tx->store->ops->insert_message(tx, ticket_id, msg, prep, raw, rebuilt, event_id,
                                        message_out);
}

ib_status
store_update_ticket(ib_tx *tx, int64_t id, const char *status, const char *tags_json,
                    int *changed_out)
{
  return tx->store->ops->update_ticket(tx, id, status, tags_json, changed_out);
}

ib_status
store_add_event(ib_tx *tx, const char *type, int64_t ticket_id, int64_t message_id)
{
  return tx->store->ops->add_event(tx, type, ticket_id, message_id);
}

ib_status
store_replay_check(ib_tx *tx, const char *provider, const char *token, int64_t expires)
{
  return tx->store->ops->replay_check(tx, provider, token, expires);
}

ib_status
store_ticket_of_message_id(ib_tx *tx, const char *msgid, int64_t *ticket_out)
{
  return tx->store->ops->ticket_of_message_id(tx, msgid, ticket_out);
}

ib_status
store_ticket_brief_get(ib_tx *tx, int64_t ticket, store_ticket_brief *out)
{
  return tx->store->ops->ticket_brief_get(tx, ticket, out);
}

void
store_ticket_brief_clear(store_ticket_brief *b)
{
  g_free(b->subject);
  g_free(b->customer_name);
  g_free(b->customer_address);
  memset(b, 0, sizeof *b);
}

ib_status
store_is_participant(ib_tx *tx, int64_t ticket, const char *address, int *yes_out)
{
  return tx->store->ops->is_participant(tx, ticket, address, yes_out);
}

ib_status
store_add_participant(ib_tx *tx, int64_t ticket, const char *address, const char *role)
{
  return tx->store->ops->add_participant(tx, ticket, address, role);
}

ib_status
store_count_automatic(ib_tx *tx, const char *address, const char *since, int cap, int *count_out)
{
  return tx->store->ops->count_automatic(tx, address, since, cap, count_out);
}

ib_status
store_flag_loop(ib_tx *tx, int64_t message_id)
{
  return tx->store->ops->flag_loop(tx, message_id);
}

ib_status
store_add_suppression(ib_tx *tx, const char *address, const char *reason, const char *status,
                      const char *diagnostic, int64_t message_id)
{
  return tx->store->ops->add_suppression(tx, address, reason, status, diagnostic, message_id);
}

ib_status
store_thread_ids(ib_tx *tx, int64_t ticket, GPtrArray *ids_out, char **last_inbound_out)
{
  return tx->store->ops->thread_ids(tx, ticket, ids_out, last_inbound_out);
}

ib_status
store_suppressions(ib_store *s, json_t **doc_out)
{
  return s->ops->suppressions(s, doc_out);
}

ib_status
store_ping(ib_store *s)
{
  return s->ops->ping(s);
}

ib_status
store_ticket_thread(ib_store *s, int64_t id, json_t **doc_out, int64_t *version_out)
{
  return s->ops->ticket_thread(s, id, doc_out, version_out);
}

ib_status
store_list_tickets(ib_store *s, const ticket_query *q, json_t **doc_out, int *has_next_out,
                   char *next_at_out, size_t next_at_size, int64_t *next_id_out)
{
  return s->ops->list_tickets(s, q, doc_out, has_next_out, next_at_out, next_at_size, next_id_out);
}

ib_status
store_message(ib_store *s, int64_t id, json_t **doc_out)
{
  return s->ops->message(s, id, doc_out);
}

ib_status
store_raw_size(ib_store *s, int64_t message_id, uint64_t *size_out)
{
  return s->ops->raw_size(s, message_id, size_out);
}

ib_status
store_attachment_info_get(ib_store *s, int64_t id, store_attachment_info *out)
{
  return s->ops->attachment_info_get(s, id, out);
}

void
store_attachment_info_clear(store_attachment_info *info)
{
  g_free(info->filename);
  g_free(info->content_type);
  memset(info, 0, sizeof *info);
}

ib_status
store_blob_read(ib_store *s, store_blob_kind kind, int64_t id, uint64_t off, void *buf, size_t len,
                size_t *got_out)
{
  return s->ops->blob_read(s, kind, id, off, buf, len, got_out);
}

ib_status
store_events(ib_store *s, int64_t after, int limit, json_t **doc_out, int64_t *last_seq_out)
{
  return s->ops->events(s, after, limit, doc_out, last_seq_out);
}
