/* ses.c: Amazon SES receipt notifications delivered by SNS over HTTPS (spec section 5).
 * Every SNS message is verified (signature v1 SHA1withRSA or v2 SHA256withRSA over the
 * canonical string, with the certificate from an amazonaws.com SigningCertURL, valid
 * now) before its topic is checked against the allow-list. A SubscriptionConfirmation
 * of an allowed topic hands the SubscribeURL to the server; a Notification carries the
 * SES "Received" JSON whose "content" is the message. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <string.h>

#include "adapter.h"
#include "adapter_impl.h"

/* Spam verdicts carry no score; FAIL is mapped above SpamAssassin's default threshold
 * (5.0) and PASS to 0 so spam_score keeps one meaning across providers. */
#define SES_SPAM_FAIL_SCORE 10.0

/* Is HOST sns.<region>.amazonaws.com or sns.<region>.amazonaws.com.cn? */
static int
sns_host_ok(const char *host)
{
  if (!host)
    return 0;
  char *h = g_ascii_strdown(host, -1);
  int ok = 0;
  const char *suffix = NULL;
  if (g_str_has_suffix(h, ".amazonaws.com"))
    suffix = ".amazonaws.com";
  else if (g_str_has_suffix(h, ".amazonaws.com.cn"))
    suffix = ".amazonaws.com.cn";
  if (suffix && g_str_has_prefix(h, "sns.")) {
    size_t start = 4, end = strlen(h) - strlen(suffix);
    ok = end > start;
    for (size_t i = start; ok && i < end; i++)
      ok = g_ascii_isalnum(h[i]) || h[i] == '-';
  }
  g_free(h);
  return ok;
}

/* Is URL an https URL on an SNS host (port 443, no user info), with a path ending in
 * ".pem" when WANT_PEM? */
static int
sns_url_ok(const char *url, int want_pem)
{
  GUri *uri = url ? g_uri_parse(url, G_URI_FLAGS_NONE, NULL) : NULL;
  int ok = uri && g_ascii_strcasecmp(g_uri_get_scheme(uri), "https") == 0 &&
           !g_uri_get_userinfo(uri) && (g_uri_get_port(uri) == -1 || g_uri_get_port(uri) == 443) &&
           sns_host_ok(g_uri_get_host(uri)) &&
           (!want_pem || g_str_has_suffix(g_uri_get_path(uri), ".pem"));
  if (uri)
    g_uri_unref(uri);
  return ok;
}

/* The string SNS signs (spec 5.2): "key\nvalue\n" for each key present, in order. */
static GString *
string_to_sign(json_t *doc, int notification)
{
  static const char *const note_keys[] = {"Message",  "MessageId", "Subject", "Timestamp",
                                          "TopicArn", "Type",      NULL};
  static const char *const conf_keys[] = {"Message", "MessageId", "SubscribeURL", "Timestamp",
                                          "Token",   "TopicArn",  "Type",         NULL};
  GString *s = g_string_new(NULL);
  for (const char *const *k = notification ? note_keys : conf_keys; *k; k++) {
    size_t len = 0;
    const char *v = adapter_json_str(doc, *k, &len);
    if (!v)
      continue;
    g_string_append(s, *k);
    g_string_append_c(s, '\n');
    g_string_append_len(s, v, (gssize)len);
    g_string_append_c(s, '\n');
  }
  return s;
}

/* Load every certificate of PEM; the first is returned, the others are appended to
 * *CHAIN_OUT (new stack, sk_X509_pop_free). NULL when PEM holds none. */
static X509 *
load_certs(const char *pem, STACK_OF(X509) * *chain_out)
{
  BIO *bio = BIO_new_mem_buf(pem, -1);
  X509 *leaf = NULL, *c;
  *chain_out = sk_X509_new_null();
  while (bio && (c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    if (!leaf)
      leaf = c;
    else
      sk_X509_push(*chain_out, c);
  }
  BIO_free(bio);
  return leaf;
}

static int
chain_ok(X509 *leaf, STACK_OF(X509) * chain, const char *ca_pem, gint64 now)
{
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  STACK_OF(X509) *cas = NULL;
  X509 *first = load_certs(ca_pem, &cas);
  int ok = 0;
  if (!store || !ctx || !first)
    goto done;
  X509_STORE_add_cert(store, first);
  for (int i = 0; i < sk_X509_num(cas); i++)
    X509_STORE_add_cert(store, sk_X509_value(cas, i));
  if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1)
    goto done;
  X509_STORE_CTX_set_time(ctx, 0, (time_t)now);
  ok = X509_verify_cert(ctx) == 1;
done:
  X509_free(first);
  sk_X509_pop_free(cas, X509_free);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return ok;
}

