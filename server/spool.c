#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

struct ib_spool {
  uint64_t cap;
  size_t mem_limit;
  uint64_t length; /* including bytes refused past the cap */
  GByteArray *mem; /* NULL once in a file */
  int fd;          /* -1 while in memory */
  int failed;
  GBytes *bytes; /* the finished body, once spool_bytes() was called */
};

ib_spool *
spool_new(uint64_t cap, size_t mem_limit)
{
  ib_spool *sp = g_new0(ib_spool, 1);
  sp->cap = cap;
  sp->mem_limit = mem_limit;
  sp->mem = g_byte_array_new();
  sp->fd = -1;
  return sp;
}

void
spool_free(ib_spool *sp)
{
  if (!sp)
    return;
  if (sp->mem)
    g_byte_array_unref(sp->mem);
  if (sp->fd >= 0)
    close(sp->fd);
  if (sp->bytes)
    g_bytes_unref(sp->bytes);
  g_free(sp);
}

static int
write_all(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int
open_tmpfile(void)
{
  const char *dir = g_get_tmp_dir();
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  /* Filesystems without O_TMPFILE: create and unlink at once. */
  char *path = g_build_filename(dir, "inboxd-spool-XXXXXX", NULL);
  fd = g_mkstemp_full(path, O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    unlink(path);
  g_free(path);
  return fd;
}

ib_status
spool_append(ib_spool *sp, const void *data, size_t len)
{
  sp->length += len;
  if (sp->bytes) /* finished: nothing may change under a reader */
    return IB_ERR_INTERNAL;
  if (sp->failed)
    return IB_ERR_IO;
  if (sp->length > sp->cap)
    return IB_ERR_LIMIT;
  if (sp->mem && sp->mem->len + len <= sp->mem_limit) {
    g_byte_array_append(sp->mem, data, (guint)len);
    return IB_OK;
  }
  if (sp->mem) {
    sp->fd = open_tmpfile();
    if (sp->fd < 0 || write_all(sp->fd, sp->mem->data, sp->mem->len) != 0) {
      log_error("cannot spool a request body to %s: %s", g_get_tmp_dir(), g_strerror(errno));
      sp->failed = 1;
      return IB_ERR_IO;
    }
    g_byte_array_unref(sp->mem);
    sp->mem = NULL;
  }
  if (write_all(sp->fd, data, len) != 0) {
    log_error("cannot spool a request body: %s", g_strerror(errno));
    sp->failed = 1;
    return IB_ERR_IO;
  }
  return IB_OK;
}

uint64_t
spool_length(const ib_spool *sp)
{
  return sp->length;
}

typedef struct mapping {
  void *addr;
  size_t len;
} mapping;

static void
unmap(gpointer p)
{
  mapping *m = p;
  munmap(m->addr, m->len);
  g_free(m);
}

ib_status
spool_bytes(ib_spool *sp, GBytes **bytes_out)
{
  *bytes_out = NULL;
  if (sp->bytes) {
    *bytes_out = g_bytes_ref(sp->bytes);
    return IB_OK;
  }
  if (sp->failed)
    return IB_ERR_IO;
  if (sp->mem) {
    sp->bytes = g_byte_array_free_to_bytes(sp->mem);
    sp->mem = NULL;
    *bytes_out = g_bytes_ref(sp->bytes);
    return IB_OK;
  }
  size_t len = (size_t)MIN(sp->length, sp->cap);
  void *addr = mmap(NULL, len, PROT_READ, MAP_PRIVATE, sp->fd, 0);
  if (addr == MAP_FAILED) {
    log_error("cannot map a spooled body of %zu bytes: %s", len, g_strerror(errno));
    return IB_ERR_IO;
  }
  mapping *m = g_new(mapping, 1);
  m->addr = addr;
  m->len = len;
  sp->bytes = g_bytes_new_with_free_func(addr, len, unmap, m);
  *bytes_out = g_bytes_ref(sp->bytes);
  return IB_OK;
}
