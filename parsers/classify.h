/* classify.h: reply / auto-reply / bounce / complaint, from headers, the envelope and
 * the multipart/report pieces the MIME parser kept. */
#ifndef INBOXD_CLASSIFY_H
#define INBOXD_CLASSIFY_H

#include "message.h"

/* Set MSG->classification (and msg->bounce / msg->complaint). Without a database a
 * message that answers another by its headers (In-Reply-To/References) is
 * IB_CLASS_REPLY, else IB_CLASS_NEW; the threader may later turn NEW into REPLY and back.
 * An empty envelope sender counts only when the adapter set msg->envelope_from to "". */
void classify_message(ib_message *msg);

#endif
