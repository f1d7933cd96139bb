/* What agent runs need from the running server, and the requests the event
 * handlers (webhooks/) make of them.
 *
 *   webhooks/ event handler  --agent_run_queue------>  job "agent.run"  (run_queue.c → run_pipeline.c)
 *                            --agent_run_approve---->  pr/'s job that opens the pull request
 *                                                      (through the queue_pr hook; agent/ never names it)
 *                            --agent_run_cancel----->  the run's state; its watcher stops the work
 *
 * Every queue function records a run in the store (kind "agent"), adds its
 * job and wakes the workers; it never blocks on git, the sandbox or a long
 * GitHub call.  Strings in request structs are borrowed for the call.
 *
 * Budgets of every agent run come from the repository configuration:
 * optimize.max_minutes (wall time of the agent), optimize.max_benchmark_runs,
 * a tool-call budget of AGENT_RUN_TOOL_CALLS_PER_BENCHMARK_RUN calls per
 * allowed benchmark run, and with the managed backend optimize.max_cost_usd
 * (the session's list-cost budget).
 *
 * The backend of a run: agent_override, else perfbot.yml's optimize.agent,
 * else PERFBOT_AGENT (command by default). */
#ifndef AGENT_SERVICES_H
#define AGENT_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent_github.h"
#include "agent/mcp.h"
#include "base/clock.h"
#include "base/config.h"
#include "measure/services.h"
#include "store/store.h"
#include "store/worker.h"
#include "github/github.h"

#define AGENT_RUN_TOOL_CALLS_PER_BENCHMARK_RUN 25

/* Records an approval together with the job that opens the run's pull
 * request (one transaction: store_approval_put).  The job fields of
 * *approval are for the hook to fill.  app/ sets it to pr/'s
 * pr_job_queue_open, so that agent/ never spells pr/'s job kind or key. */
typedef int (*agent_queue_pr_fn)(store *st, const store_approval *approval, void *payload);

/* The managed backend of this process (agent/run_managed.c): the Managed
 * Agents client and the one worker polling the self-hosted environment,
 * started on first use (or at once with agent_managed_backend_start). */
typedef struct agent_managed_backend agent_managed_backend;

/* Checks the managed settings of cfg (base_config_managed_ready) and
 * prepares the backend; the worker serves at most max_sessions sessions at
 * once.  cfg is borrowed and must outlive it.  Nothing is started yet. */
int agent_managed_backend_new(agent_managed_backend **out, const base_config *cfg, int max_sessions);
/* The store shared by the replicas (borrowed, outlives m), set before the
 * worker starts: items of sessions bound in another replica are handed over
 * through it.  Without it (perfbot optimize) nothing is handed over. */
void agent_managed_backend_set_store(agent_managed_backend *m, store *st);
/* Starts the worker if it is not running (thread-safe, idempotent). */
int agent_managed_backend_start(agent_managed_backend *m);
/* Stops the worker (every session it serves ends) and frees.  NULL: no-op. */
void agent_managed_backend_free(agent_managed_backend *m);
/* Makes the worker's series (perfbot_managed_*: polls, sessions, tool
 * calls by tool, results posted, retries, leases lost) at zero so that GET
 * /metrics shows them from the start; the worker counts into them.  NULL:
 * no-op. */
void agent_managed_backend_metrics(agent_managed_backend *m);

typedef struct agent_services {
	const base_config *cfg;
	store *store;
	gh_client *gh;            /* the App's client; NULL when none is configured (setup mode, CLI) */
	const agent_github *github; /* how runs reach GitHub; NULL: the adapter over gh (none when gh is NULL too) */
	const base_clock *clock;  /* the runs' time; NULL: base_clock_system() */
	store_workers *workers;   /* woken after a job is queued; may be NULL */
	agent_mcp *mcp;           /* the /mcp endpoint agent runs register with; may be NULL */
	const char *mcp_url;      /* how an agent command reaches /mcp, e.g. http://127.0.0.1:3000/mcp */
	const char *public_url;   /* base for links shown on GitHub; may be NULL (agent runs link nothing yet) */
	measure_sandbox *sandbox; /* shared sandbox backend; NULL: runs fail with the reason */
	agent_queue_pr_fn queue_pr; /* NULL: approvals are refused (no pull requests here) */
	void *queue_pr_payload;
	agent_managed_backend *managed; /* NULL: runs whose backend is managed fail with the reason */
	const char *agent_override;   /* "command" | "managed": wins over perfbot.yml's optimize.agent
				       * and PERFBOT_AGENT (the CLI's --agent); NULL: none */
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
 * run's proposal and queues pr/'s job that opens its pull request (svc->queue_pr).
 * The run must belong to `repository` (owner/name; NULL only for operators
 * on the CLI), else BASE_ENOTFOUND as for an unknown run.  BASE_EEXISTS when
 * the run was approved already, BASE_ENOTFOUND when it has no proposal (the
 * message says so, for the reply). */
int agent_run_approve(const agent_services *svc, const char *repository, int64_t run_id, const char *user,
		      const char *via);

/* Stops a queued or running agent run of `repository` (as above): kills its
 * agent command and sandbox processes, records who cancelled.  BASE_ENOTFOUND
 * for an unknown run or one of another repository, BASE_EINVALID for a run
 * that already ended. */
int agent_run_cancel(const agent_services *svc, const char *repository, int64_t run_id, const char *user);

/* Registers the "agent.run" job handler (it runs on the bench threads).
 * svc must outlive the workers. */
int agent_run_jobs_register(store_workers *w, agent_services *svc);

#endif
