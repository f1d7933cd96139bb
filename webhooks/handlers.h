/* Job handlers for GitHub events: ping, installation and
 * installation_repositories (handlers.c) record what they say; push,
 * pull_request, issue_comment commands, check_run and check_suite
 * (handlers_github.c) turn into bench runs (measure/), agent runs (agent/)
 * and pull request jobs (pr/) through those modules' entry points.  Each
 * loads its delivery's body from the store and parses it into a typed
 * struct first. */
#ifndef WH_HANDLERS_H
#define WH_HANDLERS_H

#include <jansson.h>

#include "agent/services.h"
#include "store/worker.h"
#include "pr/pr_job.h"

typedef struct wh_handlers_options {
	measure_services *measure; /* borrowed; outlives the workers */
	agent_services *agent;   /* borrowed; outlives the workers */
	pr_services *pr;         /* borrowed; outlives the workers */
} wh_handlers_options;

/* Registers the handlers on the pool (before store_workers_start).  opts
 * (may be NULL: installation bookkeeping only) must outlive the workers. */
int wh_handlers_register(store_workers *w, const wh_handlers_options *opts);

/* The GitHub-facing event handlers (handlers_github.c): push,
 * pull_request, issue_comment commands, check_run and check_suite. */
int wh_github_handlers_register(store_workers *w, const wh_handlers_options *opts);

/* For handlers: loads and parses the delivery of ctx->job (*out owned).
 * 0 with the payload; 1 (*out NULL, ctx->note set, delivery marked
 * ignored) when perfbot does not act on the payload's action; a negative
 * code otherwise.  A body that is not a JSON object fails for good
 * (final_attempt set) and marks the delivery malformed. */
int wh_job_payload(json_t **out, store_job_ctx *ctx);

#endif
