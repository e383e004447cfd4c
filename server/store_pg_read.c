/* store_pg_read.c: the PostgreSQL backend's reads (store.h "Reads") and its outbox
 * (outbox.h): deliveries shared by every node, each claimed by one node at a time with
 * FOR UPDATE SKIP LOCKED and a lease that another node takes over when it expires. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsonout.h"
#include "log.h"
#include "store_pg.h"

/* ---- Documents -------------------------------------------------------------------------- */

#define TICKET_COLUMNS                                                                             \
  "t.id, t.subject, t.status, t.customer_name, t.customer_address, t.created_at, "                 \
  "t.updated_at, t.message_count, t.tags, t.version, m.id, m.direction, m.snippet, "               \
  "m.created_at"

static json_t *
ticket_from_row(const PGresult *r, int i)
{
  json_t *tags = json_loads(PQgetvalue(r, i, 8), 0, NULL);
  json_t *last = json_null();
  if (!PQgetisnull(r, i, 10))
    last = json_pack("{s:I, s:o, s:o, s:o}", "id", (json_int_t)pg_int_at(r, i, 10), "direction",
                     pg_json_string_at(r, i, 11), "snippet", pg_json_string_at(r, i, 12), "at",
                     pg_json_string_at(r, i, 13));
  return json_pack("{s:I, s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:I, s:o, s:o}", "id",
                   (json_int_t)pg_int_at(r, i, 0), "subject", pg_json_string_at(r, i, 1), "status",
                   pg_json_string_at(r, i, 2), "customer", "name", pg_json_string_at(r, i, 3),
                   "address", pg_json_string_at(r, i, 4), "created_at", pg_json_string_at(r, i, 5),
                   "updated_at", pg_json_string_at(r, i, 6), "message_count",
                   (json_int_t)pg_int_at(r, i, 7), "last_message", last, "tags",
                   tags ? tags : json_array());
}

ib_status
pg_ticket_doc(pg_conn *c, int64_t id, json_t **doc_out)
{
  static const char sql[] = "SELECT " TICKET_COLUMNS " FROM tickets t "
                            "LEFT JOIN messages m ON m.id = t.last_message_id WHERE t.id = $1";
  *doc_out = NULL;
  pg_params p = {0};
  pg_int(&p, id);
  PGresult *r = pg_query(c, sql, &p, 0);
  ib_status st = pg_check(c, r, "read a ticket");
  if (st == IB_OK && PQntuples(r) == 0)
    st = IB_ERR_NOT_FOUND;
  if (st == IB_OK && !(*doc_out = ticket_from_row(r, 0)))
    st = IB_ERR_NOMEM;
  PQclear(r);
  return st;
}

#define MESSAGE_COLUMNS "id, ticket_id, doc, classification, thread_reason, created_at"

/* A message document from row I of a MESSAGE_COLUMNS result, with the attachment ids of
 * ATT (rows of message_id, id ordered by message and position) from *ATT_POS on. */
static json_t *
message_from_row(ib_store *s, const PGresult *r, int i, const PGresult *att, int *att_pos)
{
  int64_t id = pg_int_at(r, i, 0);
  json_t *doc = json_loads(PQgetvalue(r, i, 2), 0, NULL);
  if (!doc)
    return NULL;
  store_doc_expand(doc);
  json_object_set_new(doc, "classification", pg_json_string_at(r, i, 3));
  json_object_set_new(doc, "thread_reason", pg_json_string_at(r, i, 4));
  json_object_set_new(doc, "created_at", pg_json_string_at(r, i, 5));
  json_t *out =
      json_pack("{s:I, s:I}", "id", (json_int_t)id, "ticket_id", (json_int_t)pg_int_at(r, i, 1));
  const char *key;
  json_t *value;
  json_object_foreach(doc, key, value) json_object_set(out, key, value);
  json_decref(doc);
  while (*att_pos < PQntuples(att) && pg_int_at(att, *att_pos, 0) < id)
    (*att_pos)++;
  json_t *atts = json_object_get(out, "attachments");
  size_t k;
  json_t *a;
  json_array_foreach(atts, k, a)
  {
    if (*att_pos >= PQntuples(att) || pg_int_at(att, *att_pos, 0) != id)
      break;
    int64_t aid = pg_int_at(att, *att_pos, 1);
    (*att_pos)++;
    char *url = g_strdup_printf("%s/api/attachments/%" G_GINT64_FORMAT, s->public_url, aid);
    json_t *copy = json_pack("{s:I}", "id", (json_int_t)aid);
    json_object_update(copy, a);
    json_object_set_new(copy, "url", json_string(url));
    json_array_set_new(atts, k, copy);
    g_free(url);
  }
  return out;
}

/* A consistent view for reads that take several statements. */
static ib_status
read_begin(pg_conn *c)
{
  return pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin a read");
}

static void
read_end(pg_conn *c)
{
  if (pg_alive(c) && PQtransactionStatus(pg_handle(c)) != PQTRANS_IDLE)
    pg_exec(c, "COMMIT", NULL);
}

