/* vfs_wrap.c: see vfs_wrap.h. */
#include "vfs_wrap.h"

#include <string.h>

int
vfs_wrap_open(sqlite3_vfs *base, const char *name, int flags, int *out_flags,
              sqlite3_file **real_out)
{
  sqlite3_file *real = sqlite3_malloc(base->szOsFile);
  *real_out = NULL;
  if (!real)
    return SQLITE_NOMEM;
  memset(real, 0, (size_t)base->szOsFile);
  int rc = base->xOpen(base, name, real, flags, out_flags);
  if (rc != SQLITE_OK) {
    sqlite3_free(real);
    return rc;
  }
  *real_out = real;
  return SQLITE_OK;
}

#define REAL(f) (((vfs_wrap_file *)(f))->real)

int
vfs_wrap_close(sqlite3_file *f)
{
  sqlite3_file *real = REAL(f);
  int rc = real && real->pMethods ? real->pMethods->xClose(real) : SQLITE_OK;
  sqlite3_free(real);
  REAL(f) = NULL;
  return rc;
}

int
vfs_wrap_read(sqlite3_file *f, void *data, int n, sqlite3_int64 off)
{
  return REAL(f)->pMethods->xRead(REAL(f), data, n, off);
}

int
vfs_wrap_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
  return REAL(f)->pMethods->xWrite(REAL(f), data, n, off);
}

int
vfs_wrap_truncate(sqlite3_file *f, sqlite3_int64 size)
{
  return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

int
vfs_wrap_sync(sqlite3_file *f, int flags)
{
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}

int
vfs_wrap_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

int
vfs_wrap_lock(sqlite3_file *f, int lock)
{
  return REAL(f)->pMethods->xLock(REAL(f), lock);
}

int
vfs_wrap_unlock(sqlite3_file *f, int lock)
{
  return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

int
vfs_wrap_check_reserved_lock(sqlite3_file *f, int *out)
{
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

int
vfs_wrap_file_control(sqlite3_file *f, int op, void *arg)
{
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

int
vfs_wrap_sector_size(sqlite3_file *f)
{
  return REAL(f)->pMethods->xSectorSize(REAL(f));
}

int
vfs_wrap_device_characteristics(sqlite3_file *f)
{
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

int
vfs_wrap_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
  return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}

int
vfs_wrap_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
  return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

void
vfs_wrap_shm_barrier(sqlite3_file *f)
{
  REAL(f)->pMethods->xShmBarrier(REAL(f));
}

int
vfs_wrap_shm_unmap(sqlite3_file *f, int delete_flag)
{
  return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

const sqlite3_io_methods vfs_wrap_methods = {
    .iVersion = 2,
    .xClose = vfs_wrap_close,
    .xRead = vfs_wrap_read,
    .xWrite = vfs_wrap_write,
    .xTruncate = vfs_wrap_truncate,
    .xSync = vfs_wrap_sync,
    .xFileSize = vfs_wrap_file_size,
    .xLock = vfs_wrap_lock,
    .xUnlock = vfs_wrap_unlock,
    .xCheckReservedLock = vfs_wrap_check_reserved_lock,
    .xFileControl = vfs_wrap_file_control,
    .xSectorSize = vfs_wrap_sector_size,
    .xDeviceCharacteristics = vfs_wrap_device_characteristics,
    .xShmMap = vfs_wrap_shm_map,
    .xShmLock = vfs_wrap_shm_lock,
    .xShmBarrier = vfs_wrap_shm_barrier,
    .xShmUnmap = vfs_wrap_shm_unmap,
};
