/* test_adapters.c: the provider ingress adapters (parsers/adapter.h).
 *
 * 1. Fixtures: every fixtures/providers/<provider>/<case>.meta.json describes a request
 *    (the body is <case>.<ext> beside it) and what the adapter must hand back.
 * 2. Equivalence: the same email posted through every adapter and mode yields the same
 *    subject, addresses, text, html and attachment bytes, checked twice: through
 *    parse_message() (the pipeline) and through an independent GMime walk in this file,
 *    which is also compared with the source message and with known values.
 * 3. Authentication: Mailgun and Mandrill with the spec section 12 vectors, SendGrid
 *    ECDSA and SNS v1/v2 with keys and certificates generated here at run time.
 * 4. Statuses, routing and the smaller behaviours. */
#include <gmime/gmime.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "adapter.h"
#include "check.h"
#include "parse.h"

#define SUBJECT "Bestellung 1234 \xe2\x80\x93 Drucker zieht kein Papier"
#define PNG_SHA256 "0e7e99166fadee8ef46b8c178c1ae70d9d56c934cc9aec7910744e548a736873"
#define PDF_SHA256 "092e78c2885ebccd80ed5168c5a08695cf01925972d2bc8b4cd5a8bd6112152f"
#define MG_KEY "test-signing-key-0123456789"
#define MG_TOKEN "a3f5c0d1e2b4968778695a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
#define MG_SIG "64a05ffab5b32390ac9313603edc23b6770c27e56b345edf0a810ed3e81b8d0e"
#define TOPIC "arn:aws:sns:us-east-1:111122223333:inbound"
#define SNS_NOW 1736157602

static char *src_dir;

static char *
slurp(const char *rel, gsize *len_out)
{
  char *path = g_build_filename(src_dir, "fixtures", "providers", rel, NULL);
  char *data = NULL;
  gsize len = 0;
  GError *err = NULL;
  if (!g_file_get_contents(path, &data, &len, &err)) {
    fprintf(stderr, "cannot read %s: %s\n", path, err->message);
    g_error_free(err);
    CHECK(0);
  }
  g_free(path);
  if (len_out)
    *len_out = len;
  return data;
}

/* ---- requests ------------------------------------------------------------------------ */

static const char *
lookup(void *ctx, const char *name)
{
  char *k = g_ascii_strdown(name, -1);
  const char *v = ctx ? g_hash_table_lookup(ctx, k) : NULL;
  g_free(k);
  return v;
}

static GHashTable *
headers_new(void)
{
  return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

static void
headers_set(GHashTable *h, const char *name, const char *value)
{
  g_hash_table_replace(h, g_ascii_strdown(name, -1), g_strdup(value));
}

/* Run PROVIDER over BODY; RES must be cleared by the caller. */
static ib_status
run(const char *provider, const char *method, const char *ctype, const char *body, size_t len,
    GHashTable *headers, const adapter_config *cfg, gint64 now, adapter_result *res)
{
  adapter_request rq = {.method = method,
                        .path = "/inbound/x",
                        .content_type = ctype,
                        .body = body,
                        .len = len,
                        .header = lookup,
                        .header_ctx = headers,
                        .now = now};
  adapter_result_init(res);
  return adapter_run(provider, &rq, cfg, res);
}

#define CHECK_FAIL(res, st_, http_, code_)                                                         \
  do {                                                                                             \
    CHECK_INT((res)->status, st_);                                                                 \
    CHECK_INT((res)->http_status, http_);                                                          \
    CHECK_STR((res)->code, code_);                                                                 \
    CHECK((res)->message != NULL);                                                                 \
    CHECK_INT((res)->inbound->len, 0);                                                             \
  } while (0)

/* ---- keys and certificates ------------------------------------------------------------ */

static char *
b64(const void *data, size_t len)
{
  return g_base64_encode(data, len);
}

static char *
spki_b64(EVP_PKEY *key)
{
  unsigned char *der = NULL;
  int n = i2d_PUBKEY(key, &der);
  char *s = b64(der, (size_t)n);
  OPENSSL_free(der);
  return s;
}

static char *
sign_b64(EVP_PKEY *key, const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen)
{
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  size_t siglen = 0;
  unsigned char *sig = NULL;
  char *out = NULL;
  if (EVP_DigestSignInit(ctx, NULL, md, NULL, key) == 1 &&
      EVP_DigestSignUpdate(ctx, a, alen) == 1 && EVP_DigestSignUpdate(ctx, b, blen) == 1 &&
      EVP_DigestSignFinal(ctx, NULL, &siglen) == 1) {
    sig = g_malloc(siglen);
    if (EVP_DigestSignFinal(ctx, sig, &siglen) == 1)
      out = b64(sig, siglen);
  }
  g_free(sig);
  EVP_MD_CTX_free(ctx);
  CHECK(out != NULL);
  return out;
}

static X509 *
make_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, const char *cn, time_t not_before,
          time_t not_after, long serial)
{
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  ASN1_TIME_set(X509_getm_notBefore(x), not_before);
  ASN1_TIME_set(X509_getm_notAfter(x), not_after);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                            issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  if (!issuer) {
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  CHECK(X509_sign(x, signer, EVP_sha256()) > 0);
  return x;
}

static char *
cert_pem(X509 *x)
{
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char *data = NULL;
  long n = BIO_get_mem_data(bio, &data);
  char *s = g_strndup(data, (gsize)n);
  BIO_free(bio);
  return s;
}

typedef struct pki {
  EVP_PKEY *ca_key, *leaf_key, *other_key;
  X509 *ca, *leaf, *other_ca;
  char *ca_pem, *leaf_pem, *other_ca_pem;
  time_t not_after;
} pki;

static pki pk;

static void
pki_init(void)
{
  time_t now = SNS_NOW;
  pk.ca_key = EVP_RSA_gen(2048);
  pk.leaf_key = EVP_RSA_gen(2048);
  pk.other_key = EVP_RSA_gen(2048);
  pk.not_after = now + 30 * 86400;
  pk.ca =
      make_cert(pk.ca_key, pk.ca_key, NULL, "Test SNS Root CA", now - 86400, now + 3650 * 86400, 1);
  pk.leaf =
      make_cert(pk.leaf_key, pk.ca_key, pk.ca, "sns.amazonaws.com", now - 3600, pk.not_after, 2);
  pk.other_ca =
      make_cert(pk.other_key, pk.other_key, NULL, "Other CA", now - 86400, now + 3650 * 86400, 3);
  pk.ca_pem = cert_pem(pk.ca);
  pk.leaf_pem = cert_pem(pk.leaf);
  pk.other_ca_pem = cert_pem(pk.other_ca);
}

static void
pki_free(void)
{
  EVP_PKEY_free(pk.ca_key);
  EVP_PKEY_free(pk.leaf_key);
  EVP_PKEY_free(pk.other_key);
  X509_free(pk.ca);
  X509_free(pk.leaf);
  X509_free(pk.other_ca);
  g_free(pk.ca_pem);
  g_free(pk.leaf_pem);
  g_free(pk.other_ca_pem);
}

typedef struct cert_src {
  const char *pem; /* NULL: fail */
  char *last_url;
  int calls;
} cert_src;

static char *
cert_cb(void *ctx, const char *url, char **error_out)
{
  cert_src *src = ctx;
  src->calls++;
  g_free(src->last_url);
  src->last_url = g_strdup(url);
  if (!src->pem) {
    *error_out = g_strdup("connection refused");
    return NULL;
  }
  return g_strdup(src->pem);
}

/* The string SNS signs, written from the spec independently of ses.c. */
static GString *
sns_string(json_t *doc)
{
  const char *type = json_string_value(json_object_get(doc, "Type"));
  static const char *const note[] = {"Message",  "MessageId", "Subject", "Timestamp",
                                     "TopicArn", "Type",      NULL};
  static const char *const conf[] = {"Message", "MessageId", "SubscribeURL", "Timestamp",
                                     "Token",   "TopicArn",  "Type",         NULL};
  GString *s = g_string_new(NULL);
  for (const char *const *k = type && strcmp(type, "Notification") == 0 ? note : conf; *k; k++) {
    json_t *v = json_object_get(doc, *k);
    if (json_is_string(v))
      g_string_append_printf(s, "%s\n%s\n", *k, json_string_value(v));
  }
  return s;
}

static void
sns_sign(json_t *doc, EVP_PKEY *key)
{
  const char *ver = json_string_value(json_object_get(doc, "SignatureVersion"));
  GString *s = sns_string(doc);
  char *sig = sign_b64(key, ver && strcmp(ver, "1") == 0 ? EVP_sha1() : EVP_sha256(), s->str,
                       s->len, "", 0);
  json_object_set_new(doc, "Signature", json_string(sig));
  g_free(sig);
  g_string_free(s, TRUE);
}

/* ---- digests of a message ------------------------------------------------------------ */

typedef struct digest {
  char *subject, *from, *to, *cc, *text, *html;
  GPtrArray *atts; /* of "sha256 type disposition cid filename" */
} digest;

static void
digest_free(digest *d)
{
  if (!d)
    return;
  g_free(d->subject);
  g_free(d->from);
  g_free(d->to);
  g_free(d->cc);
  g_free(d->text);
  g_free(d->html);
  g_ptr_array_unref(d->atts);
  g_free(d);
}

/* CRLF -> LF, so line-end conventions of the decoders do not matter. */
static char *
lf(const char *s)
{
  if (!s)
    return NULL;
  GString *g = g_string_new(NULL);
  for (const char *p = s; *p; p++)
    if (!(p[0] == '\r' && p[1] == '\n'))
      g_string_append_c(g, *p);
  return g_string_free(g, FALSE);
}

static char *
addr_list(InternetAddressList *l)
{
  GString *g = g_string_new(NULL);
  for (int i = 0; l && i < internet_address_list_length(l); i++) {
    InternetAddress *a = internet_address_list_get_address(l, i);
    const char *name = internet_address_get_name(a);
    g_string_append_printf(g, "%s%s <%s>", i ? ", " : "", name ? name : "",
                           INTERNET_ADDRESS_IS_MAILBOX(a)
                               ? internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a))
                               : "group");
  }
  return g_string_free(g, FALSE);
}

