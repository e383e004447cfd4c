/* walvfs.c: one write per commit for the writer's WAL (see walvfs.h).
 *
 * Two kinds of files are wrapped. The WAL (wal_file) buffers consecutive writes. Its
 * database file (db_file) passes everything through, but before the connection releases
 * the WAL's write lock (shared-memory lock 0, WAL_WRITE_LOCK in SQLite's wal.c) it writes
 * out what the WAL still buffers. After a commit that is nothing (the commit's sync wrote
 * it); after a rollback it is frames the transaction spilled before it was rolled back.
 * SQLite would have written those at once, beyond the end of the log, under the lock: so
 * must we, or a later flush, after another process committed frames at those offsets,
 * would write dead frames over live ones. Every other file is the default VFS's own. */
#include "walvfs.h"

#include <glib.h>
#include <sqlite3.h>
#include <string.h>

#include "vfs_wrap.h"

/* Larger runs of frames (a 20 MB attachment) go out in pieces of this size. */
#define WAL_BUFFER_BYTES (1024 * 1024)
/* The unix VFS's xWrite takes at most 128 KiB - 1 at a time (it masks the size to 17
 * bits, and reports the rest as a full disk), so the buffer is written in pieces. */
#define WAL_WRITE_MAX (64 * 1024)
/* The shared-memory lock slot of the WAL write lock (WAL_WRITE_LOCK in wal.c). */
#define WAL_WRITE_LOCK_SLOT 0

static sqlite3_vfs *base_vfs;
static sqlite3_vfs wal_vfs;

typedef struct wal_file wal_file;

typedef struct db_file {
  vfs_wrap_file w; /* must be first */
  wal_file *wal;   /* its WAL while that is open, or NULL */
} db_file;

struct wal_file {
  vfs_wrap_file w; /* must be first */
  db_file *db;     /* its database file, or NULL */
  int buffering;   /* 0: every call passes through (see v_open) */
  char *buf;       /* WAL_BUFFER_BYTES (g_malloc), or NULL until the first write */
  size_t len;      /* bytes buffered, for the file at offset `off` */
  sqlite3_int64 off;
};

/* vfs_wrap_methods with what differs, filled by install(). The WAL's are version 1 (its
 * shared memory is the database file's); the database file's version 2 (no
 * xFetch/xUnfetch: the writer reads without mmap, as its mmap_size 0 says anyway). */
static sqlite3_io_methods db_methods, wal_methods;

/* Write LEN bytes of DATA at OFF in pieces the wrapped file takes. */
static int
write_pieces(sqlite3_file *real, const char *data, size_t len, sqlite3_int64 off)
{
  int rc = SQLITE_OK;
  for (size_t done = 0; done < len && rc == SQLITE_OK; done += WAL_WRITE_MAX)
    rc = real->pMethods->xWrite(real, data + done, (int)MIN(len - done, WAL_WRITE_MAX),
                                off + (sqlite3_int64)done);
  return rc;
}

/* Write what is buffered. The buffer is emptied even when the write fails: SQLite treats
 * the failed call as a failed commit and writes those frames again if it retries. */
static int
flush(wal_file *w)
{
  if (!w->len)
    return SQLITE_OK;
  int rc = write_pieces(w->w.real, w->buf, w->len, w->off);
  w->len = 0;
  return rc;
}

/* ---- The WAL ------------------------------------------------------------------------ */

static int
w_close(sqlite3_file *f)
{
  wal_file *w = (wal_file *)f;
  int rc = flush(w);
  if (w->db)
    w->db->wal = NULL;
  int rc2 = vfs_wrap_close(f);
  g_free(w->buf);
  return rc != SQLITE_OK ? rc : rc2;
}

