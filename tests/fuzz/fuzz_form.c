/* fuzz_form.c: form_parse() over arbitrary bodies. The input is "<Content-Type>\n<body>",
 * so the fuzzer varies the boundary parameter too. Every value must lie inside the body
 * (multipart) and every name must be a C string without NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *nl = memchr(data, '\n', size);
  if (!nl)
    return 0;
  char *ctype = strndup((const char *)data, (size_t)(nl - (const char *)data));
  const char *body = nl + 1;
  size_t len = size - (size_t)(body - (const char *)data);
  /* A private copy so reads past the body are caught by ASan. */
  char *copy = malloc(len ? len : 1);
  memcpy(copy, body, len);
  form_limits lim;
  form_limits_default(&lim);
  lim.max_fields = 200;
  form *f = NULL;
  char *why = NULL;
  ib_status st = form_parse(ctype, copy, len, &lim, &f, &why);
  if (st == IB_OK) {
    for (size_t i = 0; i < form_size(f); i++) {
      const form_field *ff = form_at(f, i);
      if (strlen(ff->name) > lim.max_name_len)
        abort();
      if (ff->len) { /* read both ends of every value: ASan checks they are in the body */
        volatile char first = ff->value[0], last = ff->value[ff->len - 1];
        (void)first;
        (void)last;
      }
      (void)form_count(f, ff->name);
    }
    form_free(f);
  } else if (f || !why) {
    abort();
  }
  g_free(why);
  free(copy);
  free(ctype);
  return 0;
}
