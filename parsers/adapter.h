/* adapter.h: the provider ingress adapters (SendGrid, Mailgun, Postmark, Amazon SES via
 * SNS, Mandrill, raw MIME). Each one turns one complete HTTP request body into zero or
 * more ib_inbound (raw RFC 5322 bytes + envelope, auth verdicts, spam score, event id),
 * or into an error that already carries the HTTP status this provider must see. The
 * wire formats, signatures and status semantics are in shared/spec/ingress-formats.md.
 *
 * Adapters are pure: no HTTP library, no database, no network, no globals, no clock
 * except through REQ->now. Everything that needs those is handed back to the server as
 * side-channel data in adapter_result (a Mailgun token to remember, an SNS SubscribeURL
 * to visit) or asked of it through a callback (the SNS signing certificate).
 * mime_init() must have run (GMime formats addresses in rebuilt messages).
 *
 * Wiring in the server (the whole provider-specific part of it):
 *
 *   const char *provider = adapter_provider_for_path(path);    // NULL: 404
 *   adapter_request rq = {.method = method, .path = path, .url = full_url,
 *                         .content_type = ctype, .body = buf, .len = len,
 *                         .body_bytes = spool_gbytes_or_NULL,
 *                         .header = lookup_mhd_header, .header_ctx = connection,
 *                         .now = time(NULL)};
 *   adapter_result res;
 *   adapter_result_init(&res);
 *   if (adapter_run(provider, &rq, &cfg, &res) != IB_OK) {
 *     reply_json(res.http_status, adapter_error_json(&res));      // + "Allow: res.allow"
 *   } else if (res.health_check || res.inbound->len == 0) {
 *     if (res.subscribe_url) http_get(res.subscribe_url);         // SNS handshake
 *     log(res.note); reply 200 {"status": "ok"} (or {"accepted": 0});
 *   } else {
 *     BEGIN;
 *     if (res.replay_token && token_seen_or_remember(provider, res.replay_token,
 *                                                    res.replay_expires)) {
 *       ROLLBACK;
 *       adapter_result_fail(&res, IB_ERR_CONFLICT, 0, "replayed_token", "...");
 *       reply_json(res.http_status, adapter_error_json(&res));
 *     } else {
 *       for each ib_inbound *in of res.inbound:
 *         parse_message(g_bytes_get_data(in->raw, &n), n, in, &limits, &msg); store(msg);
 *       COMMIT; reply 200 {...}
 *       // storage trouble: adapter_http_status(provider, IB_ERR_STORAGE), i.e. 503
 *     }
 *   }
 *   adapter_result_clear(&res);
 *
 * Basic auth (--ingress-user/--ingress-password) and the body-size cap stay in the
 * server; it can still answer them with adapter_http_status(provider, IB_ERR_AUTH /
 * IB_ERR_LIMIT) so each provider sees the code that makes it retry or stop as wanted. */
#ifndef INBOXD_ADAPTER_H
#define INBOXD_ADAPTER_H

#include <glib.h>
#include <jansson.h>

#include "form.h"
#include "inbound.h"
#include "status.h"

/* Look up request header NAME (case-insensitive, as libmicrohttpd's
 * MHD_lookup_connection_value does). Returns the value, borrowed for the duration of the
 * adapter call, or NULL when absent. */
typedef const char *(*adapter_header_fn)(void *ctx, const char *name);

typedef struct adapter_request {
  const char *method;       /* "POST", "HEAD", "GET", ...; NULL means "POST" */
  const char *path;         /* request path without the query string; may be NULL */
  const char *url;          /* the full URL as the provider called it, or NULL. Only used
                               by Mandrill when no mandrill_url is configured */
  const char *content_type; /* the Content-Type header value, or NULL */
  const char *body;         /* the complete request body, LEN bytes (may hold NUL) */
  size_t len;
  GBytes *body_bytes;       /* optional: the same bytes as a GBytes (e.g. wrapping the
                               mmapped spool). When set, raw messages that are a verbatim
                               slice of the body reference it instead of being copied */
  adapter_header_fn header; /* may be NULL: no headers */
  void *header_ctx;
  gint64 now; /* unix seconds for timestamp windows and certificate
                 validity; 0: the real clock */
} adapter_request;

/* Return the PEM text of the certificate at URL (an SNS SigningCertURL that already
 * passed the host check), optionally followed by intermediate certificates. The server
 * implements it with libcurl (TLS verified) and a cache by URL, or returns a pinned
 * --sns-cert-file. Returns a new string (g_free), or NULL with *ERROR_OUT set to a new
 * sentence (g_free) when the certificate cannot be had now (the adapter answers 5xx so
 * SNS retries). */
typedef char *(*adapter_cert_fn)(void *ctx, const char *url, char **error_out);

