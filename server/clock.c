#include "clock.h"

#include <glib.h>
#include <time.h>

int64_t
clock_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clock_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
clock_rfc3339(int64_t ms, char *buf, size_t size)
{
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  g_snprintf(buf, size, "%s.%03dZ", date, (int)(ms % 1000));
  return buf;
}

int
clock_parse_rfc3339(const char *text, int64_t *ms_out)
{
  if (!text)
    return -1;
  GDateTime *dt = g_date_time_new_from_iso8601(text, NULL);
  if (!dt)
    return -1;
  *ms_out = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
  g_date_time_unref(dt);
  return 0;
}
