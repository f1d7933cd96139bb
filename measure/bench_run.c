/* The "bench.run" job (see bench_int.h): measures a push or a pull request
 * and reports it as the "perfbot" check run.
 *
 *   run_job: load the run -> begin (its state decides: go on, wait for an
 *   approval, report a stored result, or end) -> prepare (tracked branch,
 *   check run in progress, fetch, .github/perfbot.yml) -> measure_and_report
 *   (head, the base: merge base or the push's before, compare, complete the
 *   check run) -> the run ends done | failed | skipped | cancelled.
 *
 * The job watches its own run's state from a small thread (run_watch.h) and
 * raises the cancel flag that the sandbox polls, so a superseded
 * measurement stops within a fraction of a second; a shutdown puts the run
 * back in the queue instead.  All cancellation state lives in the store:
 * nothing is shared between threads but the one flag of a running job.
 * GitHub is reached through measure_github (bench_github.c), time through
 * the services' clock.
 *
 * Threading: one worker per job; only the store, the GitHub interface
 * (thread-safe) and the job's own state. */
#include "measure/bench_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "measure/run_watch.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

/* ---- the job's state --------------------------------------------------------- */

static void set_note(bench_job *j, const char *text)
{
	snprintf(j->ctx->note, sizeof(j->ctx->note), "run %lld: %s", (long long)j->id, text);
}

void bench_finish(bench_job *j, store_run_state state, const char *reason)
{
	if (store_run_set_state(j->svc->store, j->id, state, reason) < 0)
		base_log(BASE_LOG_ERROR, "cannot record a bench run's outcome", "run", j->ids, "error", base_error_last(),
			 NULL);
	set_note(j, reason ? reason : store_run_state_name(state));
	base_log(BASE_LOG_INFO, "bench run ended", "run", j->ids, "repository", j->repository, "state",
		 store_run_state_name(state), "reason", reason, NULL);
}

int bench_update_data(bench_job *j, json_t *patch /* owns */)
{
	int error = patch ? store_run_update(j->svc->store, j->id, patch) : base_error_set(BASE_ENOMEM, "out of memory");
	json_decref(patch);
	return error;
}

/* Called once on the watcher's thread: a newer push, a cancel or a
 * shutdown stops the measurement through the sandbox's cancel flag. */
static void on_watch(measure_watch_cause cause, const char *reason, void *payload)
{
	(void)cause;
	bench_job *j = payload;
	snprintf(j->cancel_reason, sizeof(j->cancel_reason), "%s", reason);
	atomic_store(&j->cancel, 1);
}

static int cancelled(bench_job *j)
{
	return atomic_load(&j->cancel);
}

/* Reports a run that could not measure: check run (when there is one) and
 * run state.  Returns what the job returns. */
static int fail_run(bench_job *j, const char *conclusion, const char *title, const char *summary, const char *reason)
{
	int error = 0;
	if (j->check_id && (error = bench_check_complete(j, conclusion, title, summary, NULL)) < 0) {
		if (bench_gh_retry(j, error))
			return error;
		base_log(BASE_LOG_WARN, "cannot complete a check run", "run", j->ids, "error", base_error_last(), NULL);
	}
	bench_finish(j, STORE_RUN_FAILED, reason);
	return 0;
}

/* A run stopped by a cancel, a newer push or a shutdown (j->cancel_reason
 * says which).  A shutdown puts it back in the queue. */
static int ended_cancelled(bench_job *j)
{
	if (j->ctx->stopping && atomic_load(j->ctx->stopping) && !strcmp(j->cancel_reason, "perfbot is shutting down")) {
		/* not superseded: measure again after the restart */
		store_run_set_state(j->svc->store, j->id, STORE_RUN_QUEUED, "interrupted by a shutdown");
		set_note(j, "interrupted by a shutdown");
		return base_error_set(BASE_ERETRY, "bench run %lld interrupted by a shutdown", (long long)j->id);
	}
	char summary[256];
	snprintf(summary, sizeof(summary), "This measurement was stopped: %s.", j->cancel_reason);
	int error = j->check_id ? bench_check_complete(j, "cancelled", "Cancelled", summary, NULL) : 0;
	if (error < 0 && bench_gh_retry(j, error))
		return error;
	bench_finish(j, STORE_RUN_CANCELLED, j->cancel_reason);
	return 0;
}