ib_status
pg_store_ticket_thread(ib_store *s, int64_t id, json_t **doc_out, int64_t *version_out)
{
  static const char sql_ticket[] = "SELECT " TICKET_COLUMNS " FROM tickets t "
                                   "LEFT JOIN messages m ON m.id = t.last_message_id "
                                   "WHERE t.id = $1";
  static const char sql_msgs[] = "SELECT " MESSAGE_COLUMNS " FROM messages "
                                 "WHERE ticket_id = $1 ORDER BY id";
  static const char sql_atts[] = "SELECT a.message_id, a.id FROM attachments a "
                                 "JOIN messages m ON m.id = a.message_id "
                                 "WHERE m.ticket_id = $1 ORDER BY a.message_id, a.position";
  *doc_out = NULL;
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  PGresult *rt = NULL, *rm = NULL, *ra = NULL;
  json_t *ticket = NULL, *messages = NULL;
  pg_params p = {0};
  pg_int(&p, id);
  ib_status st = read_begin(c);
  if (st != IB_OK)
    goto done;
  rt = pg_query(c, sql_ticket, &p, 0);
  if ((st = pg_check(c, rt, "read a ticket")) != IB_OK)
    goto done;
  if (PQntuples(rt) == 0) {
    st = IB_ERR_NOT_FOUND;
    goto done;
  }
  ticket = ticket_from_row(rt, 0);
  if (version_out)
    *version_out = pg_int_at(rt, 0, 9);
  rm = pg_query(c, sql_msgs, &p, 0);
  if ((st = pg_check(c, rm, "read a thread")) != IB_OK)
    goto done;
  ra = pg_query(c, sql_atts, &p, 0);
  if ((st = pg_check(c, ra, "read attachments")) != IB_OK)
    goto done;
  messages = json_array();
  int pos = 0;
  for (int i = 0; i < PQntuples(rm); i++) {
    json_t *msg = message_from_row(s, rm, i, ra, &pos);
    if (msg)
      json_array_append_new(messages, msg);
  }
  *doc_out = json_pack("{s:O, s:O}", "ticket", ticket, "messages", messages);
  st = *doc_out ? IB_OK : IB_ERR_NOMEM;
done:
  read_end(c);
  PQclear(rt);
  PQclear(rm);
  PQclear(ra);
  pg_pool_put(s, c);
  json_decref(ticket);
  json_decref(messages);
  return st;
}

/* fold_search_query()'s FTS5 query ("a b" "c"* ...: quoted terms of letters, digits and
 * spaces, some with a prefix star) as a tsquery: each term a phrase (<->), the last word
 * of a prefix term with :*, terms ANDed. New; NULL when there is no word. */
static char *
fts_to_tsquery(const char *fts)
{
  GString *out = g_string_new(NULL);
  const char *p = fts;
  while ((p = strchr(p, '"'))) {
    const char *end = strchr(p + 1, '"');
    if (!end)
      break;
    int prefix = end[1] == '*';
    char *term = g_strndup(p + 1, (gsize)(end - p - 1));
    char **words = g_strsplit(term, " ", -1);
    GString *phrase = g_string_new(NULL);
    guint n = 0;
    for (char **w = words; *w; w++)
      if (**w)
        n++;
    guint k = 0;
    for (char **w = words; *w; w++) {
      if (!**w)
        continue;
      k++;
      g_string_append_printf(phrase, "%s'%s'%s", phrase->len ? " <-> " : "", *w,
                             prefix && k == n ? ":*" : "");
    }
    if (phrase->len)
      g_string_append_printf(out, "%s(%s)", out->len ? " & " : "", phrase->str);
    g_string_free(phrase, TRUE);
    g_strfreev(words);
    g_free(term);
    p = end + 1;
  }
  if (!out->len) {
    g_string_free(out, TRUE);
    return NULL;
  }
  return g_string_free(out, FALSE);
}

