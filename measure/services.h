/* What measure/'s GitHub-facing jobs (bench runs) need from the running
 * server (measure_services: the store, the workers, the sandbox, GitHub
 * through measure_github, a clock), and the requests the event handlers
 * (webhooks/) make of them.
 *
 *   webhooks/ event handler  --measure_bench_queue_*-->  job "bench.run"
 *
 * bench_queue.c holds the queue and approval calls, bench_run.c the job,
 * bench_report.c the text of its check runs, bench_github.c their GitHub
 * side and github_adapter.c measure_github over github/'s client.
 *
 * Every queue function records a run in the store (kind STORE_RUN_BENCH),
 * adds its job and wakes the workers; it never blocks on git, the sandbox or
 * a long GitHub call.  Strings in request structs are borrowed for the call. */
#ifndef MEASURE_SERVICES_H
#define MEASURE_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "measure/sandbox.h"
#include "base/clock.h"
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

/* GitHub as measure/ uses it: a struct of function pointers so that tests
 * can answer in GitHub's place.  `repository` is "owner/name"; every call
 * gets the installation to act as and the struct's payload last; errors are
 * github/'s (BASE_ENOTFOUND, BASE_ERETRY, BASE_ETIMEOUT, ...) with one line
 * in base_error_last().  Any thread. */
typedef struct measure_github {
	/* POST /repos/{repository}/check-runs with body (borrowed); *id_out gets its id. */
	int (*create_check_run)(int64_t *id_out, int64_t installation_id, const char *repository, json_t *body,
				void *payload);
	/* PATCH /repos/{repository}/check-runs/{check_run_id} with body (borrowed). */
	int (*update_check_run)(int64_t installation_id, const char *repository, int64_t check_run_id, json_t *body,
				void *payload);
	/* POST /repos/{repository}/issues/{number}/comments. */
	int (*comment)(int64_t installation_id, const char *repository, int number, const char *body, void *payload);
	/* The file at path in ref, decoded: *data_out owned, NUL-terminated;
	 * BASE_ENOTFOUND when the file or the ref does not exist. */
	int (*get_file)(char **data_out, size_t *len_out, int64_t installation_id, const char *repository,
			const char *path, const char *ref, void *payload);
	/* An installation token for git over HTTPS; *token_out owned (wipe it,
	 * then free()).  Never logged. */
	int (*installation_token)(char **token_out, int64_t installation_id, void *payload);
	/* Drops a cached token that git was refused with. */
	void (*token_invalidate)(int64_t installation_id, void *payload);
	/* After a BASE_ERETRY on this thread: the wait GitHub asked for in ms (a
	 * rate limit), 0 when it said none. */
	long (*retry_wait_ms)(void *payload);
	void *payload;
} measure_github;

/* measure_github over github/'s client (borrowed; thread-safe). */
void measure_github_adapter_init(measure_github *out, gh_client *gh);

typedef struct measure_services {
	const base_config *cfg;
	store *store;
	gh_client *gh;            /* NULL when no App is configured (setup mode, CLI) */
	const measure_github *github; /* NULL: measure_github_adapter_init over gh (none without gh) */
	const base_clock *clock;  /* the jobs' time; NULL: base_clock_system() */
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

/* The same through a measure_github. */
int measure_token_fill_with(char *buf, size_t size, const measure_github *gh, int64_t installation_id);

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
	const char *commit_author;    /* the head commit's author, message and time (ms), shown by */
	const char *commit_message;   /* the dashboard; may be NULL / 0 */
	int64_t commit_at_ms;
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
	 * STORE_RUN_WAITING, its check run asking for approval) until someone with
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
