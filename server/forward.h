/* forward.h: the forwarder. One thread drives libcurl's multi interface (parallel
 * transfers, kept-alive connections) over the outbox (outbox.h): it claims due
 * deliveries through writer jobs, builds each body from the ticket snapshot and the
 * stored message, signs it, POSTs it to --forward-url and records the outcome through
 * writer jobs. It never writes on the ingestion path and holds at most a fixed window of
 * deliveries in memory. DESIGN.md "Forwarded events" is the contract. */
#ifndef INBOXD_FORWARD_H
#define INBOXD_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

#define FORWARD_BACKOFF_CAP_MS (3600 * 1000) /* no retry waits longer than an hour */

typedef struct forwarder forwarder;

typedef struct forward_options {
  const char *url;            /* http:// or https:// */
  const char *secret;         /* NULL or "": no Inboxd-Signature */
  int64_t backoff_ms;         /* first retry delay ceiling */
  int64_t max_attempts;       /* attempts before "failed" (at least 1) */
  int64_t connect_timeout_ms; /* per attempt */
  int64_t timeout_ms;         /* per attempt, total */
  int concurrency;            /* parallel requests; 0: 16 */
} forward_options;

/* IB_OK when URL is an http:// or https:// URL libcurl can use, else IB_ERR_INVALID with
 * *ERROR_OUT (new) saying so. */
ib_status forward_check_url(const char *url, char **error_out);

/* Resume the deliveries a previous process left in flight, then start the forwarder
 * thread on STORE (borrowed until forward_free()) and register it for the store's
 * commit notifications. Call before traffic starts. Returns IB_OK, IB_ERR_INVALID (bad
 * URL: *ERROR_OUT new) or IB_ERR_STORAGE. *FW_OUT is new: forward_stop(), then
 * store_close(), then forward_free(). OPTS' strings are copied. */
ib_status forward_start(ib_store *store, const forward_options *opts, forwarder **fw_out,
                        char **error_out);

/* New deliveries may be due now (an operator's retry). Any thread; never blocks long. */
void forward_wake(forwarder *fw);

/* Stop claiming, give the requests in flight up to GRACE_MS to finish, put the rest back
 * in the queue (they are sent again on the next start, with the same delivery id) and
 * join the thread. The store must still be open. NULL is a no-op. */
void forward_stop(forwarder *fw, int64_t grace_ms);

/* Release FW after forward_stop() and store_close(). NULL is a no-op. */
void forward_free(forwarder *fw);

/* ---- The policy, pure (unit-tested) --------------------------------------------------- */

typedef enum {
  FORWARD_DELIVERED, /* 2xx */
  FORWARD_RETRY,     /* no response (connect error, timeout, reset), 5xx, 408, 429, 1xx, 3xx */
  FORWARD_REFUSED,   /* any other 4xx: the receiver rejected it; failed at once */
} forward_verdict;

/* The verdict on one attempt: RESPONDED is 0 when no HTTP status came back. */
forward_verdict forward_classify(int responded, long http_status);

/* The most the wait after attempt number ATTEMPT (1 = the first) may be:
 * BASE_MS * 2^(ATTEMPT-1), capped at FORWARD_BACKOFF_CAP_MS. */
int64_t forward_backoff_ceiling(int64_t base_ms, int attempt);

/* Full jitter: the wait after attempt ATTEMPT for a uniform U in [0, 1), i.e. a delay in
 * [0, forward_backoff_ceiling()]. */
int64_t forward_backoff_delay(int64_t base_ms, int attempt, double u);

/* Parse a Retry-After VALUE (delay-seconds, or an HTTP-date) into a delay from NOW_MS
 * (epoch ms), at least 0 and at most FORWARD_BACKOFF_CAP_MS. Returns 0, or -1 when VALUE
 * is neither. */
int forward_retry_after(const char *value, int64_t now_ms, int64_t *delay_out);

/* "t=<T>,v1=<hex HMAC-SHA256(SECRET, "<T>.<BODY>")>". New (g_free). */
char *forward_signature(const char *secret, int64_t t, const char *body, size_t len);

#endif
