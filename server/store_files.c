/* store_files.c: attachment bytes kept as files in --attachment-dir (a directory every
 * node shares), named by the SHA-256 of their content: the same bytes are stored once,
 * a file never changes once written, and any node can read what another wrote. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_internal.h"

/* DIR/ab/abcdef... (two-level fan-out). Only lower-case hex names: nothing of the
 * attachment (its filename) ever becomes part of a path. New, or NULL for a bad name. */
static char *
file_path(const char *dir, const char *sha256)
{
  if (strlen(sha256) != 64)
    return NULL;
  for (const char *p = sha256; *p; p++)
    if (!g_ascii_isdigit(*p) && !(*p >= 'a' && *p <= 'f'))
      return NULL;
  return g_strdup_printf("%s/%.2s/%s", dir, sha256, sha256);
}

static int
fsync_dir(const char *path)
{
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

ib_status
store_file_put(const char *dir, const char *sha256, const void *data, size_t len)
{
  char *path = file_path(dir, sha256);
  if (!path) {
    log_error("cannot store an attachment: bad digest %.70s", sha256);
    return IB_ERR_INTERNAL;
  }
  ib_status st = IB_ERR_STORAGE;
  char *sub = g_path_get_dirname(path);
  char *tmp = NULL;
  int fd = -1;
  struct stat sb;
  if (stat(path, &sb) == 0 && (uint64_t)sb.st_size == len) {
    st = IB_OK; /* content-addressed: already there (another message, another node) */
    goto done;
  }
  if (mkdir(sub, 0750) != 0 && errno != EEXIST) {
    log_error("cannot create %s: %s", sub, g_strerror(errno));
    goto done;
  }
  /* Written under a unique name, fsynced, then renamed: a reader never sees half a file,
   * and two nodes writing the same content at once both end with the whole file. */
  tmp = g_strdup_printf("%s.%d.%u.tmp", path, (int)getpid(), g_random_int());
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    log_error("cannot create %s: %s", tmp, g_strerror(errno));
    goto done;
  }
  const char *p = data;
  size_t left = len;
  while (left) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      log_error("cannot write %s: %s", tmp, g_strerror(errno));
      goto done;
    }
    p += n;
    left -= (size_t)n;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    fd = -1;
    log_error("cannot flush %s: %s", tmp, g_strerror(errno));
    goto done;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    log_error("cannot rename %s: %s", tmp, g_strerror(errno));
    goto done;
  }
  if (fsync_dir(sub) != 0 || fsync_dir(dir) != 0) {
    log_error("cannot flush the directory of %s: %s", path, g_strerror(errno));
    goto done;
  }
  st = IB_OK;
done:
  if (fd >= 0)
    close(fd);
  if (tmp && st != IB_OK)
    unlink(tmp);
  g_free(tmp);
  g_free(sub);
  g_free(path);
  return st;
}

ib_status
store_file_read(const char *dir, const char *sha256, uint64_t off, void *buf, size_t len,
                size_t *got_out)
{
  *got_out = 0;
  char *path = file_path(dir, sha256);
  if (!path)
    return IB_ERR_NOT_FOUND;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    log_error("cannot open attachment file %s: %s", path, g_strerror(err));
    g_free(path);
    return err == ENOENT ? IB_ERR_NOT_FOUND : IB_ERR_STORAGE;
  }
  ssize_t n;
  do
    n = pread(fd, buf, len, (off_t)off);
  while (n < 0 && errno == EINTR);
  ib_status st = IB_OK;
  if (n < 0) {
    log_error("cannot read %s: %s", path, g_strerror(errno));
    st = IB_ERR_STORAGE;
  } else {
    *got_out = (size_t)n;
  }
  close(fd);
  g_free(path);
  return st;
}