ib_status
pg_store_list_tickets(ib_store *s, const ticket_query *q, json_t **doc_out, int *has_next_out,
                      char *next_at_out, size_t next_at_size, int64_t *next_id_out)
{
  /* [search given]. Planned for the values each time (pg_query_custom()): a NULL filter
   * folds away and a rare status, customer or tag leads with its index. The search is a
   * conjunct of its own, so PostgreSQL can make it a semi-join: a rare word's tickets
   * from the GIN index, a common one checked on each ticket an activity scan reaches. As
   * an "IS NULL OR" it stayed a subplan that collected every match and filtered every
   * ticket (30,000 tickets, through the API: a common word 11.3 -> 1.9 ms, a word in no
   * message 6.5 -> 0.84). */
#define PG_LIST_TICKETS_SQL(SEARCH)                                                                \
  "SELECT " TICKET_COLUMNS " FROM tickets t "                                                      \
  "LEFT JOIN messages m ON m.id = t.last_message_id "                                              \
  "WHERE ($1::text IS NULL OR t.status = $1::text) "                                               \
  "AND ($2::text IS NULL OR lower(t.customer_address) = lower($2::text)) "                         \
  "AND (t.updated_at, t.id) < ($3::text, $4::bigint) "                                             \
  "AND " SEARCH " "                                                                                \
  "AND ($7::text IS NULL OR t.tags::jsonb ? $7::text) "                                            \
  "AND t.updated_at > $8::text "                                                                   \
  "ORDER BY t.updated_at DESC, t.id DESC LIMIT $5"
  static const char *const sqls[2] = {
      PG_LIST_TICKETS_SQL("$6::text IS NULL"),
      PG_LIST_TICKETS_SQL("t.id IN (SELECT ticket_id FROM messages WHERE search @@ "
                          "to_tsquery('simple', inboxd_unaccent($6::text)))"),
  };
#undef PG_LIST_TICKETS_SQL
  *doc_out = NULL;
  *has_next_out = 0;
  char *tsq = NULL;
  if (q->fts_query && !(tsq = fts_to_tsquery(q->fts_query))) {
    *doc_out = json_pack("{s:[], s:n}", "tickets", "next_cursor");
    return IB_OK;
  }
  pg_conn *c = pg_pool_get(s);
  if (!c) {
    g_free(tsq);
    return IB_ERR_STORAGE;
  }
  pg_params p = {0};
  pg_text(&p, q->status);
  pg_text(&p, q->customer);
  /* The cursor as a row value and updated_since as a plain comparison are the two ends
   * of a range of tickets_activity (as ORs with IS NULL they were filters: a page 24,000
   * tickets deep read all of them first). */
  pg_text(&p, q->has_cursor ? q->cursor_updated_at : TICKET_QUERY_TIME_END);
  pg_int(&p, q->has_cursor ? q->cursor_id : INT64_MAX);
  pg_int(&p, q->limit + 1); /* one more than asked tells whether there is a next page */
  pg_text(&p, tsq);
  pg_text(&p, q->tag);
  pg_text(&p, q->updated_since ? q->updated_since : ""); /* "": before every ticket */
  PGresult *r = pg_query_custom(c, sqls[tsq != NULL], &p, 0);
  ib_status st = pg_check(c, r, "list tickets");
  if (st == IB_OK) {
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
      if (i == q->limit) {
        *has_next_out = 1;
        break;
      }
      json_array_append_new(list, ticket_from_row(r, i));
      g_strlcpy(next_at_out, PQgetvalue(r, i, 6), next_at_size);
      *next_id_out = pg_int_at(r, i, 0);
    }
    *doc_out = json_pack("{s:o, s:n}", "tickets", list, "next_cursor");
  }
  PQclear(r);
  pg_pool_put(s, c);
  g_free(tsq);
  return st;
}

ib_status
pg_store_message(ib_store *s, int64_t id, json_t **doc_out)
{
  static const char sql[] = "SELECT " MESSAGE_COLUMNS " FROM messages WHERE id = $1";
  static const char sql_atts[] = "SELECT message_id, id FROM attachments WHERE message_id = $1 "
                                 "ORDER BY position";
  *doc_out = NULL;
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  pg_params p = {0};
  pg_int(&p, id);
  PGresult *r = NULL, *ra = NULL;
  ib_status st = read_begin(c);
  if (st == IB_OK) {
    r = pg_query(c, sql, &p, 0);
    st = pg_check(c, r, "read a message");
  }
  if (st == IB_OK && PQntuples(r) == 0)
    st = IB_ERR_NOT_FOUND;
  if (st == IB_OK) {
    ra = pg_query(c, sql_atts, &p, 0);
    st = pg_check(c, ra, "read attachments");
  }
  if (st == IB_OK) {
    int pos = 0;
    *doc_out = message_from_row(s, r, 0, ra, &pos);
    st = *doc_out ? IB_OK : IB_ERR_INTERNAL;
  }
  read_end(c);
  PQclear(r);
  PQclear(ra);
  pg_pool_put(s, c);
  return st;
}

/* Run SQL with P on a pooled connection expecting one row; *R_OUT gets it (PQclear). */
static ib_status
read_one(ib_store *s, const char *sql, const pg_params *p, int binary, const char *what,
         PGresult **r_out)
{
  *r_out = NULL;
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  PGresult *r = pg_query(c, sql, p, binary);
  ib_status st = pg_check(c, r, what);
  if (st == IB_OK && PQntuples(r) == 0)
    st = IB_ERR_NOT_FOUND;
  pg_pool_put(s, c);
  if (st != IB_OK)
    PQclear(r);
  else
    *r_out = r;
  return st;
}

ib_status
pg_store_raw_size(ib_store *s, int64_t message_id, uint64_t *size_out)
{
  static const char sql[] = "SELECT octet_length(bytes) FROM raw_messages WHERE message_id = $1";
  pg_params p = {0};
  pg_int(&p, message_id);
  PGresult *r = NULL;
  ib_status st = read_one(s, sql, &p, 0, "read a raw message", &r);
  if (st == IB_OK)
    *size_out = (uint64_t)pg_int_at(r, 0, 0);
  PQclear(r);
  return st;
}

ib_status
pg_store_attachment_info_get(ib_store *s, int64_t id, store_attachment_info *out)
{
  static const char sql[] =
      "SELECT size, filename, content_type, sha256 FROM attachments WHERE id = $1";
  memset(out, 0, sizeof *out);
  pg_params p = {0};
  pg_int(&p, id);
  PGresult *r = NULL;
  ib_status st = read_one(s, sql, &p, 0, "read an attachment", &r);
  if (st == IB_OK) {
    out->size = (uint64_t)pg_int_at(r, 0, 0);
    out->filename = PQgetisnull(r, 0, 1) ? NULL : g_strdup(PQgetvalue(r, 0, 1));
    out->content_type = g_strdup(PQgetvalue(r, 0, 2));
    g_strlcpy(out->sha256, PQgetvalue(r, 0, 3), sizeof out->sha256);
  }
  PQclear(r);
  return st;
}

