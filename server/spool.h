/* spool.h: a request body, in memory while small and in an unlinked temporary file once
 * it grows past a threshold, so a 30 MB upload never sits in the heap. */
#ifndef INBOXD_SPOOL_H
#define INBOXD_SPOOL_H

#include <glib.h>
#include <stdint.h>

#include "status.h"

typedef struct ib_spool ib_spool;

/* A spool that refuses bytes past CAP and moves to a file past MEM_LIMIT. Never NULL.
 * Release with spool_free(). */
ib_spool *spool_new(uint64_t cap, size_t mem_limit);
void spool_free(ib_spool *sp);

/* Append LEN bytes. IB_OK, IB_ERR_LIMIT (over the cap: the bytes are dropped, and so is
 * every later append), or IB_ERR_IO (the temporary file failed; logged). */
ib_status spool_append(ib_spool *sp, const void *data, size_t len);

/* Bytes appended so far (or that would have been, past the cap). */
uint64_t spool_length(const ib_spool *sp);

/* The whole body as bytes (a new reference: g_bytes_unref). A file-backed body is
 * mmapped read-only; the mapping lives until the last reference goes. IB_ERR_IO when
 * it cannot be mapped. The spool may be freed before the bytes are. */
ib_status spool_bytes(ib_spool *sp, GBytes **bytes_out);

#endif
