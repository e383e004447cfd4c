/* test_outbox: the outbox's SQL against a real database: one delivery per event in the
 * event's transaction (and none after a rollback), --forward-skip, per-ticket order with
 * long chains under random outcomes, recovery of deliveries in flight, and the
 * operator's retry. */
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>

#include "check.h"
#include "clock.h"
#include "outbox.h"
#include "store.h"

static char *dir;

static ib_store *
open_store(const char *name)
{
  char *path = g_build_filename(dir, name, NULL);
  ib_store *s = NULL;
  char *err = NULL;
  ib_status st = store_open(path, NULL, &s, &err);
  if (st != IB_OK)
    fprintf(stderr, "store_open: %s\n", err);
  CHECK_INT(st, IB_OK);
  g_free(err);
  g_free(path);
  return s;
}

/* ---- Jobs ------------------------------------------------------------------------------ */

/* Tickets straight in SQL (another connection, as another process would write them):
 * the outbox needs only their rows, whatever the threader's API looks like. */
typedef struct make_tickets {
  int n;
  int64_t *ids;
} make_tickets;

static ib_status
make_tickets_in(const char *name, make_tickets *m)
{
  char *path = g_build_filename(dir, name, NULL);
  sqlite3 *db = NULL;
  int rc = sqlite3_open(path, &db);
  sqlite3_busy_timeout(db, 5000);
  for (int i = 0; rc == SQLITE_OK && i < m->n; i++) {
    char *sql = sqlite3_mprintf("INSERT INTO tickets (subject, created_at, updated_at) "
                                "VALUES ('ticket %d', '2025-01-06T10:00:00.000Z', "
                                "'2025-01-06T10:00:00.000Z')",
                                i);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    m->ids[i] = sqlite3_last_insert_rowid(db);
  }
  sqlite3_close(db);
  g_free(path);
  return rc == SQLITE_OK ? IB_OK : IB_ERR_STORAGE;
}

typedef struct add_events {
  const char *type;
  const int64_t *tickets; /* one event per entry */
  int n;
  int fail; /* return an error after adding them: the job rolls back */
} add_events;

static ib_status
add_events_run(ib_tx *tx, void *arg)
{
  add_events *a = arg;
  for (int i = 0; i < a->n; i++) {
    ib_status st = store_add_event(tx, a->type, a->tickets[i], 0);
    if (st != IB_OK)
      return st;
  }
  return a->fail ? IB_ERR_INVALID : IB_OK;
}

typedef struct claim {
  int max;
  int64_t now;
  GPtrArray *rows;
  int64_t next_due;
} claim;

static ib_status
claim_run(ib_tx *tx, void *arg)
{
  claim *c = arg;
  return outbox_claim(tx, c->now, c->max, c->rows, &c->next_due);
}

static GPtrArray *
claim_now(ib_store *s, int max, int64_t now, int64_t *next_due_out)
{
  claim c = {.max = max,
             .now = now,
             .rows = g_ptr_array_new_with_free_func((GDestroyNotify)outbox_delivery_free)};
  CHECK_INT(store_run(s, claim_run, &c), IB_OK);
  if (next_due_out)
    *next_due_out = c.next_due;
  return c.rows;
}

typedef struct finish {
  outbox_result r;
  int64_t now;
} finish;

static ib_status
finish_run(ib_tx *tx, void *arg)
{
  finish *f = arg;
  return outbox_finish(tx, &f->r, f->now);
}

static void
finish_one(ib_store *s, const outbox_delivery *d, outbox_outcome outcome, int64_t next_ms)
{
  finish f = {.r = {.seq = d->seq,
                    .ticket_id = d->ticket_id,
                    .outcome = outcome,
                    .http_status = outcome == OUTBOX_DELIVERED ? 200 : 500,
                    .error = outcome == OUTBOX_DELIVERED ? NULL : (char *)"HTTP 500",
                    .next_attempt_ms = next_ms},
              .now = clock_now_ms()};
  CHECK_INT(store_run(s, finish_run, &f), IB_OK);
}

static ib_status
recover_run(ib_tx *tx, void *arg)
{
  return outbox_recover(tx, arg);
}

typedef struct retry {
  const char *id;
  json_t *doc;
  const char *reason;
} retry;

static ib_status
retry_run(ib_tx *tx, void *arg)
{
  retry *r = arg;
  json_decref(r->doc);
  r->doc = NULL;
  return outbox_retry(tx, r->id, clock_now_ms(), &r->doc, &r->reason);
}

