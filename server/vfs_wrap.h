/* vfs_wrap.h: what inboxd's two SQLite VFSs (faultvfs.c, walvfs.c) share. Each wraps the
 * VFS that was the default when it was installed, and keeps that VFS's file for each file
 * it opens in an allocation of its own. */
#ifndef INBOXD_VFS_WRAP_H
#define INBOXD_VFS_WRAP_H

#include <sqlite3.h>

/* Open NAME with BASE (FLAGS and OUT_FLAGS as for xOpen) into a new file *REAL_OUT,
 * released by xClose on it followed by sqlite3_free(). Returns BASE's xOpen result, or
 * SQLITE_NOMEM; on failure *REAL_OUT is NULL. */
int vfs_wrap_open(sqlite3_vfs *base, const char *name, int flags, int *out_flags,
                  sqlite3_file **real_out);

#endif