static int
w_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
  wal_file *w = (wal_file *)f;
  if (!w->buffering)
    return vfs_wrap_write(f, data, n, off);
  if (w->len && off == w->off + (sqlite3_int64)w->len && w->len + (size_t)n <= WAL_BUFFER_BYTES) {
    memcpy(w->buf + w->len, data, (size_t)n);
    w->len += (size_t)n;
    return SQLITE_OK;
  }
  int rc = flush(w);
  if (rc != SQLITE_OK)
    return rc;
  if ((size_t)n > WAL_BUFFER_BYTES)
    return write_pieces(w->w.real, data, (size_t)n, off);
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
  int rc = flush((wal_file *)f);
  return rc != SQLITE_OK ? rc : vfs_wrap_read(f, data, n, off);
}

static int
w_truncate(sqlite3_file *f, sqlite3_int64 size)
{
  int rc = flush((wal_file *)f);
  return rc != SQLITE_OK ? rc : vfs_wrap_truncate(f, size);
}

static int
w_sync(sqlite3_file *f, int flags)
{
  int rc = flush((wal_file *)f);
  return rc != SQLITE_OK ? rc : vfs_wrap_sync(f, flags);
}

static int
w_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
  int rc = flush((wal_file *)f);
  return rc != SQLITE_OK ? rc : vfs_wrap_file_size(f, size);
}

/* ---- The database file -------------------------------------------------------------- */

static int
d_close(sqlite3_file *f)
{
  db_file *d = (db_file *)f;
  if (d->wal)
    d->wal->db = NULL;
  return vfs_wrap_close(f);
}

static int
d_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
  db_file *d = (db_file *)f;
  if ((flags & SQLITE_SHM_UNLOCK) && d->wal && off <= WAL_WRITE_LOCK_SLOT &&
      WAL_WRITE_LOCK_SLOT < off + n)
    flush(d->wal); /* a failure has no caller to go to: the frames were dead anyway */
  return vfs_wrap_shm_lock(f, off, n, flags);
}

/* ---- The VFS ------------------------------------------------------------------------ */

static int
v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
  if (!(flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)))
    return base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
  if (flags & SQLITE_OPEN_MAIN_DB) {
    db_file *d = (db_file *)f;
    memset(d, 0, sizeof *d);
    int rc = vfs_wrap_open(base_vfs, name, flags, out_flags, &d->w.real);
    f->pMethods = rc == SQLITE_OK ? &db_methods : NULL;
    return rc;
  }
  wal_file *w = (wal_file *)f;
  memset(w, 0, sizeof *w);
  int rc = vfs_wrap_open(base_vfs, name, flags, out_flags, &w->w.real);
  f->pMethods = rc == SQLITE_OK ? &wal_methods : NULL;
  if (rc != SQLITE_OK)
    return rc;
  /* The database file this WAL belongs to (opened before it, through this VFS). Without
   * SQLITE_IOCAP_POWERSAFE_OVERWRITE on it, SQLite pads a commit to a sector boundary and
   * syncs in the middle of the commit's last frame, then writes the rest and publishes
   * the commit with no sync after: buffering would hide that rest from readers. */
  sqlite3_file *db = sqlite3_database_file_object(name);
  if (db && db->pMethods == &db_methods) {
    w->db = (db_file *)db;
    w->db->wal = w;
    w->buffering =
        (db->pMethods->xDeviceCharacteristics(db) & SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
  }
  return SQLITE_OK;
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
  wal_vfs.szOsFile = MAX(base_vfs->szOsFile, (int)MAX(sizeof(wal_file), sizeof(db_file)));
  wal_vfs.xOpen = v_open;
  wal_methods = vfs_wrap_methods;
  wal_methods.iVersion = 1;
  wal_methods.xClose = w_close;
  wal_methods.xRead = w_read;
  wal_methods.xWrite = w_write;
  wal_methods.xTruncate = w_truncate;
  wal_methods.xSync = w_sync;
  wal_methods.xFileSize = w_file_size;
  db_methods = vfs_wrap_methods;
  db_methods.xClose = d_close;
  db_methods.xShmLock = d_shm_lock;
  return GINT_TO_POINTER(sqlite3_vfs_register(&wal_vfs, 0) == SQLITE_OK ? 0 : -1);
}

int
walvfs_install(void)
{
  static GOnce once = G_ONCE_INIT;
  return GPOINTER_TO_INT(g_once(&once, install, NULL));
}