static ib_status
retry_id(ib_store *s, const char *id, json_t **doc_out)
{
  retry r = {.id = id};
  ib_status st = store_run(s, retry_run, &r);
  if (doc_out)
    *doc_out = r.doc;
  else
    json_decref(r.doc);
  return st;
}

static int64_t
count_deliveries(ib_store *s, const char *status)
{
  json_t *doc = NULL;
  CHECK_INT(outbox_list(s, status, 1000, 0, &doc), IB_OK);
  int64_t n = doc ? (int64_t)json_array_size(json_object_get(doc, "deliveries")) : -1;
  json_decref(doc);
  return n;
}

/* ---- Tests --------------------------------------------------------------------------------- */

static void
test_skip_parse(void)
{
  unsigned mask = 99;
  char *err = NULL;
  CHECK_INT(outbox_skip_parse(NULL, &mask, &err), IB_OK);
  CHECK_INT(mask, 0);
  CHECK_INT(outbox_skip_parse("", &mask, &err), IB_OK);
  CHECK_INT(mask, 0);
  CHECK_INT(outbox_skip_parse(" auto_reply , ticket.updated,", &mask, &err), IB_OK);
  CHECK(mask != 0);
  CHECK(err == NULL);
  CHECK_INT(outbox_skip_parse("auto_reply,autoreply", &mask, &err), IB_ERR_INVALID);
  CHECK(err && strstr(err, "\"autoreply\""));
  g_free(err);
}

static void
test_rows_in_the_events_transaction(void)
{
  ib_store *s = open_store("tx.db");
  CHECK_INT(outbox_configure(s, 1, 0), IB_OK);
  int64_t t[2];
  make_tickets mt = {.n = 2, .ids = t};
  CHECK_INT(make_tickets_in("tx.db", &mt), IB_OK);
  int64_t list[] = {t[0], t[1], t[0]};
  add_events rolled_back = {.type = "message.created", .tickets = list, .n = 3, .fail = 1};
  CHECK_INT(store_run(s, add_events_run, &rolled_back), IB_ERR_INVALID);
  CHECK_INT(count_deliveries(s, NULL), 0);
  add_events ok = {.type = "message.created", .tickets = list, .n = 3};
  CHECK_INT(store_run(s, add_events_run, &ok), IB_OK);
  CHECK_INT(count_deliveries(s, NULL), 3);

  json_t *doc = NULL;
  CHECK_INT(outbox_list(s, "pending", 10, 1, &doc), IB_OK);
  json_t *d0 = json_array_get(json_object_get(doc, "deliveries"), 0);
  json_t *d2 = json_array_get(json_object_get(doc, "deliveries"), 2);
  const char *id = json_string_value(json_object_get(d0, "id"));
  CHECK(id && g_str_has_prefix(id, "dlv_") && strlen(id) == 28);
  for (const char *c = id + 4; *c; c++)
    CHECK(g_ascii_isxdigit(*c) && !g_ascii_isupper(*c));
  CHECK(strcmp(id, json_string_value(json_object_get(d2, "id"))) != 0);
  /* The ticket's first delivery is scheduled, its second waits behind it. */
  CHECK(json_is_string(json_object_get(d0, "next_attempt_at")));
  CHECK(json_is_null(json_object_get(d2, "next_attempt_at")));
  CHECK_INT(json_integer_value(json_object_get(d0, "attempts")), 0);
  json_decref(doc);

  /* An event naming a ticket that does not exist still commits (mail is never refused
   * over the outbox), with no ticket snapshot. */
  int64_t ghost = 999999;
  add_events orphan = {.type = "ticket.updated", .tickets = &ghost, .n = 1};
  CHECK_INT(store_run(s, add_events_run, &orphan), IB_OK);
  GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)outbox_delivery_free);
  claim c = {.max = 10, .now = clock_now_ms() + 1000, .rows = rows};
  CHECK_INT(store_run(s, claim_run, &c), IB_OK);
  int found = 0;
  for (guint i = 0; i < rows->len; i++) {
    outbox_delivery *d = g_ptr_array_index(rows, i);
    if (d->ticket_id == ghost) {
      CHECK_STR(d->ticket, "null");
      found++;
    }
  }
  CHECK_INT(found, 1);
  g_ptr_array_unref(rows);

  /* Disabled: no rows at all. */
  ib_store *off = open_store("off.db");
  CHECK_INT(outbox_configure(off, 0, 0), IB_OK);
  int64_t t2;
  make_tickets one = {.n = 1, .ids = &t2};
  CHECK_INT(make_tickets_in("off.db", &one), IB_OK);
  add_events ev = {.type = "ticket.created", .tickets = &t2, .n = 1};
  CHECK_INT(store_run(off, add_events_run, &ev), IB_OK);
  CHECK_INT(count_deliveries(off, NULL), 0);
  store_close(off);
  /* Another writer of the same database follows what "inboxd serve" recorded. */
  char *path = g_build_filename(dir, "tx.db", NULL);
  store_close(s);
  ib_store *ingest = NULL;
  char *err = NULL;
  CHECK_INT(store_open(path, NULL, &ingest, &err), IB_OK);
  CHECK_INT(outbox_attach(ingest), IB_OK);
  add_events more = {.type = "ticket.updated", .tickets = t, .n = 1};
  CHECK_INT(store_run(ingest, add_events_run, &more), IB_OK);
  CHECK_INT(count_deliveries(ingest, NULL), 5);
  store_close(ingest);
  g_free(path);
}