/* The same for a run the store already marks cancelled or cancelling. */
static int ended_cancelled_stored(bench_job *j, const json_t *run)
{
	const char *why = base_json_str(run, "reason");
	snprintf(j->cancel_reason, sizeof(j->cancel_reason), "%s", why ? why : "cancelled");
	return ended_cancelled(j);
}

/* ---- measuring ----------------------------------------------------------------- */

static void store_measurements(bench_job *j, const json_t *run, const char *sha)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(run, "benchmarks"), i, m)
	{
		const char *name = base_json_str(m, "name");
		int64_t mid = 0;
		if (name && store_measurement_put(j->svc->store, &mid, j->id, j->repository, sha, name, m) < 0)
			base_log(BASE_LOG_ERROR, "cannot store a measurement", "run", j->ids, "benchmark", name, "error",
				 base_error_last(), NULL);
	}
}

/* Benchmarks a run measures at once: the cores shared out among the bench
 * workers (BENCH_WORKERS runs may measure at the same time), at least one. */
static int parallel_benchmarks(const bench_job *j)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int workers = j->svc->cfg && j->svc->cfg->bench_workers > 0 ? j->svc->cfg->bench_workers : 1;
	long n = cores > 0 ? cores / workers : 1;
	return n > 1 ? (int)n : 1;
}

static int measure(json_t **out, bench_job *j, const char *sha, const char *const *only, size_t nonly)
{
	char resolved[41];
	measure_bench_options o = MEASURE_BENCH_OPTIONS_INIT;
	o.only = only;
	o.nonly = nonly;
	o.cancel = &j->cancel;
	o.parallel = parallel_benchmarks(j);
	int error = measure_bench_measure_rev(out, resolved, j->svc->sandbox, &j->src, sha, j->cfg, &o);
	if (error == 0 && !cancelled(j))
		store_measurements(j, *out, resolved);
	return error;
}

/* A stored base measurement stands for one taken now only when it was made
 * the same way: the same command, mode, build and toolchain. */
static int reusable(const json_t *stored, const measure_benchmark_config *b, const char *build, const json_t *toolchain)
{
	const char *cmd = base_json_str(stored, "command"), *mode = base_json_str(stored, "mode"),
		   *built = base_json_str(stored, "build_command");
	return cmd && mode && built && !strcmp(built, build ? build : "") && !strcmp(cmd, b->command) &&
	       !strcmp(mode, b->mode == MEASURE_MODE_REGION ? "region" : "process") && toolchain &&
	       json_equal(json_object_get(stored, "toolchain"), toolchain);
}

/* The base's measurements: stored ones where they fit, the others measured
 * now.  *out: owned array; *base_run_out: owned run document of what was
 * measured now (NULL when everything was stored). */
static int base_measurements(json_t **out, json_t **base_run_out, bench_job *j, const char *sha,
			     const json_t *toolchain)
{
	json_t *arr = json_array();
	const char **missing = calloc(j->cfg->nbenchmarks + 1, sizeof(*missing));
	size_t nmissing = 0;
	int error = 0;
	*out = NULL;
	*base_run_out = NULL;
	if (!arr || !missing) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < j->cfg->nbenchmarks; i++) {
		const measure_benchmark_config *b = &j->cfg->benchmarks[i];
		json_t *row = NULL;
		if (store_measurement_find(j->svc->store, j->repository, sha, b->name, &row) == 0) {
			const json_t *data = json_object_get(row, "data");
			if (reusable(data, b, j->cfg->build, toolchain)) {
				json_array_append(arr, (json_t *)data);
				json_decref(row);
				continue;
			}
		}
		json_decref(row);
		missing[nmissing++] = b->name;
	}
	if (nmissing) {
		if ((error = measure(base_run_out, j, sha, missing, nmissing)) < 0)
			goto done;
		json_array_extend(arr, json_object_get(*base_run_out, "benchmarks"));
	}
	*out = arr;
	arr = NULL;
