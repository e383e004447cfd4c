#include "faultvfs.h"

#include <glib.h>
#include <sqlite3.h>
#include <string.h>

#include "clock.h"
#include "vfs_wrap.h"

typedef enum { FAULT_NONE, FAULT_FULL, FAULT_FSYNC, FAULT_READONLY, FAULT_IOERR } fault_kind;

static sqlite3_vfs *base_vfs;
static sqlite3_vfs fault_vfs;
static char *fault_path;
static GMutex fault_lock;
static fault_kind fault_cached;
static int64_t fault_checked_ms = -1;

/* The current fault, re-read from the file at most every 5 ms. */
static fault_kind
current_fault(void)
{
  g_mutex_lock(&fault_lock);
  int64_t now = clock_mono_ms();
  if (fault_checked_ms < 0 || now - fault_checked_ms >= 5) {
    char *text = NULL;
    fault_cached = FAULT_NONE;
    if (g_file_get_contents(fault_path, &text, NULL, NULL)) {
      g_strstrip(text);
      if (strcmp(text, "full") == 0)
        fault_cached = FAULT_FULL;
      else if (strcmp(text, "fsync") == 0)
        fault_cached = FAULT_FSYNC;
      else if (strcmp(text, "readonly") == 0)
        fault_cached = FAULT_READONLY;
      else if (strcmp(text, "ioerr") == 0)
        fault_cached = FAULT_IOERR;
      g_free(text);
    }
    fault_checked_ms = now;
  }
  fault_kind k = fault_cached;
  g_mutex_unlock(&fault_lock);
  return k;
}

/* A file is a vfs_wrap_file: the fault decides, then the wrapped file does the work. */

static int
f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
  if (current_fault() == FAULT_IOERR)
    return SQLITE_IOERR_READ;
  return vfs_wrap_read(f, buf, n, off);
}

static int
f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
  switch (current_fault()) {
  case FAULT_FULL:
    return SQLITE_FULL;
  case FAULT_READONLY:
    return SQLITE_READONLY;
  case FAULT_IOERR:
    return SQLITE_IOERR_WRITE;
  default:
    return vfs_wrap_write(f, buf, n, off);
  }
}

static int
f_sync(sqlite3_file *f, int flags)
{
  fault_kind k = current_fault();
  if (k == FAULT_FSYNC || k == FAULT_IOERR)
    return SQLITE_IOERR_FSYNC;
  return vfs_wrap_sync(f, flags);
}

static sqlite3_io_methods fault_methods; /* vfs_wrap_methods but read, write, sync */

static int
v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
  vfs_wrap_file *ff = (vfs_wrap_file *)f;
  int rc = vfs_wrap_open(base_vfs, name, flags, out_flags, &ff->real);
  f->pMethods = rc == SQLITE_OK ? &fault_methods : NULL;
  return rc;
}

static int
v_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
  return base_vfs->xDelete(base_vfs, name, sync);
}

static int
v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
  return base_vfs->xAccess(base_vfs, name, flags, out);
}

static int
v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
  return base_vfs->xFullPathname(base_vfs, name, n, out);
}

static int
v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
  return base_vfs->xRandomness(base_vfs, n, out);
}

static int
v_sleep(sqlite3_vfs *vfs, int us)
{
  return base_vfs->xSleep(base_vfs, us);
}

static int
v_current_time(sqlite3_vfs *vfs, double *out)
{
  return base_vfs->xCurrentTime(base_vfs, out);
}

static int
v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
  return base_vfs->xGetLastError(base_vfs, n, out);
}

static int
v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
  return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

int
faultvfs_install(void)
{
  const char *path = g_getenv("INBOXD_FAULT_FILE");
  if (!path || !*path || base_vfs)
    return 0;
  base_vfs = sqlite3_vfs_find(NULL);
  if (!base_vfs)
    return -1;
  fault_path = g_strdup(path);
  fault_methods = vfs_wrap_methods;
  fault_methods.xRead = f_read;
  fault_methods.xWrite = f_write;
  fault_methods.xSync = f_sync;
  fault_vfs = (sqlite3_vfs){
      .iVersion = 2,
      .szOsFile = (int)sizeof(vfs_wrap_file),
      .mxPathname = base_vfs->mxPathname,
      .zName = "inboxd-fault",
      .xOpen = v_open,
      .xDelete = v_delete,
      .xAccess = v_access,
      .xFullPathname = v_full_pathname,
      .xDlOpen = NULL,
      .xRandomness = v_randomness,
      .xSleep = v_sleep,
      .xCurrentTime = v_current_time,
      .xGetLastError = v_last_error,
      .xCurrentTimeInt64 = v_current_time64,
  };
  /* The wrapped VFS keeps the base's dlopen entry points. */
  fault_vfs.xDlOpen = base_vfs->xDlOpen;
  fault_vfs.xDlError = base_vfs->xDlError;
  fault_vfs.xDlSym = base_vfs->xDlSym;
  fault_vfs.xDlClose = base_vfs->xDlClose;
  return sqlite3_vfs_register(&fault_vfs, 1) == SQLITE_OK ? 0 : -1;
}
