/* What measure/'s GitHub-facing jobs (bench runs) need from the running
 * server, and the requests the event handlers (webhooks/) make of them.
 *
 *   webhooks/ event handler  --measure_bench_queue_*-->  job "bench.run"  (bench_job.c)
 *
 * Every queue function records a run in the store (kind "bench"), adds its
 * job and wakes the workers; it never blocks on git, the sandbox or a long
 * GitHub call.  Strings in request structs are borrowed for the call. */
#ifndef MEASURE_SERVICES_H
#define MEASURE_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include "measure/sandbox.h"
#include "base/config.h"
#include "store/store.h"
#include "store/worker.h"
#include "github/github.h"

/* An agent run a push asks for (`optimize.on: push`), handed to whoever
 * queues agent runs: measure/ never drives an agent.  Strings borrowed. */
typedef struct measure_optimize_request {
	const char *repository;
	int64_t installation_id;
	const char *commit;
	const char *branch;
	const char *clone_url;
	const char *requested_by;
} measure_optimize_request;

typedef int (*measure_queue_optimize_fn)(int64_t *run_out, const measure_optimize_request *req, void *payload);

typedef struct measure_services {
	const base_config *cfg;
	store *store;
	gh_client *gh;            /* NULL when no App is configured (setup mode, CLI) */
	store_workers *workers;     /* woken after a job is queued; may be NULL */
	const char *public_url;   /* base for links shown on GitHub; may be NULL */
	measure_sandbox *sandbox;   /* shared sandbox backend */
	measure_queue_optimize_fn queue_optimize; /* NULL: a push never starts an agent run */
	void *queue_optimize_payload;
} measure_services;

/* Fills buf (size bytes, NUL-terminated) with an installation token for a
 * libgit2 credential callback; the temporary copy is wiped.  BASE_EAUTH
 * without a GitHub App, BASE_ETOOBIG when it does not fit, or the client's
 * error. */
int measure_token_fill(char *buf, size_t size, gh_client *gh, int64_t installation_id);

typedef struct measure_bench_push {
	const char *repository;       /* owner/name */
	int64_t installation_id;
	const char *ref;              /* refs/heads/main, or refs/pull/N/head to re-run a pull request's run */
	const char *before;           /* 40 zeros for a new branch */
	const char *after;
	int deleted;
	const char *default_branch;
	const char *clone_url;
	const char *sender;
} measure_bench_push;

/* A push: nothing for a deleted branch; otherwise a bench run of `after`
 * against `before` when the branch is tracked (decided by the job from the
 * config at `after`).  A newer push to the same branch cancels the older
 * run.  *run_out (may be NULL) gets the run id, 0 when nothing was queued. */
int measure_bench_queue_push(int64_t *run_out, const measure_services *svc, const measure_bench_push *push);

typedef struct measure_bench_pull {
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
} measure_bench_pull;

/* A pull request opened / synchronize / reopened, or `/perfbot bench`. */
int measure_bench_queue_pull(int64_t *run_out, const measure_services *svc, const measure_bench_pull *pull);

/* Approves a waiting bench run of `repository` (the caller checked that
 * `user` has write access): run_id, or with run_id 0 the newest waiting run
 * of pull request `pull`.  The run is queued to measure.  *run_out (may be
 * NULL) gets its id.  BASE_ENOTFOUND when nothing waits (the message says
 * so, for the reply). */
int measure_bench_approve(int64_t *run_out, const measure_services *svc, const char *repository, int64_t run_id,
			int pull, const char *user, const char *via);

/* Registers the "bench.run" job handler. */
int measure_bench_jobs_register(store_workers *w, measure_services *svc);

#endif