done:
	json_decref(arr);
	free(missing);
	return error;
}

/* Reads and parses the configuration at the measured commit.  Returns 0
 * with j->cfg, or the code: BASE_ENOTFOUND (no file), BASE_EINVALID /
 * BASE_ETOOBIG (a bad file; message from the parser), others (git). */
static int read_config(bench_job *j)
{
	char *yml = NULL;
	size_t len = 0;
	int error = measure_checkout_read_file(&yml, &len, &j->src, j->head, MEASURE_REPO_CONFIG_PATH,
					       MEASURE_REPO_CONFIG_MAX);
	if (error == 0)
		error = measure_repo_config_parse(&j->cfg, yml, len);
	free(yml);
	return error;
}

/* Fetches sha into the cache.  A refused token is dropped and the job
 * retried; a GitHub failure getting the token is retried too. */
static int fetch(bench_job *j, const char *sha, int *retry_out)
{
	char resolved[41];
	j->token_error = 0;
	*retry_out = 0;
	int error = measure_checkout_fetch(resolved, &j->src, sha);
	if (error == 0)
		return 0;
	if (error == BASE_EAUTH && !j->ctx->final_attempt) {
		j->gh->token_invalidate(j->inst, j->gh->payload);
		*retry_out = 1;
	} else if (j->token_error && bench_gh_retry(j, j->token_error)) {
		*retry_out = 1;
	}
	return error;
}

/* ---- runs that measure nothing ------------------------------------------------------ */

/* A pull request from a fork or a first-time contributor: its code (the
 * build and benchmark commands of its own perfbot.yml) runs only once
 * someone with write access approves, as GitHub Actions asks.  The check run
 * says so, with a button; the run waits (STORE_RUN_WAITING) without a job.
 * An approval that lands while this runs is seen on the second look. */
static int wait_for_approval(bench_job *j)
{
	const json_t *data = json_object_get(j->run, "data");
	int error = bench_check_waiting(j);
	if (error < 0)
		return error;
	error = store_run_set_state_from(j->svc->store, j->id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING),
					 STORE_RUN_WAITING, "waiting for approval by someone with write access");
	if (error == BASE_EEXISTS) {
		set_note(j, "superseded before it waited");
		return 0;
	}
	if (error < 0)
		return error;
	/* approved between the first read and the state change: go on now */
	json_t *now = NULL;
	if (store_run_get(j->svc->store, j->id, &now) == 0 && base_json_str(json_object_get(now, "data"), "approved_by") &&
	    store_run_set_state_from(j->svc->store, j->id, STORE_RUN_IN(STORE_RUN_WAITING), STORE_RUN_QUEUED, NULL) == 0)
		bench_queue_job(j->svc, j->id, base_json_str(data, "job_key"));
	json_decref(now);
	set_note(j, "waiting for approval");
	base_log(BASE_LOG_INFO, "bench run waits for approval", "run", j->ids, "repository", j->repository, "pull",
		 base_json_str(data, "ref"), NULL);
	return 0;
}

static int no_config(bench_job *j)
{
	char summary[2048];
	bench_text_no_config(summary, sizeof(summary), j->head);
	int error = bench_check_complete(j, "neutral", "No perfbot configuration", summary, NULL);
	if (error < 0 && bench_gh_retry(j, error))
		return error;
	bench_finish(j, STORE_RUN_DONE, "no .github/perfbot.yml");
	return 0;
}

static int bad_config(bench_job *j, const char *message)
{
	char summary[2048], reason[600];
	bench_text_bad_config(summary, sizeof(summary), j->head, message);
	snprintf(reason, sizeof(reason), "invalid %s: %.500s", MEASURE_REPO_CONFIG_PATH, message);
	return fail_run(j, "failure", "Invalid .github/perfbot.yml", summary, reason);
}

/* ---- measuring and reporting ---------------------------------------------------------- */

