#include "feed.h"

#include <microhttpd.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "hash.h"
#include "jsonout.h"
#include "log.h"

#define RING_CAP 4096      /* recent events kept in memory */
#define FETCH_PAGE 1000    /* events read from the store at a time */
#define STREAM_FILL 262144 /* bytes buffered per event stream before waiting for the client */
#define PING_MS 15000      /* keep-alive comment on idle event streams */
#define MAX_WAIT_S 300

typedef struct waiter {
  ib_request *r;
  int64_t after;
  int limit;
  int64_t deadline; /* clock_mono_ms */
} waiter;

typedef struct stream {
  ib_feed *feed;
  ib_request *r;
  GString *buf;
  int64_t sent_seq; /* newest event already put in buf */
  int paused;       /* the reader suspended the connection */
  int closed;       /* end the stream once buf is drained */
  int64_t last_write;
} stream;

struct ib_feed {
  ib_store *store;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int stopping;       /* feed_free: leave the thread */
  int shut;           /* feed_shutdown: answer everyone now */
  int64_t latest;     /* newest committed seq known (under lock) */
  GQueue waiters;     /* of waiter* (under lock) */
  GPtrArray *streams; /* of stream* (under lock) */

  /* Feed thread only. */
  GQueue ring;     /* of json_t* events, ascending seq */
  int64_t fetched; /* newest seq in the ring (or known to be none) */
};

static int64_t
event_seq(json_t *ev)
{
  return json_integer_value(json_object_get(ev, "seq"));
}

/* ---- Ring (feed thread) ------------------------------------------------------------ */

/* Read events committed since the ring's newest into the ring. */
static void
ring_fill(ib_feed *f, int64_t latest)
{
  while (f->fetched < latest) {
    json_t *doc = NULL;
    int64_t last = 0;
    if (store_events(f->store, f->fetched, FETCH_PAGE, &doc, &last) != IB_OK)
      return; /* logged by the store; retried on the next wake */
    json_t *events = json_object_get(doc, "events");
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
      g_queue_push_tail(&f->ring, json_incref(ev));
      f->fetched = event_seq(ev);
    }
    size_t n = json_array_size(events);
    json_decref(doc);
    while (f->ring.length > RING_CAP)
      json_decref(g_queue_pop_head(&f->ring));
    if (n == 0) {
      f->fetched = latest; /* nothing more (events are never deleted, but be safe) */
      break;
    }
  }
}

/* Events after AFTER, at most LIMIT, from the ring when it reaches back far enough,
 * else from the store. New reference: {"events": [...], "last_seq": N}. */
static json_t *
events_after(ib_feed *f, int64_t after, int limit)
{
  json_t *first = g_queue_peek_head(&f->ring);
  if (first && event_seq(first) <= after + 1) {
    json_t *list = json_array();
    int64_t last = MAX(after, f->fetched);
    for (GList *l = f->ring.head; l && (int)json_array_size(list) < limit; l = l->next) {
      json_t *ev = l->data;
      if (event_seq(ev) > after) {
        json_array_append(list, ev);
        last = event_seq(ev);
      }
    }
    if (json_array_size(list) == 0)
      last = f->fetched;
    return json_pack("{s:o, s:I}", "events", list, "last_seq", (json_int_t)last);
  }
  json_t *doc = NULL;
  int64_t last = 0;
  if (store_events(f->store, after, limit, &doc, &last) != IB_OK)
    return NULL;
  return doc;
}

/* ---- Long poll ---------------------------------------------------------------------- */

/* One answer serialized once for every waiter asking the same question: after a commit,
 * thousands of waiters usually wait after the same seq. */
typedef struct answer {
  char *text; /* NULL: the feed could not be read */
  size_t len;
  char etag[40];
} answer;

static void
answer_free(gpointer p)
{
  answer *a = p;
  free(a->text);
  g_free(a);
}

static void
complete_waiters(ib_feed *f, GPtrArray *ready)
{
  GHashTable *answers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, answer_free);
  for (guint i = 0; i < ready->len; i++) {
    waiter *w = g_ptr_array_index(ready, i);
    char key[48];
    g_snprintf(key, sizeof key, "%" G_GINT64_FORMAT ":%d", w->after, w->limit);
    answer *a = g_hash_table_lookup(answers, key);
    if (!a) {
      a = g_new0(answer, 1);
      json_t *doc = events_after(f, w->after, w->limit);
      if (doc && (a->text = jsonout_dumps(doc, &a->len))) {
        char sum[65];
        hash_sha256_hex(a->text, a->len, sum);
        g_snprintf(a->etag, sizeof a->etag, "\"%.32s\"", sum);
      }
      json_decref(doc);
      g_hash_table_insert(answers, g_strdup(key), a);
    }
    if (a->text)
      request_reply_json_shared(w->r, a->text, a->len, a->etag);
    else
      request_reply_status(w->r, IB_ERR_STORAGE, "cannot read the change feed; retry");
    request_resume(w->r);
    g_free(w);
  }
  g_hash_table_destroy(answers);
}

