/* api.h: the route handlers of the REST API, ingress and operations endpoints, and the
 * route table that serve.c hands to the HTTP layer. */
#ifndef INBOXD_API_H
#define INBOXD_API_H

#include "http.h"

/* The routes of "inboxd serve", ended by a {NULL} entry. Static. */
const route *api_routes(void);

/* POST /inbound/<provider> (and Mandrill's HEAD/GET check): ingress.c. */
void ingress_provider(ib_request *r);

/* POST /api/tickets/{id}/messages: an agent's reply (reply.c). */
void api_post_message(ib_request *r);

/* GET / and /static/<file>: the embedded web view (web.c). */
void web_static(ib_request *r);

#endif