static void queue_optimize(bench_job *j)
{
	if (!j->svc->queue_optimize)
		return;
	measure_optimize_request req = { .repository = j->repository, .installation_id = j->inst, .commit = j->head,
					 .branch = j->branch, .clone_url = j->clone_url, .requested_by = j->sender };
	int64_t run = 0;
	if (j->svc->queue_optimize(&run, &req, j->svc->queue_optimize_payload) < 0) {
		base_log(BASE_LOG_WARN, "cannot queue the agent run of a push", "run", j->ids, "error", base_error_last(),
			 NULL);
		return;
	}
	char ids[24];
	snprintf(ids, sizeof(ids), "%lld", (long long)run);
	base_log(BASE_LOG_INFO, "agent run queued after a push", "run", j->ids, "agent_run", ids, NULL);
}

/* Measures the head.  *ended: the run was ended here (failed, cancelled or
 * its build failed); the return value is then the job's. */
static int measure_head(json_t **out, int *ended, bench_job *j)
{
	char reason[600];
	*ended = 1;
	int error = measure(out, j, j->head, NULL, 0);
	if (error < 0 && !cancelled(j)) {
		char summary[1200];
		snprintf(summary, sizeof(summary), "perfbot could not measure `%.7s`:\n\n```\n%.1000s\n```\n", j->head,
			 base_error_last());
		snprintf(reason, sizeof(reason), "measurement failed: %.500s", base_error_last());
		return fail_run(j, "failure", "Measurement failed", summary, reason);
	}
	if (cancelled(j))
		return ended_cancelled(j);
	const json_t *build = json_object_get(*out, "build");
	const char *status = base_json_str(build, "status");
	if (status && strcmp(status, "ok") && strcmp(status, "none")) {
		char *summary = bench_text_build_failed(j->cfg->build, j->head, build);
		snprintf(reason, sizeof(reason), "build %s", !strcmp(status, "timeout") ? "timed out" : "failed");
		error = summary ? fail_run(j, "failure", "Build failed", summary, reason)
				: base_error_set(BASE_ENOMEM, "out of memory");
		free(summary);
		return error;
	}
	*ended = 0;
	return 0;
}

/* The commit to compare with: the merge base of a pull request, the push's
 * before.  merge_base (41 bytes) holds the former; *sha_out stays NULL when
 * there is none to fetch.  Negative: the job goes back to the queue. */
static int pick_base(const char **sha_out, const char **label_out, char merge_base[41], bench_job *j)
{
	int retry = 0, error;
	*sha_out = *label_out = NULL;
	if (j->pull) {
		if ((error = fetch(j, j->base, &retry)) == 0 &&
		    (error = measure_checkout_merge_base(merge_base, &j->src, j->head, j->base)) == 0) {
			*sha_out = merge_base;
			*label_out = j->base_ref;
			bench_update_data(j, json_pack("{s:s}", "merge_base", merge_base));
			return 0;
		}
		if (retry)
			return error;
		base_log(BASE_LOG_WARN, "no merge base: reporting the head alone", "run", j->ids, "error",
			 base_error_last(), NULL);
	} else if (j->base) {
		if ((error = fetch(j, j->base, &retry)) == 0) {
			*sha_out = j->base;
			*label_out = j->branch; /* the branch before the push */
			return 0;
		}
		if (retry)
			return error;
		/* a force push can make `before` unreachable */
		base_log(BASE_LOG_WARN, "the push's before is not available: reporting the head alone", "run", j->ids,
			 "error", base_error_last(), NULL);
	}
	return 0;
}

/* Compares head with base (may be NULL), records the outcome in the run and
 * completes the check run. */
