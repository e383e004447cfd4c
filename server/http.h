/* http.h: the HTTP layer on libmicrohttpd. One ib_request per request owns everything
 * the request allocates; it is freed once, in MHD's completion callback.
 *
 * Lifecycle (STYLE.md): first call -> route, method, auth and Content-Length checked
 * before the body (errors answered at once); body calls -> spooled under the cap; last
 * call -> the route's handler runs on the worker thread and either replies at once or
 * defers (the connection is suspended) until another thread completes it. */
#ifndef INBOXD_HTTP_H
#define INBOXD_HTTP_H

#include <glib.h>
#include <jansson.h>
#include <stdint.h>

#include "status.h"

typedef struct ib_server ib_server;
typedef struct ib_request ib_request;

typedef void (*route_handler)(ib_request *r);

enum {
  ROUTE_BODY = 1 << 0,    /* the route reads a request body */
  ROUTE_API = 1 << 1,     /* /api/: Bearer token when --api-token is set */
  ROUTE_WRITE = 1 << 2,   /* needs a read-write token */
  ROUTE_INGRESS = 1 << 3, /* /inbound/: basic auth when --ingress-user is set */
  ROUTE_PREFIX = 1 << 4,  /* PATTERN matches as a prefix (static files, /inbound/mailgun/...) */
  ROUTE_SMALL = 1 << 5,   /* a JSON API body: capped at HTTP_SMALL_BODY bytes */
};

#define HTTP_SMALL_BODY (1u << 20)

typedef struct route {
  const char *method;  /* "GET", "POST", ... */
  const char *pattern; /* "/api/tickets/{id}": {id} matches a positive decimal integer,
                          {key} an opaque id of letters, digits, "_" and "-" */
  route_handler handler;
  unsigned flags;
} route;

/* Start serving ROUTES (ended by a {NULL} entry, borrowed for the server's life) on
 * SRV->cfg->listen. Returns IB_OK or IB_ERR_IO with *ERROR_OUT (new) set. The bound port
 * is in *PORT_OUT. */
ib_status http_start(ib_server *srv, const route *routes, unsigned *port_out, char **error_out);

/* Stop taking new requests (SIGTERM's first step): from now on each new request is
 * answered 503 "shutting_down" with Retry-After and Connection: close, while those
 * already running finish (http_drain). */
void http_quiesce(ib_server *srv);

/* Wait until no request is in flight or TIMEOUT_MS passed; returns the number still open. */
unsigned http_drain(ib_server *srv, int64_t timeout_ms);

/* Stop the daemon and its threads. */
void http_stop(ib_server *srv);

/* ---- Reading a request (borrowed strings, valid until the request ends) ---- */
const char *request_method(ib_request *r);
const char *request_path(ib_request *r);
const char *request_header(ib_request *r, const char *name);
const char *request_query(ib_request *r, const char *name);
/* The I-th {id} of the route pattern (0-based). */
int64_t request_param(ib_request *r, int i);
/* The I-th {key} of the route pattern (0-based), or NULL. */
const char *request_key(ib_request *r, int i);
/* The complete body (borrowed; NULL for routes without ROUTE_BODY). */
GBytes *request_body(ib_request *r);

/* Parse the body as a JSON object. Returns a new reference, or NULL after replying 400
 * (or 415 when the Content-Type is not application/json). */
json_t *request_json_body(ib_request *r);
ib_server *request_server(ib_request *r);
/* 1 when the caller authenticated with a read-only API token. */
int request_read_only(ib_request *r);

/* Attach handler state to R, freed with FREE_FN when the request ends. */
void request_set_data(ib_request *r, void *data, GDestroyNotify free_fn);
void *request_data(ib_request *r);

/* ---- Replying: exactly one reply per request ---- */

/* Reply STATUS with the JSON document DOC (stolen). A 200 to GET/HEAD carries a strong
 * ETag (hash of the body); when it matches If-None-Match the reply is 304 without body. */
void request_reply_json(ib_request *r, unsigned status, json_t *doc);

/* Reply 200 with the JSON TEXT (LEN bytes, copied) whose ETag the caller computed: for one
 * document sent to many clients at once (the change feed's waiters). */
void request_reply_json_shared(ib_request *r, const char *text, size_t len, const char *etag);

/* Reply with DESIGN.md's error document {"error": {"code", "message"}}. */
void request_reply_error(ib_request *r, unsigned status, const char *code, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

/* Reply with the HTTP status that fits ST (400, 401, 404, 413, 503, ...), code
 * ib_status_str(ST) and MESSAGE. */
void request_reply_status(ib_request *r, ib_status st, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Reply with bytes (copied) of CONTENT_TYPE. */
void request_reply_bytes(ib_request *r, unsigned status, const char *content_type, const void *data,
                         size_t len);

/* Reply with SIZE bytes (REQUEST_SIZE_UNKNOWN: chunked, until the reader ends it) produced
 * by READ(ctx, offset, buf, max), which returns the bytes copied, 0 at the end, -1 on
 * error, or REQUEST_STREAM_PAUSE after calling request_pause() when it has nothing yet.
 * FREE_FN(ctx) runs when the response is done (also when the client went away). */
typedef ssize_t (*request_reader)(void *ctx, uint64_t offset, char *buf, size_t max);
#define REQUEST_SIZE_UNKNOWN UINT64_MAX
#define REQUEST_STREAM_PAUSE (-3)
void request_reply_stream(ib_request *r, unsigned status, const char *content_type, uint64_t size,
                          request_reader read, void *ctx, GDestroyNotify free_fn);

/* Add a header to the reply already set. */
void request_add_header(ib_request *r, const char *name, const char *value);

/* Replace a header of the reply already set (e.g. the default Content-Security-Policy). */
void request_set_header(ib_request *r, const char *name, const char *value);

/* ---- Deferring ---- */

/* From a stream's reader only: suspend R's connection until request_resume(). */
void request_pause(ib_request *r);

/* Suspend R until request_resume(); call from the handler before handing R to another
 * thread. That thread sets the reply, then calls request_resume() as its last use of R. */
void request_defer(ib_request *r);
void request_resume(ib_request *r);

/* Defer R and run WORK(R) on the offload pool (one thread per HTTP worker): CPU-heavy
 * handling such as parsing a message then holds neither the other connections of R's
 * HTTP thread nor their replies, and it is spread over every core whichever thread
 * accepted the connection. WORK must not reply; it ends by handing R on, to
 * request_resume() or to a job whose completion resumes it, after which it touches R no
 * more. FINISH then builds the reply on the HTTP thread. From here on request_header()
 * reads a copy of the headers, safe on any thread. Once http_stop() has begun, R is
 * answered 503 shutting_down instead, here or (queued, not yet begun) by the pool. */
void request_offload(ib_request *r, route_handler work, route_handler finish);

/* As request_defer(), but the other thread only records its outcome in the request's
 * data and calls request_resume(); FINISH(R) then builds the reply back on R's HTTP
 * worker thread, keeping that work off the thread that resumed it (the store's writer). */
void request_defer_finish(ib_request *r, route_handler finish);

#endif
