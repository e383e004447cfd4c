/* walvfs.h: a SQLite VFS that hands a commit's WAL frames to the kernel in one write.
 *
 * SQLite writes each WAL frame as two pwrite() calls (its 24-byte header, then the page),
 * so a group commit of a dozen messages made about 150 system calls before its fsync,
 * all on the writer thread, which is the one thread every acknowledged message waits
 * for. This VFS wraps the default one (the fault-injection VFS included, when the tests
 * install it) and, for WAL files only, gathers consecutive writes in a buffer that goes
 * to the file in one write before anything can depend on it: before every sync, read,
 * size query, truncation and close. Every other file is the default VFS's own.
 *
 * Only for connections with synchronous=FULL (inboxd's writer): there every commit syncs
 * the WAL before it is published to readers in the wal-index, so the buffer is always in
 * the file before another connection can look for those frames. With synchronous=NORMAL a
 * commit is published without a sync, and readers could look for frames still buffered.
 * Two more cases, from a review against SQLite's wal.c, are handled in walvfs.c: frames
 * a rolled-back transaction spilled are written before the WAL write lock is released
 * (another writer, such as `inboxd ingest`, may commit at those offsets next), and a
 * database without SQLITE_IOCAP_POWERSAFE_OVERWRITE, whose commits end with bytes
 * written after the sync, is not buffered at all. */
#ifndef INBOXD_WALVFS_H
#define INBOXD_WALVFS_H

/* The VFS name to pass to sqlite3_open_v2(). */
#define WALVFS_NAME "inboxd-wal"

/* Register the VFS (not as the default), wrapping whatever is the default now: call it
 * after faultvfs_install() and before the writer's connection opens. Returns 0, or -1 when
 * SQLite refused it (the caller then opens with the default VFS). Idempotent. */
int walvfs_install(void);

#endif
