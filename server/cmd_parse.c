/* inboxd parse: the parser pipeline as a command, no database. */
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <jansson.h>

#include "cli.h"
#include "jsonout.h"
#include "parse.h"

static const char usage[] =
    "usage: inboxd parse [FILE...]\n"
    "\n"
    "Parse raw RFC 5322 messages (each FILE, or standard input when none or \"-\") and\n"
    "print each one's normalized JSON document on one line. No database is used.\n"
    "Exit status: 0 when every input parsed, 1 when one could not be read or is not mail.\n";

/* Read all of standard input into a new buffer (g_free). */
static char *
read_stdin(size_t *len_out)
{
  GByteArray *buf = g_byte_array_new();
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
    g_byte_array_append(buf, (const guint8 *)chunk, (guint)n);
  *len_out = buf->len;
  return (char *)g_byte_array_free(buf, FALSE);
}

static int
parse_one(const char *name, const char *raw, size_t len, const mime_limits *limits)
{
  ib_message *msg = NULL;
  ib_status st = parse_message(raw, len, NULL, limits, &msg);
  if (st != IB_OK) {
    fprintf(stderr, "inboxd parse: %s: %s\n", name, ib_status_str(st));
    return 1;
  }
  json_t *doc = ib_message_to_json(msg);
  char *out = jsonout_dumps(doc, NULL);
  int rc = 0;
  if (out) {
    fputs(out, stdout);
    fputc('\n', stdout);
  } else {
    fprintf(stderr, "inboxd parse: %s: cannot encode JSON\n", name);
    rc = 1;
  }
  free(out);
  json_decref(doc);
  ib_message_free(msg);
  return rc;
}

int
cmd_parse(int argc, char **argv)
{
  mime_limits limits;
  mime_limits_default(&limits);
  int rc = 0;
  int nfiles = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *name = argv[i];
    char *raw = NULL;
    size_t len = 0;
    nfiles++;
    if (strcmp(name, "-") == 0) {
      raw = read_stdin(&len);
    } else {
      GError *err = NULL;
      gsize glen = 0;
      if (!g_file_get_contents(name, &raw, &glen, &err)) {
        fprintf(stderr, "inboxd parse: cannot read %s: %s\n", name, err->message);
        g_error_free(err);
        rc = 1;
        continue;
      }
      len = glen;
    }
    if (parse_one(name, raw, len, &limits) != 0)
      rc = 1;
    g_free(raw);
  }
  if (nfiles == 0) {
    size_t len = 0;
    char *raw = read_stdin(&len);
    rc = parse_one("<stdin>", raw, len, &limits);
    g_free(raw);
  }
  fflush(stdout);
  return rc;
}
