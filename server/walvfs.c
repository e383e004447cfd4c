/* walvfs.c: one write per commit for the writer's WAL (see walvfs.h). */
#include "walvfs.h"
#include "vfs_wrap.h"

#include <glib.h>
#include <sqlite3.h>
#include <string.h>

/* Larger runs of frames (a 20 MB attachment) go out in pieces of this size. */
#define WAL_BUFFER_BYTES (1024 * 1024)
/* The unix VFS's xWrite takes at most 128 KiB - 1 at a time (it masks the size to 17
 * bits, and reports the rest as a full disk), so the buffer is written in pieces. */
#define WAL_WRITE_MAX (64 * 1024)

static sqlite3_vfs *base_vfs;
static sqlite3_vfs wal_vfs;

typedef struct wal_file {
  sqlite3_file base;  /* must be first */
  sqlite3_file *real; /* the default VFS's file (sqlite3_malloc) */
  char *buf;          /* WAL_BUFFER_BYTES (g_malloc), or NULL until the first write */
  size_t len;         /* bytes buffered, for the file at offset `off` */
  sqlite3_int64 off;
} wal_file;

/* Write what is buffered. The buffer is emptied even when the write fails: SQLite treats
 * the failed call as a failed commit and writes those frames again if it retries. */
static int
flush(wal_file *w)
{
  if (!w->len)
    return SQLITE_OK;
  int rc = SQLITE_OK;
  for (size_t done = 0; done < w->len && rc == SQLITE_OK; done += WAL_WRITE_MAX) {
    size_t n = MIN(w->len - done, WAL_WRITE_MAX);
    rc = w->real->pMethods->xWrite(w->real, w->buf + done, (int)n, w->off + (sqlite3_int64)done);
  }
  w->len = 0;
  return rc;
}

static int
w_close(sqlite3_file *f)
{
  wal_file *w = (wal_file *)f;
  int rc = flush(w);
  int rc2 = w->real->pMethods ? w->real->pMethods->xClose(w->real) : SQLITE_OK;
  sqlite3_free(w->real);
  g_free(w->buf);
  return rc != SQLITE_OK ? rc : rc2;
}

static int
w_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
  wal_file *w = (wal_file *)f;
  if (w->len && off == w->off + (sqlite3_int64)w->len && w->len + (size_t)n <= WAL_BUFFER_BYTES) {
    memcpy(w->buf + w->len, data, (size_t)n);
    w->len += (size_t)n;
    return SQLITE_OK;
  }
  int rc = flush(w);
  if (rc != SQLITE_OK)
    return rc;
  if ((size_t)n > WAL_BUFFER_BYTES)
    return w->real->pMethods->xWrite(w->real, data, n, off);
  if (!w->buf)
    w->buf = g_malloc(WAL_BUFFER_BYTES);
  memcpy(w->buf, data, (size_t)n);
  w->len = (size_t)n;
  w->off = off;
  return SQLITE_OK;
}

/* Calls that must see every write first: flush, then pass on. */
static int
w_read(sqlite3_file *f, void *data, int n, sqlite3_int64 off)
{
  wal_file *w = (wal_file *)f;
  int rc = flush(w);
  return rc != SQLITE_OK ? rc : w->real->pMethods->xRead(w->real, data, n, off);
}

static int
w_truncate(sqlite3_file *f, sqlite3_int64 size)
{
  wal_file *w = (wal_file *)f;
  int rc = flush(w);
  return rc != SQLITE_OK ? rc : w->real->pMethods->xTruncate(w->real, size);
}

static int
w_sync(sqlite3_file *f, int flags)
{
  wal_file *w = (wal_file *)f;
  int rc = flush(w);
  return rc != SQLITE_OK ? rc : w->real->pMethods->xSync(w->real, flags);
}

static int
w_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
  wal_file *w = (wal_file *)f;
  int rc = flush(w);
  return rc != SQLITE_OK ? rc : w->real->pMethods->xFileSize(w->real, size);
}

/* The rest is the real file's. */
static int
w_lock(sqlite3_file *f, int lock)
{
  return ((wal_file *)f)->real->pMethods->xLock(((wal_file *)f)->real, lock);
}

static int
w_unlock(sqlite3_file *f, int lock)
{
  return ((wal_file *)f)->real->pMethods->xUnlock(((wal_file *)f)->real, lock);
}

static int
w_check_reserved_lock(sqlite3_file *f, int *out)
{
  return ((wal_file *)f)->real->pMethods->xCheckReservedLock(((wal_file *)f)->real, out);
}

static int
w_file_control(sqlite3_file *f, int op, void *arg)
{
  return ((wal_file *)f)->real->pMethods->xFileControl(((wal_file *)f)->real, op, arg);
}

static int
w_sector_size(sqlite3_file *f)
{
  return ((wal_file *)f)->real->pMethods->xSectorSize(((wal_file *)f)->real);
}

static int
w_device_characteristics(sqlite3_file *f)
{
  return ((wal_file *)f)->real->pMethods->xDeviceCharacteristics(((wal_file *)f)->real);
}

/* Version 1: a WAL file has no shared memory of its own (that is the database file's). */
static const sqlite3_io_methods wal_methods = {
    .iVersion = 1,
    .xClose = w_close,
    .xRead = w_read,
    .xWrite = w_write,
    .xTruncate = w_truncate,
    .xSync = w_sync,
    .xFileSize = w_file_size,
    .xLock = w_lock,
    .xUnlock = w_unlock,
    .xCheckReservedLock = w_check_reserved_lock,
    .xFileControl = w_file_control,
    .xSectorSize = w_sector_size,
    .xDeviceCharacteristics = w_device_characteristics,
};

static int
v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
  if (!(flags & SQLITE_OPEN_WAL))
    return base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
  wal_file *w = (wal_file *)f;
  memset(w, 0, sizeof *w);
  int rc = vfs_wrap_open(base_vfs, name, flags, out_flags, &w->real);
  f->pMethods = rc == SQLITE_OK ? &wal_methods : NULL;
  return rc;
}

static gpointer
install(gpointer unused)
{
  (void)unused;
  base_vfs = sqlite3_vfs_find(NULL);
  if (!base_vfs)
    return GINT_TO_POINTER(-1);
  /* Everything but opening files is the default VFS's, called with this VFS's pointer:
   * the unix VFS and the fault VFS use nothing of it but mxPathname, copied here. */
  wal_vfs = *base_vfs;
  wal_vfs.pNext = NULL;
  wal_vfs.zName = WALVFS_NAME;
  wal_vfs.szOsFile = MAX(base_vfs->szOsFile, (int)sizeof(wal_file));
  wal_vfs.xOpen = v_open;
  return GINT_TO_POINTER(sqlite3_vfs_register(&wal_vfs, 0) == SQLITE_OK ? 0 : -1);
}

int
walvfs_install(void)
{
  static GOnce once = G_ONCE_INIT;
  return GPOINTER_TO_INT(g_once(&once, install, NULL));
}