static void
test_skip_types(void)
{
  ib_store *s = open_store("skip.db");
  unsigned mask = 0;
  char *err = NULL;
  CHECK_INT(outbox_skip_parse("ticket.updated,new", &mask, &err), IB_OK);
  CHECK_INT(outbox_configure(s, 1, mask), IB_OK);
  int64_t t;
  make_tickets mt = {.n = 1, .ids = &t};
  CHECK_INT(make_tickets_in("skip.db", &mt), IB_OK);
  add_events upd = {.type = "ticket.updated", .tickets = &t, .n = 2};
  int64_t two[] = {t, t};
  upd.tickets = two;
  CHECK_INT(store_run(s, add_events_run, &upd), IB_OK);
  CHECK_INT(count_deliveries(s, NULL), 0);
  /* Events without a message carry no classification: "new" does not skip them. */
  add_events created = {.type = "ticket.created", .tickets = &t, .n = 1};
  CHECK_INT(store_run(s, add_events_run, &created), IB_OK);
  CHECK_INT(count_deliveries(s, NULL), 1);
  store_close(s);
}

/* Many tickets, long chains, random outcomes: per ticket, deliveries leave the queue
 * in event order, never two of a ticket in flight, and every event ends delivered or
 * failed exactly once. */
static void
test_order_under_random_outcomes(void)
{
  enum { TICKETS = 12, PER_TICKET = 15 };
  ib_store *s = open_store("order.db");
  CHECK_INT(outbox_configure(s, 1, 0), IB_OK);
  int64_t t[TICKETS];
  make_tickets mt = {.n = TICKETS, .ids = t};
  CHECK_INT(make_tickets_in("order.db", &mt), IB_OK);
  GRand *rand = g_rand_new_with_seed(7);
  /* Interleave the tickets' events in several transactions. */
  for (int round = 0; round < PER_TICKET; round++) {
    int64_t list[TICKETS];
    for (int i = 0; i < TICKETS; i++)
      list[i] = t[(i + round * 5) % TICKETS];
    add_events a = {
        .type = round ? "message.created" : "ticket.created", .tickets = list, .n = TICKETS};
    CHECK_INT(store_run(s, add_events_run, &a), IB_OK);
  }
  CHECK_INT(count_deliveries(s, "pending"), TICKETS * PER_TICKET);

  GHashTable *last_done = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
  GHashTable *in_flight = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
  GPtrArray *flying = g_ptr_array_new_with_free_func((GDestroyNotify)outbox_delivery_free);
  int finished = 0, rounds = 0;
  int64_t far = clock_now_ms() + 10 * 60 * 1000; /* "now" far ahead: every retry is due */
  while (finished < TICKETS * PER_TICKET && rounds++ < 5000) {
    GPtrArray *got = claim_now(s, 1 + (int)g_rand_int_range(rand, 0, 9), far, NULL);
    for (guint i = 0; i < got->len; i++) {
      outbox_delivery *d = g_ptr_array_index(got, i);
      CHECK(!g_hash_table_contains(in_flight, &d->ticket_id)); /* one per ticket */
      g_hash_table_add(in_flight, g_memdup2(&d->ticket_id, sizeof d->ticket_id));
      int64_t *prev = g_hash_table_lookup(last_done, &d->ticket_id);
      CHECK(!prev || *prev < d->seq); /* nothing earlier of the ticket is left */
      g_ptr_array_add(flying, d);
    }
    g_ptr_array_set_free_func(got, NULL);
    g_ptr_array_unref(got);
    /* Finish a random part of what flies, in random order. */
    for (guint k = flying->len; k > 0; k--) {
      if (g_rand_int_range(rand, 0, 3) == 0)
        continue;
      guint pick = (guint)g_rand_int_range(rand, 0, (gint32)flying->len);
      outbox_delivery *d = g_ptr_array_steal_index(flying, pick);
      int roll = g_rand_int_range(rand, 0, 10);
      outbox_outcome o = roll < 5 ? OUTBOX_DELIVERED : roll < 9 ? OUTBOX_RETRY : OUTBOX_FAILED;
      finish_one(s, d, o, clock_now_ms());
      g_hash_table_remove(in_flight, &d->ticket_id);
      if (o != OUTBOX_RETRY) {
        int64_t *prev = g_hash_table_lookup(last_done, &d->ticket_id);
        CHECK(!prev || *prev < d->seq); /* leaves the queue in event order */
        g_hash_table_insert(last_done, g_memdup2(&d->ticket_id, sizeof d->ticket_id),
                            g_memdup2(&d->seq, sizeof d->seq));
        finished++;
      }
      outbox_delivery_free(d);
    }
  }
  CHECK_INT(finished, TICKETS * PER_TICKET);
  CHECK_INT(count_deliveries(s, "pending") + count_deliveries(s, "delivering"), 0);
  CHECK_INT(count_deliveries(s, "delivered") + count_deliveries(s, "failed"), TICKETS * PER_TICKET);
  g_ptr_array_unref(flying);
  g_hash_table_unref(in_flight);
  g_hash_table_unref(last_done);
  g_rand_free(rand);
  store_close(s);
}

