#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPT_STR, OPT_INT, OPT_LIST } opt_type;

typedef struct opt {
  const char *name;
  opt_type type;
  size_t offset;
  const char *def; /* default as text; NULL: none */
  const char *help;
} opt;

#define OFF(field) offsetof(ib_config, field)

static const opt opts[] = {
    {"listen", OPT_STR, OFF(listen), "127.0.0.1:8080",
     "address to listen on (port 0: pick a free port and print it)"},
    {"db", OPT_STR, OFF(db), "inboxd.db",
     "SQLite database file, created and migrated on start; a postgresql:// URI selects "
     "PostgreSQL (several nodes on one database)"},
    {"db-pool", OPT_INT, OFF(db_pool), "8",
     "PostgreSQL: read connections per node at most (plus one for the writer and one for "
     "change notifications)"},
    {"forward-lease-ms", OPT_INT, OFF(forward_lease_ms), "60000",
     "PostgreSQL: how long a node's claim on a delivery lasts; when the node dies, another "
     "one sends the delivery after that (keep it above --forward-timeout-ms)"},
    {"attachment-dir", OPT_STR, OFF(attachment_dir), NULL,
     "keep attachment bytes as files named by their SHA-256 in this directory (shared by "
     "every node) instead of in the database"},
    {"forward-url", OPT_STR, OFF(forward_url), NULL,
     "CRM / ticket URL that receives every event; none: forwarding off"},
    {"forward-secret", OPT_STR, OFF(forward_secret), NULL,
     "key for the Inboxd-Signature header on forwarded events"},
    {"forward-backoff-ms", OPT_INT, OFF(forward_backoff_ms), "1000",
     "first retry delay; each next one doubles (full jitter), capped at one hour"},
    {"forward-max-attempts", OPT_INT, OFF(forward_max_attempts), "30",
     "attempts before a delivery is marked failed"},
    {"forward-connect-timeout-ms", OPT_INT, OFF(forward_connect_timeout_ms), "5000",
     "connect timeout of one delivery attempt"},
    {"forward-timeout-ms", OPT_INT, OFF(forward_timeout_ms), "15000",
     "total timeout of one delivery attempt"},
    {"forward-skip", OPT_STR, OFF(forward_events), NULL,
     "comma list of event types (ticket.updated, ...) or classifications (auto_reply, "
     "bounce, complaint) not to forward"},
    {"public-url", OPT_STR, OFF(public_url), NULL,
     "absolute base URL of this server, for attachment URLs in forwarded events"},
    {"api-token", OPT_LIST, OFF(api_tokens), NULL,
     "every /api/ request needs Authorization: Bearer T (repeatable; T:ro = read-only)"},
    {"ingress-user", OPT_STR, OFF(ingress_user), NULL, "basic-auth user for /inbound/"},
    {"ingress-password", OPT_STR, OFF(ingress_password), NULL, "basic-auth password for /inbound/"},
    {"mailgun-signing-key", OPT_STR, OFF(mailgun_signing_key), NULL,
     "Mailgun webhook signing key: posts must carry a valid signature"},
    {"sendgrid-verification-key", OPT_STR, OFF(sendgrid_verification_key), NULL,
     "SendGrid signed-webhook public key (base64)"},
    {"mandrill-key", OPT_STR, OFF(mandrill_key), NULL, "Mandrill webhook key"},
    {"mandrill-url", OPT_STR, OFF(mandrill_url), NULL, "webhook URL as configured at Mandrill"},
    {"ses-topic-arn", OPT_LIST, OFF(ses_topic_arns), NULL,
     "SNS topic accepted on /inbound/ses (repeatable)"},
    {"sns-cert-file", OPT_STR, OFF(sns_cert_file), NULL,
     "trust this SNS signing certificate instead of fetching SigningCertURL"},
    {"max-body-bytes", OPT_INT, OFF(max_body_bytes), "31457280", "larger requests get 413"},
    {"reply-domain", OPT_STR, OFF(reply_domain), NULL,
     "domain of signed reply addresses (reply+<ticket>.<sig>@D)"},
    {"auto-reply-limit", OPT_INT, OFF(auto_reply_limit), "5",
     "automatic messages (auto-replies, bounces) one sender may send per window; later ones "
     "are stored but not forwarded (mail loop guard; 0: no limit)"},
    {"auto-reply-window-minutes", OPT_INT, OFF(auto_reply_window_minutes), "60",
     "the window of --auto-reply-limit"},
    {"cors-origin", OPT_LIST, OFF(cors_origins), NULL,
     "dashboard origin allowed by CORS (repeatable)"},
    {"threads", OPT_INT, OFF(threads), "0",
     "HTTP worker threads, and as many that parse large bodies (0: one per core)"},
    {"max-connections", OPT_INT, OFF(max_connections), "20000", "open connections at most"},
    {"max-connections-per-ip", OPT_INT, OFF(max_connections_per_ip), "512",
     "open connections per client address at most (0: no limit)"},
    {"connection-timeout", OPT_INT, OFF(connection_timeout_s), "60",
     "seconds a connection may stay idle (stalled uploads included)"},
    {"request-timeout", OPT_INT, OFF(request_timeout_s), "300",
     "seconds one request may take to arrive, however slowly it trickles (slowloris)"},
    {"max-mime-depth", OPT_INT, OFF(max_mime_depth), "32",
     "nesting of multiparts and attached messages parsed; deeper mail is stored with a warning"},
    {"max-mime-parts", OPT_INT, OFF(max_mime_parts), "1000", "MIME parts parsed per message"},
    {"max-headers", OPT_INT, OFF(max_headers), "1000", "header fields kept per message"},
    {"max-header-bytes", OPT_INT, OFF(max_header_bytes), "65536", "bytes kept of one header value"},
    {"max-attachments", OPT_INT, OFF(max_attachments), "500", "attachments kept per message"},
    {"max-attachment-bytes", OPT_INT, OFF(max_attachment_bytes), "67108864",
     "decoded bytes of one attachment kept"},
    {"max-decoded-bytes", OPT_INT, OFF(max_decoded_bytes), "268435456",
     "decoded bytes of all parts of one message"},
    {"max-form-fields", OPT_INT, OFF(max_form_fields), "10000", "fields of one provider form post"},
    {"max-json-depth", OPT_INT, OFF(max_json_depth), "64", "nesting of a provider's JSON payload"},
    {"commit-batch", OPT_INT, OFF(commit_batch), "256", "most messages in one group commit"},
    {"db-busy-timeout-ms", OPT_INT, OFF(db_busy_timeout_ms), "5000",
     "wait this long for a database lock held by another process, then answer 503"},
    {"log-file", OPT_STR, OFF(log_file), NULL, "append logs here instead of stderr"},
    {"log-level", OPT_STR, OFF(log_level), "info", "debug, info, warn or error"},
};

