/* Job handlers for the GitHub events the foundation acts on: ping,
 * installation and installation_repositories.  Each loads its delivery's
 * body from the store, parses it into a typed struct and records what it
 * says.  Later modules register their own handlers for other event kinds. */
#ifndef WH_HANDLERS_H
#define WH_HANDLERS_H

#include <jansson.h>

#include "app/worker.h"

/* Registers the handlers on the pool (before app_workers_start). */
int wh_handlers_register(app_workers *w);

/* For handlers: loads and parses the delivery of ctx->job (*out owned). */
int wh_job_payload(json_t **out, app_job_ctx *ctx);

#endif
