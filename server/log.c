#include "log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "clock.h"
#include "jsonout.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static log_level min_level = LOG_INFO;
static FILE *log_file; /* NULL: stderr */
static char *log_path;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_msg(log_level level, const char *fmt, ...)
{
  if (level < min_level)
    return;
  va_list ap;
  va_start(ap, fmt);
  char *text = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  char *valid = g_utf8_make_valid(text, -1);
  char ts[40];
  clock_rfc3339(clock_now_ms(), ts, sizeof ts);
  json_t *line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "msg", valid);
  char *out = line ? jsonout_dumps(line, NULL) : NULL;
  pthread_mutex_lock(&log_lock);
  FILE *f = log_file ? log_file : stderr;
  if (out) {
    fputs(out, f);
    fputc('\n', f);
    fflush(f);
  }
  pthread_mutex_unlock(&log_lock);
  free(out);
  json_decref(line);
  g_free(valid);
  g_free(text);
}

int
log_configure(log_level level, const char *path)
{
  FILE *f = NULL;
  if (path && !(f = fopen(path, "a")))
    return -1;
  pthread_mutex_lock(&log_lock);
  min_level = level;
  if (log_file)
    fclose(log_file);
  log_file = f;
  g_free(log_path);
  log_path = g_strdup(path);
  pthread_mutex_unlock(&log_lock);
  return 0;
}

void
log_reopen(void)
{
  pthread_mutex_lock(&log_lock);
  if (log_path) {
    FILE *f = fopen(log_path, "a");
    if (f) {
      fclose(log_file);
      log_file = f;
    }
  }
  pthread_mutex_unlock(&log_lock);
}
