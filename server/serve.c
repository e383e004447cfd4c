/* serve.c: "inboxd serve": configuration, store, HTTP, and the signal loop. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "log.h"
#include "outbox.h"
#include "server.h"

#define DRAIN_MS 10000
#define FORWARD_GRACE_MS 5000 /* deliveries in flight at SIGTERM get this long to finish */

/* The forwarding flags, checked before anything is opened. Returns 0 and *SKIP_OUT, or
 * 64 after printing the problem. */
static int
check_forwarding(const ib_config *cfg, unsigned *skip_out)
{
  char *err = NULL;
  if (outbox_skip_parse(cfg->forward_events, skip_out, &err) != IB_OK ||
      (cfg->forward_url && *cfg->forward_url &&
       forward_check_url(cfg->forward_url, &err) != IB_OK)) {
    fprintf(stderr, "inboxd serve: %s\n", err);
    g_free(err);
    return 64;
  }
  return 0;
}

/* The outbox and the forwarder, before traffic starts. Returns 0 or an exit status. */
static int
start_forwarding(ib_server *srv, unsigned skip)
{
  const ib_config *cfg = srv->cfg;
  int enabled = cfg->forward_url && *cfg->forward_url;
  char *err = NULL;
  if (enabled) {
    forward_options fo = {.url = cfg->forward_url,
                          .secret = cfg->forward_secret,
                          .backoff_ms = cfg->forward_backoff_ms,
                          .max_attempts = cfg->forward_max_attempts,
                          .connect_timeout_ms = cfg->forward_connect_timeout_ms,
                          .timeout_ms = cfg->forward_timeout_ms};
    ib_status st = forward_start(srv->store, &fo, &srv->forward, &err);
    if (st != IB_OK) {
      log_error("%s", err);
      fprintf(stderr, "inboxd: %s\n", err);
      g_free(err);
      return st == IB_ERR_INVALID ? 64 : 75;
    }
  }
  /* Recorded once the forwarder runs, so "inboxd ingest" never queues events for a
   * forwarder that cannot start. */
  if (outbox_configure(srv->store, enabled, skip) != IB_OK) {
    fprintf(stderr, "inboxd: cannot record the forwarding settings in the database\n");
    forward_stop(srv->forward, 0);
    return 75;
  }
  return 0;
}

/* How old a SendGrid signature may be. SendGrid retries for 3 days and nothing says it
 * signs a retry afresh, so a shorter window could refuse the retries of a message it
 * holds; the extra hour covers clock skew. A replay inside the window can only repeat
 * the signed body, which is stored once (a duplicate). */
#define SENDGRID_MAX_AGE_S (3 * 24 * 3600 + 3600)

static log_level
parse_level(const char *name)
{
  if (!name)
    return LOG_INFO;
  if (strcmp(name, "debug") == 0)
    return LOG_DEBUG;
  if (strcmp(name, "warn") == 0)
    return LOG_WARN;
  if (strcmp(name, "error") == 0)
    return LOG_ERROR;
  return LOG_INFO;
}

/* Stop the background services (the forwarder gets GRACE_MS for requests in flight) and
 * close the store, in that order: each needs the store until it stops. NULL-safe. */
static void
teardown(ib_server *srv, int64_t grace_ms)
{
  store_forget_listeners(srv->store);
  forward_stop(srv->forward, grace_ms);
  feed_free(srv->feed);
  if (srv->sns) {
    sns_drain(srv->sns, 2000);
    sns_free(srv->sns);
  }
  g_free(srv->ses_topics);
  store_close(srv->store);
  forward_free(srv->forward);
}

