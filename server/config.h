/* config.h: the flags of "inboxd serve" (DESIGN.md "Command line"), each also settable
 * as INBOXD_<NAME> in the environment (flags win). */
#ifndef INBOXD_CONFIG_H
#define INBOXD_CONFIG_H

#include <glib.h>
#include <stdint.h>

typedef struct ib_config {
  char *listen;             /* HOST:PORT */
  char *db;                 /* SQLite path, or postgresql:// URI */
  int64_t db_pool;          /* PostgreSQL read connections per node */
  int64_t forward_lease_ms; /* PostgreSQL: lease of a claimed delivery */
  char *attachment_dir;     /* attachments as files named by SHA-256; NULL: database */
  char *forward_url;
  char *forward_secret;
  int64_t forward_backoff_ms;
  int64_t forward_max_attempts;
  int64_t forward_connect_timeout_ms;
  int64_t forward_timeout_ms;
  char *forward_events;  /* comma list of event types/classifications to skip, see help */
  char *public_url;      /* absolute base for attachment URLs in events */
  GPtrArray *api_tokens; /* of char*: "TOKEN" (read-write) or "TOKEN:ro" */
  char *ingress_user;
  char *ingress_password;
  char *mailgun_signing_key;
  char *sendgrid_verification_key;
  char *mandrill_key;
  char *mandrill_url;
  GPtrArray *ses_topic_arns; /* of char* */
  char *sns_cert_file;
  int64_t max_body_bytes;
  char *reply_domain;
  int64_t auto_reply_limit;          /* automatic messages per sender per window... */
  int64_t auto_reply_window_minutes; /* ...before the next are flagged and not forwarded */
  GPtrArray *cors_origins;           /* of char* */
  int64_t threads;                   /* HTTP worker threads; 0: one per core */
  int64_t max_connections;
  int64_t max_connections_per_ip;
  int64_t connection_timeout_s;
  int64_t request_timeout_s; /* a whole request (headers + body) at most this long */
  int64_t max_mime_depth, max_mime_parts, max_headers, max_header_bytes;
  int64_t max_attachments, max_attachment_bytes, max_decoded_bytes;
  int64_t max_form_fields, max_json_depth;
  int64_t commit_batch;       /* most messages per group commit */
  int64_t db_busy_timeout_ms; /* wait for a lock held by another process this long */
  char *log_file;
  char *log_level;
} ib_config;

/* Fill *CFG from defaults, then the environment, then ARGV (argv[0] is the command).
 * Returns 0; 1 when --help was printed; -1 after printing a usage error to stderr.
 * Release with config_free(). */
int config_load(ib_config *cfg, int argc, char **argv);

/* Release what config_load() allocated. */
void config_free(ib_config *cfg);

/* Print the flag table (for --help) to stdout. */
void config_print_help(void);

#endif
