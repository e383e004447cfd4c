/* pipeline.h: the one ingestion path. Adapter output (ib_inbound) -> parse_message()
 * on the calling thread -> one writer job that dedupes, threads, stores and appends the
 * events -> done after COMMIT. Used by every /inbound/ route and by "inboxd ingest". */
#ifndef INBOXD_PIPELINE_H
#define INBOXD_PIPELINE_H

#include <glib.h>
#include <jansson.h>

#include "inbound.h"
#include "mime.h"
#include "store.h"
#include "thread.h"

typedef struct pipeline_result {
  int64_t ticket_id;
  int64_t message_id;
  int duplicate;
  char classification[16];
  char thread_reason[16];
} pipeline_result;

typedef struct pipeline_batch pipeline_batch;

/* Parse each ib_inbound of INBOUNDS (the array and its elements are stolen). Inputs that
 * are not mail are dropped from a batch of several (logged); a single one fails the
 * batch with IB_ERR_NOT_MAIL. *BATCH_OUT is new: pipeline_batch_free(). */
ib_status pipeline_prepare(GPtrArray *inbounds, const mime_limits *limits,
                           pipeline_batch **batch_out);

/* Make the batch's transaction also remember PROVIDER's replay TOKEN until EXPIRES and
 * fail with IB_ERR_CONFLICT (nothing stored) when it was seen before. Strings copied. */
void pipeline_set_replay(pipeline_batch *batch, const char *provider, const char *token,
                         int64_t expires);

/* Store the whole batch in one job (all or nothing), threading with OPT (borrowed until
 * DONE). DONE(ARG, status) runs on the writer thread after the commit; the batch stays
 * owned by the caller. */
void pipeline_submit(ib_store *store, const thread_options *opt, pipeline_batch *batch,
                     store_done_fn done, void *arg);

/* As pipeline_submit(), waiting for the commit. */
ib_status pipeline_store(ib_store *store, const thread_options *opt, pipeline_batch *batch);

/* Results after a successful commit. */
guint pipeline_count(const pipeline_batch *batch);
const pipeline_result *pipeline_result_at(const pipeline_batch *batch, guint i);

/* The ingress reply: {"ticket_id", "message_id", "duplicate", "classification"} for one
 * message, {"results": [...]} for several. New reference. */
json_t *pipeline_reply_json(const pipeline_batch *batch);

void pipeline_batch_free(pipeline_batch *batch);

#endif