ib_status
pg_store_blob_read(ib_store *s, store_blob_kind kind, int64_t id, uint64_t off, void *buf,
                   size_t len, size_t *got_out)
{
  /* Binary results: the bytes as they are, in_file as a 4-byte big-endian integer. */
  static const char sql_raw[] = "SELECT substring(bytes FROM $2::int FOR $3::int) "
                                "FROM raw_messages WHERE message_id = $1";
  static const char sql_att[] = "SELECT substring(data FROM $2::int FOR $3::int), in_file, "
                                "sha256 FROM attachments WHERE id = $1";
  *got_out = 0;
  if (off > G_MAXINT32 - 1)
    return IB_OK;
  pg_params p = {0};
  pg_int(&p, id);
  pg_int(&p, (int64_t)off + 1);
  pg_int(&p, (int64_t)MIN(len, (size_t)G_MAXINT32));
  PGresult *r = NULL;
  ib_status st = read_one(s, kind == STORE_BLOB_RAW ? sql_raw : sql_att, &p, 1, "read bytes", &r);
  if (st != IB_OK)
    return st;
  int in_file = 0;
  if (kind == STORE_BLOB_ATTACHMENT && PQgetlength(r, 0, 1) == 4) {
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, 0, 1);
    in_file = (v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3]) != 0;
  }
  if (in_file) {
    char sha[65];
    g_strlcpy(sha, PQgetvalue(r, 0, 2), sizeof sha);
    PQclear(r);
    if (!s->attachment_dir) {
      log_error("attachment %" G_GINT64_FORMAT " is kept in a directory, but no "
                "--attachment-dir is set",
                id);
      return IB_ERR_STORAGE;
    }
    return store_file_read(s->attachment_dir, sha, off, buf, len, got_out);
  }
  size_t n = MIN((size_t)PQgetlength(r, 0, 0), len);
  memcpy(buf, PQgetvalue(r, 0, 0), n);
  *got_out = n;
  PQclear(r);
  return IB_OK;
}

ib_status
pg_store_events(ib_store *s, int64_t after, int limit, json_t **doc_out, int64_t *last_seq_out)
{
  static const char sql[] = "SELECT seq, type, ticket_id, message_id, at FROM events "
                            "WHERE seq > $1 ORDER BY seq LIMIT $2";
  static const char sql_max[] = "SELECT COALESCE(MAX(seq), 0) FROM events";
  *doc_out = NULL;
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  pg_params p = {0};
  pg_int(&p, after);
  pg_int(&p, limit);
  PGresult *r = pg_query(c, sql, &p, 0);
  ib_status st = pg_check(c, r, "read the change feed");
  int64_t last = 0;
  json_t *events = json_array();
  for (int i = 0; st == IB_OK && i < PQntuples(r); i++) {
    last = pg_int_at(r, i, 0);
    json_t *mid = PQgetisnull(r, i, 3) ? json_null() : json_integer(pg_int_at(r, i, 3));
    json_array_append_new(events, json_pack("{s:I, s:o, s:I, s:o, s:o}", "seq", (json_int_t)last,
                                            "type", pg_json_string_at(r, i, 1), "ticket_id",
                                            (json_int_t)pg_int_at(r, i, 2), "message_id", mid, "at",
                                            pg_json_string_at(r, i, 4)));
  }
  PQclear(r);
  if (st == IB_OK && json_array_size(events) == 0) {
    r = pg_query(c, sql_max, NULL, 0);
    st = pg_check(c, r, "read the change feed");
    if (st == IB_OK && PQntuples(r) == 1)
      last = pg_int_at(r, 0, 0);
    PQclear(r);
  }
  pg_pool_put(s, c);
  if (st != IB_OK) {
    json_decref(events);
    return st;
  }
  *last_seq_out = last;
  *doc_out = json_pack("{s:o, s:I}", "events", events, "last_seq", (json_int_t)last);
  return IB_OK;
}

ib_status
pg_store_suppressions(ib_store *s, json_t **doc_out)
{
  static const char sql[] = "SELECT address, reason, status, diagnostic, message_id, at "
                            "FROM suppressions ORDER BY at DESC, address";
  *doc_out = NULL;
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  PGresult *r = pg_query(c, sql, NULL, 0);
  ib_status st = pg_check(c, r, "read suppressions");
  if (st == IB_OK) {
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
      json_t *mid = PQgetisnull(r, i, 4) ? json_null() : json_integer(pg_int_at(r, i, 4));
      json_array_append_new(
          list, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "address", pg_json_string_at(r, i, 0),
                          "reason", pg_json_string_at(r, i, 1), "status",
                          pg_json_string_at(r, i, 2), "diagnostic", pg_json_string_at(r, i, 3),
                          "message_id", mid, "at", pg_json_string_at(r, i, 5)));
    }
    *doc_out = json_pack("{s:o}", "suppressions", list);
  }
  PQclear(r);
  pg_pool_put(s, c);
  return st;
}