static int report(bench_job *j, const json_t *head_run, const json_t *base, const json_t *base_run,
		  const char *base_sha, const char *base_label, int tracked_push)
{
	json_t *cmp = NULL;
	measure_bench_report rep = { 0 };
	char *text = NULL, *summary = NULL;
	const json_t *head = json_object_get(head_run, "benchmarks");
	int error;
	if ((error = measure_bench_compare(&cmp, base_sha ? base : NULL, head, j->cfg)) < 0 ||
	    (error = measure_bench_report_make(&rep, cmp, j->pull ? j->head_ref : j->branch, j->head, base_label,
					       base_sha)) < 0)
		goto done;
	text = bench_text_details(head, j->head, base_sha ? base : NULL, base_sha, head_run);
	summary = bench_text_summary(&rep, head_run, base_run, base_sha);
	/* nothing to compare with: the numbers alone */
	const char *title = !base_sha && !rep.failures ? "Measured (no base to compare with)" : rep.title;
	if (!summary || !text) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = bench_update_data(j, json_pack("{s:O, s:s?, s:s, s:i, s:i, s:i}", "comparison", cmp, "base_commit",
						    base_sha, "conclusion", rep.conclusion, "regressions",
						    rep.regressions, "improvements", rep.improvements, "failures",
						    rep.failures))) < 0)
		goto done;
	if ((error = bench_check_complete(j, rep.conclusion, title, summary, text)) < 0) {
		if (bench_gh_retry(j, error))
			goto done;
		base_log(BASE_LOG_WARN, "cannot complete a check run", "run", j->ids, "error", base_error_last(), NULL);
		error = 0;
	}
	bench_finish(j, STORE_RUN_DONE, title);
	if (tracked_push && j->cfg->optimize_on_push)
		queue_optimize(j);
done:
	measure_bench_report_dispose(&rep);
	free(text);
	free(summary);
	json_decref(cmp);
	return error;
}

/* Measures, compares and reports.  j->cfg is set and the head fetched. */
static int measure_and_report(bench_job *j, int tracked_push)
{
	json_t *head_run = NULL, *base_run = NULL, *base = NULL;
	char merge_base[41] = "";
	const char *base_sha = NULL, *base_label = NULL;
	int ended = 0;
	int error = measure_head(&head_run, &ended, j);
	if (ended || (error = pick_base(&base_sha, &base_label, merge_base, j)) < 0)
		goto done;
	if (base_sha) {
		if (base_measurements(&base, &base_run, j, base_sha, json_object_get(head_run, "toolchain")) < 0 &&
		    !cancelled(j)) {
			base_log(BASE_LOG_WARN, "cannot measure the base: reporting the head alone", "run", j->ids, "error",
				 base_error_last(), NULL);
			base_sha = NULL;
		}
		if (cancelled(j)) {
			error = ended_cancelled(j);
			goto done;
		}
	}
	error = report(j, head_run, base, base_run, base_sha, base_label, tracked_push);
done:
	json_decref(base);
	json_decref(base_run);
	json_decref(head_run);
	return error;
}

/* ---- the job ---------------------------------------------------------------------------- */

/* Reads the job's run into j.  *ended: nothing more to do. */
static int job_load(bench_job *j, int *ended)
{
	*ended = 1;
	json_t *p = json_loads(j->ctx->job->payload, 0, NULL);
	j->id = base_json_int(p, "run_id");
	json_decref(p);
	if (j->id <= 0)
		return base_error_set(BASE_EINVALID, "bench.run: payload without run_id");
	snprintf(j->ids, sizeof(j->ids), "%lld", (long long)j->id);
	int error = store_run_get(j->svc->store, j->id, &j->run);
	if (error == BASE_ENOTFOUND) {
		set_note(j, "no such run");
		return 0;
	}
	if (error < 0)
		return error;
	const json_t *data = json_object_get(j->run, "data");
	j->repository = base_json_str(j->run, "repository");
	j->inst = base_json_int(j->run, "installation_id");
	j->head = base_json_str(j->run, "head_sha");
	j->base = base_json_str(j->run, "base_sha");
	j->branch = base_json_str(j->run, "branch");
	j->ref = base_json_str(data, "ref");
	j->default_branch = base_json_str(data, "default_branch");
	j->clone_url = base_json_str(data, "clone_url");
	j->head_ref = base_json_str(data, "head_ref");
	j->base_ref = base_json_str(data, "base_ref");
	j->sender = base_json_str(data, "sender");
	j->pull = (int)base_json_int(data, "pull");
	j->check_id = base_json_int(data, "check_run_id");
	j->src = (measure_checkout_source){ .data_dir = j->svc->cfg->data_dir, .repository = j->repository,
					    .url = j->clone_url, .token_cb = bench_token_cb, .token_payload = j };
	*ended = 0;
	return 0;
}