/* An independent reading of RAW with GMime: the first text/plain and text/html parts
 * that are no attachments, every other leaf part as an attachment. */
static digest *
digest_gmime(GBytes *raw)
{
  digest *d = g_new0(digest, 1);
  d->atts = g_ptr_array_new_with_free_func(g_free);
  gsize len = 0;
  const char *data = g_bytes_get_data(raw, &len);
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
  GMimeParser *parser = g_mime_parser_new_with_stream(stream);
  GMimeMessage *m = g_mime_parser_construct_message(parser, NULL);
  g_object_unref(parser);
  g_object_unref(stream);
  CHECK(m != NULL);
  if (!m)
    return d;
  d->subject = g_strdup(g_mime_message_get_subject(m));
  d->from = addr_list(g_mime_message_get_from(m));
  d->to = addr_list(g_mime_message_get_to(m));
  d->cc = addr_list(g_mime_message_get_cc(m));
  GMimePartIter *iter = g_mime_part_iter_new((GMimeObject *)m);
  GPtrArray *leaves = g_ptr_array_new();
  GMimeObject *top = g_mime_message_get_mime_part(m);
  if (GMIME_IS_PART(top))
    g_ptr_array_add(leaves, top);
  do {
    GMimeObject *o = g_mime_part_iter_get_current(iter);
    if (o && GMIME_IS_PART(o))
      g_ptr_array_add(leaves, o);
  } while (g_mime_part_iter_next(iter));
  g_mime_part_iter_free(iter);
  for (guint i = 0; i < leaves->len; i++) {
    GMimePart *p = g_ptr_array_index(leaves, i);
    GMimeContentType *ct = g_mime_object_get_content_type((GMimeObject *)p);
    const char *disp = g_mime_object_get_disposition((GMimeObject *)p);
    const char *fn = g_mime_part_get_filename(p);
    int attach = (disp && g_ascii_strcasecmp(disp, "attachment") == 0) || fn;
    if (!attach && GMIME_IS_TEXT_PART(p) && g_mime_content_type_is_type(ct, "text", "plain") &&
        !d->text) {
      char *t = g_mime_text_part_get_text(GMIME_TEXT_PART(p));
      d->text = lf(t);
      g_free(t);
      continue;
    }
    if (!attach && GMIME_IS_TEXT_PART(p) && g_mime_content_type_is_type(ct, "text", "html") &&
        !d->html) {
      char *t = g_mime_text_part_get_text(GMIME_TEXT_PART(p));
      d->html = lf(t);
      g_free(t);
      continue;
    }
    GMimeStream *out = g_mime_stream_mem_new();
    GMimeDataWrapper *w = g_mime_part_get_content(p);
    if (w)
      g_mime_data_wrapper_write_to_stream(w, out);
    GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
    char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, bytes->data, bytes->len);
    char *mt = g_mime_content_type_get_mime_type(ct);
    const char *cid = g_mime_part_get_content_id(p);
    g_ptr_array_add(d->atts,
                    g_strdup_printf("%s %s %s %s %s", sum, mt, cid ? "inline" : "attachment",
                                    cid ? cid : "-", fn ? fn : "-"));
    g_free(mt);
    g_free(sum);
    g_object_unref(out);
  }
  g_ptr_array_unref(leaves);
  g_object_unref(m);
  return d;
}

/* The same through the pipeline: parse_message() and its ib_message. */
static digest *
digest_pipeline(const ib_inbound *in)
{
  digest *d = g_new0(digest, 1);
  d->atts = g_ptr_array_new_with_free_func(g_free);
  gsize len = 0;
  const char *data = g_bytes_get_data(in->raw, &len);
  ib_message *msg = NULL;
  CHECK_INT(parse_message(data, len, in, NULL, &msg), IB_OK);
  if (!msg)
    return d;
  d->subject = g_strdup(msg->subject);
  d->from = msg->from ? g_strdup_printf("%s <%s>", msg->from->name ? msg->from->name : "",
                                        msg->from->address ? msg->from->address : "")
                      : NULL;
  GString *to = g_string_new(NULL);
  for (guint i = 0; i < msg->to->len; i++) {
    ib_addr *a = g_ptr_array_index(msg->to, i);
    g_string_append_printf(to, "%s%s", i ? ", " : "", a->address ? a->address : "");
  }
  d->to = g_string_free(to, FALSE);
  d->text = lf(msg->text);
  d->html = lf(msg->html);
  for (guint i = 0; i < msg->attachments->len; i++) {
    ib_attachment *a = g_ptr_array_index(msg->attachments, i);
    g_ptr_array_add(d->atts,
                    g_strdup_printf("%s %s %s %s %s", a->sha256, a->content_type,
                                    a->disposition == IB_DISP_INLINE ? "inline" : "attachment",
                                    a->content_id ? a->content_id : "-",
                                    a->filename ? a->filename : "-"));
  }
  /* The adapter's metadata reached the message. */
  CHECK_STR(msg->provider, in->provider);
  CHECK_STR(msg->envelope_from, in->envelope_from);
  CHECK_INT(msg->envelope_to->len, in->envelope_to->len);
  ib_message_free(msg);
  return d;
}

static void
digest_compare(const digest *a, const digest *b, const char *what)
{
  int before = check_failures;
  CHECK_STR(a->subject, b->subject);
  CHECK_STR(a->from, b->from);
  CHECK_STR(a->to, b->to);
  if (a->cc || b->cc)
    CHECK_STR(a->cc, b->cc);
  CHECK_STR(a->text, b->text);
  CHECK_STR(a->html, b->html);
  CHECK_INT(a->atts->len, b->atts->len);
  for (guint i = 0; i < a->atts->len && i < b->atts->len; i++)
    CHECK_STR(g_ptr_array_index(a->atts, i), g_ptr_array_index(b->atts, i));
  if (check_failures != before)
    fprintf(stderr, "  (in %s)\n", what);
}

/* ---- fixture runner ------------------------------------------------------------------ */

static digest *source_gmime;    /* the source message, read by GMime */
static digest *source_pipeline; /* the source message, through parse_message() */
static GPtrArray *cfg_strings;  /* keeps config strings alive */

