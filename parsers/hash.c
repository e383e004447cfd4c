#include "hash.h"

#include <openssl/evp.h>
#include <string.h>

void
hash_sha256_hex(const void *data, size_t len, char out[65])
{
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(data ? data : "", len, md, &n, EVP_sha256(), NULL) || n != 32) {
    /* Only on allocation failure inside OpenSSL: an all-zero digest, never garbage. */
    memset(out, '0', 64);
    out[64] = '\0';
    return;
  }
  for (unsigned i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}