int
cmd_serve(int argc, char **argv)
{
  ib_config cfg;
  ib_server srv;
  memset(&srv, 0, sizeof srv);
  int rc = config_load(&cfg, argc, argv);
  if (rc != 0) {
    config_free(&cfg);
    return rc > 0 ? 0 : 64;
  }
  if (log_configure(parse_level(cfg.log_level), cfg.log_file) != 0) {
    fprintf(stderr, "inboxd: cannot open log file %s\n", cfg.log_file);
    config_free(&cfg);
    return 73;
  }
  srv.cfg = &cfg;
  srv.limits = (mime_limits){.max_depth = (unsigned)cfg.max_mime_depth,
                             .max_parts = (unsigned)cfg.max_mime_parts,
                             .max_headers = (unsigned)cfg.max_headers,
                             .max_header_bytes = (size_t)cfg.max_header_bytes,
                             .max_attachments = (unsigned)cfg.max_attachments,
                             .max_attachment_bytes = (uint64_t)cfg.max_attachment_bytes,
                             .max_decoded_bytes = (uint64_t)cfg.max_decoded_bytes};
  form_limits_default(&srv.form_limits);
  srv.form_limits.max_fields = (size_t)cfg.max_form_fields;
  unsigned skip = 0;
  if ((rc = check_forwarding(&cfg, &skip)) != 0) {
    config_free(&cfg);
    return rc;
  }

  /* Signals are taken by this thread only (sigwait below); every thread started from
   * here on inherits the blocked mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  char *err = NULL;
  store_options sopts = {.commit_batch = (int)cfg.commit_batch,
                         .busy_timeout_ms = (int)cfg.db_busy_timeout_ms,
                         .pool_size = (int)cfg.db_pool,
                         .lease_ms = cfg.forward_lease_ms,
                         .attachment_dir = cfg.attachment_dir,
                         .search_catch_up = 1,
                         .public_url = cfg.public_url};
  ib_status st = store_open(cfg.db, &sopts, &srv.store, &err);
  if (st != IB_OK) {
    log_error("%s", err ? err : "cannot open the database");
    fprintf(stderr, "inboxd: %s\n", err ? err : "cannot open the database");
    g_free(err);
    config_free(&cfg);
    return st == IB_ERR_UNSUPPORTED ? 78 : 75;
  }
  srv.threading.reply_domain = cfg.reply_domain;
  srv.threading.secret = store_reply_secret(srv.store);
  srv.threading.auto_limit = (int)cfg.auto_reply_limit;
  srv.threading.auto_window_minutes = (int)cfg.auto_reply_window_minutes;
  if (sns_new(cfg.sns_cert_file, &srv.sns, &err) != IB_OK) {
    fprintf(stderr, "inboxd: %s\n", err);
    g_free(err);
    store_close(srv.store);
    config_free(&cfg);
    return 66;
  }
  srv.ses_topics = g_new0(char *, cfg.ses_topic_arns->len + 1);
  for (guint i = 0; i < cfg.ses_topic_arns->len; i++)
    srv.ses_topics[i] = g_ptr_array_index(cfg.ses_topic_arns, i);
  srv.adapters = (adapter_config){.mailgun_signing_key = cfg.mailgun_signing_key,
                                  .sendgrid_verification_key = cfg.sendgrid_verification_key,
                                  .sendgrid_max_age = SENDGRID_MAX_AGE_S,
                                  .mandrill_key = cfg.mandrill_key,
                                  .mandrill_url = cfg.mandrill_url,
                                  .ses_topic_arns = (const char *const *)srv.ses_topics,
                                  .sns_cert = sns_cert,
                                  .sns_cert_ctx = srv.sns,
                                  .form_limits = &srv.form_limits,
                                  .max_json_depth = (size_t)cfg.max_json_depth};
  srv.feed = feed_new(srv.store);
  store_on_commit(srv.store, feed_notify, srv.feed);
  rc = start_forwarding(&srv, skip);
  if (rc != 0) {
    teardown(&srv, 0);
    config_free(&cfg);
    return rc;
  }
  unsigned port = 0;
  st = http_start(&srv, api_routes(), &port, &err);
  if (st != IB_OK) {
    log_error("%s", err);
    fprintf(stderr, "inboxd: %s\n", err);
    g_free(err);
    teardown(&srv, 0);
    config_free(&cfg);
    return 71;
  }
  const char *colon = strrchr(cfg.listen, ':');
  char *host = g_strndup(cfg.listen, (gsize)(colon - cfg.listen));
  printf("inboxd listening on http://%s:%u\n", *host ? host : "0.0.0.0", port);
  fflush(stdout);
  log_info("inboxd %s listening on %s:%u, database %s", INBOXD_VERSION, host, port, cfg.db);
  g_free(host);

  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0)
      continue;
    if (sig == SIGHUP) {
      log_reopen();
      log_info("log file reopened");
      continue;
    }
    log_info("signal %d: stopping (finishing requests in flight)", sig);
    break;
  }
  http_quiesce(&srv);
  feed_shutdown(srv.feed); /* long polls and event streams answer now */
  unsigned left = http_drain(&srv, DRAIN_MS);
  if (left)
    log_warn("%u requests still open after %d ms", left, DRAIN_MS);
  http_stop(&srv);
  teardown(&srv, FORWARD_GRACE_MS);
  log_info("stopped");
  config_free(&cfg);
  return 0;
}
