/* load.c: the benchmark's HTTP/1.1 load generator (epoll, keep-alive, no libcurl).
 *
 * POST mode: every request is one of the TEMPLATE files, cycled, with each "@@ID@@"
 * marker in it replaced by a fixed-width decimal number that is unique for the run, so
 * every message carries its own Message-ID. The request is sent with writev() straight
 * from the shared template segments plus the connection's own ID buffer: no copy of the
 * body is made per request, so the generator costs the same for 1 KB and 20 MB.
 * Per-request latency (send start to last response byte) is recorded in microseconds.
 *
 * HOLD mode (--hold --conns N): opens N connections that each send one GET and then
 * wait; prints "held N MS" once all requests are sent, then for each line on stdin prints
 * how many are still waiting, were answered or were closed; "stop" (or EOF) ends it.
 *
 * --sources N spreads the connections over the client addresses 127.0.0.1 .. 127.0.0.N
 * (per-address connection limits are about real clients, not about this tool).
 *
 * Output: one JSON object on stdout. Exit status 0 unless the arguments are wrong or the
 * server cannot be reached at all. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MARKER "@@ID@@"
#define MARKER_LEN 6
#define ID_WIDTH 12
#define MAX_SEGS 16          /* markers per template + 1 */
#define RBUF_CAP (64u << 10) /* responses here are small JSON documents */
#define MAX_TEMPLATES 4096
#define DRAIN_NS (30ull * 1000000000) /* wait this long for replies in flight at the end */

typedef struct tmpl {
  char *data;  /* whole file */
  size_t nseg; /* segments between markers */
  const char *seg[MAX_SEGS];
  size_t seg_len[MAX_SEGS];
  char head[512]; /* request line and headers */
  size_t head_len;
  uint64_t body_len;
} tmpl;

typedef struct conn {
  int fd;
  int connected;
  int busy; /* a request is in flight */
  struct iovec iov[2 * MAX_SEGS + 1];
  int iovcnt, iovpos; /* next iovec to send */
  size_t iovoff;      /* bytes of iov[iovpos] already sent */
  char id[ID_WIDTH + 1];
  char *rbuf;
  size_t rcap;
  size_t rlen;
  int pending;         /* hold mode: the GET is not fully sent yet */
  size_t head_end;     /* 0 until the blank line is seen */
  long content_length; /* -1: unknown */
  int status;
  int close_after;
  uint64_t start_ns;
  uint64_t bytes_sent;
} conn;

typedef struct stats {
  uint64_t ok, errors, conn_errors, duplicates, bytes;
  uint64_t status[6]; /* 1xx..5xx by first digit, [0] other */
  uint32_t *lat;      /* microseconds */
  size_t nlat, caplat;
} stats;

typedef struct worker {
  pthread_t thread;
  int index;
  int nconns;
  conn *conns;
  int ep;
  stats st;
  uint64_t started; /* requests started by this worker */
} worker;

/* ---- options ------------------------------------------------------------------------ */
static const char *opt_host = "127.0.0.1";
static int opt_port;
static const char *opt_path = "/inbound/raw";
static const char *opt_ctype = "message/rfc822";
static const char *opt_method = "POST";
static int opt_conns = 32;
static int opt_threads = 1;
static double opt_duration = 5, opt_warmup = 1;
static uint64_t opt_requests; /* 0: run for duration */
static uint64_t opt_id_start = 1;
static int opt_hold;
static int opt_sources = 1; /* client addresses 127.0.0.1 .. 127.0.0.N, round robin */
static atomic_uint next_source;
static tmpl *templates;
static size_t ntemplates;

static atomic_uint_fast64_t next_id;
static atomic_uint_fast64_t issued; /* for --requests */
static atomic_uint_fast64_t finished;
static uint64_t t_begin, t_measure, t_end; /* ns, CLOCK_MONOTONIC */
static atomic_int stopping;
static atomic_uint_fast64_t hold_answered, hold_closed; /* hold mode */
static struct sockaddr_in server_addr;

