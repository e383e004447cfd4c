/* Fuzz the whole pure pipeline on raw bytes: MIME parse (GMime), reply stripping,
 * classification, and the JSON document, which must always encode. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>

#include "parse.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  mime_init();
  return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  ib_message *msg = NULL;
  mime_limits limits;
  mime_limits_default(&limits);
  if (parse_message((const char *)data, size, NULL, &limits, &msg) != IB_OK)
    return 0;
  json_t *doc = ib_message_to_json(msg);
  if (!doc)
    abort(); /* every string must be valid UTF-8 by construction */
  char *text = json_dumps(doc, JSON_COMPACT);
  /* Strings go into jansson unchecked (message.c): the document must still be UTF-8. */
  if (!text || !g_utf8_validate(text, -1, NULL))
    abort();
  free(text);
  json_decref(doc);
  ib_message_free(msg);
  return 0;
}
