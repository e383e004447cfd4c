/* sns.h: what the SES/SNS adapter needs from the network: the signing certificate at a
 * SigningCertURL (fetched with libcurl over verified TLS and cached by URL, or pinned with
 * --sns-cert-file), and the visit of a SubscribeURL that confirms a subscription. */
#ifndef INBOXD_SNS_H
#define INBOXD_SNS_H

#include "status.h"

typedef struct ib_sns ib_sns;

/* A certificate source. With PINNED_FILE every URL yields that file's PEM (read now).
 * Returns IB_OK or IB_ERR_IO with *ERROR_OUT (new). Release with sns_free(). */
ib_status sns_new(const char *pinned_file, ib_sns **sns_out, char **error_out);
void sns_free(ib_sns *sns);

/* adapter_cert_fn: the PEM for URL (new), or NULL and *ERROR_OUT. Thread-safe. */
char *sns_cert(void *sns, const char *url, char **error_out);

/* Visit URL (GET, TLS verified, 10 s) on a background thread and log the outcome. For
 * tests, INBOXD_TEST_SNS_BASE=http://127.0.0.1:PORT replaces the URL's scheme and host. */
void sns_confirm_subscription(ib_sns *sns, const char *url);

/* Wait (at most TIMEOUT_MS) for visits in progress; for shutdown. */
void sns_drain(ib_sns *sns, int timeout_ms);

#endif