/* What the run's state asks for before anything runs: end it, report a
 * result kept by an earlier attempt, wait for an approval, or go on (then
 * the run is STORE_RUN_RUNNING and *ended 0). */
static int job_begin(bench_job *j, int *ended)
{
	const json_t *data = json_object_get(j->run, "data");
	store_run_state state = store_run_state_of(j->run);
	char owner[GH_NAME_MAX], name[GH_NAME_MAX];
	int error = 0;
	*ended = 1;
	if (!j->repository || !bench_is_sha(j->head) || gh_repo_split(owner, name, j->repository) < 0) {
		bench_finish(j, STORE_RUN_FAILED, "the run has no repository or head commit");
		return 0;
	}
	if (state == STORE_RUN_CANCELLED || state == STORE_RUN_CANCELLING)
		return ended_cancelled_stored(j, j->run);
	if (state == STORE_RUN_DONE || state == STORE_RUN_FAILED || state == STORE_RUN_SKIPPED) {
		set_note(j, "already ended");
		return 0;
	}
	if (!j->gh) {
		bench_finish(j, STORE_RUN_FAILED, "no GitHub App configured");
		return 0;
	}
	const json_t *result = json_object_get(data, "result");
	if (result && j->check_id) {
		/* an earlier attempt measured and failed to report: report only */
		if ((error = bench_check_complete_stored(j, result)) < 0) {
			if (!bench_gh_retry(j, error)) {
				base_log(BASE_LOG_WARN, "cannot complete a check run", "run", j->ids, "error",
					 base_error_last(), NULL);
				error = 0;
				bench_finish(j, STORE_RUN_FAILED, "the check run could not be completed");
			}
			return error;
		}
		bench_finish(j, STORE_RUN_DONE, base_json_str(result, "title"));
		return 0;
	}
	if (state == STORE_RUN_WAITING) {
		set_note(j, "waiting for approval");
		return 0;
	}
	if (json_is_true(json_object_get(data, "needs_approval")) && !base_json_str(data, "approved_by"))
		return wait_for_approval(j);
	/* a newer push may have superseded it since it was read */
	error = store_run_set_state_from(j->svc->store, j->id, STORE_RUN_IN(STORE_RUN_QUEUED) | STORE_RUN_IN(STORE_RUN_RUNNING),
					 STORE_RUN_RUNNING, NULL);
	if (error == BASE_EEXISTS) {
		json_t *now = NULL;
		error = store_run_get(j->svc->store, j->id, &now);
		store_run_state st = error == 0 ? store_run_state_of(now) : STORE_RUN_UNKNOWN;
		if (st == STORE_RUN_CANCELLED || st == STORE_RUN_CANCELLING)
			error = ended_cancelled_stored(j, now);
		else if (error == 0)
			set_note(j, "already ended");
		json_decref(now);
		return error;
	}
	if (error < 0)
		return error;
	base_log(BASE_LOG_INFO, "bench run started", "run", j->ids, "repository", j->repository, "head", j->head, "base",
		 j->base, "pull", j->pull ? j->ref : NULL, NULL);
	*ended = 0;
	return 0;
}

/* Reads the configuration at the fetched head; ends the run when it is
 * missing, invalid or unreadable (*ended). */
