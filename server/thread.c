#include "thread.h"

ib_status
thread_assign(ib_tx *tx, ib_message *msg, int64_t *ticket_out, int *created_out)
{
  /* Every message opens its own ticket until conversation threading lands (issue 4). */
  ib_status st = store_create_ticket(tx, msg, ticket_out);
  if (st != IB_OK)
    return st;
  *created_out = 1;
  g_free(msg->thread_reason);
  msg->thread_reason = g_strdup("new");
  return IB_OK;
}
