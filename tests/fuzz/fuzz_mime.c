/* Fuzz the whole pure pipeline on raw bytes: MIME parse (GMime), reply stripping,
 * classification, and the JSON document, which must always encode, and encode the same
 * through inboxd's writer (jsonout) as through jansson's. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
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
  /* Strings go into jansson unchecked (message.c): the document must still be UTF-8
   * (jansson's writer fails on anything else; jsonout copies bytes, so check it too). */
  char *text = json_dumps(doc, JSON_COMPACT);
  size_t len = 0;
  char *fast = jsonout_dumps(doc, &len);
  if (!text || !fast || strcmp(text, fast) != 0 || len != strlen(text) ||
      !g_utf8_validate(fast, -1, NULL))
    abort();
  free(text);
  free(fast);
  json_decref(doc);
  ib_message_free(msg);
  return 0;
}