static int job_config(bench_job *j, int *ended)
{
	*ended = 1;
	int error = read_config(j);
	if (error == BASE_ENOTFOUND)
		return no_config(j);
	if (error == BASE_EINVALID || error == BASE_ETOOBIG) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		return bad_config(j, msg);
	}
	if (error < 0) {
		char reason[600];
		snprintf(reason, sizeof(reason), "cannot read %s: %.500s", MEASURE_REPO_CONFIG_PATH, base_error_last());
		return fail_run(j, "failure", "Could not read the configuration", reason, reason);
	}
	if (!j->pull && !measure_repo_config_tracks_branch(j->cfg, j->branch, j->default_branch)) {
		/* the API could not tell before the check run was made */
		error = bench_check_complete(j, "skipped", "Branch not tracked",
					     "The `branches` of `.github/perfbot.yml` do not include this branch.", NULL);
		if (error < 0 && bench_gh_retry(j, error))
			return error;
		bench_finish(j, STORE_RUN_SKIPPED, "branch not tracked");
		return 0;
	}
	*ended = 0;
	return 0;
}

/* A running run up to the measurement: a push's branch tracked, the check
 * run in progress, the sandbox there, the head fetched, the configuration
 * read (*ended: the run ended on the way). */
static int job_prepare(bench_job *j, int *ended)
{
	char text[400];
	int error = 0, retry = 0;
	*ended = 1;
	if (!j->pull) {
		if (!j->branch) {
			bench_finish(j, STORE_RUN_FAILED, "a push run without a branch");
			return 0;
		}
		int tracked = bench_push_tracked(j);
		if (tracked < 0)
			return tracked;
		if (!tracked) {
			snprintf(text, sizeof(text), "branch %.300s is not tracked", j->branch);
			bench_finish(j, STORE_RUN_SKIPPED, text);
			return 0;
		}
	}
	bench_check_close_waiting(j);
	if ((error = bench_check_start(j, bench_text_start(text, sizeof(text), j->head))) < 0) {
		if (bench_gh_retry(j, error))
			return error;
		snprintf(text, sizeof(text), "cannot create the check run: %.300s", base_error_last());
		bench_finish(j, STORE_RUN_FAILED, text);
		return 0;
	}
	if (!j->svc->sandbox)
		return fail_run(j, "failure", "Sandbox unavailable",
				"perfbot cannot start its sandbox (bubblewrap) on this server, and it never runs "
				"repository code outside it. The server's log says why; nothing was measured.",
				"sandbox unavailable");
	if ((error = fetch(j, j->head, &retry)) < 0) {
		if (retry)
			return error;
		char summary[1200], reason[600];
		snprintf(summary, sizeof(summary), "perfbot could not fetch `%.7s` from the repository:\n\n```\n%.1000s\n```\n",
			 j->head, base_error_last());
		snprintf(reason, sizeof(reason), "fetch failed: %.500s", base_error_last());
		return fail_run(j, "failure", "Could not fetch the commit", summary, reason);
	}
	return job_config(j, ended);
}

int bench_run_job(store_job_ctx *ctx, void *payload)
{
	bench_job j;
	memset(&j, 0, sizeof(j));
	j.svc = payload;
	j.ctx = ctx;
	j.clock = j.svc->clock ? j.svc->clock : base_clock_system();
	if (j.svc->github) {
		j.gh = j.svc->github;
	} else if (j.svc->gh) {
		measure_github_adapter_init(&j.gh_adapter, j.svc->gh);
		j.gh = &j.gh_adapter;
	}
	measure_run_watch *w = NULL;
	int ended = 0;
	int error = job_load(&j, &ended);
	if (ended || (error = job_begin(&j, &ended)) < 0 || ended || (error = job_prepare(&j, &ended)) < 0 || ended)
		goto done;
	measure_run_watch_options wo = { .store = j.svc->store,
					 .run_id = j.id,
					 .state_set = STORE_RUN_IN(STORE_RUN_CANCELLING) | STORE_RUN_IN(STORE_RUN_CANCELLED),
					 .stopping = ctx->stopping,
					 .period_ms = BENCH_WATCH_MS,
					 .fn = on_watch,
					 .payload = &j };
	measure_run_watch_start(&w, &wo);
	error = measure_and_report(&j, !j.pull);
done:
	measure_run_watch_stop(w);
	measure_repo_config_free(j.cfg);
	json_decref(j.run);
	return error;
}
