/* server.h: the state of one running "inboxd serve": configuration, store, HTTP daemon
 * and the background services. Owned by serve.c; handlers reach it through
 * request_server(). */
#ifndef INBOXD_SERVER_H
#define INBOXD_SERVER_H

#include <pthread.h>

#include "adapter.h"
#include "config.h"
#include "sns.h"
#include "feed.h"
#include "forward.h"
#include "mime.h"
#include "store.h"
#include "thread.h"

struct MHD_Daemon;

struct ib_server {
  ib_config *cfg;
  ib_store *store;
  ib_feed *feed;
  forwarder *forward; /* NULL when --forward-url is not set */
  mime_limits limits;
  thread_options threading;
  adapter_config adapters;
  form_limits form_limits;
  char **ses_topics; /* NULL-terminated copy for adapters.ses_topic_arns */
  ib_sns *sns;

  /* HTTP (http.c) */
  struct MHD_Daemon *daemon;
  GThreadPool *offload; /* request_offload(): one thread per HTTP worker */
  const struct route *routes;
  unsigned port;
  int draining;  /* atomic: http_quiesce() was called, new requests get 503 */
  int stopping;  /* atomic: http_stop() was called, requests dispatched from now on get 503 */
  int suspended; /* atomic: requests whose connection is suspended (deferred or paused) */
  int handling;  /* atomic: requests dispatched to a handler and not yet completed */
  pthread_mutex_t active_lock;
  pthread_cond_t active_cond;
  unsigned active; /* requests in flight */
};

#endif
