/* hash.h: SHA-256 as lower-case hex. OpenSSL's implementation (SHA-NI where the CPU has
 * it) measured 3-4x faster than GLib's GChecksum here, and every message is hashed once
 * whole and once per attachment. */
#ifndef INBOXD_HASH_H
#define INBOXD_HASH_H

#include <stddef.h>

/* Write the SHA-256 of DATA (LEN bytes) as 64 hex digits and a NUL into OUT. */
void hash_sha256_hex(const void *data, size_t len, char out[65]);

#endif
