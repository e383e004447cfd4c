/* raw.c: /inbound/raw, the message itself as the body (an MTA pipe, Action Mailbox's
 * relayer). The envelope recipient comes from the message's X-Original-To header when
 * the delivering MTA added one. */
#include "adapter.h"
#include "adapter_impl.h"

/* The media types a raw message may come as; none at all is accepted too. */
static int
media_type_ok(const char *ct)
{
  return !ct || adapter_media_type_is(ct, "message/rfc822") ||
         adapter_media_type_is(ct, "application/octet-stream") ||
         adapter_media_type_is(ct, "text/plain");
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
