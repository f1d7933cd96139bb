/* What agent runs need from the running server, and
 * the requests the event handlers (webhooks/) make of them.
 *
 *   webhooks/ event handler  --agent_run_queue------>  job "agent.run"  (agent_job.c)
 *                            --agent_run_approve---->  job "pr.open"    (pr/)
 *
 * Every queue function records a run in the store (kind "agent"),
 * adds its job and wakes the workers; it never blocks on git, the sandbox or
 * a long GitHub call.  Strings in request structs are borrowed for the call. */
#ifndef AGENT_SERVICES_H
#define AGENT_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include "agent/mcp.h"
#include "measure/services.h"
#include "base/config.h"
#include "store/store.h"
#include "store/worker.h"
#include "github/github.h"

typedef struct agent_services {
	const base_config *cfg;
	store *store;
	gh_client *gh;            /* NULL when no App is configured (setup mode, CLI) */
	store_workers *workers;     /* woken after a job is queued; may be NULL */
	agent_mcp *mcp;           /* the /mcp endpoint agent runs register with; may be NULL */
	const char *mcp_url;      /* how an agent command reaches /mcp, e.g. http://127.0.0.1:3000/mcp */
	const char *public_url;   /* base for links shown on GitHub; may be NULL */
	measure_sandbox *sandbox;   /* shared sandbox backend */
} agent_services;

typedef struct agent_run_request {
	const char *repository;
	int64_t installation_id;
	const char *commit;           /* the commit to optimise (PR head or default branch tip) */
	const char *branch;           /* the branch it was measured on (the PR's base for the PR) */
	const char *clone_url;
	const char *trigger;          /* "comment" | "push" | "cli" */
	const char *requested_by;     /* login */
	int thread_number;            /* issue or PR number to answer in; 0 = none */
	const char *const *benchmarks;/* names to optimise; NULL = all */
	size_t nbenchmarks;
	/* commit is the head of a fork's pull request and branch its base: the
	 * proposal is built on the base branch, never on the fork's commits */
	int fork;
} agent_run_request;

/* Queues an agent run.  At most one agent run per repository runs at a
 * time; a push-triggered request replaces a queued push-triggered one. */
int agent_run_queue(int64_t *run_out, const agent_services *svc, const agent_run_request *req);

/* Records an approval (who, how: "button" | "comment" | "dashboard") of a
 * run's proposal and queues the "pr.open" job.  The run must belong to
 * `repository` (owner/name; NULL only for operators on the CLI), else
 * BASE_ENOTFOUND as for an unknown run.  BASE_EEXISTS when the run was
 * approved already, BASE_ENOTFOUND when it has no proposal (the message says
 * so, for the reply). */
int agent_run_approve(const agent_services *svc, const char *repository, int64_t run_id, const char *user,
		      const char *via);

/* Stops a queued or running agent run of `repository` (as above): kills its
 * agent command and sandbox processes, records who cancelled.  BASE_ENOTFOUND
 * for an unknown run or one of another repository, BASE_EINVALID for a run
 * that already ended. */
int agent_run_cancel(const agent_services *svc, const char *repository, int64_t run_id, const char *user);

/* Registers the "agent.run" job handler. */
int agent_run_jobs_register(store_workers *w, agent_services *svc);

#endif