ib_status
pg_store_ping(ib_store *s)
{
  static const char sql[] = "SELECT 1 FROM meta LIMIT 1";
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  PGresult *r = pg_query(c, sql, NULL, 0);
  ib_status st = pg_check(c, r, "ping the database");
  PQclear(r);
  pg_pool_put(s, c);
  return st == IB_OK ? IB_OK : IB_ERR_STORAGE;
}

/* ---- The outbox -------------------------------------------------------------------------- */

/* The per-event hook. The event's seq is not known yet (it is given at commit), so this
 * prepares the delivery on the event store_pg.c just queued: the skip decision and the
 * ticket document as it is now. ARG is the skip mask. */
ib_status
pg_outbox_on_event(void *arg, ib_tx *tx, int64_t seq, const char *type, int64_t ticket_id,
                   int64_t message_id)
{
  /* The ticket document and what decides about the message, in one round trip. */
  static const char sql[] =
      "SELECT " TICKET_COLUMNS ", x.classification, x.loop_suspect FROM tickets t "
      "LEFT JOIN messages m ON m.id = t.last_message_id "
      "LEFT JOIN messages x ON x.id = $2 WHERE t.id = $1";
  static const char sql_class[] = "SELECT classification, loop_suspect FROM messages WHERE id = $1";
  unsigned mask = GPOINTER_TO_UINT(arg);
  if (outbox_skipped(mask, type, 0) || !tx->events->len)
    return IB_OK;
  pg_event *e = g_ptr_array_index(tx->events, tx->events->len - 1);
  pg_params p = {0};
  pg_int(&p, ticket_id);
  pg_int(&p, message_id);
  PGresult *r = pg_query(tx->pg, sql, &p, 0);
  ib_status st = pg_check(tx->pg, r, "prepare a delivery");
  if (st != IB_OK) {
    PQclear(r);
    return st;
  }
  json_t *ticket = NULL;
  int skip = 0;
  if (PQntuples(r) == 1) {
    ticket = ticket_from_row(r, 0);
    skip = message_id && !PQgetisnull(r, 0, 14) &&
           (pg_int_at(r, 0, 15) || outbox_skipped(mask, PQgetvalue(r, 0, 14), 1));
  } else if (message_id) {
    /* No such ticket (never for events inboxd writes): decide on the message alone. */
    PQclear(r);
    pg_params q = {0};
    pg_int(&q, message_id);
    r = pg_query(tx->pg, sql_class, &q, 0);
    st = pg_check(tx->pg, r, "read a message's class");
    skip = st == IB_OK && PQntuples(r) == 1 &&
           (pg_int_at(r, 0, 1) || outbox_skipped(mask, PQgetvalue(r, 0, 0), 1));
  }
  PQclear(r);
  if (st != IB_OK || skip) {
    json_decref(ticket);
    return st;
  }
  if (!ticket) {
    log_warn("an event names ticket %" G_GINT64_FORMAT ", which does not exist; forwarding it "
             "without one",
             ticket_id);
    ticket = json_null();
  }
  char *text = jsonout_dumps(ticket, NULL);
  json_decref(ticket);
  if (!text)
    return IB_ERR_NOMEM;
  g_free(e->delivery_ticket);
  e->delivery_ticket = g_strdup(text);
  free(text);
  return IB_OK;
}

static ib_status
set_meta(pg_conn *c, const char *key, const char *value)
{
  static const char sql[] = "INSERT INTO meta (key, value) VALUES ($1, $2) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
  pg_params p = {0};
  pg_text(&p, key);
  pg_text(&p, value);
  PGresult *r = pg_query(c, sql, &p, 0);
  ib_status st = pg_check(c, r, "record the outbox settings");
  PQclear(r);
  return st;
}

ib_status
pg_outbox_set_config(ib_tx *tx, int enabled, const char *skip)
{
  ib_status st = set_meta(tx->pg, "outbox.enabled", enabled ? "1" : "0");
  return st == IB_OK ? set_meta(tx->pg, "outbox.skip", skip) : st;
}

ib_status
pg_outbox_get_config(ib_store *s, int *enabled_out, char **skip_out)
{
  static const char sql[] = "SELECT key, value FROM meta WHERE key IN ('outbox.enabled', "
                            "'outbox.skip')";
  *enabled_out = 0;
  *skip_out = NULL;
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  PGresult *r = pg_query(c, sql, NULL, 0);
  ib_status st = pg_check(c, r, "read the outbox settings");
  for (int i = 0; st == IB_OK && i < PQntuples(r); i++) {
    if (strcmp(PQgetvalue(r, i, 0), "outbox.enabled") == 0) {
      *enabled_out = strcmp(PQgetvalue(r, i, 1), "1") == 0;
    } else {
      g_free(*skip_out);
      *skip_out = g_strdup(PQgetvalue(r, i, 1));
    }
  }
  PQclear(r);
  pg_pool_put(s, c);
  return st;
}

/* The earliest time anything needs this node: a pending delivery due, or the lease of
 * another node's claim running out. */
