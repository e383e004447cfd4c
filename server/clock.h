/* clock.h: wall and monotonic time, and RFC 3339 formatting. */
#ifndef INBOXD_CLOCK_H
#define INBOXD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (wall clock). */
int64_t clock_now_ms(void);

/* Milliseconds of CLOCK_MONOTONIC, for timeouts and latencies. */
int64_t clock_mono_ms(void);

/* Write MS (epoch milliseconds) as "YYYY-MM-DDTHH:MM:SS.mmmZ" into BUF (at least 25
 * bytes). Returns BUF. */
char *clock_rfc3339(int64_t ms, char *buf, size_t size);

/* Parse an RFC 3339 time ("2025-01-06T10:00:00Z", offsets and fractions allowed) into
 * epoch milliseconds. Returns 0 and sets *MS_OUT, or -1 when TEXT is not one. */
int clock_parse_rfc3339(const char *text, int64_t *ms_out);

#endif
