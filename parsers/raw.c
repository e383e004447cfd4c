/* raw.c: /inbound/raw, the message itself as the body (an MTA pipe, Action Mailbox's
 * relayer). The envelope recipient comes from the message's X-Original-To header when
 * the delivering MTA added one. */
#include <string.h>

#include "adapter.h"
#include "adapter_impl.h"

static int
media_type_ok(const char *ct)
{
  static const char *const ok[] = {"message/rfc822", "application/octet-stream", "text/plain"};
  if (!ct)
    return 0;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
    size_t n = strlen(ok[i]);
    if (g_ascii_strncasecmp(ct, ok[i], n) == 0 &&
        (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t'))
      return 1;
  }
  return 0;
}

ib_status
raw_adapt(const adapter_request *req, const adapter_config *cfg, adapter_result *res)
{
  if (!adapter_is_post(req)) {
    res->allow = "POST";
    return adapter_result_fail(res, IB_ERR_UNSUPPORTED, 405, "method_not_allowed",
                               "post the message with POST");
  }
  if (!media_type_ok(req->content_type))
    return adapter_result_fail(res, IB_ERR_UNSUPPORTED, 0, "unsupported_media_type",
                               "post the message as message/rfc822, application/octet-stream "
                               "or text/plain");
  if (req->len == 0)
    return adapter_result_fail(res, IB_ERR_NOT_MAIL, 0, "empty_body", "the body is empty");
  ib_inbound *in = ib_inbound_new("raw");
  in->raw = adapter_bytes(req, req->body, req->len);
  char *to = adapter_raw_header(req->body, req->len, "X-Original-To");
  adapter_add_recipients(in, to);
  g_free(to);
  g_ptr_array_add(res->inbound, in);
  return IB_OK;
}