static uint64_t
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what)
{
  fprintf(stderr, "bench_load: %s\n", what);
  exit(2);
}

static void
load_template(const char *path)
{
  if (ntemplates >= MAX_TEMPLATES)
    die("too many templates");
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "bench_load: cannot open %s: %s\n", path, strerror(errno));
    exit(2);
  }
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0)
    die("cannot stat a template");
  tmpl *t = &templates[ntemplates++];
  memset(t, 0, sizeof *t);
  t->data = malloc((size_t)sb.st_size + 1);
  if (!t->data || fread(t->data, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
    die("cannot read a template");
  fclose(f);
  size_t len = (size_t)sb.st_size;
  t->data[len] = '\0';
  const char *p = t->data, *end = t->data + len;
  size_t markers = 0;
  for (;;) {
    const char *m = memmem(p, (size_t)(end - p), MARKER, MARKER_LEN);
    if (!m || t->nseg + 1 >= MAX_SEGS) {
      t->seg[t->nseg] = p;
      t->seg_len[t->nseg++] = (size_t)(end - p);
      break;
    }
    t->seg[t->nseg] = p;
    t->seg_len[t->nseg++] = (size_t)(m - p);
    markers++;
    p = m + MARKER_LEN;
  }
  t->body_len = len - markers * MARKER_LEN + markers * ID_WIDTH;
  int n = snprintf(t->head, sizeof t->head,
                   "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\n"
                   "Content-Length: %llu\r\n\r\n",
                   opt_method, opt_path, opt_host, opt_port, opt_ctype,
                   (unsigned long long)t->body_len);
  if (n < 0 || (size_t)n >= sizeof t->head)
    die("request head too long");
  t->head_len = (size_t)n;
}

/* ---- connections ------------------------------------------------------------------- */

static void
stats_latency(stats *st, uint64_t us)
{
  if (st->nlat == st->caplat) {
    st->caplat = st->caplat ? st->caplat * 2 : 65536;
    st->lat = realloc(st->lat, st->caplat * sizeof *st->lat);
    if (!st->lat)
      die("out of memory");
  }
  st->lat[st->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int
conn_open(worker *w, conn *c)
{
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt_sources > 1) {
    /* Many clients from one address trip per-address limits: spread them over 127/8. */
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr =
        htonl(INADDR_LOOPBACK + atomic_fetch_add(&next_source, 1) % (unsigned)opt_sources);
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
      close(c->fd);
      c->fd = -1;
      return -1;
    }
  }
  if (connect(c->fd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0 &&
      errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  c->connected = 0;
  c->rlen = 0;
  c->head_end = 0;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
  if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
    die("epoll_ctl");
  return 0;
}

static void
conn_close(conn *c)
{
  if (c->fd >= 0)
    close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  c->busy = 0;
  c->connected = 0;
}

/* Whether this worker may start another request now. */
static int
may_start(void)
{
  if (atomic_load(&stopping))
    return 0;
  if (opt_requests) {
    uint64_t n = atomic_fetch_add(&issued, 1);
    if (n >= opt_requests)
      return 0;
  }
  return 1;
}

static void
request_start(worker *w, conn *c)
{
  const tmpl *t = &templates[w->started++ % ntemplates];
  if (opt_hold)
    t = &templates[0];
  uint64_t id = atomic_fetch_add(&next_id, 1);
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%0*llu", ID_WIDTH, (unsigned long long)id);
  memcpy(c->id, tmp + strlen(tmp) - ID_WIDTH, ID_WIDTH);
  int k = 0;
  c->iov[k].iov_base = (void *)t->head;
  c->iov[k++].iov_len = t->head_len;
  for (size_t s = 0; s < t->nseg; s++) {
    if (s > 0) {
      c->iov[k].iov_base = c->id;
      c->iov[k++].iov_len = ID_WIDTH;
    }
    if (t->seg_len[s]) {
      c->iov[k].iov_base = (void *)t->seg[s];
      c->iov[k++].iov_len = t->seg_len[s];
    }
  }
  c->iovcnt = k;
  c->iovpos = 0;
  c->iovoff = 0;
  c->busy = 1;
  c->rlen = 0;
  c->head_end = 0;
  c->content_length = -1;
  c->status = 0;
  c->close_after = 0;
  c->bytes_sent = t->head_len + t->body_len;
  c->start_ns = now_ns();
}

/* Send what the socket takes. Returns -1 on a write error. */
static int
conn_send(worker *w, conn *c)
{
  while (c->iovpos < c->iovcnt) {
    struct iovec v[2 * MAX_SEGS + 1];
    int n = 0;
    for (int i = c->iovpos; i < c->iovcnt; i++, n++)
      v[n] = c->iov[i];
    v[0].iov_base = (char *)v[0].iov_base + c->iovoff;
    v[0].iov_len -= c->iovoff;
    ssize_t sent = writev(c->fd, v, n);
    if (sent < 0) {
      if (errno == EAGAIN || errno == EINTR)
        break;
      return -1;
    }
    size_t left = (size_t)sent;
    while (left && c->iovpos < c->iovcnt) {
      size_t room = c->iov[c->iovpos].iov_len - c->iovoff;
      if (left >= room) {
        left -= room;
        c->iovpos++;
        c->iovoff = 0;
      } else {
        c->iovoff += left;
        left = 0;
      }
    }
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
  if (c->iovpos < c->iovcnt)
    ev.events |= EPOLLOUT;
  epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
  return 0;
}

static int
header_value(const char *head, size_t len, const char *name, char *out, size_t outsz)
{
  size_t nlen = strlen(name);
  const char *p = head, *end = head + len;
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol)
      eol = end;
    if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
      const char *v = p + nlen + 1;
      while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
      size_t vl = (size_t)(eol - v);
      if (vl >= outsz)
        vl = outsz - 1;
      memcpy(out, v, vl);
      out[vl] = '\0';
      return 1;
    }
    p = eol + 2;
  }
  return 0;
}

static void
response_done(worker *w, conn *c)
{
  uint64_t end = now_ns();
  atomic_fetch_add(&finished, 1);
  int counted = c->start_ns >= t_measure && (opt_requests || end <= t_end);
  if (counted) {
    stats *st = &w->st;
    int cls = c->status / 100;
    st->status[cls >= 1 && cls <= 5 ? cls : 0]++;
    if (cls == 2) {
      st->ok++;
      st->bytes += c->bytes_sent;
      stats_latency(st, (end - c->start_ns) / 1000);
      const char *body = c->rbuf + c->head_end;
      size_t blen = c->rlen - c->head_end;
      if (memmem(body, blen, "\"duplicate\":true", 16))
        st->duplicates++;
    } else {
      st->errors++;
    }
  }
  c->busy = 0;
}

/* Read and parse what arrived. Returns -1 when the connection must be closed. */
static int
conn_recv(worker *w, conn *c)
{
  for (;;) {
    if (c->rlen == c->rcap)
      return -1;
    ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR)
        return 0;
      return -1;
    }
    if (n == 0)
      return -1;
    c->rlen += (size_t)n;
    if (!c->busy)
      return -1; /* bytes nobody asked for */
    if (!c->head_end) {
      const char *e = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
      if (!e)
        continue;
      c->head_end = (size_t)(e - c->rbuf) + 4;
      const char *code = c->rbuf + 9; /* "HTTP/1.1 200": the buffer is not a C string */
      if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)code[0]) ||
          !isdigit((unsigned char)code[1]) || !isdigit((unsigned char)code[2]))
        return -1;
      c->status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
      char v[64];
      if (header_value(c->rbuf, c->head_end, "Content-Length", v, sizeof v))
        c->content_length = strtol(v, NULL, 10);
      if (header_value(c->rbuf, c->head_end, "Connection", v, sizeof v) &&
          strcasecmp(v, "close") == 0)
        c->close_after = 1;
      if (c->content_length < 0)
        return -1; /* the servers measured here always send Content-Length */
    }
    if (c->rlen >= c->head_end + (size_t)c->content_length) {
      if (opt_hold) {
        if (c->busy)
          atomic_fetch_add(&hold_answered, 1); /* a held request was answered */
        c->busy = 0;
        return 0;
      }
      response_done(w, c);
      if (c->close_after)
        return -1;
      if (may_start()) {
        request_start(w, c);
        if (conn_send(w, c) != 0)
          return -1;
      }
      return 0;
    }
  }
}