static const char *
jstr(json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

static void
check_nullable_str(json_t *want, const char *key, const char *got, const char *what)
{
  json_t *w = json_object_get(want, key);
  if (!w)
    return;
  int before = check_failures;
  CHECK_STR(got, json_is_null(w) ? NULL : json_string_value(w));
  if (check_failures != before)
    fprintf(stderr, "  (%s: %s)\n", what, key);
}

static void
check_inbound(json_t *want, const ib_inbound *in, const char *what)
{
  CHECK_STR(in->provider, jstr(want, "provider"));
  json_t *rb = json_object_get(want, "rebuilt");
  if (rb)
    CHECK_INT(in->rebuilt, json_is_true(rb));
  check_nullable_str(want, "envelope_from", in->envelope_from, what);
  check_nullable_str(want, "spf", in->spf, what);
  check_nullable_str(want, "dkim", in->dkim, what);
  check_nullable_str(want, "dmarc", in->dmarc, what);
  check_nullable_str(want, "event_id", in->event_id, what);
  json_t *to = json_object_get(want, "envelope_to");
  if (to) {
    CHECK_INT(in->envelope_to->len, json_array_size(to));
    for (guint i = 0; i < in->envelope_to->len && i < json_array_size(to); i++)
      CHECK_STR(g_ptr_array_index(in->envelope_to, i), json_string_value(json_array_get(to, i)));
  }
  json_t *score = json_object_get(want, "spam_score");
  if (score) {
    CHECK_INT(in->has_spam_score, !json_is_null(score));
    if (json_is_number(score))
      CHECK(in->spam_score == json_number_value(score));
  }
  json_t *warn = json_object_get(want, "warnings");
  if (warn) {
    CHECK_INT(in->warnings->len, json_array_size(warn));
    for (guint i = 0; i < in->warnings->len && i < json_array_size(warn); i++)
      CHECK_STR(g_ptr_array_index(in->warnings, i), json_string_value(json_array_get(warn, i)));
  }
  const char *raw_file = jstr(want, "raw_file");
  if (raw_file) {
    gsize len = 0, rlen = 0;
    char *expect = slurp(raw_file, &len);
    const char *raw = g_bytes_get_data(in->raw, &rlen);
    CHECK(rlen == len && memcmp(raw, expect, len) == 0);
    g_free(expect);
  }
  json_t *parsed = json_object_get(want, "parsed");
  if (parsed) {
    digest *d = digest_gmime(in->raw);
    CHECK_STR(d->subject, jstr(parsed, "subject"));
    CHECK(d->from && strstr(d->from, jstr(parsed, "from")));
    json_t *tos = json_object_get(parsed, "to");
    for (size_t i = 0; i < json_array_size(tos); i++)
      CHECK(d->to && strstr(d->to, json_string_value(json_array_get(tos, i))));
    CHECK_STR(d->text, jstr(parsed, "text"));
    CHECK_STR(d->html, jstr(parsed, "html"));
    json_t *atts = json_object_get(parsed, "attachments");
    CHECK_INT(d->atts->len, json_array_size(atts));
    for (guint i = 0; i < d->atts->len && i < json_array_size(atts); i++) {
      json_t *a = json_array_get(atts, i);
      const char *cid = jstr(a, "content_id");
      char *line =
          g_strdup_printf("%s %s %s %s %s", jstr(a, "sha256"), jstr(a, "content_type"),
                          cid ? "inline" : "attachment", cid ? cid : "-", jstr(a, "filename"));
      CHECK_STR(g_ptr_array_index(d->atts, i), line);
      g_free(line);
    }
    digest_free(d);
  }
}

static void
run_fixture(const char *dir, const char *case_name, const char *body_file)
{
  char *what = g_strdup_printf("%s/%s", dir, case_name);
  char *meta_rel = g_strdup_printf("%s/%s.meta.json", dir, case_name);
  char *body_rel = g_strdup_printf("%s/%s", dir, body_file);
  gsize mlen = 0, blen = 0;
  char *meta_text = slurp(meta_rel, &mlen);
  char *body = slurp(body_rel, &blen);
  json_error_t jerr;
  json_t *meta = json_loadb(meta_text, mlen, 0, &jerr);
  CHECK(meta != NULL);
  if (!meta) {
    fprintf(stderr, "%s: %s\n", meta_rel, jerr.text);
    goto done;
  }
  json_t *rq = json_object_get(meta, "request");
  GHashTable *headers = headers_new();
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(rq, "headers"), k, v)
      headers_set(headers, k, json_string_value(v));

  adapter_config cfg = {0};
  cert_src src = {.pem = pk.leaf_pem};
  json_t *jc = json_object_get(meta, "config");
  cfg.mailgun_signing_key = jstr(jc, "mailgun_signing_key");
  cfg.mandrill_key = jstr(jc, "mandrill_key");
  cfg.mandrill_url = jstr(jc, "mandrill_url");
  GPtrArray *topics = g_ptr_array_new();
  json_t *t;
  size_t i;
  json_array_foreach(json_object_get(jc, "ses_topic_arns"), i, t)
      g_ptr_array_add(topics, (gpointer)json_string_value(t));
  g_ptr_array_add(topics, NULL);
  cfg.ses_topic_arns = (const char *const *)topics->pdata;
  cfg.sns_cert = cert_cb;
  cfg.sns_cert_ctx = &src;

  const char *sign = jstr(meta, "sign");
  if (sign && strcmp(sign, "sns") == 0) {
    json_t *doc = json_loadb(body, blen, 0, &jerr);
    sns_sign(doc, pk.leaf_key);
    g_free(body);
    body = json_dumps(doc, 0);
    blen = strlen(body);
    json_decref(doc);
  }
  json_t *now = json_object_get(meta, "now");
  adapter_request req = {.method = jstr(rq, "method"),
                         .path = jstr(rq, "path"),
                         .content_type = jstr(rq, "content_type"),
                         .body = body,
                         .len = blen,
                         .header = lookup,
                         .header_ctx = headers,
                         .now = json_is_integer(now) ? json_integer_value(now) : 0};
  const char *provider = adapter_provider_for_path(req.path);
  CHECK_STR(provider, dir);
  adapter_result res;
  adapter_result_init(&res);
  ib_status st = adapter_run(provider, &req, &cfg, &res);
  json_t *want = json_object_get(meta, "expect");
  int before = check_failures;
  CHECK_INT(res.http_status, json_integer_value(json_object_get(want, "http_status")));
  if (jstr(want, "code"))
    CHECK_STR(res.code, jstr(want, "code"));
  if (jstr(want, "message_contains"))
    CHECK(res.message && strstr(res.message, jstr(want, "message_contains")));
  if (st != IB_OK && check_failures != before)
    fprintf(stderr, "  %s failed: %s: %s\n", what, res.code, res.message);
  check_nullable_str(want, "replay_token", res.replay_token, what);
  check_nullable_str(want, "subscribe_url", res.subscribe_url, what);
  if (json_object_get(want, "replay_expires")) {
    CHECK_INT(res.replay_timestamp, json_integer_value(json_object_get(want, "replay_timestamp")));
    CHECK_INT(res.replay_expires, json_integer_value(json_object_get(want, "replay_expires")));
  }
  json_t *inb = json_object_get(want, "inbound");
  if (inb) {
    CHECK_INT(res.inbound->len, json_array_size(inb));
    for (guint n = 0; n < res.inbound->len && n < json_array_size(inb); n++)
      check_inbound(json_array_get(inb, n), g_ptr_array_index(res.inbound, n), what);
  }
  if (json_is_true(json_object_get(meta, "equivalent")) && res.inbound->len > 0) {
    const ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    digest *g = digest_gmime(in->raw);
    digest *p = digest_pipeline(in);
    digest_compare(g, source_gmime, what);
    digest_compare(p, source_pipeline, what);
    digest_free(g);
    digest_free(p);
    if (in->rebuilt) {
      /* Deterministic: the same payload rebuilds to the same bytes. */
      adapter_result again;
      adapter_result_init(&again);
      CHECK_INT(adapter_run(provider, &req, &cfg, &again), IB_OK);
      CHECK(again.inbound->len == res.inbound->len &&
            g_bytes_equal(in->raw, ((ib_inbound *)g_ptr_array_index(again.inbound, 0))->raw));
      adapter_result_clear(&again);
    }
  }
  if (check_failures != before)
    fprintf(stderr, "  (fixture %s)\n", what);
  adapter_result_clear(&res);
  g_ptr_array_unref(topics);
  g_free(src.last_url);
  g_hash_table_unref(headers);
  json_decref(meta);
done:
  g_free(meta_text);
  g_free(body);
  g_free(meta_rel);
  g_free(body_rel);
  g_free(what);
}

static void
test_fixtures(void)
{
  static const char *const dirs[] = {"sendgrid", "mailgun", "postmark", "ses", "mandrill"};
  int count = 0;
  for (size_t d = 0; d < G_N_ELEMENTS(dirs); d++) {
    char *path = g_build_filename(src_dir, "fixtures", "providers", dirs[d], NULL);
    GDir *dir = g_dir_open(path, 0, NULL);
    CHECK(dir != NULL);
    const char *name;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    while (dir && (name = g_dir_read_name(dir)))
      g_ptr_array_add(names, g_strdup(name));
    g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
    for (guint i = 0; i < names->len; i++) {
      const char *meta = g_ptr_array_index(names, i);
      if (!g_str_has_suffix(meta, ".meta.json"))
        continue;
      char *case_name = g_strndup(meta, strlen(meta) - strlen(".meta.json"));
      char *prefix = g_strconcat(case_name, ".", NULL);
      const char *body = NULL;
      for (guint j = 0; j < names->len; j++) {
        const char *n = g_ptr_array_index(names, j);
        if (g_str_has_prefix(n, prefix) && !g_str_has_suffix(n, ".meta.json"))
          body = n;
      }
      CHECK(body != NULL);
      if (body) {
        run_fixture(dirs[d], case_name, body);
        count++;
      }
      g_free(prefix);
      g_free(case_name);
    }
    g_ptr_array_unref(names);
    if (dir)
      g_dir_close(dir);
    g_free(path);
  }
  CHECK(count >= 11);
}

/* The source message itself, and what the GMime reading of it must find. */
static void
test_source_message(void)
{
  gsize len = 0;
  char *raw = slurp("source/order-1234.mime", &len);
  GBytes *b = g_bytes_new_take(raw, len);
  ib_inbound *in = ib_inbound_new("raw");
  in->raw = g_bytes_ref(b);
  source_gmime = digest_gmime(b);
  source_pipeline = digest_pipeline(in);
  CHECK_STR(source_gmime->subject, SUBJECT);
  CHECK_STR(source_gmime->from, "J\xc3\xbcrgen M\xc3\xbcller <jurgen@example.org>");
  CHECK_STR(source_gmime->to, "Support <help@in.example.com>");
  CHECK_STR(source_gmime->cc, " <bob@example.net>");
  CHECK(source_gmime->text && g_str_has_suffix(source_gmime->text, "Gr\xc3\xbc\xc3\x9f"
                                                                   "e\nJ\xc3\xbcrgen"));
  CHECK(source_gmime->html && strstr(source_gmime->html, "<img src=\"cid:jam.1@example.org\""));
  CHECK_INT(source_gmime->atts->len, 2);
  if (source_gmime->atts->len == 2) {
    CHECK_STR(g_ptr_array_index(source_gmime->atts, 0),
              PNG_SHA256 " image/png inline jam.1@example.org jam.png");
    CHECK_STR(g_ptr_array_index(source_gmime->atts, 1),
              PDF_SHA256 " application/pdf attachment - Rechnung-M\xc3\xa4rz.pdf");
  }
  /* The pipeline (parsers/mime.c) reads the same message. */
  CHECK_STR(source_pipeline->subject, SUBJECT);
  CHECK_STR(source_pipeline->from, "J\xc3\xbcrgen M\xc3\xbcller <jurgen@example.org>");
  CHECK_STR(source_pipeline->to, "help@in.example.com");
  CHECK(source_pipeline->text && g_str_has_suffix(source_pipeline->text, "Gr\xc3\xbc\xc3\x9f"
                                                                         "e\nJ\xc3\xbcrgen"));
  CHECK(source_pipeline->html && strstr(source_pipeline->html, "cid:jam.1@example.org"));
  CHECK_INT(source_pipeline->atts->len, 2);
  if (source_pipeline->atts->len == 2) {
    CHECK_STR(g_ptr_array_index(source_pipeline->atts, 0),
              PNG_SHA256 " image/png inline jam.1@example.org jam.png");
    CHECK_STR(g_ptr_array_index(source_pipeline->atts, 1),
              PDF_SHA256 " application/pdf attachment - Rechnung-M\xc3\xa4rz.pdf");
  }
  ib_inbound_free(in);
  g_bytes_unref(b);
}

/* ---- Mailgun ------------------------------------------------------------------------ */

static char *
urlencode(const char *const *pairs)
{
  GString *g = g_string_new(NULL);
  for (const char *const *p = pairs; p[0]; p += 2) {
    char *n = g_uri_escape_string(p[0], NULL, FALSE);
    char *v = g_uri_escape_string(p[1], NULL, FALSE);
    g_string_append_printf(g, "%s%s=%s", g->len ? "&" : "", n, v);
    g_free(n);
    g_free(v);
  }
  return g_string_free(g, FALSE);
}

static ib_status
run_mailgun(const char *const *pairs, const adapter_config *cfg, gint64 now, adapter_result *res)
{
  char *body = urlencode(pairs);
  ib_status st = run("mailgun", "POST", "application/x-www-form-urlencoded", body, strlen(body),
                     NULL, cfg, now, res);
  g_free(body);
  return st;
}

#define MG_MIME                                                                                    \
  "From: Bob <bob@example.org>\r\nTo: help@mg.example.com\r\nSubject: Re: Order 1234\r\n"          \
  "Message-Id: <r1@example.org>\r\nX-Mailgun-Sscore: 1.5\r\nX-Mailgun-Spf: "                       \
  "Neutral\r\n\r\nThanks!\r\n"

