/* store_outbox.c: the outbox (outbox.h) as both backends share it: settings, delivery
 * ids, and the dispatch of the forwarder's operations to the backend's SQL
 * (store_sqlite_outbox.c, store_pg.c). */
#include "outbox.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "log.h"
#include "store_internal.h"

/* ---- What is recorded ------------------------------------------------------------------ */

typedef struct skip_name {
  const char *name;
  int is_class; /* a message classification (else an event type) */
} skip_name;

/* Bit I of a skip mask is entry I. Classification names are those of ib_class_str(). */
static const skip_name skip_names[] = {
    {"message.created", 0}, {"ticket.created", 0}, {"ticket.updated", 0}, {"new", 1},
    {"reply", 1},           {"auto_reply", 1},     {"bounce", 1},         {"complaint", 1},
};

ib_status
outbox_skip_parse(const char *list, unsigned *mask_out, char **error_out)
{
  *mask_out = 0;
  *error_out = NULL;
  if (!list)
    return IB_OK;
  ib_status rc = IB_OK;
  char **parts = g_strsplit(list, ",", -1);
  for (char **p = parts; *p; p++) {
    const char *word = g_strstrip(*p);
    if (!*word)
      continue;
    size_t i;
    for (i = 0; i < G_N_ELEMENTS(skip_names); i++)
      if (strcmp(word, skip_names[i].name) == 0)
        break;
    if (i == G_N_ELEMENTS(skip_names)) {
      *error_out = g_strdup_printf(
          "--forward-skip: unknown entry \"%s\" (use event types message.created, "
          "ticket.created, ticket.updated or classifications new, reply, auto_reply, "
          "bounce, complaint)",
          word);
      rc = IB_ERR_INVALID;
      break;
    }
    *mask_out |= 1u << i;
  }
  g_strfreev(parts);
  return rc;
}

static char *
skip_format(unsigned mask)
{
  GString *out = g_string_new(NULL);
  for (size_t i = 0; i < G_N_ELEMENTS(skip_names); i++)
    if (mask & (1u << i))
      g_string_append_printf(out, "%s%s", out->len ? "," : "", skip_names[i].name);
  return g_string_free(out, FALSE);
}

int
outbox_skipped(unsigned mask, const char *name, int is_class)
{
  for (size_t i = 0; i < G_N_ELEMENTS(skip_names); i++)
    if ((mask & (1u << i)) && skip_names[i].is_class == is_class &&
        strcmp(skip_names[i].name, name) == 0)
      return 1;
  return 0;
}

/* "dlv_" + 24 lower-case hex digits from the kernel's random source. */
ib_status
outbox_new_delivery_id(char *buf, size_t size)
{
  unsigned char raw[12];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      log_error("cannot make a delivery id: getrandom: %s", g_strerror(errno));
      return IB_ERR_IO;
    }
    got += (size_t)n;
  }
  static const char hex[] = "0123456789abcdef";
  char out[4 + 2 * sizeof raw + 1] = "dlv_";
  for (size_t i = 0; i < sizeof raw; i++) {
    out[4 + 2 * i] = hex[raw[i] >> 4];
    out[4 + 2 * i + 1] = hex[raw[i] & 15];
  }
  out[sizeof out - 1] = '\0';
  g_strlcpy(buf, out, size);
  return IB_OK;
}

typedef struct configure_job {
  int enabled;
  const char *skip;
} configure_job;

static ib_status
configure_run(ib_tx *tx, void *arg)
{
  configure_job *j = arg;
  return tx->store->ops->outbox_set_config(tx, j->enabled, j->skip);
}

ib_status
outbox_configure(ib_store *store, int enabled, unsigned mask)
{
  char *skip = skip_format(mask);
  configure_job j = {.enabled = enabled, .skip = skip};
  ib_status rc = store_run(store, configure_run, &j);
  g_free(skip);
  if (rc != IB_OK)
    return rc;
  if (enabled)
    store_on_event(store, store->ops->outbox_on_event, GUINT_TO_POINTER(mask));
  return IB_OK;
}

ib_status
outbox_attach(ib_store *store)
{
  int enabled = 0;
  char *skip = NULL;
  ib_status rc = store->ops->outbox_get_config(store, &enabled, &skip);
  unsigned mask = 0;
  char *err = NULL;
  if (rc == IB_OK && outbox_skip_parse(skip, &mask, &err) != IB_OK) {
    /* Written by a newer inboxd: record everything rather than lose events. */
    log_warn("outbox settings: %s; forwarding every event", err);
    mask = 0;
  }
  if (rc == IB_OK && enabled)
    store_on_event(store, store->ops->outbox_on_event, GUINT_TO_POINTER(mask));
  g_free(err);
  g_free(skip);
  return rc;
}

/* ---- The forwarder's side ----------------------------------------------------------------- */

void
outbox_delivery_free(outbox_delivery *d)
{
  if (!d)
    return;
  g_free(d->type);
  g_free(d->ticket);
  g_free(d);
}

void
outbox_result_free(outbox_result *r)
{
  if (!r)
    return;
  g_free(r->error);
  g_free(r);
}

ib_status
outbox_claim(ib_tx *tx, int64_t now_ms, int max, GPtrArray *out, int64_t *next_due_out)
{
  return tx->store->ops->outbox_claim(tx, now_ms, max, out, next_due_out);
}

ib_status
outbox_finish(ib_tx *tx, const outbox_result *r, int64_t now_ms)
{
  return tx->store->ops->outbox_finish(tx, r, now_ms);
}

ib_status
outbox_recover(ib_tx *tx, int *count_out)
{
  return tx->store->ops->outbox_recover(tx, count_out);
}

ib_status
outbox_retry(ib_tx *tx, const char *id, int64_t now_ms, json_t **doc_out, const char **reason_out)
{
  return tx->store->ops->outbox_retry(tx, id, now_ms, doc_out, reason_out);
}

ib_status
outbox_next_due(ib_store *store, int64_t *due_out)
{
  return store->ops->outbox_next_due(store, due_out);
}

ib_status
outbox_list(ib_store *store, const char *status, int limit, int oldest_first, json_t **doc_out)
{
  return store->ops->outbox_list(store, status, limit, oldest_first, doc_out);
}

ib_status
outbox_stats_get(ib_store *store, outbox_stats *out)
{
  return store->ops->outbox_stats_get(store, out);
}