void
feed_long_poll(ib_feed *f, ib_request *r, int64_t after, int limit, int wait_s)
{
  json_t *doc = NULL;
  int64_t last = 0;
  ib_status st = store_events(f->store, after, limit, &doc, &last);
  if (st != IB_OK) {
    request_reply_status(r, st, "cannot read the change feed; retry");
    return;
  }
  if (json_array_size(json_object_get(doc, "events")) > 0 || wait_s <= 0) {
    request_reply_json(r, MHD_HTTP_OK, doc);
    return;
  }
  json_decref(doc);
  waiter *w = g_new0(waiter, 1);
  w->r = r;
  w->after = after;
  w->limit = limit;
  w->deadline = clock_mono_ms() + (int64_t)MIN(wait_s, MAX_WAIT_S) * 1000;
  /* Suspend first: from the moment the waiter is listed, the feed thread may answer it. */
  request_defer(r);
  pthread_mutex_lock(&f->lock);
  g_queue_push_tail(&f->waiters, w);
  /* An event may have committed between the query above and now: the feed thread
   * compares against f->latest when it wakes. */
  pthread_cond_signal(&f->wake);
  pthread_mutex_unlock(&f->lock);
}

/* ---- Event streams -------------------------------------------------------------------- */

static void
append_event(GString *buf, json_t *ev)
{
  char *data = jsonout_dumps(ev, NULL);
  g_string_append_printf(buf, "id: %" G_GINT64_FORMAT "\nevent: %s\ndata: %s\n\n",
                         (gint64)event_seq(ev), json_string_value(json_object_get(ev, "type")),
                         data ? data : "{}");
  free(data);
}

/* Put events past s->sent_seq into the stream's buffer, up to STREAM_FILL bytes.
 * Feed thread, lock held. Returns 1 when something was added. */
static int
stream_fill(ib_feed *f, stream *s)
{
  int added = 0;
  while (s->buf->len < STREAM_FILL && s->sent_seq < f->fetched) {
    json_t *doc = events_after(f, s->sent_seq, 200);
    json_t *events = doc ? json_object_get(doc, "events") : NULL;
    size_t i;
    json_t *ev;
    if (!events || json_array_size(events) == 0) {
      json_decref(doc);
      break;
    }
    json_array_foreach(events, i, ev)
    {
      append_event(s->buf, ev);
      s->sent_seq = event_seq(ev);
      added = 1;
    }
    json_decref(doc);
  }
  return added;
}

static ssize_t
stream_read(void *ctx, uint64_t offset, char *out, size_t max)
{
  stream *s = ctx;
  ib_feed *f = s->feed;
  ssize_t n;
  pthread_mutex_lock(&f->lock);
  if (s->buf->len > 0) {
    n = (ssize_t)MIN(max, s->buf->len);
    memcpy(out, s->buf->str, (size_t)n);
    g_string_erase(s->buf, 0, n);
    if (s->buf->len == 0 && s->sent_seq < f->latest)
      pthread_cond_signal(&f->wake); /* room again: refill */
  } else if (s->closed) {
    n = 0;
  } else {
    s->paused = 1;
    request_pause(s->r);
    n = REQUEST_STREAM_PAUSE;
  }
  pthread_mutex_unlock(&f->lock);
  return n;
}

static void
stream_free(gpointer p)
{
  stream *s = p;
  ib_feed *f = s->feed;
  pthread_mutex_lock(&f->lock);
  g_ptr_array_remove_fast(f->streams, s);
  pthread_mutex_unlock(&f->lock);
  g_string_free(s->buf, TRUE);
  g_free(s);
}

void
feed_stream(ib_feed *f, ib_request *r, int64_t after)
{
  stream *s = g_new0(stream, 1);
  s->feed = f;
  s->r = r;
  s->buf = g_string_new("retry: 2000\n\n");
  s->sent_seq = after;
  s->last_write = clock_mono_ms();
  pthread_mutex_lock(&f->lock);
  s->closed = f->shut;
  g_ptr_array_add(f->streams, s);
  pthread_cond_signal(&f->wake);
  pthread_mutex_unlock(&f->lock);
  request_reply_stream(r, MHD_HTTP_OK, "text/event-stream; charset=utf-8", REQUEST_SIZE_UNKNOWN,
                       stream_read, s, stream_free);
  request_add_header(r, "X-Accel-Buffering", "no");
}