static void
test_mailgun_auth(void)
{
  adapter_config cfg = {.mailgun_signing_key = MG_KEY};
  adapter_result res;
  const char *good[] = {"recipient", "help@mg.example.com",
                        "sender",    "bounce@example.org",
                        "body-mime", MG_MIME,
                        "timestamp", "1700000000",
                        "token",     MG_TOKEN,
                        "signature", MG_SIG,
                        NULL};
  /* Valid, at both ends of the 5-minute window. */
  gint64 nows[] = {1700000000, 1700000000 + 300, 1700000000 - 300};
  for (size_t i = 0; i < G_N_ELEMENTS(nows); i++) {
    CHECK_INT(run_mailgun(good, &cfg, nows[i], &res), IB_OK);
    CHECK_INT(res.http_status, 200);
    CHECK_INT(res.inbound->len, 1);
    CHECK_STR(res.replay_token, MG_TOKEN);
    CHECK_INT(res.replay_expires, 1700000300);
    if (res.inbound->len) {
      ib_inbound *in = g_ptr_array_index(res.inbound, 0);
      CHECK(in->has_spam_score && in->spam_score == 1.5);
      CHECK_STR(in->spf, "neutral");
      CHECK_STR(in->envelope_from, "bounce@example.org");
    }
    /* The server found the token in its table: the replay answer. */
    if (i == 0) {
      CHECK_INT(adapter_result_fail(&res, IB_ERR_CONFLICT, 0, "replayed_token", "token %s seen",
                                    res.replay_token),
                IB_ERR_CONFLICT);
      CHECK_FAIL(&res, IB_ERR_CONFLICT, 406, "replayed_token");
    }
    adapter_result_clear(&res);
  }
  /* Uppercase hex is the same signature. */
  char *upper = g_ascii_strup(MG_SIG, -1);
  const char *up[] = {"body-mime", MG_MIME,     "timestamp", "1700000000", "token",
                      MG_TOKEN,    "signature", upper,       NULL};
  CHECK_INT(run_mailgun(up, &cfg, 1700000000, &res), IB_OK);
  adapter_result_clear(&res);
  g_free(upper);
  /* Stale and future timestamps. */
  CHECK_INT(run_mailgun(good, &cfg, 1700000000 + 301, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 406, "mailgun_timestamp_stale");
  CHECK(res.replay_token == NULL);
  adapter_result_clear(&res);
  CHECK_INT(run_mailgun(good, &cfg, 1700000000 - 301, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 406, "mailgun_timestamp_stale");
  adapter_result_clear(&res);
  /* A configured skew. */
  adapter_config wide = cfg;
  wide.mailgun_max_skew = 3600;
  CHECK_INT(run_mailgun(good, &wide, 1700000000 + 3000, &res), IB_OK);
  CHECK_INT(res.replay_expires, 1700003600);
  adapter_result_clear(&res);
  /* Wrong signature, wrong key, changed timestamp. */
  const char *bad[] = {
      "body-mime", MG_MIME,
      "timestamp", "1700000000",
      "token",     MG_TOKEN,
      "signature", "64a05ffab5b32390ac9313603edc23b6770c27e56b345edf0a810ed3e81b8d0f",
      NULL};
  CHECK_INT(run_mailgun(bad, &cfg, 1700000000, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 406, "mailgun_bad_signature");
  adapter_result_clear(&res);
  adapter_config other = {.mailgun_signing_key = "another-key"};
  CHECK_INT(run_mailgun(good, &other, 1700000000, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 406, "mailgun_bad_signature");
  adapter_result_clear(&res);
  const char *moved[] = {"body-mime", MG_MIME,     "timestamp", "1700000001", "token",
                         MG_TOKEN,    "signature", MG_SIG,      NULL};
  CHECK_INT(run_mailgun(moved, &cfg, 1700000000, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 406, "mailgun_bad_signature");
  adapter_result_clear(&res);
  /* Missing pieces. */
  const char *nosig[] = {"body-mime", MG_MIME, "timestamp", "1700000000", "token", MG_TOKEN, NULL};
  CHECK_INT(run_mailgun(nosig, &cfg, 1700000000, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 406, "mailgun_signature_missing");
  adapter_result_clear(&res);
  const char *none[] = {"body-mime", MG_MIME, NULL};
  CHECK_INT(run_mailgun(none, &cfg, 1700000000, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 406, "mailgun_signature_missing");
  adapter_result_clear(&res);
  /* Without a key nothing is checked and no token is reported. */
  adapter_config open = {0};
  CHECK_INT(run_mailgun(none, &open, 0, &res), IB_OK);
  CHECK(res.replay_token == NULL);
  adapter_result_clear(&res);
  /* A mail header posing as Mailgun's token, with another value: refused, key or not. */
  const char *dup[] = {"body-mime", MG_MIME,      "token", "attacker-chosen",
                       "timestamp", "1700000000", "token", MG_TOKEN,
                       "signature", MG_SIG,       NULL};
  CHECK_INT(run_mailgun(dup, &cfg, 1700000000, &res), IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 406, "mailgun_conflicting_fields");
  adapter_result_clear(&res);
  CHECK_INT(run_mailgun(dup, &open, 1700000000, &res), IB_ERR_INVALID);
  adapter_result_clear(&res);
  const char *dupsig[] = {"body-mime", MG_MIME, "timestamp", "1700000000", "token", MG_TOKEN,
                          "signature", MG_SIG,  "signature", "00",         NULL};
  CHECK_INT(run_mailgun(dupsig, &cfg, 1700000000, &res), IB_ERR_INVALID);
  adapter_result_clear(&res);
  /* The same value twice (a header equal to the field) is harmless. */
  const char *same[] = {"body-mime", MG_MIME,  "timestamp", "1700000000", "timestamp", "1700000000",
                        "token",     MG_TOKEN, "signature", MG_SIG,       NULL};
  CHECK_INT(run_mailgun(same, &cfg, 1700000000, &res), IB_OK);
  adapter_result_clear(&res);
}

static void
test_mailgun_variants(void)
{
  adapter_config open = {0};
  adapter_result res;
  /* Parsed, urlencoded, without message-headers: From/To/Subject from the fields. */
  const char *plain[] = {"recipient",  "help@mg.example.com, sales@mg.example.com",
                         "sender",     "<>",
                         "from",       "Bob <bob@example.org>",
                         "subject",    "Re: Order 1234",
                         "body-plain", "Thanks!\n> old text",
                         NULL};
  CHECK_INT(run_mailgun(plain, &open, 0, &res), IB_OK);
  if (res.inbound->len) {
    ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    CHECK_INT(in->rebuilt, 1);
    CHECK_STR(in->envelope_from, "");
    CHECK_INT(in->envelope_to->len, 2);
    digest *d = digest_gmime(in->raw);
    CHECK_STR(d->subject, "Re: Order 1234");
    CHECK_STR(d->from, "Bob <bob@example.org>");
    CHECK_STR(d->to, " <help@mg.example.com>,  <sales@mg.example.com>");
    CHECK_STR(d->text, "Thanks!\n> old text");
    CHECK(d->html == NULL);
    digest_free(d);
  }
  adapter_result_clear(&res);
  /* A mail header named exactly "body-mime" cannot pose as the message. */
  const char *hostile[] = {"body-mime",
                           "From: evil@example.net\r\n\r\nspoofed\r\n",
                           "message-headers",
                           "[[\"From\",\"Bob <bob@example.org>\"],[\"Subject\",\"hi\"],"
                           "[\"body-mime\",\"From: evil@example.net\\r\\n\\r\\nspoofed\\r\\n\"]]",
                           "body-plain",
                           "real text",
                           NULL};
  CHECK_INT(run_mailgun(hostile, &open, 0, &res), IB_OK);
  if (res.inbound->len) {
    ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    CHECK_INT(in->rebuilt, 1);
    digest *d = digest_gmime(in->raw);
    CHECK_STR(d->text, "real text");
    CHECK_STR(d->from, "Bob <bob@example.org>");
    digest_free(d);
  }
  adapter_result_clear(&res);
  /* Mail headers named exactly "recipient" and "sender" are posted as fields too, on
   * either side of Mailgun's own: message-headers tells them apart, so they cannot
   * change the envelope. */
  const char *posing[] = {"recipient",
                          "evil@example.net",
                          "sender",
                          "evil@example.net",
                          "message-headers",
                          "[[\"From\",\"Bob <bob@example.org>\"],"
                          "[\"recipient\",\"evil@example.net\"],"
                          "[\"sender\",\"evil@example.net\"]]",
                          "body-plain",
                          "real text",
                          "recipient",
                          "help@mg.example.com",
                          "sender",
                          "bounce@example.org",
                          "sender",
                          "evil@example.net",
                          NULL};
  CHECK_INT(run_mailgun(posing, &open, 0, &res), IB_OK);
  if (res.inbound->len) {
    ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    CHECK_STR(in->envelope_from, "bounce@example.org");
    CHECK_INT(in->envelope_to->len, 1);
    if (in->envelope_to->len)
      CHECK_STR(g_ptr_array_index(in->envelope_to, 0), "help@mg.example.com");
  }
  adapter_result_clear(&res);
  /* A header with the same value as Mailgun's field changes nothing either. */
  const char *same[] = {"recipient",
                        "help@mg.example.com",
                        "message-headers",
                        "[[\"recipient\",\"help@mg.example.com\"]]",
                        "body-plain",
                        "t",
                        "recipient",
                        "help@mg.example.com",
                        NULL};
  CHECK_INT(run_mailgun(same, &open, 0, &res), IB_OK);
  if (res.inbound->len) {
    ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    CHECK_INT(in->envelope_to->len, 1);
  }
  adapter_result_clear(&res);
  /* Not mail at all. */
  const char *nothing[] = {"recipient", "help@mg.example.com", NULL};
  CHECK_INT(run_mailgun(nothing, &open, 0, &res), IB_ERR_NOT_MAIL);
  CHECK_FAIL(&res, IB_ERR_NOT_MAIL, 406, "mailgun_no_message");
  adapter_result_clear(&res);
  /* Wrong media type and method. */
  CHECK_INT(run("mailgun", "POST", "application/json", "{}", 2, NULL, &open, 0, &res),
            IB_ERR_UNSUPPORTED);
  CHECK_FAIL(&res, IB_ERR_UNSUPPORTED, 406, "unsupported_media_type");
  adapter_result_clear(&res);
  CHECK_INT(run("mailgun", "GET", NULL, "", 0, NULL, &open, 0, &res), IB_ERR_UNSUPPORTED);
  CHECK_FAIL(&res, IB_ERR_UNSUPPORTED, 405, "method_not_allowed");
  CHECK_STR(res.allow, "POST");
  adapter_result_clear(&res);
  /* A malformed multipart body. */
  static const char trunc[] =
      "--b\r\nContent-Disposition: form-data; name=\"body-mime\"\r\n\r\nFrom: a";
  CHECK_INT(run("mailgun", "POST", "multipart/form-data; boundary=b", trunc, sizeof trunc - 1, NULL,
                &open, 0, &res),
            IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 406, "bad_form");
  adapter_result_clear(&res);
}

/* ---- Mandrill ----------------------------------------------------------------------- */

#define MANDRILL_KEY "mandrill-webhook-key-XYZ"
#define MANDRILL_URL "https://inbound.example.com/hooks/mandrill"
#define MANDRILL_EVENTS                                                                            \
  "[{\"event\":\"inbound\",\"ts\":1700000000,\"msg\":{\"raw_msg\":\"From: "                        \
  "a@example.org\\r\\nTo: t@in.example.com\\r\\nSubject: hi\\r\\n\\r\\nbody\\r\\n\","              \
  "\"email\":\"t@in.example.com\"}}]"

static ib_status
run_mandrill(const char *events, const char *sig, const adapter_config *cfg, const char *url,
             adapter_result *res)
{
  const char *pairs[] = {"mandrill_events", events, NULL};
  char *body = urlencode(pairs);
  GHashTable *h = headers_new();
  if (sig)
    headers_set(h, "X-Mandrill-Signature", sig);
  adapter_request rq = {.method = "POST",
                        .path = "/inbound/mandrill",
                        .url = url,
                        .content_type = "application/x-www-form-urlencoded",
                        .body = body,
                        .len = strlen(body),
                        .header = lookup,
                        .header_ctx = h};
  adapter_result_init(res);
  ib_status st = adapter_run("mandrill", &rq, cfg, res);
  g_hash_table_unref(h);
  g_free(body);
  return st;
}

static void
test_mandrill(void)
{
  CHECK_INT(strlen(MANDRILL_EVENTS), 159);
  adapter_config cfg = {.mandrill_key = MANDRILL_KEY, .mandrill_url = MANDRILL_URL};
  adapter_result res;
  CHECK_INT(run_mandrill(MANDRILL_EVENTS, "RV7lJKUFzRT0U7sBDjQetfD09q0=", &cfg, NULL, &res), IB_OK);
  CHECK_INT(res.inbound->len, 1);
  if (res.inbound->len) {
    ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    gsize len = 0;
    const char *raw = g_bytes_get_data(in->raw, &len);
    static const char want[] =
        "From: a@example.org\r\nTo: t@in.example.com\r\nSubject: hi\r\n\r\nbody\r\n";
    CHECK(len == sizeof want - 1 && memcmp(raw, want, len) == 0);
    CHECK_INT(in->envelope_to->len, 1);
    CHECK(in->envelope_from == NULL);
  }
  adapter_result_clear(&res);
  /* The URL as the server saw it, when none is configured. */
  adapter_config byurl = {.mandrill_key = MANDRILL_KEY};
  CHECK_INT(
      run_mandrill(MANDRILL_EVENTS, "RV7lJKUFzRT0U7sBDjQetfD09q0=", &byurl, MANDRILL_URL, &res),
      IB_OK);
  adapter_result_clear(&res);
  CHECK_INT(run_mandrill(MANDRILL_EVENTS, "RV7lJKUFzRT0U7sBDjQetfD09q0=", &byurl, NULL, &res),
            IB_ERR_INTERNAL);
  CHECK_FAIL(&res, IB_ERR_INTERNAL, 500, "mandrill_url_missing");
  adapter_result_clear(&res);
  /* A trailing slash is another URL. */
  CHECK_INT(
      run_mandrill(MANDRILL_EVENTS, "RV7lJKUFzRT0U7sBDjQetfD09q0=", &byurl, MANDRILL_URL "/", &res),
      IB_ERR_AUTH);
  adapter_result_clear(&res);
  /* Wrong, truncated, missing signatures; changed payload. */
  CHECK_INT(run_mandrill(MANDRILL_EVENTS, "RV7lJKUFzRT0U7sBDjQetfD09q0", &cfg, NULL, &res),
            IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 401, "mandrill_bad_signature");
  adapter_result_clear(&res);
  CHECK_INT(run_mandrill(MANDRILL_EVENTS, "SV7lJKUFzRT0U7sBDjQetfD09q0=", &cfg, NULL, &res),
            IB_ERR_AUTH);
  adapter_result_clear(&res);
  CHECK_INT(run_mandrill(MANDRILL_EVENTS, NULL, &cfg, NULL, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 401, "mandrill_signature_missing");
  adapter_result_clear(&res);
  CHECK_INT(run_mandrill("[]", "RV7lJKUFzRT0U7sBDjQetfD09q0=", &cfg, NULL, &res), IB_ERR_AUTH);
  adapter_result_clear(&res);
  /* No key: not checked. A batch with only tracking events stores nothing. */
  adapter_config open = {0};
  CHECK_INT(run_mandrill("[{\"event\":\"open\",\"msg\":{}},{\"event\":\"click\"}]", NULL, &open,
                         NULL, &res),
            IB_OK);
  CHECK_INT(res.inbound->len, 0);
  CHECK(res.note && strstr(res.note, "no inbound event"));
  adapter_result_clear(&res);
  CHECK_INT(run_mandrill("[{\"event\":\"inbound\",\"msg\":{\"email\":\"t@in.example.com\"}}]", NULL,
                         &open, NULL, &res),
            IB_ERR_NOT_MAIL);
  CHECK_FAIL(&res, IB_ERR_NOT_MAIL, 400, "mandrill_event_invalid");
  adapter_result_clear(&res);
  CHECK_INT(run_mandrill("{\"event\":\"inbound\"}", NULL, &open, NULL, &res), IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "mandrill_bad_events");
  adapter_result_clear(&res);
  static const char twice[] = "mandrill_events=%5B%5D&mandrill_events=%5B%5D";
  CHECK_INT(run("mandrill", "POST", "application/x-www-form-urlencoded", twice, sizeof twice - 1,
                NULL, &open, 0, &res),
            IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "mandrill_no_events");
  adapter_result_clear(&res);
  /* Health checks and other methods. */
  CHECK_INT(run("mandrill", "HEAD", NULL, NULL, 0, NULL, &cfg, 0, &res), IB_OK);
  CHECK_INT(res.health_check, 1);
  CHECK_INT(res.http_status, 200);
  adapter_result_clear(&res);
  CHECK_INT(run("mandrill", "GET", NULL, NULL, 0, NULL, &cfg, 0, &res), IB_OK);
  CHECK_INT(res.health_check, 1);
  adapter_result_clear(&res);
  CHECK_INT(run("mandrill", "PUT", NULL, NULL, 0, NULL, &cfg, 0, &res), IB_ERR_UNSUPPORTED);
  CHECK_FAIL(&res, IB_ERR_UNSUPPORTED, 405, "method_not_allowed");
  CHECK_STR(res.allow, "POST, HEAD, GET");
  adapter_result_clear(&res);
}

/* ---- SendGrid ----------------------------------------------------------------------- */

static void
test_sendgrid_signature(void)
{
  gsize len = 0;
  char *body = slurp("sendgrid/raw.multipart", &len);
  EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
  char *pub = spki_b64(key);
  const char *ts = "1736157602";
  char *sig = sign_b64(key, EVP_sha256(), ts, strlen(ts), body, len);
  char *wrong = sign_b64(other, EVP_sha256(), ts, strlen(ts), body, len);
  const char *ct = "multipart/form-data; boundary=xYzZY";
  adapter_config cfg = {.sendgrid_verification_key = pub};
  adapter_result res;
  GHashTable *h = headers_new();
  headers_set(h, "X-Twilio-Email-Event-Webhook-Signature", sig);
  headers_set(h, "X-Twilio-Email-Event-Webhook-Timestamp", ts);
  /* Valid, even long after the timestamp unless a maximum age is configured. */
  CHECK_INT(run("sendgrid", "POST", ct, body, len, h, &cfg, SNS_NOW + 86400, &res), IB_OK);
  CHECK_INT(res.inbound->len, 1);
  adapter_result_clear(&res);
  adapter_config aged = cfg;
  aged.sendgrid_max_age = 300;
  CHECK_INT(run("sendgrid", "POST", ct, body, len, h, &aged, SNS_NOW + 100, &res), IB_OK);
  adapter_result_clear(&res);
  CHECK_INT(run("sendgrid", "POST", ct, body, len, h, &aged, SNS_NOW + 301, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 401, "sendgrid_signature_stale");
  adapter_result_clear(&res);
  /* Tampered body, other timestamp, other key. */
  body[len / 2] ^= 1;
  CHECK_INT(run("sendgrid", "POST", ct, body, len, h, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 401, "sendgrid_bad_signature");
  adapter_result_clear(&res);
  body[len / 2] ^= 1;
  headers_set(h, "X-Twilio-Email-Event-Webhook-Timestamp", "1736157603");
  CHECK_INT(run("sendgrid", "POST", ct, body, len, h, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  adapter_result_clear(&res);
  headers_set(h, "X-Twilio-Email-Event-Webhook-Timestamp", ts);
  headers_set(h, "X-Twilio-Email-Event-Webhook-Signature", wrong);
  CHECK_INT(run("sendgrid", "POST", ct, body, len, h, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 401, "sendgrid_bad_signature");
  adapter_result_clear(&res);
  headers_set(h, "X-Twilio-Email-Event-Webhook-Signature", "not base64!");
  CHECK_INT(run("sendgrid", "POST", ct, body, len, h, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  adapter_result_clear(&res);
  /* Missing headers. */
  CHECK_INT(run("sendgrid", "POST", ct, body, len, NULL, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 401, "sendgrid_signature_missing");
  adapter_result_clear(&res);
  /* A key that is not one. */
  adapter_config broken = {.sendgrid_verification_key = "bm90IGEga2V5"};
  headers_set(h, "X-Twilio-Email-Event-Webhook-Signature", sig);
  CHECK_INT(run("sendgrid", "POST", ct, body, len, h, &broken, SNS_NOW, &res), IB_ERR_INTERNAL);
  CHECK_FAIL(&res, IB_ERR_INTERNAL, 500, "sendgrid_key_invalid");
  adapter_result_clear(&res);
  g_hash_table_unref(h);
  g_free(sig);
  g_free(wrong);
  g_free(pub);
  EVP_PKEY_free(key);
  EVP_PKEY_free(other);
  g_free(body);
}

static void
test_sendgrid_misc(void)
{
  adapter_config open = {0};
  adapter_result res;
  static const char neither[] =
      "--b\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nx@example.com\r\n--b--\r\n";
  CHECK_INT(run("sendgrid", "POST", "multipart/form-data; boundary=b", neither, sizeof neither - 1,
                NULL, &open, 0, &res),
            IB_ERR_NOT_MAIL);
  CHECK_FAIL(&res, IB_ERR_NOT_MAIL, 400, "sendgrid_no_message");
  adapter_result_clear(&res);
  CHECK_INT(run("sendgrid", "POST", "application/json", "{}", 2, NULL, &open, 0, &res),
            IB_ERR_UNSUPPORTED);
  CHECK_FAIL(&res, IB_ERR_UNSUPPORTED, 415, "unsupported_media_type");
  adapter_result_clear(&res);
  /* Parsed mode with an unknown charset, a broken envelope and two DKIM entries. */
  static const char odd[] =
      "--b\r\nContent-Disposition: form-data; name=\"headers\"\r\n\r\n"
      "From: a@example.org\nSubject: x\n\r\n"
      "--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nGr\xfc\xdf"
      "e\r\n"
      "--b\r\nContent-Disposition: form-data; "
      "name=\"charsets\"\r\n\r\n{\"text\":\"x-no-such-charset\"}\r\n"
      "--b\r\nContent-Disposition: form-data; name=\"envelope\"\r\n\r\n{\"to\":[\r\n"
      "--b\r\nContent-Disposition: form-data; name=\"dkim\"\r\n\r\n{@a.example : fail, @b.example "
      ": pass}\r\n"
      "--b\r\nContent-Disposition: form-data; name=\"SPF\"\r\n\r\nsoftfail\r\n"
      "--b--\r\n";
  CHECK_INT(run("sendgrid", "POST", "multipart/form-data; boundary=b", odd, sizeof odd - 1, NULL,
                &open, 0, &res),
            IB_OK);
  if (res.inbound->len) {
    ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    CHECK_STR(in->dkim, "pass");
    CHECK_STR(in->spf, "softfail");
    CHECK_INT(in->envelope_to->len, 0);
    CHECK_INT(in->warnings->len, 2);
    if (in->warnings->len == 2) {
      CHECK(g_str_has_prefix(g_ptr_array_index(in->warnings, 0), "envelope_invalid: "));
      CHECK_STR(g_ptr_array_index(in->warnings, 1),
                "charset_fallback: text is not valid x-no-such-charset; decoded as UTF-8 with "
                "replacement characters");
    }
    digest *d = digest_gmime(in->raw);
    CHECK_STR(d->text, "Gr\xef\xbf\xbd\xef\xbf\xbd"
                       "e");
    CHECK_STR(d->subject, "x");
    digest_free(d);
  }
  adapter_result_clear(&res);
}

/* ---- Postmark ----------------------------------------------------------------------- */

static void
test_postmark_misc(void)
{
  adapter_config open = {0};
  adapter_result res;
  CHECK_INT(run("postmark", "POST", "application/json", "{\"From\":", 8, NULL, &open, 0, &res),
            IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 403, "postmark_bad_json");
  adapter_result_clear(&res);
  CHECK_INT(run("postmark", "POST", "application/json", "[]", 2, NULL, &open, 0, &res),
            IB_ERR_INVALID);
  adapter_result_clear(&res);
  CHECK_INT(run("postmark", "POST", "application/json", "{\"MessageID\":\"x\"}", 17, NULL, &open, 0,
                &res),
            IB_ERR_NOT_MAIL);
  CHECK_FAIL(&res, IB_ERR_NOT_MAIL, 403, "postmark_no_message");
  adapter_result_clear(&res);
  CHECK_INT(run("postmark", "POST", "application/jsonx", "{}", 2, NULL, &open, 0, &res),
            IB_ERR_UNSUPPORTED);
  adapter_result_clear(&res);
  CHECK_INT(run("postmark", "POST", "text/xml", "<x/>", 4, NULL, &open, 0, &res),
            IB_ERR_UNSUPPORTED);
  CHECK_FAIL(&res, IB_ERR_UNSUPPORTED, 403, "unsupported_media_type");
  adapter_result_clear(&res);
  /* RawEmail with a NUL byte (\u0000) is kept byte for byte. */
  static const char nul[] =
      "{\"RawEmail\":\"Subject: a\\r\\n\\r\\nx\\u0000y\\r\\n\",\"MessageID\":\"m1\"}";
  CHECK_INT(run("postmark", "POST", "application/json", nul, sizeof nul - 1, NULL, &open, 0, &res),
            IB_OK);
  if (res.inbound->len) {
    gsize len = 0;
    const char *raw =
        g_bytes_get_data(((ib_inbound *)g_ptr_array_index(res.inbound, 0))->raw, &len);
    static const char want[] = "Subject: a\r\n\r\nx\0y\r\n";
    CHECK(len == sizeof want - 1 && memcmp(raw, want, len) == 0);
  }
  adapter_result_clear(&res);
}

/* ---- SES / SNS ---------------------------------------------------------------------- */

static json_t *
sns_fixture(const char *rel)
{
  gsize len = 0;
  char *text = slurp(rel, &len);
  json_t *doc = json_loadb(text, len, 0, NULL);
  g_free(text);
  return doc;
}

/* The SES JSON inside a Notification's Message, as a new object to modify. */
static json_t *
ses_note(json_t *doc)
{
  return json_loads(json_string_value(json_object_get(doc, "Message")), 0, NULL);
}

static void
set_note(json_t *doc, json_t *note)
{
  char *s = json_dumps(note, JSON_COMPACT);
  json_object_set_new(doc, "Message", json_string(s));
  free(s);
  json_decref(note);
}

static ib_status
run_sns(json_t *doc, const adapter_config *cfg, gint64 now, adapter_result *res)
{
  char *body = json_dumps(doc, 0);
  CHECK(body != NULL);
  ib_status st = run("ses", "POST", "text/plain; charset=UTF-8", body, body ? strlen(body) : 0,
                     NULL, cfg, now, res);
  free(body);
  return st;
}

static void
test_sns(void)
{
  const char *topics[] = {TOPIC, NULL};
  cert_src src = {.pem = pk.leaf_pem};
  adapter_config cfg = {.ses_topic_arns = topics, .sns_cert = cert_cb, .sns_cert_ctx = &src};
  adapter_result res;
  json_t *doc = sns_fixture("ses/received.json");

  /* v2 and v1 signatures. */
  sns_sign(doc, pk.leaf_key);
  CHECK_INT(run_sns(doc, &cfg, SNS_NOW, &res), IB_OK);
  CHECK_INT(res.inbound->len, 1);
  CHECK_STR(src.last_url, json_string_value(json_object_get(doc, "SigningCertURL")));
  adapter_result_clear(&res);
  json_object_set_new(doc, "SignatureVersion", json_string("1"));
  CHECK_INT(run_sns(doc, &cfg, SNS_NOW, &res), IB_ERR_AUTH); /* v2 signature claimed as v1 */
  CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_bad_signature");
  adapter_result_clear(&res);
  sns_sign(doc, pk.leaf_key);
  CHECK_INT(run_sns(doc, &cfg, SNS_NOW, &res), IB_OK);
  adapter_result_clear(&res);
  json_object_set_new(doc, "SignatureVersion", json_string("3"));
  CHECK_INT(run_sns(doc, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_signature_version");
  adapter_result_clear(&res);
  json_object_set_new(doc, "SignatureVersion", json_string("2"));
  sns_sign(doc, pk.leaf_key);

  /* Signed by another key; a signed field changed afterwards; no signature. */
  json_t *forged = json_deep_copy(doc);
  sns_sign(forged, pk.other_key);
  CHECK_INT(run_sns(forged, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_bad_signature");
  adapter_result_clear(&res);
  json_decref(forged);
  json_t *changed = json_deep_copy(doc);
  json_object_set_new(changed, "Timestamp", json_string("2025-01-06T10:00:03.000Z"));
  CHECK_INT(run_sns(changed, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_bad_signature");
  adapter_result_clear(&res);
  json_object_set_new(changed, "Signature", json_string(""));
  CHECK_INT(run_sns(changed, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_signature_missing");
  adapter_result_clear(&res);
  json_decref(changed);

  /* SigningCertURL host checks (the URL is not signed, so only the check refuses). */
  static const char *const refused[] = {
      "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
      "https://sns.us-east-1.amazonaws.com.example.net/SimpleNotificationService-1.pem",
      "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.txt",
      "https://sqs.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
      "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
      "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
      "https://sns..amazonaws.com/x.pem",
      "https://sns.us_east.amazonaws.com/x.pem",
      "https://evilsns.us-east-1.amazonaws.com/x.pem",
      "not a url",
  };
  for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
    json_t *d = json_deep_copy(doc);
    json_object_set_new(d, "SigningCertURL", json_string(refused[i]));
    int calls = src.calls;
    CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_ERR_AUTH);
    CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_cert_url_refused");
    CHECK_INT(src.calls, calls); /* never fetched */
    adapter_result_clear(&res);
    json_decref(d);
  }
  static const char *const accepted[] = {
      "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem",
      "https://SNS.eu-west-1.AmazonAWS.com:443/SimpleNotificationService-1.pem",
  };
  for (size_t i = 0; i < G_N_ELEMENTS(accepted); i++) {
    json_t *d = json_deep_copy(doc);
    json_object_set_new(d, "SigningCertURL", json_string(accepted[i]));
    CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_OK);
    adapter_result_clear(&res);
    json_decref(d);
  }

  /* Certificate validity, chain, availability. */
  CHECK_INT(run_sns(doc, &cfg, pk.not_after + 1, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_cert_expired");
  adapter_result_clear(&res);
  CHECK_INT(run_sns(doc, &cfg, SNS_NOW - 7200, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_cert_expired");
  adapter_result_clear(&res);
  adapter_config chained = cfg;
  chained.sns_ca_pem = pk.ca_pem;
  CHECK_INT(run_sns(doc, &chained, SNS_NOW, &res), IB_OK);
  adapter_result_clear(&res);
  chained.sns_ca_pem = pk.other_ca_pem;
  CHECK_INT(run_sns(doc, &chained, SNS_NOW, &res), IB_ERR_AUTH);
  CHECK_FAIL(&res, IB_ERR_AUTH, 403, "sns_cert_untrusted");
  adapter_result_clear(&res);
  cert_src down = {.pem = NULL};
  adapter_config nofetch = cfg;
  nofetch.sns_cert_ctx = &down;
  CHECK_INT(run_sns(doc, &nofetch, SNS_NOW, &res), IB_ERR_IO);
  CHECK_FAIL(&res, IB_ERR_IO, 503, "sns_cert_unavailable");
  CHECK(strstr(res.message, "connection refused") != NULL);
  adapter_result_clear(&res);
  g_free(down.last_url);
  cert_src junk = {.pem = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"};
  nofetch.sns_cert_ctx = &junk;
  CHECK_INT(run_sns(doc, &nofetch, SNS_NOW, &res), IB_ERR_IO);
  adapter_result_clear(&res);
  g_free(junk.last_url);
  nofetch.sns_cert = NULL;
  CHECK_INT(run_sns(doc, &nofetch, SNS_NOW, &res), IB_ERR_INTERNAL);
  CHECK_FAIL(&res, IB_ERR_INTERNAL, 500, "sns_cert_source_missing");
  adapter_result_clear(&res);

  /* Topics: checked after the signature. */
  const char *others[] = {"arn:aws:sns:us-east-1:111122223333:other", NULL};
  adapter_config wrong_topic = cfg;
  wrong_topic.ses_topic_arns = others;
  CHECK_INT(run_sns(doc, &wrong_topic, SNS_NOW, &res), IB_ERR_FORBIDDEN);
  CHECK_FAIL(&res, IB_ERR_FORBIDDEN, 400, "ses_topic_not_allowed");
  adapter_result_clear(&res);
  wrong_topic.ses_topic_arns = NULL;
  CHECK_INT(run_sns(doc, &wrong_topic, SNS_NOW, &res), IB_ERR_FORBIDDEN);
  adapter_result_clear(&res);

  /* Header/body disagreement. */
  GHashTable *h = headers_new();
  headers_set(h, "x-amz-sns-message-type", "SubscriptionConfirmation");
  char *body = json_dumps(doc, 0);
  CHECK_INT(run("ses", "POST", "text/plain", body, strlen(body), h, &cfg, SNS_NOW, &res),
            IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "sns_header_mismatch");
  adapter_result_clear(&res);
  free(body);
  g_hash_table_unref(h);

  /* Notification contents: UTF-8 content, S3 action, other types, bad base64. */
  json_t *note = ses_note(doc);
  json_object_set_new(json_object_get(json_object_get(note, "receipt"), "action"), "encoding",
                      json_string("UTF8"));
  json_object_set_new(note, "content",
                      json_string("From: a@example.org\r\nSubject: \xc3\xbc\r\n\r\nx\r\n"));
  json_object_set_new(json_object_get(json_object_get(note, "receipt"), "spamVerdict"), "status",
                      json_string("FAIL"));
  json_t *d = json_deep_copy(doc);
  set_note(d, note);
  sns_sign(d, pk.leaf_key);
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_OK);
  if (res.inbound->len) {
    ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    gsize len = 0;
    const char *raw = g_bytes_get_data(in->raw, &len);
    static const char want[] = "From: a@example.org\r\nSubject: \xc3\xbc\r\n\r\nx\r\n";
    CHECK(len == sizeof want - 1 && memcmp(raw, want, len) == 0);
    CHECK_INT(in->warnings->len, 1);
    CHECK(in->has_spam_score && in->spam_score == 10.0);
  }
  adapter_result_clear(&res);
  json_decref(d);

  note = ses_note(doc);
  json_object_del(note, "content");
  json_t *action = json_object_get(json_object_get(note, "receipt"), "action");
  json_object_set_new(action, "type", json_string("S3"));
  json_object_set_new(action, "bucketName", json_string("inbound-mail"));
  json_object_set_new(action, "objectKey", json_string("o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"));
  d = json_deep_copy(doc);
  set_note(d, note);
  sns_sign(d, pk.leaf_key);
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_ERR_UNSUPPORTED);
  CHECK_FAIL(&res, IB_ERR_UNSUPPORTED, 400, "ses_s3_action_unsupported");
  adapter_result_clear(&res);
  json_decref(d);

  note = json_pack("{s:s}", "notificationType", "AmazonSnsSubscriptionSucceeded");
  d = json_deep_copy(doc);
  set_note(d, note);
  sns_sign(d, pk.leaf_key);
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_OK);
  CHECK_INT(res.inbound->len, 0);
  CHECK(res.note && strstr(res.note, "AmazonSnsSubscriptionSucceeded"));
  adapter_result_clear(&res);
  json_decref(d);

  note = ses_note(doc);
  json_object_set_new(note, "content", json_string("***not base64***"));
  d = json_deep_copy(doc);
  set_note(d, note);
  sns_sign(d, pk.leaf_key);
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "ses_bad_content");
  adapter_result_clear(&res);
  json_decref(d);

  d = json_deep_copy(doc);
  json_object_set_new(d, "Message", json_string("not json"));
  sns_sign(d, pk.leaf_key);
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "ses_bad_notification");
  adapter_result_clear(&res);
  json_decref(d);

  /* Envelope fields. */
  d = json_deep_copy(doc);
  json_object_del(d, "TopicArn");
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "sns_field_missing");
  adapter_result_clear(&res);
  json_decref(d);
  d = json_deep_copy(doc);
  json_object_set_new(d, "Type", json_string("Surprise"));
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "sns_unknown_type");
  adapter_result_clear(&res);
  json_decref(d);
  CHECK_INT(run("ses", "POST", "text/plain", "[1]", 3, NULL, &cfg, SNS_NOW, &res), IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "sns_bad_json");
  adapter_result_clear(&res);
  json_decref(doc);

  /* Subscription handshake: refused topic (token in the note), bad SubscribeURL,
   * unsubscribe confirmation. */
  doc = sns_fixture("ses/subscribe.json");
  sns_sign(doc, pk.leaf_key);
  wrong_topic.ses_topic_arns = others;
  CHECK_INT(run_sns(doc, &wrong_topic, SNS_NOW, &res), IB_ERR_FORBIDDEN);
  CHECK_FAIL(&res, IB_ERR_FORBIDDEN, 400, "ses_topic_not_allowed");
  CHECK(res.subscribe_url == NULL);
  CHECK(res.note && strstr(res.note, json_string_value(json_object_get(doc, "Token"))));
  adapter_result_clear(&res);
  d = json_deep_copy(doc);
  json_object_set_new(d, "SubscribeURL",
                      json_string("https://attacker.example.net/?Action=ConfirmSubscription"));
  sns_sign(d, pk.leaf_key);
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_ERR_INVALID);
  CHECK_FAIL(&res, IB_ERR_INVALID, 400, "sns_subscribe_url_refused");
  CHECK(res.subscribe_url == NULL);
  adapter_result_clear(&res);
  json_decref(d);
  d = json_deep_copy(doc);
  json_object_set_new(d, "Type", json_string("UnsubscribeConfirmation"));
  sns_sign(d, pk.leaf_key);
  CHECK_INT(run_sns(d, &cfg, SNS_NOW, &res), IB_OK);
  CHECK_INT(res.inbound->len, 0);
  CHECK(res.subscribe_url == NULL);
  CHECK(res.note && strstr(res.note, "unsubscribe"));
  adapter_result_clear(&res);
  json_decref(d);
  json_decref(doc);
  g_free(src.last_url);
}

/* ---- routing, statuses, raw ---------------------------------------------------------- */

static void
test_routing_and_statuses(void)
{
  CHECK_STR(adapter_provider_for_path("/inbound/sendgrid"), "sendgrid");
  CHECK_STR(adapter_provider_for_path("/inbound/sendgrid/"), "sendgrid");
  CHECK_STR(adapter_provider_for_path("/inbound/mailgun"), "mailgun");
  CHECK_STR(adapter_provider_for_path("/inbound/mailgun/mime"), "mailgun");
  CHECK_STR(adapter_provider_for_path("/inbound/postmark"), "postmark");
  CHECK_STR(adapter_provider_for_path("/inbound/ses"), "ses");
  CHECK_STR(adapter_provider_for_path("/inbound/mandrill"), "mandrill");
  CHECK_STR(adapter_provider_for_path("/inbound/raw"), "raw");
  CHECK(adapter_provider_for_path("/inbound/") == NULL);
  CHECK(adapter_provider_for_path("/inbound/mailgunx") == NULL);
  CHECK(adapter_provider_for_path("/inbound/postmark/mime") == NULL);
  CHECK(adapter_provider_for_path("/api/tickets") == NULL);
  CHECK(adapter_provider_for_path(NULL) == NULL);

  CHECK_INT(adapter_http_status("mailgun", IB_ERR_AUTH), 406);
  CHECK_INT(adapter_http_status("mailgun", IB_ERR_INVALID), 406);
  CHECK_INT(adapter_http_status("mailgun", IB_ERR_STORAGE), 503);
  CHECK_INT(adapter_http_status("mailgun", IB_ERR_LIMIT), 413);
  CHECK_INT(adapter_http_status("postmark", IB_ERR_AUTH), 401);
  CHECK_INT(adapter_http_status("postmark", IB_ERR_INVALID), 403);
  CHECK_INT(adapter_http_status("postmark", IB_ERR_STORAGE), 503);
  CHECK_INT(adapter_http_status("sendgrid", IB_ERR_AUTH), 401);
  CHECK_INT(adapter_http_status("sendgrid", IB_ERR_UNSUPPORTED), 415);
  CHECK_INT(adapter_http_status("mandrill", IB_ERR_AUTH), 401);
  CHECK_INT(adapter_http_status("ses", IB_ERR_AUTH), 403);
  CHECK_INT(adapter_http_status("ses", IB_ERR_INVALID), 400);
  CHECK_INT(adapter_http_status("raw", IB_ERR_NOT_MAIL), 400);
  CHECK_INT(adapter_http_status("raw", IB_ERR_INTERNAL), 500);
  CHECK_INT(adapter_http_status(NULL, IB_OK), 200);

  adapter_result res;
  CHECK_INT(run("nope", "POST", NULL, "", 0, NULL, NULL, 0, &res), IB_ERR_NOT_FOUND);
  CHECK_FAIL(&res, IB_ERR_NOT_FOUND, 404, "unknown_provider");
  json_t *err = adapter_error_json(&res);
  CHECK_STR(json_string_value(json_object_get(json_object_get(err, "error"), "code")),
            "unknown_provider");
  CHECK(json_string_value(json_object_get(json_object_get(err, "error"), "message")) != NULL);
  json_decref(err);
  adapter_result_clear(&res);

  /* Form caps from the configuration. */
  form_limits lim;
  form_limits_default(&lim);
  lim.max_fields = 2;
  adapter_config capped = {.form_limits = &lim};
  static const char three[] = "a=1&b=2&c=3";
  CHECK_INT(run("mandrill", "POST", "application/x-www-form-urlencoded", three, sizeof three - 1,
                NULL, &capped, 0, &res),
            IB_ERR_LIMIT);
  CHECK_FAIL(&res, IB_ERR_LIMIT, 413, "form_limit");
  adapter_result_clear(&res);
}

static void
test_raw(void)
{
  static const char msg[] = "X-Original-To: help@in.example.com\r\nFrom: a@example.org\r\n"
                            "Subject: hi\r\n\r\nX-Original-To: not@this.one\r\n";
  GBytes *body = g_bytes_new_static(msg, sizeof msg - 1);
  adapter_request rq = {.method = "POST",
                        .content_type = "message/rfc822",
                        .body = msg,
                        .len = sizeof msg - 1,
                        .body_bytes = body};
  adapter_result res;
  adapter_result_init(&res);
  CHECK_INT(adapter_run("raw", &rq, NULL, &res), IB_OK);
  if (res.inbound->len) {
    ib_inbound *in = g_ptr_array_index(res.inbound, 0);
    gsize len = 0;
    CHECK(g_bytes_get_data(in->raw, &len) == (gconstpointer)msg); /* shared, not copied */
    CHECK_INT(len, sizeof msg - 1);
    CHECK_INT(in->envelope_to->len, 1);
    if (in->envelope_to->len)
      CHECK_STR(g_ptr_array_index(in->envelope_to, 0), "help@in.example.com");
  }
  adapter_result_clear(&res);
  rq.content_type = NULL; /* curl --data-binary without -H: accepted as well */
  CHECK_INT(adapter_run("raw", &rq, NULL, &res), IB_OK);
  adapter_result_clear(&res);
  rq.content_type = "application/x-www-form-urlencoded";
  CHECK_INT(adapter_run("raw", &rq, NULL, &res), IB_ERR_UNSUPPORTED);
  CHECK_FAIL(&res, IB_ERR_UNSUPPORTED, 415, "unsupported_media_type");
  adapter_result_clear(&res);
  rq.content_type = "text/plain; charset=utf-8";
  rq.len = 0;
  CHECK_INT(adapter_run("raw", &rq, NULL, &res), IB_ERR_NOT_MAIL);
  CHECK_FAIL(&res, IB_ERR_NOT_MAIL, 400, "empty_body");
  adapter_result_clear(&res);
  g_bytes_unref(body);
}

/* ---- robustness ---------------------------------------------------------------------- */

/* A failed result is complete; a successful one holds parseable messages. */
static void
check_result_sane(ib_status st, const adapter_result *res)
{
  if (st != IB_OK) {
    CHECK(res->http_status >= 400 && res->http_status < 600);
    CHECK(res->code != NULL);
    CHECK(res->message && g_utf8_validate(res->message, -1, NULL));
    CHECK_INT(res->inbound->len, 0);
    return;
  }
  CHECK_INT(res->http_status, 200);
  for (guint i = 0; i < res->inbound->len; i++) {
    const ib_inbound *in = g_ptr_array_index(res->inbound, i);
    CHECK(in->raw != NULL);
    gsize len = 0;
    const char *data = g_bytes_get_data(in->raw, &len);
    ib_message *msg = NULL;
    if (parse_message(data, len, in, NULL, &msg) == IB_OK) {
      json_t *doc = ib_message_to_json(msg);
      CHECK(doc != NULL);
      json_decref(doc);
    }
    ib_message_free(msg);
  }
}

static void
mutate(GRand *r, char *buf, size_t *len)
{
  int kind = g_rand_int_range(r, 0, 4);
  if (kind == 0 && *len > 0) {
    *len = (size_t)g_rand_int_range(r, 0, (gint32)*len); /* truncate */
    return;
  }
  int n = g_rand_int_range(r, 1, 6);
  static const char alphabet[] = "\0\r\n-\"\\{}[]:,=&%;<>\xff\xc3";
  for (int i = 0; i<n && * len> 0; i++) {
    size_t at = (size_t)g_rand_int_range(r, 0, (gint32)*len);
    buf[at] = kind == 1 ? (char)g_rand_int_range(r, 0, 256)
                        : alphabet[g_rand_int_range(r, 0, (gint32)sizeof alphabet - 1)];
  }
}

/* Mutated provider bodies through every adapter: statuses, never crashes (the
 * sanitizer build checks memory). SES bodies are re-signed after the mutation of their
 * SES notification so the parsing behind the signature check is reached too. */
static void
test_mutations(void)
{
  static const struct {
    const char *provider, *file, *ctype;
  } cases[] = {
      {"sendgrid", "sendgrid/raw.multipart", "multipart/form-data; boundary=xYzZY"},
      {"sendgrid", "sendgrid/parsed.multipart", "multipart/form-data; boundary=xYzZY"},
      {"mailgun", "mailgun/parsed.multipart",
       "multipart/form-data; boundary=2b6ebbc1e0c14b6f9d3c1d1e9a5f0c7e"},
      {"mailgun", "mailgun/mime.urlencoded", "application/x-www-form-urlencoded"},
      {"postmark", "postmark/parsed.json", "application/json"},
      {"postmark", "postmark/raw.json", "application/json"},
      {"postmark", "postmark/send-test.json", "application/json"},
      {"mandrill", "mandrill/batch.urlencoded", "application/x-www-form-urlencoded"},
  };
  GRand *r = g_rand_new_with_seed(20250106);
  adapter_config open = {0};
  int ok = 0, failed = 0;
  for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
    gsize len = 0;
    char *orig = slurp(cases[c].file, &len);
    for (int i = 0; i < 150; i++) {
      char *buf = g_memdup2(orig, len);
      size_t n = len;
      mutate(r, buf, &n);
      adapter_result res;
      ib_status st = run(cases[c].provider, "POST", cases[c].ctype, buf, n, NULL, &open, 0, &res);
      check_result_sane(st, &res);
      st == IB_OK ? ok++ : failed++;
      adapter_result_clear(&res);
      g_free(buf);
    }
    g_free(orig);
  }
  /* SES: mutate the notification, sign, run. */
  const char *topics[] = {TOPIC, NULL};
  cert_src src = {.pem = pk.leaf_pem};
  adapter_config cfg = {.ses_topic_arns = topics, .sns_cert = cert_cb, .sns_cert_ctx = &src};
  json_t *doc = sns_fixture("ses/received.json");
  const char *msg = json_string_value(json_object_get(doc, "Message"));
  for (int i = 0; i < 150; i++) {
    char *buf = g_strdup(msg);
    size_t n = strlen(buf);
    mutate(r, buf, &n);
    json_t *d = json_deep_copy(doc);
    char *valid = g_utf8_make_valid(buf, (gssize)n); /* SNS strings are JSON text */
    json_object_set_new(d, "Message", json_string(valid));
    g_free(valid);
    sns_sign(d, pk.leaf_key);
    adapter_result res;
    ib_status st = run_sns(d, &cfg, SNS_NOW, &res);
    check_result_sane(st, &res);
    st == IB_OK ? ok++ : failed++;
    adapter_result_clear(&res);
    json_decref(d);
    g_free(buf);
  }
  json_decref(doc);
  g_free(src.last_url);
  g_rand_free(r);
  /* Both outcomes must have happened, or the mutations test nothing. */
  CHECK(ok > 100);
  CHECK(failed > 100);
  fprintf(stderr, "mutations: %d accepted, %d refused\n", ok, failed);
}

int
main(void)
{
  const char *env = g_getenv("INBOXD_SOURCE_DIR");
  src_dir = g_strdup(env ? env : ".");
  mime_init();
  pki_init();
  cfg_strings = g_ptr_array_new_with_free_func(g_free);
  test_source_message();
  test_fixtures();
  test_mailgun_auth();
  test_mailgun_variants();
  test_mandrill();
  test_sendgrid_signature();
  test_sendgrid_misc();
  test_postmark_misc();
  test_sns();
  test_routing_and_statuses();
  test_raw();
  test_mutations();
  digest_free(source_gmime);
  digest_free(source_pipeline);
  g_ptr_array_unref(cfg_strings);
  pki_free();
  g_free(src_dir);
  mime_shutdown();
  return check_done();
}