static void
conn_failed(worker *w, conn *c)
{
  if (c->busy && !opt_hold && c->start_ns >= t_measure) {
    w->st.conn_errors++;
    w->st.errors++;
  }
  if (opt_hold && c->busy)
    atomic_fetch_add(&hold_closed, 1);
  conn_close(c);
  if (opt_hold)
    return;
  if (may_start() && conn_open(w, c) == 0)
    request_start(w, c);
}

/* Hold mode: the connection's GET is sent (or it failed): one fewer pending. */
static void
unpend(conn *c, int *pending)
{
  if (c->pending) {
    c->pending = 0;
    (*pending)--;
  }
}

static void *
worker_main(void *arg)
{
  worker *w = arg;
  w->ep = epoll_create1(EPOLL_CLOEXEC);
  if (w->ep < 0)
    die("epoll_create1");
  int opened = 0, pending = 0;
  struct epoll_event evs[256];
  for (;;) {
    /* Hold mode opens connections in slices, so the listen backlog never overflows. */
    while (opened < w->nconns && (!opt_hold || pending < 256)) {
      conn *c = &w->conns[opened++];
      if (!opt_hold && !may_start())
        break;
      if (conn_open(w, c) != 0) {
        w->st.conn_errors++;
        if (opt_hold)
          atomic_fetch_add(&hold_closed, 1);
        continue;
      }
      request_start(w, c);
      if (opt_hold) {
        c->pending = 1;
        pending++;
      }
    }
    if (opt_hold && opened == w->nconns && pending == 0)
      break;
    if (!opt_hold) {
      int busy = 0;
      for (int i = 0; i < w->nconns; i++)
        busy += w->conns[i].busy;
      int done = atomic_load(&stopping) || (opt_requests && atomic_load(&issued) >= opt_requests);
      if (done && (busy == 0 || (atomic_load(&stopping) && now_ns() > t_end + DRAIN_NS)))
        break;
    }
    int n = epoll_wait(w->ep, evs, 256, 50);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c->fd < 0)
        continue;
      if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
          unpend(c, &pending);
          conn_failed(w, c);
          continue;
        }
        c->connected = 1;
      }
      if ((evs[i].events & EPOLLOUT) && c->busy && c->iovpos < c->iovcnt) {
        if (conn_send(w, c) != 0) {
          unpend(c, &pending);
          conn_failed(w, c);
          continue;
        }
        if (c->iovpos == c->iovcnt)
          unpend(c, &pending);
      }
      if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (conn_recv(w, c) != 0) {
          unpend(c, &pending);
          conn_failed(w, c);
        }
      }
    }
  }
  return NULL;
}

