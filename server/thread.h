/* thread.h: the threader, the pipeline step that decides which ticket a message joins
 * and records why (msg->thread_reason). Runs inside the writer's transaction so two
 * replies of one conversation can never race into two tickets. */
#ifndef INBOXD_THREAD_H
#define INBOXD_THREAD_H

#include "message.h"
#include "store.h"

/* Choose the ticket for MSG: an existing one, or a new one (*CREATED_OUT = 1) whose
 * customer is the sender. Sets msg->thread_reason. IB_OK or a store status. */
ib_status thread_assign(ib_tx *tx, ib_message *msg, int64_t *ticket_out, int *created_out);

#endif