static ib_status
verify_signature(const adapter_request *req, const adapter_config *cfg, json_t *doc,
                 int notification, adapter_result *res)
{
  ib_status st = IB_OK;
  char *pem = NULL, *why = NULL;
  guchar *sig = NULL;
  X509 *leaf = NULL;
  STACK_OF(X509) *chain = NULL;
  EVP_MD_CTX *md = NULL;
  GString *text = NULL;
  const char *version = adapter_json_str(doc, "SignatureVersion", NULL);
  const EVP_MD *alg = !version                    ? NULL
                      : strcmp(version, "1") == 0 ? EVP_sha1()
                      : strcmp(version, "2") == 0 ? EVP_sha256()
                                                  : NULL;
  if (!alg) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sns_signature_version",
                             "SignatureVersion must be \"1\" or \"2\"");
    goto done;
  }
  size_t sig_b64_len = 0;
  const char *sig_b64 = adapter_json_str(doc, "Signature", &sig_b64_len);
  gsize sig_len = 0;
  sig = sig_b64 ? adapter_base64_decode(sig_b64, sig_b64_len, &sig_len) : NULL;
  if (!sig || sig_len == 0) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sns_signature_missing",
                             "the SNS message has no base64 Signature");
    goto done;
  }
  const char *url = adapter_json_str(doc, "SigningCertURL", NULL);
  if (!sns_url_ok(url, 1)) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sns_cert_url_refused",
                             "SigningCertURL must be an https URL of a .pem file on "
                             "sns.<region>.amazonaws.com");
    goto done;
  }
  if (!cfg->sns_cert) {
    st = adapter_result_fail(res, IB_ERR_INTERNAL, 500, "sns_cert_source_missing",
                             "no SNS certificate source is configured");
    goto done;
  }
  pem = cfg->sns_cert(cfg->sns_cert_ctx, url, &why);
  leaf = pem ? load_certs(pem, &chain) : NULL;
  if (!leaf) {
    st = adapter_result_fail(res, IB_ERR_IO, 0, "sns_cert_unavailable",
                             "cannot get the SNS signing certificate: %s",
                             why ? why : "no PEM certificate in the answer");
    goto done;
  }
  time_t now = (time_t)adapter_now(req);
  if (X509_cmp_time(X509_get0_notBefore(leaf), &now) >= 0 ||
      X509_cmp_time(X509_get0_notAfter(leaf), &now) <= 0) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sns_cert_expired",
                             "the SNS signing certificate is not valid now");
    goto done;
  }
  if (cfg->sns_ca_pem && !chain_ok(leaf, chain, cfg->sns_ca_pem, now)) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sns_cert_untrusted",
                             "the SNS signing certificate does not chain to the configured CA");
    goto done;
  }
  EVP_PKEY *pkey = X509_get0_pubkey(leaf);
  text = string_to_sign(doc, notification);
  md = EVP_MD_CTX_new();
  if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || !md ||
      EVP_DigestVerifyInit(md, NULL, alg, NULL, pkey) != 1 ||
      EVP_DigestVerifyUpdate(md, text->str, text->len) != 1 ||
      EVP_DigestVerifyFinal(md, sig, sig_len) != 1) {
    st = adapter_result_fail(res, IB_ERR_AUTH, 0, "sns_bad_signature",
                             "the SNS signature (version %s) does not verify", version);
    goto done;
  }
done:
  if (text)
    g_string_free(text, TRUE);
  EVP_MD_CTX_free(md);
  X509_free(leaf);
  sk_X509_pop_free(chain, X509_free);
  g_free(sig);
  g_free(pem);
  g_free(why);
  return st;
}

