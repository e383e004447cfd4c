#include "parse.h"

#include "classify.h"
#include "strip.h"

ib_status
parse_message(const char *raw, size_t len, const ib_inbound *in, const mime_limits *limits,
              ib_message **msg_out)
{
  ib_status st = mime_parse(raw, len, limits, msg_out);
  if (st != IB_OK)
    return st;
  if (in)
    ib_inbound_apply(in, *msg_out);
  strip_message(*msg_out);
  classify_message(*msg_out);
  return IB_OK;
}