static void
test_backoff_due_and_recover(void)
{
  ib_store *s = open_store("due.db");
  CHECK_INT(outbox_configure(s, 1, 0), IB_OK);
  int64_t t[2];
  make_tickets mt = {.n = 2, .ids = t};
  CHECK_INT(make_tickets_in("due.db", &mt), IB_OK);
  add_events a = {.type = "ticket.created", .tickets = t, .n = 2};
  CHECK_INT(store_run(s, add_events_run, &a), IB_OK);
  int64_t now = clock_now_ms() + 1000, next = 0;
  GPtrArray *got = claim_now(s, 10, now, &next);
  CHECK_INT(got->len, 2);
  CHECK(next == INT64_MAX);
  /* One waits for its backoff: not due before its time, due after. */
  finish_one(s, g_ptr_array_index(got, 0), OUTBOX_RETRY, now + 5000);
  GPtrArray *none = claim_now(s, 10, now + 4999, &next);
  CHECK_INT(none->len, 0);
  CHECK_INT(next, now + 5000);
  int64_t due = 0;
  CHECK_INT(outbox_next_due(s, &due), IB_OK);
  CHECK_INT(due, now + 5000);
  g_ptr_array_unref(none);
  GPtrArray *again = claim_now(s, 10, now + 5000, NULL);
  CHECK_INT(again->len, 1);
  CHECK_INT(((outbox_delivery *)g_ptr_array_index(again, 0))->attempts, 1);
  /* A process that died with two in flight: both come back, with the same ids. */
  int n = 0;
  CHECK_INT(store_run(s, recover_run, &n), IB_OK);
  CHECK_INT(n, 2);
  GPtrArray *back = claim_now(s, 10, now + 5000, NULL);
  CHECK_INT(back->len, 2);
  int same = 0;
  for (guint i = 0; i < back->len; i++)
    for (guint j = 0; j < got->len; j++)
      same += strcmp(((outbox_delivery *)g_ptr_array_index(back, i))->id,
                     ((outbox_delivery *)g_ptr_array_index(got, j))->id) == 0;
  CHECK_INT(same, 2);
  outbox_stats stats;
  CHECK_INT(outbox_stats_get(s, &stats), IB_OK);
  CHECK_INT(stats.delivering, 2);
  CHECK_INT(stats.pending, 0);
  CHECK(stats.oldest_open_ms > 0 && stats.oldest_open_ms <= clock_now_ms());
  g_ptr_array_unref(back);
  g_ptr_array_unref(again);
  g_ptr_array_unref(got);
  store_close(s);
}

static const char *
doc_str(json_t *doc, const char *key)
{
  return json_string_value(json_object_get(doc, key));
}