static int
topic_allowed(const adapter_config *cfg, const char *arn)
{
  for (const char *const *t = cfg->ses_topic_arns; t && *t; t++)
    if (strcmp(*t, arn) == 0)
      return 1;
  return 0;
}

/* The "status" of receipt.<name>, lowercased, or NULL. */
static char *
verdict(json_t *receipt, const char *name)
{
  return adapter_verdict(adapter_json_str(json_object_get(receipt, name), "status", NULL));
}

/* The SES "Received" notification in MSG (the SNS Message string). */
static ib_status
received(const char *msg, size_t msg_len, adapter_result *res)
{
  ib_status st = IB_OK;
  char *why = NULL;
  ib_inbound *in = NULL;
  json_t *n = adapter_json_load(msg, msg_len, &why);
  if (!json_is_object(n)) {
    st = adapter_result_fail(res, IB_ERR_INVALID, 0, "ses_bad_notification",
                             "the SNS Message is not an SES JSON notification: %s",
                             why ? why : "wrong type");
    goto done;
  }
  const char *type = adapter_json_str(n, "notificationType", NULL);
  if (!type || strcmp(type, "Received") != 0) {
    /* Rule-setup tests and misrouted notifications: acknowledged so SNS stops. */
    res->note = g_strdup_printf("ses notification of type \"%s\" carries no mail; ignored",
                                type ? type : "none");
    goto done;
  }
  json_t *mail = json_object_get(n, "mail"), *receipt = json_object_get(n, "receipt");
  json_t *action = json_object_get(receipt, "action");
  size_t clen = 0;
  const char *content = adapter_json_str(n, "content", &clen);
  if (!content) {
    const char *atype = adapter_json_str(action, "type", NULL);
    if (atype && strcmp(atype, "S3") == 0)
      st = adapter_result_fail(res, IB_ERR_UNSUPPORTED, 400, "ses_s3_action_unsupported",
                               "this notification is from an S3 receipt action and does not "
                               "carry the message; use an SNS action with Base64 encoding");
    else
      st = adapter_result_fail(res, IB_ERR_NOT_MAIL, 0, "ses_no_content",
                               "the SES notification has no content");
    goto done;
  }
  in = ib_inbound_new("ses");
  const char *enc = adapter_json_str(action, "encoding", NULL);
  if (enc && g_ascii_strcasecmp(enc, "BASE64") == 0) {
    gsize len = 0;
    guchar *raw = adapter_base64_decode(content, clen, &len);
    if (!raw || len == 0) {
      g_free(raw);
      st = adapter_result_fail(res, IB_ERR_INVALID, 0, "ses_bad_content",
                               "the SES content is not valid base64");
      goto done;
    }
    in->raw = g_bytes_new_take(raw, len);
  } else {
    in->raw = g_bytes_new(content, clen);
    ib_inbound_warn(in, "ses_utf8_content",
                    "SES delivered the message with UTF-8 encoding; 8-bit bytes that were "
                    "not UTF-8 may have been altered (set the SNS action to Base64)");
  }
  const char *source = adapter_json_str(mail, "source", NULL);
  in->envelope_from = source ? adapter_addr_spec(source) : NULL;
  if (source && !in->envelope_from)
    in->envelope_from = g_strdup(""); /* "" is the null sender */
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(receipt, "recipients"), i, r)
  {
    if (json_is_string(r))
      adapter_add_recipients(in, json_string_value(r));
  }
  in->spf = verdict(receipt, "spfVerdict");
  in->dkim = verdict(receipt, "dkimVerdict");
  in->dmarc = verdict(receipt, "dmarcVerdict");
  char *spam = verdict(receipt, "spamVerdict");
  if (spam && (strcmp(spam, "pass") == 0 || strcmp(spam, "fail") == 0)) {
    in->has_spam_score = 1;
    in->spam_score = strcmp(spam, "fail") == 0 ? SES_SPAM_FAIL_SCORE : 0.0;
  }
  g_free(spam);
  const char *id = adapter_json_str(mail, "messageId", NULL);
  in->event_id = id && id[0] ? g_utf8_make_valid(id, -1) : NULL;
  g_ptr_array_add(res->inbound, in);
  in = NULL;
