/* serve.c: "inboxd serve": configuration, store, HTTP, and the signal loop. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "log.h"
#include "server.h"

#define DRAIN_MS 10000

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
                                  .mandrill_key = cfg.mandrill_key,
                                  .mandrill_url = cfg.mandrill_url,
                                  .ses_topic_arns = (const char *const *)srv.ses_topics,
                                  .sns_cert = sns_cert,
                                  .sns_cert_ctx = srv.sns,
                                  .form_limits = &srv.form_limits,
                                  .max_json_depth = (size_t)cfg.max_json_depth};
  srv.feed = feed_new(srv.store);
  store_on_commit(srv.store, feed_notify, srv.feed);
  unsigned port = 0;
  st = http_start(&srv, api_routes(), &port, &err);
  if (st != IB_OK) {
    log_error("%s", err);
    fprintf(stderr, "inboxd: %s\n", err);
    g_free(err);
    feed_free(srv.feed);
    sns_free(srv.sns);
    g_free(srv.ses_topics);
    store_close(srv.store);
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
    log_warn("%u requests still open after %d ms; closing them", left, DRAIN_MS);
  http_stop(&srv);
  feed_free(srv.feed);
  sns_drain(srv.sns, 2000);
  sns_free(srv.sns);
  g_free(srv.ses_topics);
  store_close(srv.store);
  log_info("stopped");
  config_free(&cfg);
  return 0;
}
