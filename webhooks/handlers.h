/* Job handlers for the GitHub events the foundation acts on: ping,
 * installation and installation_repositories.  Each loads its delivery's
 * body from the store, parses it into a typed struct and records what it
 * says.  Later modules register their own handlers for other event kinds. */
#ifndef WH_HANDLERS_H
#define WH_HANDLERS_H

#include <jansson.h>

#include "agent/services.h"
#include "app/worker.h"
#include "pr/pr_job.h"

typedef struct wh_handlers_options {
	agent_services *agent;   /* borrowed; outlives the workers */
	pr_services *pr;         /* borrowed; outlives the workers */
} wh_handlers_options;

/* Registers the handlers on the pool (before app_workers_start).  opts
 * (may be NULL: installation bookkeeping only) must outlive the workers. */
int wh_handlers_register(app_workers *w, const wh_handlers_options *opts);

/* The GitHub-facing event handlers (handlers_github.c): push,
 * pull_request, issue_comment commands, check_run and check_suite. */
int wh_github_handlers_register(app_workers *w, const wh_handlers_options *opts);

/* For handlers: loads and parses the delivery of ctx->job (*out owned). */
int wh_job_payload(json_t **out, app_job_ctx *ctx);

#endif
