/* pr/ inside the server: the "pr.open" job (payload {"run_id": N}) that
 * turns an approved proposal into a pull request with the real GitHub
 * client, and the handling of `pull_request` closed events for perfbot's
 * branches.  Strings and JSON are borrowed for the call. */
#ifndef PR_JOB_H
#define PR_JOB_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "base/config.h"
#include "store/store.h"
#include "store/worker.h"
#include "github/github.h"

typedef struct pr_services {
	const base_config *cfg;
	store *store;
	gh_client *gh;            /* NULL: pr.open jobs fail with a clear error */
	/* Filled by pr/ (leave zeroed): the App's bot identity, looked up once
	 * with GET /app and GET /users/<slug>[bot], under bot_lock. */
	pthread_mutex_t bot_lock;
	int bot_known;
	char bot_name[256];       /* "<slug>[bot]" */
	char bot_email[384];      /* "<id>+<slug>[bot]@users.noreply.github.com" */
} pr_services;

/* Registers the "pr.open" handler (payload {"run_id": N}): the run's
 * proposal becomes a branch and a pull request (pr_job_open) through the
 * real client, with the installation's token for git.  A refused proposal
 * (BASE_EINVALID, BASE_ETOOBIG, BASE_EEXISTS, BASE_EFORBIDDEN, BASE_ENOTFOUND)
 * fails the job at once, with the reason on the run and in the thread;
 * BASE_ERETRY and network errors are retried (after GitHub's rate-limit
 * wait when there is one).  svc must outlive the workers; call before they
 * start. */
int pr_jobs_register(store_workers *w, pr_services *svc);

/* Records an approval of run approval->run_id (user, via, run_update; the
 * job fields are pr/'s and ignored) together with the job that opens the
 * run's pull request: the approval, the run's update, the audit line and
 * the job in one transaction (store_approval_put), one job per run.
 * BASE_EEXISTS when the run was already approved.  Other modules queue
 * that job only through this (app/ hands it to agent/ as a hook): its kind,
 * payload and key are pr/'s alone. */
int pr_job_queue_open(store *st, const store_approval *approval);

/* A `pull_request` closed event (payload borrowed): updates the run and the
 * pull record of a perfbot/opt-* branch, deletes the branch when it is
 * still ours.  0 also when the pull request is not perfbot's. */
int pr_handle_closed_event(pr_services *svc, const json_t *payload);

#endif