static ib_status
next_due(pg_conn *c, const char *node, int64_t *due_out)
{
  static const char sql[] =
      "SELECT LEAST((SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending' "
      "              AND next_attempt_at IS NOT NULL), "
      "             (SELECT min(lease_until) FROM deliveries WHERE status = 'delivering' "
      "              AND claimed_by IS DISTINCT FROM $1))";
  *due_out = INT64_MAX;
  pg_params p = {0};
  pg_text(&p, node);
  PGresult *r = pg_query(c, sql, &p, 0);
  ib_status st = pg_check(c, r, "read the next due delivery");
  if (st == IB_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
    *due_out = pg_int_at(r, 0, 0);
  PQclear(r);
  return st;
}

static gint
compare_due(gconstpointer a, gconstpointer b)
{
  const outbox_delivery *x = *(outbox_delivery *const *)a, *y = *(outbox_delivery *const *)b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

ib_status
pg_outbox_claim(ib_tx *tx, int64_t now_ms, int max, GPtrArray *out, int64_t *next_due_out)
{
  /* Rows another node is claiming right now are skipped, not waited for; a claim whose
   * lease ran out (its node died) is taken over and sent again with the same id. */
  static const char sql[] =
      "WITH due AS (SELECT seq FROM deliveries "
      "  WHERE (status = 'pending' AND next_attempt_at <= $1::bigint) "
      "     OR (status = 'delivering' AND lease_until < $1::bigint) "
      "  ORDER BY next_attempt_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED) "
      "UPDATE deliveries d SET status = 'delivering', claimed_by = $3, "
      "  lease_until = $1::bigint + $4::bigint "
      "FROM due WHERE d.seq = due.seq "
      "RETURNING d.seq, d.id, d.type, d.ticket_id, d.message_id, d.attempts, d.created_at, "
      "  d.ticket";
  pg_backend *b = tx->store->pg;
  *next_due_out = INT64_MAX;
  guint first = out->len;
  pg_params p = {0};
  pg_int(&p, now_ms);
  pg_int(&p, max);
  pg_text(&p, b->node);
  pg_int(&p, b->lease_ms);
  PGresult *r = pg_query(tx->pg, sql, &p, 0);
  ib_status st = pg_check(tx->pg, r, "claim deliveries");
  for (int i = 0; st == IB_OK && i < PQntuples(r); i++) {
    outbox_delivery *d = g_new0(outbox_delivery, 1);
    d->seq = pg_int_at(r, i, 0);
    g_strlcpy(d->id, PQgetvalue(r, i, 1), sizeof d->id);
    d->type = g_strdup(PQgetvalue(r, i, 2));
    d->ticket_id = pg_int_at(r, i, 3);
    d->message_id = pg_int_at(r, i, 4);
    d->attempts = (int)pg_int_at(r, i, 5);
    g_strlcpy(d->created_at, PQgetvalue(r, i, 6), sizeof d->created_at);
    if (clock_parse_rfc3339(d->created_at, &d->created_ms) != 0)
      d->created_ms = 0;
    d->ticket = g_strdup(PQgetvalue(r, i, 7));
    g_ptr_array_add(out, d);
  }
  PQclear(r);
  if (out->len > first + 1) {
    /* Event order (RETURNING has none). */
    GPtrArray *tail = g_ptr_array_new();
    for (guint i = first; i < out->len; i++)
      g_ptr_array_add(tail, g_ptr_array_index(out, i));
    g_ptr_array_sort(tail, compare_due);
    for (guint i = 0; i < tail->len; i++)
      g_ptr_array_index(out, first + i) = g_ptr_array_index(tail, i);
    g_ptr_array_unref(tail);
  }
  if (st == IB_OK)
    st = next_due(tx->pg, b->node, next_due_out);
  if (st != IB_OK) {
    while (out->len > first)
      outbox_delivery_free(g_ptr_array_steal_index(out, out->len - 1));
    log_error("cannot claim deliveries: %s", ib_status_str(st));
  }
  return st;
}

ib_status
pg_outbox_promote(pg_conn *c, int64_t ticket_id, int64_t now_ms)
{
  static const char sql[] =
      "UPDATE deliveries SET next_attempt_at = $2 "
      "WHERE seq = (SELECT seq FROM deliveries WHERE ticket_id = $1 "
      "             AND status IN ('pending', 'delivering') ORDER BY seq LIMIT 1) "
      "AND status = 'pending' AND next_attempt_at IS NULL "
      "AND NOT EXISTS (SELECT 1 FROM deliveries WHERE ticket_id = $1 "
      "                AND status IN ('pending', 'delivering') "
      "                AND (status = 'delivering' OR next_attempt_at IS NOT NULL))";
  pg_params p = {0};
  pg_int(&p, ticket_id);
  pg_int(&p, now_ms);
  PGresult *r = pg_query(c, sql, &p, 0);
  ib_status st = pg_check(c, r, "schedule the next delivery of a ticket");
  PQclear(r);
  return st;
}

ib_status
pg_outbox_finish(ib_tx *tx, const outbox_result *r, int64_t now_ms)
{
  /* Only the claim's holder records an outcome: when its lease ran out and another node
   * took the delivery over, that node's outcome counts. */
  static const char sql_delivered[] =
      "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, last_status = $2, "
      "last_error = NULL, next_attempt_at = NULL, delivered_at = $3, claimed_by = NULL, "
      "lease_until = NULL WHERE seq = $1 AND status = 'delivering' AND claimed_by = $4";
  static const char sql_failed[] =
      "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_status = $2, "
      "last_error = $3, next_attempt_at = NULL, claimed_by = NULL, lease_until = NULL "
      "WHERE seq = $1 AND status = 'delivering' AND claimed_by = $4";
  static const char sql_retry[] =
      "UPDATE deliveries SET status = 'pending', attempts = attempts + 1, last_status = $2, "
      "last_error = $3, next_attempt_at = $5, claimed_by = NULL, lease_until = NULL "
      "WHERE seq = $1 AND status = 'delivering' AND claimed_by = $4";
  static const char sql_release[] =
      "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, claimed_by = NULL, "
      "lease_until = NULL WHERE seq = $1 AND status = 'delivering' AND claimed_by = $3";
  const char *node = tx->store->pg->node;
  pg_params p = {0};
  pg_int(&p, r->seq);
  const char *sql = sql_release;
  if (r->outcome == OUTBOX_RELEASE) {
    pg_int(&p, r->next_attempt_ms);
    pg_text(&p, node);
  } else {
    if (r->http_status)
      pg_int(&p, r->http_status);
    else
      pg_text(&p, NULL);
    pg_text(&p, r->outcome == OUTBOX_DELIVERED ? store_now(tx) : r->error);
    pg_text(&p, node);
    sql = r->outcome == OUTBOX_DELIVERED ? sql_delivered
          : r->outcome == OUTBOX_FAILED  ? sql_failed
                                         : sql_retry;
    if (r->outcome == OUTBOX_RETRY)
      pg_int(&p, r->next_attempt_ms);
  }
  PGresult *res = pg_query(tx->pg, sql, &p, 0);
  ib_status st = pg_check(tx->pg, res, "record a delivery attempt");
  PQclear(res);
  if (st == IB_OK && (r->outcome == OUTBOX_DELIVERED || r->outcome == OUTBOX_FAILED))
    pg_tx_want_promote(tx, r->ticket_id);
  return st;
}

ib_status
pg_outbox_recover(ib_tx *tx, int *count_out)
{
  /* Other nodes may be sending right now: only claims whose lease ran out are resumed
   * (this node's previous life had another name). */
  static const char sql[] =
      "UPDATE deliveries SET status = 'pending', claimed_by = NULL, lease_until = NULL "
      "WHERE status = 'delivering' AND lease_until < $1";
  pg_params p = {0};
  pg_int(&p, clock_now_ms());
  PGresult *r = pg_query(tx->pg, sql, &p, 0);
  ib_status st = pg_check(tx->pg, r, "resume the deliveries in flight");
  if (st == IB_OK && count_out)
    *count_out = (int)g_ascii_strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  return st;
}

#define DELIVERY_COLUMNS                                                                           \
  "seq, id, type, ticket_id, message_id, status, attempts, last_status, last_error, "              \
  "next_attempt_at, created_at, delivered_at"

static json_t *
int_or_null(const PGresult *r, int i, int col)
{
  return PQgetisnull(r, i, col) ? json_null() : json_integer(pg_int_at(r, i, col));
}

static json_t *
delivery_from_row(const PGresult *r, int i)
{
  json_t *next = json_null();
  if (!PQgetisnull(r, i, 9)) {
    char at[32];
    next = json_string(clock_rfc3339(pg_int_at(r, i, 9), at, sizeof at));
  }
  return json_pack("{s:o, s:o, s:I, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o}", "id",
                   pg_json_string_at(r, i, 1), "type", pg_json_string_at(r, i, 2), "seq",
                   (json_int_t)pg_int_at(r, i, 0), "ticket_id", int_or_null(r, i, 3), "message_id",
                   int_or_null(r, i, 4), "status", pg_json_string_at(r, i, 5), "attempts",
                   (int)pg_int_at(r, i, 6), "last_status", int_or_null(r, i, 7), "last_error",
                   pg_json_string_at(r, i, 8), "next_attempt_at", next, "created_at",
                   pg_json_string_at(r, i, 10), "delivered_at", pg_json_string_at(r, i, 11));
}

/* Run a one-statement update SQL with P inside TX. */
static ib_status
tx_update(ib_tx *tx, const char *sql, const pg_params *p, const char *what)
{
  PGresult *r = pg_query(tx->pg, sql, p, 0);
  ib_status st = pg_check(tx->pg, r, what);
  PQclear(r);
  return st;
}

ib_status
pg_outbox_retry(ib_tx *tx, const char *id, int64_t now_ms, json_t **doc_out,
                const char **reason_out)
{
  static const char sql_get[] = "SELECT seq, ticket_id, status, next_attempt_at "
                                "FROM deliveries WHERE id = $1 FOR UPDATE";
  static const char sql_requeue[] =
      "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
      "delivered_at = NULL WHERE seq = $1";
  static const char sql_step_back[] =
      "UPDATE deliveries SET next_attempt_at = NULL WHERE ticket_id = $1 "
      "AND status = 'pending' AND seq > $2";
  static const char sql_now[] =
      "UPDATE deliveries SET attempts = 0, next_attempt_at = $2 WHERE seq = $1";
  static const char sql_doc[] = "SELECT " DELIVERY_COLUMNS " FROM deliveries WHERE id = $1";
  *doc_out = NULL;
  *reason_out = NULL;
  pg_params p = {0};
  pg_text(&p, id);
  PGresult *r = pg_query(tx->pg, sql_get, &p, 0);
  ib_status st = pg_check(tx->pg, r, "read a delivery");
  if (st == IB_OK && PQntuples(r) == 0)
    st = IB_ERR_NOT_FOUND;
  if (st != IB_OK) {
    PQclear(r);
    return st;
  }
  int64_t seq = pg_int_at(r, 0, 0);
  int64_t ticket_id = pg_int_at(r, 0, 1);
  char status[16];
  g_strlcpy(status, PQgetvalue(r, 0, 2), sizeof status);
  int scheduled = !PQgetisnull(r, 0, 3);
  PQclear(r);

  if (strcmp(status, "delivering") == 0) {
    *reason_out = "the delivery is being sent right now";
    return IB_ERR_CONFLICT;
  }
  pg_params q = {0};
  pg_int(&q, seq);
  if (strcmp(status, "pending") == 0) {
    if (!scheduled) {
      *reason_out = "the delivery waits for an earlier delivery of its ticket; retry that one";
      return IB_ERR_CONFLICT;
    }
    pg_int(&q, now_ms);
    st = tx_update(tx, sql_now, &q, "reschedule a delivery");
  } else {
    st = tx_update(tx, sql_requeue, &q, "queue a delivery again");
    if (st == IB_OK) {
      pg_params b = {0};
      pg_int(&b, ticket_id);
      pg_int(&b, seq);
      st = tx_update(tx, sql_step_back, &b, "reorder the deliveries of a ticket");
    }
    if (st == IB_OK)
      st = pg_outbox_promote(tx->pg, ticket_id, now_ms);
    /* Again under the events lock at commit, against a concurrent delivery elsewhere. */
    if (st == IB_OK)
      pg_tx_want_promote(tx, ticket_id);
  }
  if (st == IB_OK) {
    r = pg_query(tx->pg, sql_doc, &p, 0);
    st = pg_check(tx->pg, r, "read a delivery");
    if (st == IB_OK && PQntuples(r) == 1)
      *doc_out = delivery_from_row(r, 0);
    else if (st == IB_OK)
      st = IB_ERR_NOT_FOUND;
    PQclear(r);
  }
  return st;
}

ib_status
pg_outbox_next_due(ib_store *s, int64_t *due_out)
{
  *due_out = INT64_MAX;
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  ib_status st = next_due(c, s->pg->node, due_out);
  pg_pool_put(s, c);
  return st;
}

ib_status
pg_outbox_list(ib_store *s, const char *status, int limit, int oldest_first, json_t **doc_out)
{
  static const char sql_new[] = "SELECT " DELIVERY_COLUMNS " FROM deliveries "
                                "WHERE ($1::text IS NULL OR status = $1::text) "
                                "ORDER BY seq DESC LIMIT $2";
  static const char sql_old[] = "SELECT " DELIVERY_COLUMNS " FROM deliveries "
                                "WHERE ($1::text IS NULL OR status = $1::text) "
                                "ORDER BY seq LIMIT $2";
  *doc_out = NULL;
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  pg_params p = {0};
  pg_text(&p, status);
  pg_int(&p, limit);
  const char *sql = oldest_first ? sql_old : sql_new;
  /* Planned for the status given: a rare one (failed) leads with deliveries_status. */
  PGresult *r = pg_query_custom(c, sql, &p, 0);
  ib_status st = pg_check(c, r, "list deliveries");
  if (st == IB_OK) {
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(r); i++)
      json_array_append_new(list, delivery_from_row(r, i));
    *doc_out = json_pack("{s:o}", "deliveries", list);
    if (!*doc_out)
      st = IB_ERR_NOMEM;
  }
  PQclear(r);
  pg_pool_put(s, c);
  return st;
}

ib_status
pg_outbox_stats_get(ib_store *s, outbox_stats *out)
{
  static const char sql[] =
      "SELECT count(*) FILTER (WHERE status = 'pending'), "
      "count(*) FILTER (WHERE status = 'delivering'), "
      "(SELECT created_at FROM deliveries WHERE status IN ('pending', 'delivering') "
      " ORDER BY seq LIMIT 1) "
      "FROM deliveries WHERE status IN ('pending', 'delivering')";
  memset(out, 0, sizeof *out);
  pg_conn *c = pg_pool_get(s);
  if (!c)
    return IB_ERR_STORAGE;
  PGresult *r = pg_query(c, sql, NULL, 0);
  ib_status st = pg_check(c, r, "count deliveries");
  if (st == IB_OK && PQntuples(r) == 1) {
    out->pending = pg_int_at(r, 0, 0);
    out->delivering = pg_int_at(r, 0, 1);
    if (!PQgetisnull(r, 0, 2) &&
        clock_parse_rfc3339(PQgetvalue(r, 0, 2), &out->oldest_open_ms) != 0)
      out->oldest_open_ms = 0;
  }
  PQclear(r);
  pg_pool_put(s, c);
  return st;
}
