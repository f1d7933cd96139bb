/* The GitHub side of a bench run's job (see bench_int.h): its check runs
 * (in progress, completed, the "action_required" one of a run waiting for
 * approval), the configuration read through the API before any check run
 * exists, the installation token for git, and which GitHub failures send
 * the job back to the queue.  Every call goes through j->gh (measure_github),
 * so tests answer in GitHub's place; the texts come from bench_report.c.
 *
 * Retries: the check run's id and, before the completing PATCH, the final
 * output are kept in the run's data, so a retried job neither creates a
 * second check run nor measures again just to report.  The installation
 * token only ever exists inside the checkout's credential callback.
 *
 * Threading: the job's worker, and per-job state only. */
#include "measure/bench_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

/* The job clock's wall time as GitHub writes it. */
static void iso_now(const bench_job *j, char out[32])
{
	time_t t = (time_t)(j->clock->wall_ms(j->clock->payload) / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int bench_gh_retry(bench_job *j, int error)
{
	/* on the last attempt the failure is reported like any other */
	if ((error != BASE_ERETRY && error != BASE_ETIMEOUT) || j->ctx->final_attempt)
		return 0;
	/* a rate limit says when; otherwise the workers' backoff decides */
	long wait = j->gh && j->gh->retry_wait_ms ? j->gh->retry_wait_ms(j->gh->payload) : 0;
	if (wait > 0)
		j->ctx->retry_at_ms = j->clock->wall_ms(j->clock->payload) + wait;
	return 1;
}

int bench_token_cb(char *buf, size_t size, void *payload)
{
	bench_job *j = payload;
	int error = measure_token_fill_with(buf, size, j->gh, j->inst);
	if (error < 0)
		j->token_error = error;
	return error;
}

int bench_check_start(bench_job *j, const char *summary)
{
	if (j->check_id)
		return 0;
	/* no details_url: perfbot serves no public page about a run (its data
	 * is the customer's); the check run itself carries the report */
	char when[32];
	iso_now(j, when);
	json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "name", BENCH_CHECK_NAME, "head_sha", j->head,
				 "status", "in_progress", "started_at", when, "external_id", j->ids, "output", "title",
				 "Measuring…", "summary", summary);
	if (!body)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int64_t id = 0;
	int error = j->gh->create_check_run(&id, j->inst, j->repository, body, j->gh->payload);
	json_decref(body);
	if (error < 0)
		return error;
	j->check_id = id;
	return bench_update_data(j, json_pack("{s:I}", "check_run_id", (json_int_t)id));
}

int bench_check_complete_stored(bench_job *j, const json_t *result)
{
	if (!j->check_id)
		return 0;
	char when[32];
	iso_now(j, when);
	json_t *output = json_pack("{s:O, s:O}", "title", json_object_get(result, "title"), "summary",
				   json_object_get(result, "summary"));
	if (output && json_is_string(json_object_get(result, "text")))
		json_object_set(output, "text", json_object_get(result, "text"));
	json_t *body = output ? json_pack("{s:s, s:O, s:s, s:o}", "status", "completed", "conclusion",
					  json_object_get(result, "conclusion"), "completed_at", when, "output", output)
			      : NULL;
	if (!body)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = j->gh->update_check_run(j->inst, j->repository, j->check_id, body, j->gh->payload);
	json_decref(body);
	return error;
}

int bench_check_complete(bench_job *j, const char *conclusion, const char *title, const char *summary,
			 const char *text)
{
	json_t *result = json_pack("{s:s, s:s, s:o, s:o*}", "conclusion", conclusion, "title", title, "summary",
				   bench_capped_string(summary), "text", text ? bench_capped_string(text) : NULL);
	if (!result)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int error = bench_update_data(j, json_pack("{s:O}", "result", result));
	if (error == 0)
		error = bench_check_complete_stored(j, result);
	json_decref(result);
	return error;
}

int bench_check_waiting(bench_job *j)
{
	const json_t *data = json_object_get(j->run, "data");
	if (base_json_int(data, "waiting_check_run_id"))
		return 0;
	char when[32], summary[1400];
	iso_now(j, when);
	bench_text_waiting(summary, sizeof(summary), j->head);
	json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:[{s:s, s:s, s:s}]}", "name",
				 BENCH_CHECK_NAME, "head_sha", j->head, "status", "completed", "conclusion",
				 "action_required", "completed_at", when, "external_id", j->ids, "output", "title",
				 "Waiting for approval", "summary", summary, "actions", "label", "Approve and run",
				 "description", "Run this pull request's benchmarks", "identifier", BENCH_APPROVE_ACTION);
	if (!body)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int64_t cid = 0;
	int error = j->gh->create_check_run(&cid, j->inst, j->repository, body, j->gh->payload);
	json_decref(body);
	if (error < 0) {
		if (bench_gh_retry(j, error))
			return error;
		/* the run still waits: a comment command approves it */
		base_log(BASE_LOG_WARN, "cannot create the waiting check run", "run", j->ids, "error", base_error_last(),
			 NULL);
		return 0;
	}
	bench_update_data(j, json_pack("{s:I}", "waiting_check_run_id", (json_int_t)cid));
	return 0;
}

void bench_check_close_waiting(bench_job *j)
{
	const json_t *data = json_object_get(j->run, "data");
	int64_t cid = base_json_int(data, "waiting_check_run_id");
	if (!cid || json_is_true(json_object_get(data, "waiting_check_closed")))
		return;
	char title[200], summary[300];
	const char *by = base_json_str(data, "approved_by");
	snprintf(title, sizeof(title), "Approved by @%.100s", by ? by : "a maintainer");
	snprintf(summary, sizeof(summary), "Approved by @%.100s: perfbot measures `%.7s` in a new check run.",
		 by ? by : "a maintainer", j->head);
	json_t *body = json_pack("{s:s, s:{s:s, s:s}, s:[]}", "conclusion", "neutral", "output", "title", title,
				 "summary", summary, "actions");
	if (body && j->gh->update_check_run(j->inst, j->repository, cid, body, j->gh->payload) == 0)
		bench_update_data(j, json_pack("{s:b}", "waiting_check_closed", 1));
	else
		base_log(BASE_LOG_WARN, "cannot close the waiting check run", "run", j->ids, "error", base_error_last(), NULL);
	json_decref(body);
}

int bench_push_tracked(bench_job *j)
{
	char *yml = NULL;
	size_t len = 0;
	int error = j->gh->get_file(&yml, &len, j->inst, j->repository, MEASURE_REPO_CONFIG_PATH, j->head, j->gh->payload);
	int tracked = 1;
	if (error == BASE_ENOTFOUND) {
		/* no file: only the default branch gets the "add one" check run */
		tracked = !j->default_branch || !strcmp(j->branch, j->default_branch);
	} else if (error == 0) {
		measure_repo_config *cfg = NULL;
		if (measure_repo_config_parse(&cfg, yml, len) == 0)
			tracked = measure_repo_config_tracks_branch(cfg, j->branch, j->default_branch);
		measure_repo_config_free(cfg); /* an invalid file is reported on any branch */
	} else if (bench_gh_retry(j, error)) {
		tracked = error;
	} else {
		base_log(BASE_LOG_WARN, "cannot read the configuration through the API", "run", j->ids, "error",
			 base_error_last(), NULL);
	}
	free(yml);
	return tracked;
}
