/* mhd_ref.c: reference 1, the bare libmicrohttpd floor. The same daemon setup as inboxd
 * (internal polling thread, epoll, a pool of THREADS workers, suspend/resume allowed),
 * consuming each POST body and answering 200 with a small JSON document, and nothing
 * else: no parse, no store. Prints "listening PORT" and runs until SIGTERM/SIGINT.
 * It is also the receiver of the forwarding benchmark: GET /count answers the number of
 * POSTs answered so far.
 *
 * usage: bench_mhd_ref [THREADS] */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char reply[] =
    "{\"ticket_id\":1,\"message_id\":1,\"duplicate\":false,\"classification\":\"new\"}";

static atomic_ulong posts;

static enum MHD_Result
reply_count(struct MHD_Connection *conn)
{
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%lu", (unsigned long)atomic_load(&posts));
  struct MHD_Response *resp =
      MHD_create_response_from_buffer((size_t)n, buf, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
  (void)cls, (void)version, (void)upload_data;
  if (strcmp(method, "GET") == 0 && strcmp(url, "/count") == 0)
    return reply_count(conn);
  if (!*con_cls) {
    *con_cls = conn; /* first call: headers only */
    return MHD_YES;
  }
  if (*upload_data_size) {
    *upload_data_size = 0; /* consume the chunk */
    return MHD_YES;
  }
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(sizeof reply - 1, (void *)reply, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  atomic_fetch_add(&posts, 1);
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

int
main(int argc, char **argv)
{
  unsigned threads = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 2;
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* port 0: the kernel picks one */
  struct MHD_Daemon *d =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                           MHD_USE_ERROR_LOG,
                       0, NULL, NULL, on_access, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
                       MHD_OPTION_CONNECTION_LIMIT, 20000u, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                       MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_SOCK_ADDR,
                       (struct sockaddr *)&addr, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "bench_mhd_ref: cannot start the daemon\n");
    return 1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("listening %u\n", info ? info->port : 0);
  fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  MHD_stop_daemon(d);
  return 0;
}
