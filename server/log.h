/* log.h: one JSON object per line on stderr (or the --log-file), problem first,
 * lower-case: {"ts":"…","level":"error","msg":"cannot commit message 42: disk full"}.
 * Thread-safe. Secrets must never be passed in. */
#ifndef INBOXD_LOG_H
#define INBOXD_LOG_H

#include <glib.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Log at LEVEL; FMT is printf-style. Messages below the minimum level are dropped. */
void log_msg(log_level level, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Set the minimum level (default LOG_INFO) and the file to append to (NULL: stderr).
 * Returns 0, or -1 when PATH cannot be opened (logging stays where it was). */
int log_configure(log_level min_level, const char *path);

/* Reopen the log file (SIGHUP, after logrotate). Safe to call from any thread. */
void log_reopen(void);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
