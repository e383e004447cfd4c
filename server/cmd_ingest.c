/* inboxd ingest: the pipeline without HTTP, for an MTA pipe (Postfix, Exim). Exit 0 only
 * after COMMIT; 75 (EX_TEMPFAIL) when the MTA should keep the mail and retry. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "outbox.h"
#include "pipeline.h"

enum { EX_OK_ = 0, EX_USAGE_ = 64, EX_DATAERR_ = 65, EX_NOINPUT_ = 66, EX_TEMPFAIL_ = 75 };

static const char usage[] =
    "usage: inboxd ingest [--db PATH] [--from SENDER] [--to RECIPIENT]... [FILE]\n"
    "\n"
    "Store one raw message (FILE, or standard input) in the database, exactly as\n"
    "POST /inbound/raw would. For an MTA pipe, e.g. Postfix master.cf:\n"
    "  argv=/usr/bin/inboxd ingest --db /var/lib/inboxd/inboxd.db --from ${sender} "
    "--to ${recipient}\n"
    "\n"
    "--db defaults to $INBOXD_DB, else inboxd.db; signed reply addresses use\n"
    "$INBOXD_REPLY_DOMAIN as inboxd serve's --reply-domain. A lock held by another\n"
    "process is waited for $INBOXD_DB_BUSY_TIMEOUT_MS (default 5000) milliseconds.\n"
    "--db may be a postgresql:// URI; attachments go to $INBOXD_ATTACHMENT_DIR when\n"
    "inboxd serve keeps them in a directory (--attachment-dir).\n"
    "Exit status: 0 stored (or already stored), 65 not an email message, 75 temporary\n"
    "failure (database locked, disk full...): the MTA keeps the mail and retries.\n";

static GBytes *
read_input(const char *path)
{
  if (path && strcmp(path, "-") != 0) {
    GMappedFile *mf = g_mapped_file_new(path, FALSE, NULL);
    if (!mf)
      return NULL;
    GBytes *b = g_mapped_file_get_bytes(mf);
    g_mapped_file_unref(mf);
    return b;
  }
  GByteArray *buf = g_byte_array_new();
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
    g_byte_array_append(buf, (const guint8 *)chunk, (guint)n);
  if (ferror(stdin)) {
    g_byte_array_unref(buf);
    return NULL;
  }
  return g_byte_array_free_to_bytes(buf);
}

int
cmd_ingest(int argc, char **argv)
{
  const char *db = g_getenv("INBOXD_DB") ? g_getenv("INBOXD_DB") : "inboxd.db";
  const char *file = NULL;
  ib_inbound *in = ib_inbound_new("ingest");
  int rc = EX_TEMPFAIL_;
  ib_store *store = NULL;
  pipeline_batch *batch = NULL;
  char *err = NULL;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      rc = EX_OK_;
      goto done;
    }
    if ((strcmp(a, "--db") == 0 || strcmp(a, "--from") == 0 || strcmp(a, "--to") == 0) &&
        i + 1 < argc) {
      const char *v = argv[++i];
      if (strcmp(a, "--db") == 0)
        db = v;
      else if (strcmp(a, "--from") == 0) {
        g_free(in->envelope_from);
        in->envelope_from = g_strdup(v);
      } else
        g_ptr_array_add(in->envelope_to, g_strdup(v));
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "inboxd ingest: unknown or incomplete flag %s\n%s", a, usage);
      rc = EX_USAGE_;
      goto done;
    } else if (!file) {
      file = a;
    } else {
      fprintf(stderr, "inboxd ingest: one message at a time\n");
      rc = EX_USAGE_;
      goto done;
    }
  }

  in->raw = read_input(file);
  if (!in->raw) {
    fprintf(stderr, "inboxd ingest: cannot read %s\n", file ? file : "standard input");
    rc = EX_NOINPUT_;
    goto done;
  }
  mime_limits limits;
  mime_limits_default(&limits);
  GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)ib_inbound_free);
  g_ptr_array_add(list, in);
  in = NULL; /* the list owns it now */
  ib_status st = pipeline_prepare(list, &limits, &batch);
  if (st != IB_OK) {
    fprintf(stderr, "inboxd ingest: not an email message (%s)\n", ib_status_str(st));
    rc = EX_DATAERR_;
    goto done;
  }
  store_options opts = {.busy_timeout_ms = 5000};
  const char *busy = g_getenv("INBOXD_DB_BUSY_TIMEOUT_MS");
  if (busy)
    opts.busy_timeout_ms = (int)g_ascii_strtoll(busy, NULL, 10);
  opts.attachment_dir = g_getenv("INBOXD_ATTACHMENT_DIR");
  opts.pool_size = 1;
  st = store_open(db, &opts, &store, &err);
  if (st != IB_OK) {
    fprintf(stderr, "inboxd ingest: %s\n", err ? err : "cannot open the database");
    rc = EX_TEMPFAIL_;
    goto done;
  }
  /* Queue the events for the CRM exactly as "inboxd serve" would (its settings are in
   * the database); the server's forwarder picks them up. */
  thread_options threading = {.reply_domain = g_getenv("INBOXD_REPLY_DOMAIN"),
                              .secret = store_reply_secret(store),
                              .auto_limit = 5,
                              .auto_window_minutes = 60};
  st = outbox_attach(store);
  if (st == IB_OK)
    st = pipeline_store(store, &threading, batch);
  if (st != IB_OK) {
    fprintf(stderr, "inboxd ingest: not stored (%s); the MTA should retry\n", ib_status_str(st));
    rc = EX_TEMPFAIL_;
    goto done;
  }
  const pipeline_result *res = pipeline_result_at(batch, 0);
  printf("stored message %" G_GINT64_FORMAT " in ticket %" G_GINT64_FORMAT "%s\n", res->message_id,
         res->ticket_id, res->duplicate ? " (duplicate)" : "");
  rc = EX_OK_;
done:
  pipeline_batch_free(batch);
  store_close(store);
  ib_inbound_free(in);
  g_free(err);
  return rc;
}
