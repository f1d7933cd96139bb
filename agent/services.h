/* What the GitHub-facing parts of agent/ need from the running server, and
 * the requests the event handlers (webhooks/) make of them.
 *
 *   webhooks/ event handler  --agent_bench_queue_*-->  job "bench.run"  (bench_job.c)
 *                            --agent_run_queue------>  job "agent.run"  (agent_job.c)
 *                            --agent_run_approve---->  job "pr.open"    (pr/)
 *
 * Every queue function records a run in the store (kind "bench" or "agent"),
 * adds its job and wakes the workers; it never blocks on git, the sandbox or
 * a long GitHub call.  Strings in request structs are borrowed for the call. */
#ifndef AGENT_SERVICES_H
#define AGENT_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include "agent/mcp.h"
#include "agent/sandbox.h"
#include "app/config.h"
#include "app/store.h"
#include "app/worker.h"
#include "github/github.h"

typedef struct agent_services {
	const app_config *cfg;
	store *store;
	gh_client *gh;            /* NULL when no App is configured (setup mode, CLI) */
	app_workers *workers;     /* woken after a job is queued; may be NULL */
	agent_mcp *mcp;           /* the /mcp endpoint agent runs register with; may be NULL */
	const char *mcp_url;      /* how an agent command reaches /mcp, e.g. http://127.0.0.1:3000/mcp */
	const char *public_url;   /* base for links shown on GitHub; may be NULL */
	agent_sandbox *sandbox;   /* shared sandbox backend */
} agent_services;

/* Fills buf (size bytes, NUL-terminated) with an installation token for a
 * libgit2 credential callback (agent_token_cb); the temporary copy is wiped.
 * APP_EAUTH without a GitHub App, APP_ETOOBIG when it does not fit, or the
 * client's error. */
int agent_token_fill(char *buf, size_t size, gh_client *gh, int64_t installation_id);

/* ---- bench runs (issue: measure every push) ------------------------------ */

typedef struct agent_bench_push {
	const char *repository;       /* owner/name */
	int64_t installation_id;
	const char *ref;              /* refs/heads/main, or refs/pull/N/head to re-run a pull request's run */
	const char *before;           /* 40 zeros for a new branch */
	const char *after;
	int deleted;
	const char *default_branch;
	const char *clone_url;
	const char *sender;
} agent_bench_push;

/* A push: nothing for a deleted branch; otherwise a bench run of `after`
 * against `before` when the branch is tracked (decided by the job from the
 * config at `after`).  A newer push to the same branch cancels the older
 * run.  *run_out (may be NULL) gets the run id, 0 when nothing was queued. */
int agent_bench_queue_push(int64_t *run_out, const agent_services *svc, const agent_bench_push *push);

typedef struct agent_bench_pull {
	const char *repository;
	int64_t installation_id;
	int number;                   /* pull request number */
	const char *head_sha;
	const char *head_ref;
	const char *base_sha;         /* the base branch tip; the job computes the merge base */
	const char *base_ref;
	const char *clone_url;
	const char *trigger;          /* "pull_request" | "comment" | "rerequested" */
	const char *sender;
	/* From a fork or a first-time contributor: the run waits (state
	 * "waiting", its check run asking for approval) until someone with
	 * write access approves it, as GitHub Actions does. */
	int needs_approval;
} agent_bench_pull;

/* A pull request opened / synchronize / reopened, or `/perfbot bench`. */
int agent_bench_queue_pull(int64_t *run_out, const agent_services *svc, const agent_bench_pull *pull);

/* Approves a waiting bench run of `repository` (the caller checked that
 * `user` has write access): run_id, or with run_id 0 the newest waiting run
 * of pull request `pull`.  The run is queued to measure.  *run_out (may be
 * NULL) gets its id.  APP_ENOTFOUND when nothing waits (the message says
 * so, for the reply). */
int agent_bench_approve(int64_t *run_out, const agent_services *svc, const char *repository, int64_t run_id,
			int pull, const char *user, const char *via);

/* Registers the "bench.run" job handler. */
int agent_bench_jobs_register(app_workers *w, agent_services *svc);

/* ---- agent runs (issue: agent runs and proposals) ------------------------ */

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
 * APP_ENOTFOUND as for an unknown run.  APP_EEXISTS when the run was
 * approved already, APP_ENOTFOUND when it has no proposal (the message says
 * so, for the reply). */
int agent_run_approve(const agent_services *svc, const char *repository, int64_t run_id, const char *user,
		      const char *via);

/* Stops a queued or running agent run of `repository` (as above): kills its
 * agent command and sandbox processes, records who cancelled.  APP_ENOTFOUND
 * for an unknown run or one of another repository, APP_EINVALID for a run
 * that already ended. */
int agent_run_cancel(const agent_services *svc, const char *repository, int64_t run_id, const char *user);

/* Registers the "agent.run" job handler. */
int agent_run_jobs_register(app_workers *w, agent_services *svc);

#endif
