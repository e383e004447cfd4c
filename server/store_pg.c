#include "store_internal.h"

static ib_status
pg_open(ib_store *s, char **error_out)
{
  *error_out = g_strdup("PostgreSQL is not built in yet");
  return IB_ERR_UNSUPPORTED;
}

static void
pg_close(ib_store *s)
{
}

const store_ops store_pg_ops = {.name = "postgres", .open = pg_open, .close = pg_close};
