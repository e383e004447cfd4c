/* faultvfs.h: storage fault injection for the test suite, in the spirit of SQLite's own
 * test VFS. When INBOXD_FAULT_FILE names a file, inboxd registers a VFS that wraps the
 * default one and, while that file holds a fault name, fails the matching calls:
 *   "full"     every write fails with SQLITE_FULL (disk full)
 *   "fsync"    every sync fails with SQLITE_IOERR_FSYNC
 *   "readonly" every write fails with SQLITE_READONLY
 *   "ioerr"    every read and write fails with SQLITE_IOERR
 * An empty or missing file means no fault. Without INBOXD_FAULT_FILE nothing changes. */
#ifndef INBOXD_FAULTVFS_H
#define INBOXD_FAULTVFS_H

/* Register the fault VFS as the default when INBOXD_FAULT_FILE is set. Call once, before
 * any database is opened. Returns 0 (also when not enabled), -1 on failure. */
int faultvfs_install(void);

#endif