/* In hold mode, after "held": keep watching the connections until told to stop. */
static void *
hold_watch(void *arg)
{
  worker *w = arg;
  struct epoll_event evs[256];
  while (!atomic_load(&stopping)) {
    int n = epoll_wait(w->ep, evs, 256, 50);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c->fd >= 0 && conn_recv(w, c) != 0)
        conn_failed(w, c);
    }
  }
  return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double
pct(const uint32_t *v, size_t n, double p)
{
  if (!n)
    return 0;
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return v[i] / 1000.0;
}

static void
usage(void)
{
  fputs("usage: bench_load --port P [--host H] [--path P] [--method M] [--content-type T]\n"
        "  [--conns N] [--threads N] [--duration S] [--warmup S] [--requests N]\n"
        "  [--id-start N] [--sources N] [--hold] TEMPLATE...\n",
        stderr);
  exit(2);
}

int
main(int argc, char **argv)
{
  templates = calloc(MAX_TEMPLATES, sizeof *templates);
  const char *files[MAX_TEMPLATES];
  size_t nfiles = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && ++i)
    if (ARG("--host"))
      opt_host = v;
    else if (ARG("--port"))
      opt_port = (int)strtol(v, NULL, 10);
    else if (ARG("--path"))
      opt_path = v;
    else if (ARG("--method"))
      opt_method = v;
    else if (ARG("--content-type"))
      opt_ctype = v;
    else if (ARG("--conns"))
      opt_conns = (int)strtol(v, NULL, 10);
    else if (ARG("--threads"))
      opt_threads = (int)strtol(v, NULL, 10);
    else if (ARG("--duration"))
      opt_duration = strtod(v, NULL);
    else if (ARG("--warmup"))
      opt_warmup = strtod(v, NULL);
    else if (ARG("--requests"))
      opt_requests = strtoull(v, NULL, 10);
    else if (ARG("--id-start"))
      opt_id_start = strtoull(v, NULL, 10);
    else if (ARG("--sources"))
      opt_sources = (int)strtol(v, NULL, 10);
    else if (strcmp(a, "--hold") == 0)
      opt_hold = 1;
    else if (a[0] == '-' && a[1] == '-')
      usage();
    else if (nfiles < MAX_TEMPLATES)
      files[nfiles++] = a;