static int
set_value(ib_config *cfg, const opt *o, const char *value, const char *source)
{
  char *base = (char *)cfg + o->offset;
  switch (o->type) {
  case OPT_STR: {
    char **p = (char **)base;
    g_free(*p);
    *p = g_strdup(value);
    return 0;
  }
  case OPT_INT: {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || !end || *end || end == value || v < 0) {
      fprintf(stderr, "inboxd: %s --%s: \"%s\" is not a non-negative integer\n", source, o->name,
              value);
      return -1;
    }
    *(int64_t *)base = v;
    return 0;
  }
  case OPT_LIST: {
    GPtrArray **p = (GPtrArray **)base;
    g_ptr_array_add(*p, g_strdup(value));
    return 0;
  }
  }
  return -1;
}

static char *
env_name(const char *flag)
{
  char *up = g_ascii_strup(flag, -1);
  for (char *c = up; *c; c++)
    if (*c == '-')
      *c = '_';
  char *name = g_strconcat("INBOXD_", up, NULL);
  g_free(up);
  return name;
}

void
config_print_help(void)
{
  printf("usage: inboxd serve [flags]\n\nflags (each also settable as INBOXD_<NAME>, e.g. "
         "INBOXD_FORWARD_URL; list flags take a comma list there):\n");
  for (size_t i = 0; i < G_N_ELEMENTS(opts); i++) {
    char *left = g_strdup_printf("--%s %s", opts[i].name, opts[i].type == OPT_INT ? "N" : "VALUE");
    printf("  %-34s %s", left, opts[i].help);
    if (opts[i].def)
      printf(" (default %s)", opts[i].def);
    printf("\n");
    g_free(left);
  }
}

int
config_load(ib_config *cfg, int argc, char **argv)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->api_tokens = g_ptr_array_new_with_free_func(g_free);
  cfg->ses_topic_arns = g_ptr_array_new_with_free_func(g_free);
  cfg->cors_origins = g_ptr_array_new_with_free_func(g_free);
  for (size_t i = 0; i < G_N_ELEMENTS(opts); i++)
    if (opts[i].def && set_value(cfg, &opts[i], opts[i].def, "default") != 0)
      return -1;

  /* Environment: list flags are comma-separated there. Flags given on the command line
   * replace the environment's value, so lists are reset when the flag appears. */
  for (size_t i = 0; i < G_N_ELEMENTS(opts); i++) {
    char *name = env_name(opts[i].name);
    const char *value = g_getenv(name);
    g_free(name);
    if (!value)
      continue;
    if (opts[i].type == OPT_LIST) {
      char **parts = g_strsplit(value, ",", -1);
      for (char **p = parts; *p; p++)
        if (**p)
          set_value(cfg, &opts[i], g_strstrip(*p), "environment");
      g_strfreev(parts);
    } else if (set_value(cfg, &opts[i], value, "environment") != 0) {
      return -1;
    }
  }

  gboolean list_reset[G_N_ELEMENTS(opts)] = {0};
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      config_print_help();
      return 1;
    }
    if (strncmp(arg, "--", 2) != 0) {
      fprintf(stderr, "inboxd serve: unexpected argument \"%s\" (see inboxd serve --help)\n", arg);
      return -1;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    const opt *o = NULL;
    size_t idx = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(opts); i++) {
      if (strlen(opts[i].name) == name_len && strncmp(opts[i].name, name, name_len) == 0) {
        o = &opts[i];
        idx = i;
      }
    }
    if (!o) {
      fprintf(stderr, "inboxd serve: unknown flag \"%s\" (see inboxd serve --help)\n", arg);
      return -1;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
      if (a + 1 >= argc) {
        fprintf(stderr, "inboxd serve: --%s needs a value\n", o->name);
        return -1;
      }
      value = argv[++a];
    }
    if (o->type == OPT_LIST && !list_reset[idx]) {
      g_ptr_array_set_size(*(GPtrArray **)((char *)cfg + o->offset), 0);
      list_reset[idx] = TRUE;
    }
    if (set_value(cfg, o, value, "flag") != 0)
      return -1;
  }
  return 0;
}

void
config_free(ib_config *cfg)
{
  for (size_t i = 0; i < G_N_ELEMENTS(opts); i++) {
    char *base = (char *)cfg + opts[i].offset;
    if (opts[i].type == OPT_STR) {
      g_free(*(char **)base);
      *(char **)base = NULL;
    } else if (opts[i].type == OPT_LIST && *(GPtrArray **)base) {
      g_ptr_array_unref(*(GPtrArray **)base);
      *(GPtrArray **)base = NULL;
    }
  }
}