typedef struct adapter_config {
  /* Mailgun: HMAC-SHA256 key; NULL: signatures are not checked (and no token is
   * reported for replay checks). */
  const char *mailgun_signing_key;
  gint64 mailgun_max_skew; /* seconds between timestamp and now; 0: 300 */
  /* SendGrid: base64 DER SubjectPublicKeyInfo of the ECDSA P-256 key of the security
   * policy; NULL: signatures are not checked. */
  const char *sendgrid_verification_key;
  gint64 sendgrid_max_age; /* seconds; 0: the signed timestamp's age is not
                              limited (SendGrid's retries may keep it) */
  /* Mandrill: webhook key and the webhook URL exactly as entered at Mandrill. */
  const char *mandrill_key;
  const char *mandrill_url;
  /* SES/SNS: accepted topic ARNs (NULL-terminated; NULL: none, every SNS post is refused
   * after its signature check), the certificate source (required: SNS signatures are
   * always verified) and optionally the PEM of CAs the certificate must chain to (NULL:
   * trust rests on the https fetch from the amazonaws.com host, or on the pinned file). */
  const char *const *ses_topic_arns;
  adapter_cert_fn sns_cert;
  void *sns_cert_ctx;
  const char *sns_ca_pem;
  /* Form decoding caps; NULL: form_limits_default(). */
  const form_limits *form_limits;
  /* Deepest nesting of a JSON payload (Postmark, Mandrill events, SNS/SES); 0: 64. */
  size_t max_json_depth;
} adapter_config;

typedef struct adapter_result {
  const char *provider; /* static: the provider the request was run through */
  GPtrArray *inbound;   /* of ib_inbound* (owned): the messages to store, in order.
                           Several for a Mandrill batch; empty for a handshake, a health
                           check or a notification that carries no mail (see note) */

  /* Failure (adapter_run returned != IB_OK). */
  ib_status status;
  unsigned http_status; /* the status to answer with; 200 on success */
  const char *code;     /* static snake_case error code, e.g. "mailgun_bad_signature" */
  char *message;        /* new: one human sentence (valid UTF-8), for the JSON error */
  const char *allow;    /* static: the Allow header value with a 405, else NULL */

  /* Side channel: what the server must do besides storing the messages. */
  char *replay_token; /* Mailgun: a signed token; within the storing transaction,
                         refuse the request if this token was seen before, else
                         remember it until replay_expires (unix seconds) */
  gint64 replay_timestamp;
  gint64 replay_expires;
  char *subscribe_url; /* SNS SubscriptionConfirmation of an allowed topic, signature
                          verified and host checked: GET it (TLS verified), then 200 */
  int health_check;    /* Mandrill HEAD/GET: answer 200 without reading a body */
  char *note;          /* a lowercase sentence for the log when a 200 carries no message
                          (unsubscribe confirmation, non-"Received" SES notification,
                          batch without inbound events), or beside a failure the operator
                          can act on (the token of a refused SNS subscription); else NULL */
} adapter_result;

/* Prepare RES for adapter_run(): empty, provider NULL, http_status 200. */
void adapter_result_init(adapter_result *res);

/* Release what RES owns. RES is left zeroed; adapter_run() takes it again as it is. */
void adapter_result_clear(adapter_result *res);

/* Run the adapter named PROVIDER ("sendgrid", "mailgun", "postmark", "ses", "mandrill",
 * "raw") over REQ. Returns IB_OK with RES->inbound filled (possibly empty, see
 * adapter_result), or a failure status with RES->http_status, RES->code and
 * RES->message set: IB_ERR_NOT_FOUND for an unknown provider (404), IB_ERR_UNSUPPORTED
 * (wrong method or media type, an unsupported variant), IB_ERR_INVALID (malformed
 * body), IB_ERR_NOT_MAIL (no message in it), IB_ERR_AUTH (signature missing, wrong or
 * stale), IB_ERR_FORBIDDEN (SNS topic not allowed), IB_ERR_LIMIT (form caps),
 * IB_ERR_IO (SNS certificate not available now: 503, retry) or IB_ERR_INTERNAL
 * (configuration missing: 500). REQ and CFG are borrowed for the call; RES must have been
 * initialized (or cleared) and is released with adapter_result_clear(). */
ib_status adapter_run(const char *provider, const adapter_request *req, const adapter_config *cfg,
                      adapter_result *res);

/* The provider that serves PATH: "/inbound/<provider>" with an optional trailing slash,
 * and "/inbound/mailgun/mime" (Mailgun posts body-mime only to URLs ending in "mime").
 * Returns a static string, or NULL when PATH is no ingress route. */
const char *adapter_provider_for_path(const char *path);

/* The HTTP status to answer PROVIDER with for a failure ST (spec section 11): what makes
 * that provider stop (Mailgun 406, Postmark 403) for requests that can never succeed,
 * 401 for bad credentials where a retry may help, 413, 415, and 503 for IB_ERR_STORAGE
 * (retry later). IB_OK gives 200. */
unsigned adapter_http_status(const char *provider, ib_status st);

/* Turn RES into a failure: set status ST, HTTP status HTTP (0: adapter_http_status() for
 * RES->provider), CODE (a static snake_case string) and the printf-style message.
 * Messages already stored in RES->inbound are dropped. Returns ST, so an adapter can
 * "return adapter_result_fail(...)". The server uses it too (e.g. for a replayed token). */
ib_status adapter_result_fail(adapter_result *res, ib_status st, unsigned http, const char *code,
                              const char *fmt, ...) G_GNUC_PRINTF(5, 6);

/* {"error": {"code": ..., "message": ...}} for a failed RES (DESIGN.md). New reference. */
json_t *adapter_error_json(const adapter_result *res);

/* The provider entry points behind adapter_run(); same contract. */
ib_status sendgrid_adapt(const adapter_request *req, const adapter_config *cfg,
                         adapter_result *res);
ib_status mailgun_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res);
ib_status postmark_adapt(const adapter_request *req, const adapter_config *cfg,
                         adapter_result *res);
ib_status ses_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res);
ib_status mandrill_adapt(const adapter_request *req, const adapter_config *cfg,
                         adapter_result *res);
ib_status raw_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res);

#endif