#undef ARG
  }
  if (opt_port <= 0 || opt_conns <= 0 || opt_threads <= 0)
    usage();
  if (opt_threads > opt_conns)
    opt_threads = opt_conns;
  if (opt_hold) {
    opt_method = "GET";
    opt_threads = 1;
  }
  if (nfiles == 0 && !opt_hold)
    usage();
  for (size_t i = 0; i < nfiles; i++)
    load_template(files[i]);
  if (opt_hold) {
    /* A GET without a body: one empty "template" with a head only. */
    tmpl *t = &templates[0];
    memset(t, 0, sizeof *t);
    t->nseg = 1;
    t->seg[0] = "";
    int n = snprintf(t->head, sizeof t->head, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", opt_path,
                     opt_host, opt_port);
    t->head_len = (size_t)n;
    ntemplates = 1;
  }
  memset(&server_addr, 0, sizeof server_addr);
  server_addr.sin_family = AF_INET;
  server_addr.sin_port = htons((uint16_t)opt_port);
  if (inet_pton(AF_INET, opt_host, &server_addr.sin_addr) != 1)
    die("--host must be an IPv4 address");
  atomic_store(&next_id, opt_id_start);

  worker *ws = calloc((size_t)opt_threads, sizeof *ws);
  conn *all = calloc((size_t)opt_conns, sizeof *all);
  for (int i = 0; i < opt_conns; i++) {
    all[i].fd = -1;
    all[i].rcap = opt_hold ? 4096 : RBUF_CAP;
    all[i].rbuf = malloc(all[i].rcap);
  }
  int per = opt_conns / opt_threads, extra = opt_conns % opt_threads, at = 0;
  for (int i = 0; i < opt_threads; i++) {
    ws[i].index = i;
    ws[i].nconns = per + (i < extra);
    ws[i].conns = all + at;
    at += ws[i].nconns;
  }

  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  t_begin = now_ns();
  t_measure = opt_requests || opt_hold ? t_begin : t_begin + (uint64_t)(opt_warmup * 1e9);
  t_end = opt_requests ? UINT64_MAX : t_measure + (uint64_t)(opt_duration * 1e9);
  for (int i = 0; i < opt_threads; i++)
    pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);

  if (opt_hold) {
    pthread_join(ws[0].thread, NULL);
    uint64_t open_ms = (now_ns() - t_begin) / 1000000;
    printf("held %d %llu\n", opt_conns, (unsigned long long)open_ms);
    fflush(stdout);
    pthread_create(&ws[0].thread, NULL, hold_watch, &ws[0]);
    /* Each line on stdin asks for the counts; "stop" (or EOF) also ends the run. */
    char line[64];
    for (;;) {
      int stop = !fgets(line, sizeof line, stdin) || strncmp(line, "stop", 4) == 0;
      uint64_t answered = atomic_load(&hold_answered), closed = atomic_load(&hold_closed);
      uint64_t still = (uint64_t)opt_conns - answered - closed;
      printf("{\"held\":%d,\"still_waiting\":%llu,\"answered\":%llu,\"closed\":%llu,"
             "\"open_ms\":%llu}\n",
             opt_conns, (unsigned long long)still, (unsigned long long)answered,
             (unsigned long long)closed, (unsigned long long)open_ms);
      fflush(stdout);
      if (stop)
        break;
    }
    atomic_store(&stopping, 1);
    pthread_join(ws[0].thread, NULL);
    goto done;
  }

  if (!opt_requests) {
    uint64_t until = t_end;
    while (now_ns() < until) {
      struct timespec ts = {0, 20 * 1000000};
      nanosleep(&ts, NULL);
    }
    atomic_store(&stopping, 1);
  }
  for (int i = 0; i < opt_threads; i++)
    pthread_join(ws[i].thread, NULL);
  uint64_t t_done = now_ns();
  getrusage(RUSAGE_SELF, &ru1);

  stats tot = {0};
  for (int i = 0; i < opt_threads; i++) {
    stats *s = &ws[i].st;
    tot.ok += s->ok;
    tot.errors += s->errors;
    tot.conn_errors += s->conn_errors;
    tot.duplicates += s->duplicates;
    tot.bytes += s->bytes;
    for (int k = 0; k < 6; k++)
      tot.status[k] += s->status[k];
    for (size_t k = 0; k < s->nlat; k++)
      stats_latency(&tot, s->lat[k]);
  }
  qsort(tot.lat, tot.nlat, sizeof *tot.lat, cmp_u32);
  double secs = opt_requests ? (double)(t_done - t_begin) / 1e9 : opt_duration;
  double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
               (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
               (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
               (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
  double wall = (double)(t_done - t_begin) / 1e9;
  printf("{\"ok\":%llu,\"errors\":%llu,\"conn_errors\":%llu,\"duplicates\":%llu,"
         "\"status\":{\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu},"
         "\"seconds\":%.3f,\"rate\":%.1f,\"mb_per_s\":%.2f,"
         "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
         "\"loader_cpu_s\":%.3f,\"loader_wall_s\":%.3f,\"next_id\":%llu}\n",
         (unsigned long long)tot.ok, (unsigned long long)tot.errors,
         (unsigned long long)tot.conn_errors, (unsigned long long)tot.duplicates,
         (unsigned long long)tot.status[2], (unsigned long long)tot.status[3],
         (unsigned long long)tot.status[4], (unsigned long long)tot.status[5],
         (unsigned long long)tot.status[0], secs, secs > 0 ? (double)tot.ok / secs : 0,
         secs > 0 ? (double)tot.bytes / secs / 1e6 : 0, pct(tot.lat, tot.nlat, 0.50),
         pct(tot.lat, tot.nlat, 0.90), pct(tot.lat, tot.nlat, 0.99),
         tot.nlat ? tot.lat[tot.nlat - 1] / 1000.0 : 0, cpu, wall,
         (unsigned long long)atomic_load(&next_id));
  free(tot.lat);
done:
  for (int i = 0; i < opt_conns; i++) {
    if (all[i].fd >= 0)
      close(all[i].fd);
    free(all[i].rbuf);
  }
  for (int i = 0; i < opt_threads; i++) {
    free(ws[i].st.lat);
    if (ws[i].ep >= 0)
      close(ws[i].ep);
  }
  free(all);
  free(ws);
  for (size_t i = 0; i < ntemplates; i++)
    free(templates[i].data);
  free(templates);
  return 0;
}