done:
  ib_inbound_free(in);
  json_decref(n);
  g_free(why);
  return st;
}

/* Header NAME, when sent, must equal the body's KEY. */
static int
header_matches(const adapter_request *req, const char *name, json_t *doc, const char *key)
{
  const char *h = adapter_header(req, name);
  const char *v = adapter_json_str(doc, key, NULL);
  return !h || (v && strcmp(h, v) == 0);
}

ib_status
ses_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res)
{
  ib_status st = IB_OK;
  char *why = NULL;
  json_t *doc = NULL;
  if (!adapter_is_post(req)) {
    res->allow = "POST";
    return adapter_result_fail(res, IB_ERR_UNSUPPORTED, 405, "method_not_allowed",
                               "SNS posts with POST");
  }
  /* SNS sends JSON as text/plain; the media type is not checked. */
  doc = adapter_json_load_depth(req->body, req->len, cfg->max_json_depth, &why);
  if (!json_is_object(doc)) {
    st = adapter_result_fail(res, IB_ERR_INVALID, 0, "sns_bad_json",
                             "the body is not an SNS JSON message: %s", why ? why : "wrong type");
    goto done;
  }
  static const char *const required[] = {"Type",      "MessageId",     "TopicArn",
                                         "Message",   "Timestamp",     "SignatureVersion",
                                         "Signature", "SigningCertURL"};
  for (size_t i = 0; i < G_N_ELEMENTS(required); i++) {
    if (!adapter_json_str(doc, required[i], NULL)) {
      st = adapter_result_fail(res, IB_ERR_INVALID, 0, "sns_field_missing",
                               "the SNS message has no string \"%s\"", required[i]);
      goto done;
    }
  }
  const char *type = adapter_json_str(doc, "Type", NULL);
  int notification = strcmp(type, "Notification") == 0;
  int subscribe = strcmp(type, "SubscriptionConfirmation") == 0;
  if (!notification && !subscribe && strcmp(type, "UnsubscribeConfirmation") != 0) {
    st = adapter_result_fail(res, IB_ERR_INVALID, 0, "sns_unknown_type",
                             "unknown SNS message Type \"%s\"", type);
    goto done;
  }
  if (!header_matches(req, "x-amz-sns-message-type", doc, "Type") ||
      !header_matches(req, "x-amz-sns-message-id", doc, "MessageId") ||
      !header_matches(req, "x-amz-sns-topic-arn", doc, "TopicArn")) {
    st = adapter_result_fail(res, IB_ERR_INVALID, 0, "sns_header_mismatch",
                             "the x-amz-sns-* headers do not match the message body");
    goto done;
  }
  if ((st = verify_signature(req, cfg, doc, notification, res)) != IB_OK)
    goto done;
  const char *topic = adapter_json_str(doc, "TopicArn", NULL);
  if (!topic_allowed(cfg, topic)) {
    const char *token = adapter_json_str(doc, "Token", NULL);
    if (subscribe && token)
      res->note = g_strdup_printf("sns subscription of topic %s refused; to confirm it by hand "
                                  "use token %s",
                                  topic, token);
    st = adapter_result_fail(res, IB_ERR_FORBIDDEN, 400, "ses_topic_not_allowed",
                             "SNS topic %s is not an allowed --ses-topic-arn", topic);
    goto done;
  }
  if (subscribe) {
    const char *url = adapter_json_str(doc, "SubscribeURL", NULL);
    if (!sns_url_ok(url, 0)) {
      st = adapter_result_fail(res, IB_ERR_INVALID, 0, "sns_subscribe_url_refused",
                               "SubscribeURL must be an https URL on sns.<region>.amazonaws.com");
      goto done;
    }
    res->subscribe_url = g_strdup(url);
    res->note = g_strdup_printf("sns subscription confirmation for topic %s", topic);
  } else if (!notification) {
    res->note = g_strdup_printf("sns unsubscribe confirmation for topic %s", topic);
  } else {
    size_t len = 0;
    const char *msg = adapter_json_str(doc, "Message", &len);
    st = received(msg, len, res);
  }
done:
  json_decref(doc);
  g_free(why);
  return st;
}
