/* forward_receiver: a minimal CRM endpoint for tests/bench/forward_bench.py, fast enough
 * not to be the bottleneck: libmicrohttpd, epoll, a small thread pool, keep-alive.
 * POST anything: 200 and the body is counted. GET /count: the number of POSTs so far.
 * GET /reset: zero it. Usage: forward_receiver PORT [THREADS] */
#include <microhttpd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong posts;

static enum MHD_Result
reply(struct MHD_Connection *c, const char *text)
{
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
          const char *version, const char *data, size_t *size, void **state)
{
  static int first;
  if (strcmp(method, "POST") != 0) {
    char buf[32];
    if (strcmp(url, "/reset") == 0)
      atomic_store(&posts, 0);
    snprintf(buf, sizeof buf, "%lu\n", atomic_load(&posts));
    return reply(c, buf);
  }
  if (*state == NULL) {
    *state = &first;
    return MHD_YES;
  }
  if (*size) {
    *size = 0; /* consumed */
    return MHD_YES;
  }
  atomic_fetch_add(&posts, 1);
  return reply(c, "");
}

int
main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: forward_receiver PORT [THREADS]\n");
    return 64;
  }
  unsigned threads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2;
  /* Signals go to main's sigwait only: block them before the daemon's threads start. */
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  sigprocmask(SIG_BLOCK, &s, NULL);
  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
                                          (uint16_t)strtoul(argv[1], NULL, 10), NULL, NULL,
                                          on_access, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
                                          MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "forward_receiver: cannot listen on %s\n", argv[1]);
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  int sig;
  sigwait(&s, &sig);
  MHD_stop_daemon(d);
  return 0;
}
