/* feed.h: the change feed's waiting clients. GET /api/events?after=SEQ&wait=S holds the
 * request (a suspended connection, no thread) until an event past SEQ commits or S
 * seconds pass; with Accept: text/event-stream it streams Server-Sent Events. The writer
 * thread's commit hook wakes the feed's own thread, which answers every waiter; recent
 * events are kept in a ring so a commit costs one query, not one per client. */
#ifndef INBOXD_FEED_H
#define INBOXD_FEED_H

#include <stdint.h>

#include "http.h"
#include "store.h"

typedef struct ib_feed ib_feed;

/* Start the feed thread over STORE. Never NULL. Release with feed_free(). */
ib_feed *feed_new(ib_store *store);

/* Answer every waiter (with what is there) and end every stream, so a shutdown can drain.
 * Later requests are answered at once. */
void feed_shutdown(ib_feed *feed);

/* Stop the thread and free. Call after the HTTP daemon stopped. NULL is a no-op. */
void feed_free(ib_feed *feed);

/* The store's commit hook (store_on_commit): LAST_SEQ is the newest committed event. */
void feed_notify(void *feed, int64_t last_seq);

/* Reply to R with events after AFTER (at most LIMIT); when there are none and WAIT_S > 0,
 * hold R until there are or WAIT_S seconds pass. */
void feed_long_poll(ib_feed *feed, ib_request *r, int64_t after, int limit, int wait_s);

/* Reply to R with a text/event-stream of every event after AFTER, then each new one as it
 * commits ("id: <seq>", "event: <type>", "data: <event JSON>"), with a comment line every
 * 15 s to keep proxies from closing it. */
void feed_stream(ib_feed *feed, ib_request *r, int64_t after);

/* Counts for /metrics. */
unsigned feed_waiters(ib_feed *feed);

#endif
