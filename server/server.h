/* server.h: the state of one running "inboxd serve": configuration, store, HTTP daemon
 * and the background services. Owned by serve.c; handlers reach it through
 * request_server(). */
#ifndef INBOXD_SERVER_H
#define INBOXD_SERVER_H

#include <pthread.h>

#include "config.h"
#include "forward.h"
#include "mime.h"
#include "store.h"

struct MHD_Daemon;

struct ib_server {
  ib_config *cfg;
  ib_store *store;
  forwarder *forward; /* NULL when --forward-url is not set */
  mime_limits limits;

  /* HTTP (http.c) */
  struct MHD_Daemon *daemon;
  const struct route *routes;
  unsigned port;
  pthread_mutex_t active_lock;
  pthread_cond_t active_cond;
  unsigned active; /* requests in flight */
};

#endif
