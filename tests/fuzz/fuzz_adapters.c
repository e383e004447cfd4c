/* fuzz_adapters.c: every ingress adapter over arbitrary requests, then the pipeline
 * (parse_message) over what they accept. Input: one byte choosing the provider, then
 * "<Content-Type>\n<body>". No keys are configured, so parsing is reached; SNS bodies
 * stop at the signature check after their JSON has been read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "parse.h"

static char *
no_cert(void *ctx, const char *url, char **error_out)
{
  *error_out = g_strdup("fuzzing: no certificate");
  return NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  mime_init();
  return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *const providers[] = {"sendgrid", "mailgun",  "postmark",
                                          "ses",      "mandrill", "raw"};
  if (size < 2)
    return 0;
  const char *provider = providers[data[0] % 6];
  const char *rest = (const char *)data + 1;
  const char *nl = memchr(rest, '\n', size - 1);
  if (!nl)
    return 0;
  char *ctype = strndup(rest, (size_t)(nl - rest));
  size_t len = size - 1 - (size_t)(nl + 1 - rest);
  char *body = malloc(len ? len : 1);
  memcpy(body, nl + 1, len);
  static const char *const topics[] = {"arn:aws:sns:us-east-1:111122223333:inbound", NULL};
  form_limits lim;
  form_limits_default(&lim);
  lim.max_fields = 200;
  adapter_config cfg = {.ses_topic_arns = topics, .sns_cert = no_cert, .form_limits = &lim};
  adapter_request rq = {
      .method = "POST", .content_type = ctype, .body = body, .len = len, .now = 1700000000};
  adapter_result res;
  adapter_result_init(&res);
  ib_status st = adapter_run(provider, &rq, &cfg, &res);
  if (st != IB_OK && (!res.code || !res.message || res.http_status < 400 || res.inbound->len))
    abort();
  for (guint i = 0; st == IB_OK && i < res.inbound->len; i++) {
    const ib_inbound *in = g_ptr_array_index(res.inbound, i);
    gsize n = 0;
    const char *raw = g_bytes_get_data(in->raw, &n);
    ib_message *msg = NULL;
    if (parse_message(raw, n, in, NULL, &msg) == IB_OK) {
      json_t *doc = ib_message_to_json(msg);
      json_decref(doc);
    }
    ib_message_free(msg);
  }
  json_t *err = st != IB_OK ? adapter_error_json(&res) : NULL;
  json_decref(err);
  adapter_result_clear(&res);
  free(body);
  free(ctype);
  return 0;
}
