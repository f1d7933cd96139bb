/* Private to the bench runs of measure/ (bench_queue.c, bench_run.c,
 * bench_report.c, bench_github.c): the job's state, the names the files
 * share (the job kind, the check run's name, GitHub's output cap) and the
 * calls one file makes of another.  Nothing outside measure/ includes it but
 * the unit tests of the job (tests/unit/test_measure_bench_run.c).
 *
 * A run's life in the store, as the job sees it:
 *   queued -> running -> done | failed | skipped | cancelled
 *   queued -> waiting (a fork's pull request, no job) -> queued (approved)
 *   queued | running | waiting -> cancelling | cancelled (a newer push)
 * The states are store_run_state values; nothing here compares their names. */
#ifndef MEASURE_BENCH_INT_H
#define MEASURE_BENCH_INT_H

#include <stdatomic.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "measure/bench.h"
#include "measure/checkout.h"
#include "measure/repo_config.h"
#include "measure/services.h"
#include "base/buf.h"

#define BENCH_JOB_KIND "bench.run"
#define BENCH_CHECK_NAME "perfbot"
#define BENCH_ZERO_SHA "0000000000000000000000000000000000000000"
#define BENCH_OUTPUT_MAX 65535   /* GitHub's cap on a check run's summary and text */
#define BENCH_WATCH_MS 250       /* how often a running job looks at its run's state */
#define BENCH_SUPERSEDE_SCAN 200 /* newest runs of a repository looked at when queueing */
#define BENCH_APPROVE_ACTION "approve-run" /* the waiting check run's button */

/* ---- bench_queue.c ---------------------------------------------------------- */

/* 1 when s is 40 lower-case hex digits. */
int bench_is_sha(const char *s);

/* Adds the "bench.run" job of run id under its dedupe key (may be NULL) and
 * wakes the workers. */
int bench_queue_job(const measure_services *svc, int64_t id, const char *key);

/* The job handler of "bench.run" (payload: the measure_services). */
int bench_run_job(store_job_ctx *ctx, void *payload);

/* ---- the job's state (bench_run.c) ---------------------------------------------- */

typedef struct bench_job {
	measure_services *svc;
	const measure_github *gh;    /* svc->github, or gh_adapter; NULL without a GitHub App */
	measure_github gh_adapter;   /* over svc->gh when svc->github is NULL */
	const base_clock *clock;     /* svc->clock or the system's */
	store_job_ctx *ctx;
	int64_t id;
	char ids[24];
	json_t *run;                 /* owned: the stored run */
	const char *repository;      /* borrowed from run: "owner/name" */
	int64_t inst;
	const char *head, *base;     /* base: the push's before, or the base branch tip */
	const char *branch;
	const char *ref, *default_branch, *clone_url, *head_ref, *base_ref, *sender;
	int pull;                    /* pull request number, 0 for a push */
	int64_t check_id;            /* 0 until created */
	measure_checkout_source src;
	int token_error;             /* the last failure of the token callback */
	measure_repo_config *cfg;    /* owned */
	atomic_int cancel;           /* raised by the watcher; read by the sandbox */
	char cancel_reason[128];
} bench_job;

/* Ends the run in the store with state and reason (may be NULL), and says
 * so in the job's note and the log. */
void bench_finish(bench_job *j, store_run_state state, const char *reason);

/* Merges patch (owned; NULL means out of memory) into the run's data. */
int bench_update_data(bench_job *j, json_t *patch);

/* ---- bench_github.c: the job's GitHub side ------------------------------------- */

/* 1 when error is GitHub trouble worth another attempt and this is not the
 * last: the job then returns error and goes back to the queue (at the time
 * a rate limit names). */
int bench_gh_retry(bench_job *j, int error);

/* The checkout's credential callback: the installation token through j->gh. */
int bench_token_cb(char *buf, size_t size, void *payload);

/* Creates the in-progress check run once (its id kept in the run's data). */
int bench_check_start(bench_job *j, const char *summary);

/* Keeps {conclusion, title, summary, text} in the run's data, then
 * completes the check run with it. */
int bench_check_complete(bench_job *j, const char *conclusion, const char *title, const char *summary,
			 const char *text);

/* Completes the check run with a result kept earlier (borrowed). */
int bench_check_complete_stored(bench_job *j, const json_t *result);

/* Creates the "action_required" check run of a run waiting for approval
 * (once: its id is kept in the run's data).  Returns what the job returns
 * on a GitHub failure worth a retry, 0 otherwise (the run waits anyway). */
int bench_check_waiting(bench_job *j);

/* After an approval, the waiting check run says who approved. */
void bench_check_close_waiting(bench_job *j);

/* For a push: whether the branch is tracked, from the file at the head read
 * through the API before any check run exists.  1 tracked (or unknown),
 * 0 not tracked; negative: retry. */
int bench_push_tracked(bench_job *j);

/* ---- bench_report.c: the check run's text (pure) --------------------------------- */

/* GitHub's cap on a string: at most BENCH_OUTPUT_MAX bytes of s, cut at a
 * UTF-8 boundary with a marker.  Owned. */
json_t *bench_capped_string(const char *s);

/* Summaries of the check runs that report no measurement; each fills buf
 * (cap bytes) and returns it. */
const char *bench_text_waiting(char *buf, size_t cap, const char *head);
const char *bench_text_no_config(char *buf, size_t cap, const char *head);
const char *bench_text_bad_config(char *buf, size_t cap, const char *head, const char *message);
const char *bench_text_start(char *buf, size_t cap, const char *head);

/* "The build `cmd` failed at `abc1234`..." with the build's output tail
 * (build: the run document's "build", borrowed).  Owned. */
char *bench_text_build_failed(const char *build_command, const char *head, const json_t *build);

/* The check run's summary: the report's own, or without a base the run's
 * numbers alone; a note when the base did not build (base_run borrowed,
 * may be NULL).  Owned. */
char *bench_text_summary(const measure_bench_report *rep, const json_t *head_run, const json_t *base_run,
			 const char *base_sha);

/* The check run's text: exact counts of head (and base), the toolchain and
 * the failures' output tails.  Arrays borrowed; base may be NULL.  Owned. */
char *bench_text_details(const json_t *head, const char *head_sha, const json_t *base, const char *base_sha,
			 const json_t *head_run);

#endif
