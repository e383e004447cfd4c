#include "status.h"

static const char *const names[IB_STATUS_COUNT] = {
    [IB_OK] = "ok",
    [IB_ERR_INVALID] = "invalid",
    [IB_ERR_NOT_MAIL] = "not_mail",
    [IB_ERR_LIMIT] = "limit_exceeded",
    [IB_ERR_AUTH] = "unauthorized",
    [IB_ERR_FORBIDDEN] = "forbidden",
    [IB_ERR_NOT_FOUND] = "not_found",
    [IB_ERR_CONFLICT] = "conflict",
    [IB_ERR_UNSUPPORTED] = "unsupported",
    [IB_ERR_STORAGE] = "storage_unavailable",
    [IB_ERR_IO] = "io_error",
    [IB_ERR_NOMEM] = "out_of_memory",
    [IB_ERR_INTERNAL] = "internal_error",
};

const char *
ib_status_str(ib_status st)
{
  if ((unsigned)st >= IB_STATUS_COUNT || !names[st])
    return "unknown";
  return names[st];
}