static void
test_operator_retry(void)
{
  ib_store *s = open_store("retry.db");
  CHECK_INT(outbox_configure(s, 1, 0), IB_OK);
  int64_t t;
  make_tickets mt = {.n = 1, .ids = &t};
  CHECK_INT(make_tickets_in("retry.db", &mt), IB_OK);
  int64_t three[] = {t, t, t};
  add_events a = {.type = "message.created", .tickets = three, .n = 3};
  CHECK_INT(store_run(s, add_events_run, &a), IB_OK);
  int64_t now = clock_now_ms() + 1000;

  CHECK_INT(retry_id(s, "dlv_000000000000000000000000", NULL), IB_ERR_NOT_FOUND);
  /* The first fails for good; the second is sent; the third waits behind it. */
  GPtrArray *c1 = claim_now(s, 10, now, NULL);
  CHECK_INT(c1->len, 1);
  outbox_delivery *first = g_ptr_array_index(c1, 0);
  CHECK_INT(retry_id(s, first->id, NULL), IB_ERR_CONFLICT); /* in flight */
  finish_one(s, first, OUTBOX_FAILED, 0);
  GPtrArray *c2 = claim_now(s, 10, now, NULL);
  CHECK_INT(c2->len, 1);
  outbox_delivery *second = g_ptr_array_index(c2, 0);
  CHECK(second->seq > first->seq);
  json_t *list = NULL;
  CHECK_INT(outbox_list(s, "pending", 10, 0, &list), IB_OK);
  const char *third_id = doc_str(json_array_get(json_object_get(list, "deliveries"), 0), "id");
  CHECK_INT(retry_id(s, third_id, NULL), IB_ERR_CONFLICT); /* waits for the second */

  /* Replaying the failed first one while the second flies: it queues behind the ticket's
   * active delivery, ahead of the third, with its attempts reset. */
  json_t *doc = NULL;
  CHECK_INT(retry_id(s, first->id, &doc), IB_OK);
  CHECK_STR(doc_str(doc, "status"), "pending");
  CHECK_INT(json_integer_value(json_object_get(doc, "attempts")), 0);
  CHECK(json_is_null(json_object_get(doc, "next_attempt_at")));
  json_decref(doc);
  finish_one(s, second, OUTBOX_DELIVERED, 0);
  GPtrArray *c3 = claim_now(s, 10, now, NULL);
  CHECK_INT(c3->len, 1);
  CHECK_STR(((outbox_delivery *)g_ptr_array_index(c3, 0))->id, first->id);
  finish_one(s, g_ptr_array_index(c3, 0), OUTBOX_DELIVERED, 0);
  GPtrArray *c4 = claim_now(s, 10, now, NULL);
  CHECK_INT(c4->len, 1);
  CHECK_STR(((outbox_delivery *)g_ptr_array_index(c4, 0))->id, third_id);
  /* A scheduled retry is due at once when asked. */
  finish_one(s, g_ptr_array_index(c4, 0), OUTBOX_RETRY, now + 3600000);
  CHECK_INT(retry_id(s, third_id, &doc), IB_OK);
  int64_t at = 0;
  CHECK_INT(clock_parse_rfc3339(doc_str(doc, "next_attempt_at"), &at), 0);
  CHECK(at <= clock_now_ms());
  json_decref(doc);
  GPtrArray *c5 = claim_now(s, 10, clock_now_ms(), NULL);
  CHECK_INT(c5->len, 1);
  /* A delivered one is replayed with the same id. */
  finish_one(s, g_ptr_array_index(c5, 0), OUTBOX_DELIVERED, 0);
  CHECK_INT(retry_id(s, second->id, &doc), IB_OK);
  CHECK_STR(doc_str(doc, "id"), second->id);
  CHECK(json_is_string(json_object_get(doc, "next_attempt_at")));
  CHECK(json_is_null(json_object_get(doc, "delivered_at")));
  json_decref(doc);
  GPtrArray *c6 = claim_now(s, 10, clock_now_ms(), NULL);
  CHECK_INT(c6->len, 1);
  CHECK_STR(((outbox_delivery *)g_ptr_array_index(c6, 0))->id, second->id);
  json_decref(list);
  GPtrArray *all[] = {c1, c2, c3, c4, c5, c6};
  for (size_t i = 0; i < G_N_ELEMENTS(all); i++)
    g_ptr_array_unref(all[i]);
  store_close(s);
}

int
main(void)
{
  dir = g_dir_make_tmp("inboxd-outbox-XXXXXX", NULL);
  test_skip_parse();
  test_rows_in_the_events_transaction();
  test_skip_types();
  test_order_under_random_outcomes();
  test_backoff_due_and_recover();
  test_operator_retry();
  check_remove_dir(dir);
  return check_done();
}
