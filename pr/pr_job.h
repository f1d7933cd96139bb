/* pr/ inside the server: the "pr.open" job (payload {"run_id": N}) that
 * turns an approved proposal into a pull request with the real GitHub
 * client, and the handling of `pull_request` closed events for perfbot's
 * branches.  Strings and JSON are borrowed for the call. */
#ifndef PR_JOB_H
#define PR_JOB_H

#include <jansson.h>
#include <stdint.h>

#include "app/config.h"
#include "app/store.h"
#include "app/worker.h"
#include "github/github.h"

typedef struct pr_services {
	const app_config *cfg;
	store *store;
	gh_client *gh;            /* NULL: pr.open jobs fail with a clear error */
} pr_services;

/* Registers the "pr.open" handler. svc must outlive the workers. */
int pr_jobs_register(app_workers *w, pr_services *svc);

/* A `pull_request` closed event (payload borrowed): updates the run and the
 * pull record of a perfbot/opt-* branch, deletes the branch when it is
 * still ours.  0 also when the pull request is not perfbot's. */
int pr_handle_closed_event(pr_services *svc, const json_t *payload);

#endif
