#include "pipeline.h"

#include <string.h>

#include "log.h"
#include "parse.h"
#include "thread.h"

typedef struct item {
  ib_inbound *in;
  ib_message *msg;
  store_prepared *prep; /* serialized on the worker, written by the writer */
  pipeline_result result;
} item;

struct pipeline_batch {
  GPtrArray *items; /* of item* */
  const thread_options *opt;
  char *replay_provider, *replay_token;
  int64_t replay_expires;
};

static void
item_free(gpointer p)
{
  item *it = p;
  ib_inbound_free(it->in);
  ib_message_free(it->msg);
  store_prepared_free(it->prep);
  g_free(it);
}

ib_status
pipeline_prepare(GPtrArray *inbounds, const mime_limits *limits, pipeline_batch **batch_out)
{
  pipeline_batch *b = g_new0(pipeline_batch, 1);
  b->items = g_ptr_array_new_with_free_func(item_free);
  ib_status last = IB_OK;
  guint n = inbounds->len;
  for (guint i = 0; i < n; i++) {
    ib_inbound *in = g_ptr_array_index(inbounds, i);
    gsize len = 0;
    const char *raw = g_bytes_get_data(in->raw, &len);
    ib_message *msg = NULL;
    ib_status st = parse_message(raw, len, in, limits, &msg);
    if (st != IB_OK) {
      if (n > 1)
        log_warn("skipping event %u of a %s batch: %s", i, in->provider, ib_status_str(st));
      last = st;
      ib_inbound_free(in);
      continue;
    }
    item *it = g_new0(item, 1);
    it->in = in;
    it->msg = msg;
    it->prep = store_prepare(msg);
    g_ptr_array_add(b->items, it);
  }
  /* The elements now belong to the items (or were freed). */
  g_ptr_array_set_free_func(inbounds, NULL);
  g_ptr_array_unref(inbounds);
  if (b->items->len == 0 && last != IB_OK) {
    pipeline_batch_free(b);
    *batch_out = NULL;
    return last;
  }
  *batch_out = b;
  return IB_OK;
}

static ib_status
store_item(ib_tx *tx, const thread_options *opt, item *it)
{
  store_msg_ref ref;
  ib_status st = store_lock_message_ids(tx, it->msg);
  if (st != IB_OK)
    return st;
  st = store_find_duplicate(tx, it->msg, it->prep, it->in->event_id, &ref);
  if (st == IB_OK) {
    it->result.ticket_id = ref.ticket_id;
    it->result.message_id = ref.message_id;
    it->result.duplicate = 1;
    g_strlcpy(it->result.classification, ref.classification, sizeof it->result.classification);
    return IB_OK;
  }
  if (st != IB_ERR_NOT_FOUND)
    return st;

  int64_t ticket = 0, message = 0;
  int created = 0, changed = 0, loop = 0;
  if ((st = thread_assign(tx, opt, it->msg, &ticket, &created)) != IB_OK)
    return st;
  if ((st = store_insert_message(tx, ticket, it->msg, it->prep, it->in->raw, it->in->rebuilt,
                                 it->in->event_id, &message)) != IB_OK)
    return st;
  if ((st = thread_record(tx, opt, it->msg, ticket, created, message, &changed, &loop)) != IB_OK)
    return st;
  if (created && (st = store_add_event(tx, "ticket.created", ticket, message)) != IB_OK)
    return st;
  if ((st = store_add_event(tx, "message.created", ticket, message)) != IB_OK)
    return st;
  if (changed && (st = store_add_event(tx, "ticket.updated", ticket, message)) != IB_OK)
    return st;
  it->result.ticket_id = ticket;
  it->result.message_id = message;
  it->result.duplicate = 0;
  g_strlcpy(it->result.classification, ib_class_str(it->msg->classification),
            sizeof it->result.classification);
  g_strlcpy(it->result.thread_reason, it->msg->thread_reason ? it->msg->thread_reason : "",
            sizeof it->result.thread_reason);
  return IB_OK;
}

void
pipeline_set_replay(pipeline_batch *b, const char *provider, const char *token, int64_t expires)
{
  g_free(b->replay_provider);
  g_free(b->replay_token);
  b->replay_provider = g_strdup(provider);
  b->replay_token = g_strdup(token);
  b->replay_expires = expires;
}

static ib_status
ingest_job(ib_tx *tx, void *arg)
{
  pipeline_batch *b = arg;
  if (b->replay_token) {
    ib_status st = store_replay_check(tx, b->replay_provider, b->replay_token, b->replay_expires);
    if (st != IB_OK)
      return st;
  }
  for (guint i = 0; i < b->items->len; i++) {
    ib_status st = store_item(tx, b->opt, g_ptr_array_index(b->items, i));
    if (st != IB_OK)
      return st;
  }
  return IB_OK;
}

void
pipeline_submit(ib_store *store, const thread_options *opt, pipeline_batch *b, store_done_fn done,
                void *arg)
{
  b->opt = opt;
  store_submit(store, ingest_job, b, done, arg);
}

ib_status
pipeline_store(ib_store *store, const thread_options *opt, pipeline_batch *b)
{
  b->opt = opt;
  return store_run(store, ingest_job, b);
}

guint
pipeline_count(const pipeline_batch *b)
{
  return b->items->len;
}

const pipeline_result *
pipeline_result_at(const pipeline_batch *b, guint i)
{
  return &((item *)g_ptr_array_index(b->items, i))->result;
}

static json_t *
result_json(const pipeline_result *r)
{
  return json_pack("{s:I, s:I, s:b, s:s}", "ticket_id", (json_int_t)r->ticket_id, "message_id",
                   (json_int_t)r->message_id, "duplicate", r->duplicate, "classification",
                   r->classification);
}

json_t *
pipeline_reply_json(const pipeline_batch *b)
{
  if (b->items->len == 1)
    return result_json(pipeline_result_at(b, 0));
  json_t *list = json_array();
  for (guint i = 0; i < b->items->len; i++)
    json_array_append_new(list, result_json(pipeline_result_at(b, i)));
  return json_pack("{s:o}", "results", list);
}

void
pipeline_batch_free(pipeline_batch *b)
{
  if (!b)
    return;
  g_ptr_array_unref(b->items);
  g_free(b->replay_provider);
  g_free(b->replay_token);
  g_free(b);
}
