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
