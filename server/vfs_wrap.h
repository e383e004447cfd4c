/* vfs_wrap.h: what inboxd's two SQLite VFSs (faultvfs.c, walvfs.c) share. Each wraps the
 * VFS that was the default when it was installed: a file it opens is a vfs_wrap_file (or
 * begins with one) that holds the wrapped VFS's file in an allocation of its own, and the
 * methods it does not change are the pass-throughs below. */
#ifndef INBOXD_VFS_WRAP_H
#define INBOXD_VFS_WRAP_H

#include <sqlite3.h>

typedef struct vfs_wrap_file {
  sqlite3_file base;  /* must be first */
  sqlite3_file *real; /* the wrapped VFS's file (sqlite3_malloc) */
} vfs_wrap_file;

/* Open NAME with BASE (FLAGS and OUT_FLAGS as for xOpen) into a new file *REAL_OUT,
 * released by vfs_wrap_close(). Returns BASE's xOpen result, or SQLITE_NOMEM; on failure
 * *REAL_OUT is NULL. */
int vfs_wrap_open(sqlite3_vfs *base, const char *name, int flags, int *out_flags,
                  sqlite3_file **real_out);

/* Pass-throughs to the wrapped file, for sqlite3_io_methods tables (version 2). F is a
 * vfs_wrap_file. vfs_wrap_close() also frees the wrapped file. */
int vfs_wrap_close(sqlite3_file *f);
int vfs_wrap_read(sqlite3_file *f, void *data, int n, sqlite3_int64 off);
int vfs_wrap_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off);
int vfs_wrap_truncate(sqlite3_file *f, sqlite3_int64 size);
int vfs_wrap_sync(sqlite3_file *f, int flags);
int vfs_wrap_file_size(sqlite3_file *f, sqlite3_int64 *size);
int vfs_wrap_lock(sqlite3_file *f, int lock);
int vfs_wrap_unlock(sqlite3_file *f, int lock);
int vfs_wrap_check_reserved_lock(sqlite3_file *f, int *out);
int vfs_wrap_file_control(sqlite3_file *f, int op, void *arg);
int vfs_wrap_sector_size(sqlite3_file *f);
int vfs_wrap_device_characteristics(sqlite3_file *f);
int vfs_wrap_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out);
int vfs_wrap_shm_lock(sqlite3_file *f, int off, int n, int flags);
void vfs_wrap_shm_barrier(sqlite3_file *f);
int vfs_wrap_shm_unmap(sqlite3_file *f, int delete_flag);

/* Every method above (version 2): copy it, then replace the methods a wrapper changes. */
extern const sqlite3_io_methods vfs_wrap_methods;

#endif
