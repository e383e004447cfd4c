/* thread.h: the threader, the pipeline step that decides which ticket a message joins
 * (msg->thread_reason), and what joining means: participants, reopening, suppressions,
 * the auto-reply loop guard. It runs inside the writer's transaction, so two replies of
 * one conversation can never race into two tickets.
 *
 * Matching, first hit wins: In-Reply-To, then References (newest first), against every
 * Message-ID stored or generated; a signed reply address reply+<ticket>.<sig>@<domain> in
 * To, Cc or the envelope; a subject tag [#<ticket>] from a participant of that ticket;
 * else a new ticket (closed at once for machine messages nobody has to answer). */
#ifndef INBOXD_THREAD_H
#define INBOXD_THREAD_H

#include "message.h"
#include "store.h"

typedef struct thread_options {
  const char *reply_domain; /* domain of signed reply addresses; NULL: none */
  const char *secret;       /* store_reply_secret() */
  int auto_limit;           /* automatic messages of one sender per window... */
  int auto_window_minutes;  /* ...before the next ones are flagged as a loop */
} thread_options;

/* Choose the ticket for MSG: an existing one, or a new one (*CREATED_OUT = 1). Sets
 * msg->thread_reason, and turns IB_CLASS_NEW/REPLY into what threading found. IB_OK or a
 * store status. */
ib_status thread_assign(ib_tx *tx, const thread_options *opt, ib_message *msg, int64_t *ticket_out,
                        int *created_out);

/* After MSG was stored as MESSAGE_ID in TICKET: record participants, reopen the ticket
 * for a customer's reply (*STATUS_CHANGED_OUT = 1), add bounce and complaint recipients
 * to the suppression list, and flag a suspected auto-reply loop (*LOOP_OUT = 1). */
ib_status thread_record(ib_tx *tx, const thread_options *opt, const ib_message *msg, int64_t ticket,
                        int created, int64_t message_id, int *status_changed_out, int *loop_out);

/* The signature of TICKET: 16 hex characters of HMAC-SHA256(secret, decimal ticket).
 * Returns a new string. */
char *thread_signature(const char *secret, int64_t ticket);

/* reply+<ticket>.<sig>@<reply_domain>, or NULL when no reply domain is set. New string. */
char *thread_reply_address(const thread_options *opt, int64_t ticket);

/* 1 and *TICKET_OUT when ADDRESS is a reply address of ours with a valid signature. */
int thread_parse_reply_address(const thread_options *opt, const char *address, int64_t *ticket_out);

/* A new Message-ID (without <>) for an outbound message of TICKET, carrying the signed
 * ticket reference: t<ticket>.<sig>.<random>@<domain>; DOMAIN is the reply domain, else
 * FALLBACK_DOMAIN (e.g. the agent's), else "inboxd.invalid". New string. */
char *thread_new_message_id(const thread_options *opt, int64_t ticket, const char *fallback_domain);

/* 1 and *TICKET_OUT when MSGID is one thread_new_message_id() made (signature valid). */
int thread_parse_message_id(const thread_options *opt, const char *msgid, int64_t *ticket_out);

#endif