/* ---- The feed thread ------------------------------------------------------------------- */

static void *
feed_main(void *arg)
{
  ib_feed *f = arg;
  GPtrArray *ready = g_ptr_array_new();
  GPtrArray *resume = g_ptr_array_new();
  pthread_mutex_lock(&f->lock);
  for (;;) {
    if (f->latest > f->fetched) {
      int64_t latest = f->latest;
      pthread_mutex_unlock(&f->lock);
      ring_fill(f, latest);
      pthread_mutex_lock(&f->lock);
    }
    int64_t now = clock_mono_ms();
    int64_t next = now + PING_MS;
    for (GList *l = f->waiters.head; l;) {
      GList *nx = l->next;
      waiter *w = l->data;
      if (f->shut || f->fetched > w->after || w->deadline <= now) {
        g_ptr_array_add(ready, w);
        g_queue_delete_link(&f->waiters, l);
      } else {
        next = MIN(next, w->deadline);
      }
      l = nx;
    }
    for (guint i = 0; i < f->streams->len; i++) {
      stream *s = g_ptr_array_index(f->streams, i);
      int wrote = stream_fill(f, s);
      if (!wrote && now - s->last_write >= PING_MS && s->buf->len == 0) {
        g_string_append(s->buf, ": keep-alive\n\n");
        wrote = 1;
      }
      if (f->shut)
        s->closed = 1;
      if (wrote)
        s->last_write = now;
      next = MIN(next, s->last_write + PING_MS);
      if ((wrote || s->closed) && s->paused) {
        s->paused = 0;
        g_ptr_array_add(resume, s->r);
      }
    }
    if (ready->len || resume->len) {
      pthread_mutex_unlock(&f->lock);
      complete_waiters(f, ready);
      /* A paused stream's connection is suspended: it cannot end before this resume. */
      for (guint i = 0; i < resume->len; i++)
        request_resume(g_ptr_array_index(resume, i));
      g_ptr_array_set_size(ready, 0);
      g_ptr_array_set_size(resume, 0);
      pthread_mutex_lock(&f->lock);
      continue;
    }
    if (f->stopping)
      break;
    if (f->latest > f->fetched)
      continue;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wait_ms = MAX(1, next - now);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&f->wake, &f->lock, &ts);
  }
  pthread_mutex_unlock(&f->lock);
  g_ptr_array_unref(ready);
  g_ptr_array_unref(resume);
  return NULL;
}

ib_feed *
feed_new(ib_store *store)
{
  ib_feed *f = g_new0(ib_feed, 1);
  f->store = store;
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->wake, NULL);
  g_queue_init(&f->waiters);
  g_queue_init(&f->ring);
  f->streams = g_ptr_array_new();
  json_t *doc = NULL;
  int64_t last = 0;
  /* Start from the newest event: history is read from the store on demand. */
  if (store_events(store, G_MAXINT64 - 1, 1, &doc, &last) == IB_OK) {
    f->latest = last;
    f->fetched = last;
  }
  json_decref(doc);
  pthread_create(&f->thread, NULL, feed_main, f);
  return f;
}

void
feed_notify(void *arg, int64_t last_seq)
{
  ib_feed *f = arg;
  pthread_mutex_lock(&f->lock);
  if (last_seq > f->latest) {
    f->latest = last_seq;
    pthread_cond_signal(&f->wake);
  }
  pthread_mutex_unlock(&f->lock);
}

void
feed_shutdown(ib_feed *f)
{
  pthread_mutex_lock(&f->lock);
  f->shut = 1;
  pthread_cond_signal(&f->wake);
  pthread_mutex_unlock(&f->lock);
}

unsigned
feed_waiters(ib_feed *f)
{
  pthread_mutex_lock(&f->lock);
  unsigned n = f->waiters.length + f->streams->len;
  pthread_mutex_unlock(&f->lock);
  return n;
}

void
feed_free(ib_feed *f)
{
  if (!f)
    return;
  pthread_mutex_lock(&f->lock);
  f->shut = 1;
  f->stopping = 1;
  pthread_cond_signal(&f->wake);
  pthread_mutex_unlock(&f->lock);
  pthread_join(f->thread, NULL);
  while (!g_queue_is_empty(&f->ring))
    json_decref(g_queue_pop_head(&f->ring));
  g_ptr_array_unref(f->streams);
  pthread_mutex_destroy(&f->lock);
  pthread_cond_destroy(&f->wake);
  g_free(f);
}
