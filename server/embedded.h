/* embedded.h: files compiled into the binary (cmake/embed.cmake): the SQL migrations
 * ("sqlite/NNN_name.sql") and the web view ("web/..."). */
#ifndef INBOXD_EMBEDDED_H
#define INBOXD_EMBEDDED_H

#include <stddef.h>

typedef struct ib_embedded_file {
  const char *name;          /* "<folder>/<file>" */
  const unsigned char *data; /* NUL-terminated for convenience */
  size_t len;                /* without the terminating NUL */
} ib_embedded_file;

/* The table, sorted by name, ended by an entry whose name is NULL. */
extern const ib_embedded_file ib_embedded_files[];

#endif
