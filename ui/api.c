/* The dashboard's JSON API under /api/v1 (README: Dashboard API).  Every
 * route first decides whether the viewer may read what it names (access.c)
 * and answers the same 404 (401 without a session) for what they may not
 * read and for what does not exist.  Reads only, except approve and
 * cancel, which check the CSRF token, ask GitHub for the user's write
 * permission and call agent/'s entry points, as the comment commands do. */
#include "ui/ui_int.h"
#include "base/error.h"
#include "base/json.h"
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SEGMENTS 8
#define PATH_CAP 512
#define SERIES_DEFAULT 200
#define SERIES_MAX 5000
#define RUNS_DEFAULT 50
#define RUNS_MAX 200
#define PROFILE_DEFAULT 100
#define DEFAULT_THRESHOLD_PCT 3.0

/* ---- small helpers ---------------------------------------------------------- */

/* A positive integer query argument in [1, max], def when absent; -1 when
 * present and invalid. */
static long query_int(const base_http_request *req, const char *name, long def, long max)
{
	const char *s = base_http_request_query(req, name);
	if (!s)
		return def;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > max)
		return -1;
	return v;
}

static int64_t parse_id(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	return errno || end == s || *end || v <= 0 ? 0 : (int64_t)v;
}

static json_t *iso_time(int64_t ms)
{
	char buf[32];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return json_null();
	return json_string(buf);
}

static const char *metric_arg(const base_http_request *req)
{
	const char *m = base_http_request_query(req, "metric");
	if (!m)
		return "cycles";
	return !strcmp(m, "cycles") || !strcmp(m, "instructions") ? m : NULL;
}

static json_t *borrow_or_null(json_t *v)
{
	return v ? json_incref(v) : json_null();
}

/* The answer to an error of access or GitHub: hidden for BASE_ENOTFOUND,
 * sign in again when GitHub refuses the user's token. */
static int access_failed(const ui_who *who, base_http_response *resp, int error)
{
	if (error == BASE_ENOTFOUND)
		return ui_hidden(who, resp);
	if (error == BASE_EAUTH)
		return ui_reply(resp, 401, json_pack("{s:s, s:s}", "error", "GitHub no longer accepts this sign-in: sign in again",
						     "sign_in", "/auth/login"));
	base_log(BASE_LOG_WARN, "dashboard: GitHub's answer on access failed", "error", base_error_last(), NULL);
	return ui_error(resp, 502, "GitHub did not answer whether you can read this; try again");
}

/* Which side of the run's comparison a measurement is: a bench run
 * measures its head commit against a base; an agent run measures the base
 * commit, then the verified candidate (stored without a commit). */
static const char *side_of(const json_t *run, const json_t *m)
{
	const char *commit = base_json_str(m, "commit");
	if (store_run_kind_of(run) == STORE_RUN_AGENT)
		return !commit || json_is_true(json_object_get(json_object_get(m, "data"), "verified")) ? "head" : "base";
	const char *head = base_json_str(run, "head_sha");
	return head && commit && !strcmp(head, commit) ? "head" : "base";
}

static int run_ended(store_run_state s)
{
	return !store_run_state_active(s) && s != STORE_RUN_UNKNOWN;
}

/* ---- /me and /repositories ------------------------------------------------------ */

static int get_me(const ui_who *who, base_http_response *resp)
{
	if (!who->signed_in && !who->local)
		return ui_hidden(who, resp);
	if (!who->signed_in)
		return ui_reply(resp, 200, json_pack("{s:n, s:n, s:n, s:b}", "login", "avatar_url", "csrf_token", "local", 1));
	return ui_reply(resp, 200, json_pack("{s:s, s:s?, s:s, s:b}", "login", who->s.login, "avatar_url", who->s.avatar_url,
					     "csrf_token", who->s.csrf, "local", who->local));
}

/* The newest run of a repository matching kind and state (owned), or NULL. */
static json_t *newest_run(ui_ctx *ui, const char *repository, const char *kind, const char *state, const char *branch,
			  int limit)
{
	json_t *filter = json_pack("{s:s, s:s, s:s, s:s?}", "repository", repository, "kind", kind, "state", state, "branch",
				   branch);
	json_t *runs = NULL;
	if (filter)
		store_run_list(ui->store, filter, limit, &runs);
	json_decref(filter);
	return runs;
}

static int get_repositories(ui_ctx *ui, const ui_who *who, base_http_response *resp)
{
	if (!who->signed_in && !who->local)
		return ui_hidden(who, resp);
	json_t *repos = NULL, *list = json_array();
	int error = ui_access_repos(ui, who, &repos);
	if (error < 0) {
		json_decref(list);
		return access_failed(who, resp, error);
	}
	size_t i;
	json_t *r;
	json_array_foreach(repos, i, r)
	{
		const char *name = base_json_str(r, "full_name");
		/* the default branch's newest measurement */
		json_t *last = newest_run(ui, name, "bench", "done", base_json_str(r, "default_branch"), 1);
		json_t *props = newest_run(ui, name, "agent", "proposal", NULL, 100);
		json_t *l = json_array_get(last, 0);
		json_t *lm = l ? json_pack("{s:s?, s:I, s:s?}", "sha", base_json_str(l, "head_sha"), "run_id",
					   (json_int_t)base_json_int(l, "id"), "at", base_json_str(l, "updated"))
			       : json_null();
		json_array_append_new(list, json_pack("{s:s, s:s?, s:b, s:o, s:i}", "full_name", name, "default_branch",
						      base_json_str(r, "default_branch"), "private",
						      json_is_true(json_object_get(r, "private")), "last_measurement", lm,
						      "open_proposals", (int)json_array_size(props)));
		json_decref(last);
		json_decref(props);
	}
	json_decref(repos);
	return ui_reply(resp, 200, json_pack("{s:o}", "repositories", list));
}

/* ---- series ------------------------------------------------------------------------ */

/* Per benchmark thresholds of the repository: from its newest finished
 * bench run's comparison (the configuration it was measured with), kept a
 * minute.  *per_bench_out owned. */
static double thresholds(ui_ctx *ui, const char *repository, json_t **per_bench_out)
{
	int64_t now = ui_now_ms(ui);
	ui_threshold_slot *slot = NULL;
	double top = DEFAULT_THRESHOLD_PCT;
	pthread_mutex_lock(&ui->mu);
	for (size_t i = 0; i < UI_THRESHOLD_SLOTS; i++) {
		ui_threshold_slot *t = &ui->thresholds[i];
		if (t->per && !strcmp(t->repo, repository) && now - t->fetched_ms < UI_THRESHOLD_TTL_MS &&
		    now >= t->fetched_ms) {
			*per_bench_out = json_incref(t->per);
			top = t->top;
			pthread_mutex_unlock(&ui->mu);
			return top;
		}
	}
	pthread_mutex_unlock(&ui->mu);
	json_t *runs = newest_run(ui, repository, "bench", "done", NULL, 1);
	json_t *cmp = json_object_get(json_object_get(json_array_get(runs, 0), "data"), "comparison");
	json_t *per = json_object();
	size_t i;
	json_t *e;
	json_array_foreach(cmp, i, e)
	{
		json_t *t = json_object_get(e, "threshold_pct");
		const char *name = base_json_str(e, "name");
		if (json_is_number(t) && name) {
			json_object_set_new(per, name, json_real(json_number_value(t)));
			if (i == 0)
				top = json_number_value(t);
		}
	}
	json_decref(runs);
	if (per && strlen(repository) < sizeof(slot->repo)) {
		pthread_mutex_lock(&ui->mu);
		slot = &ui->thresholds[0];
		for (size_t k = 0; k < UI_THRESHOLD_SLOTS; k++) {
			ui_threshold_slot *t = &ui->thresholds[k];
			if (!t->per || !strcmp(t->repo, repository)) {
				slot = t;
				break;
			}
			if (t->fetched_ms < slot->fetched_ms)
				slot = t;
		}
		json_decref(slot->per);
		snprintf(slot->repo, sizeof(slot->repo), "%s", repository);
		slot->per = json_incref(per);
		slot->top = top;
		slot->fetched_ms = now;
		pthread_mutex_unlock(&ui->mu);
	}
	*per_bench_out = per;
	return top;
}

/* The value at or before index i (skipping nulls), or NAN. */
static double value_at(const json_t *values, long i)
{
	for (; i >= 0; i--) {
		json_t *v = json_array_get(values, (size_t)i);
		if (json_is_number(v))
			return json_number_value(v);
	}
	return NAN;
}

static json_t *pct_or_null(double now, double then)
{
	if (isnan(now) || isnan(then) || then == 0)
		return json_null();
	return json_real(round((now - then) * 10000.0 / then) / 100.0);
}

typedef struct series_req {
	json_t *repo;          /* the access entry (borrowed) */
	const char *full_name;
	const char *branch;
	const char *metric;
} series_req;

static int series_args(series_req *q, const base_http_request *req, base_http_response *resp, json_t *repo)
{
	q->repo = repo;
	q->full_name = base_json_str(repo, "full_name");
	q->branch = base_http_request_query(req, "branch");
	if (!q->branch || !*q->branch)
		q->branch = base_json_str(repo, "default_branch") ? base_json_str(repo, "default_branch") : "main";
	if (strlen(q->branch) > 255) {
		ui_error(resp, 400, "branch: too long");
		return -1;
	}
	if (!(q->metric = metric_arg(req))) {
		ui_error(resp, 400, "metric: cycles or instructions");
		return -1;
	}
	return 0;
}

/* The answer for q and limit as sent before, when the store's stamp and
 * the thresholds are still those it was built with: copied into resp, 1.
 * 0 when there is none. */
static int series_cached(ui_ctx *ui, const char *key, const char *stamp, double top, const json_t *per,
			 base_http_response *resp, int *error)
{
	int hit = 0;
	pthread_mutex_lock(&ui->mu);
	for (size_t i = 0; i < UI_SERIES_SLOTS && !hit; i++) {
		ui_series_slot *c = &ui->series[i];
		if (c->text && !strcmp(c->key, key) && !strcmp(c->stamp, stamp) && c->top == top && json_equal(c->per, per)) {
			c->used = ++ui->series_tick;
			*error = base_http_response_json(resp, 200, c->text);
			hit = 1;
		}
	}
	pthread_mutex_unlock(&ui->mu);
	return hit;
}

/* Remembers text (borrowed, copied) as the answer for key at stamp, in the
 * slot of the same key, else a free one, else the least recently sent. */
static void series_remember(ui_ctx *ui, const char *key, const char *stamp, double top, json_t *per, const char *text)
{
	char *copy = strdup(text);
	if (!copy)
		return;
	pthread_mutex_lock(&ui->mu);
	ui_series_slot *slot = &ui->series[0];
	for (size_t i = 0; i < UI_SERIES_SLOTS; i++) {
		ui_series_slot *c = &ui->series[i];
		if (c->text && !strcmp(c->key, key)) {
			slot = c;
			break;
		}
		if (!c->text && slot->text)
			slot = c;
		else if (c->text && slot->text && c->used < slot->used)
			slot = c;
	}
	free(slot->text);
	json_decref(slot->per);
	snprintf(slot->key, sizeof(slot->key), "%s", key);
	snprintf(slot->stamp, sizeof(slot->stamp), "%s", stamp);
	slot->top = top;
	slot->per = json_incref(per);
	slot->text = copy;
	slot->used = ++ui->series_tick;
	pthread_mutex_unlock(&ui->mu);
}

/* The series answer is kept (series_cached) per repository, branch, metric
 * and limit: the whole history is 100,000 values, ~200 ms to build and
 * write, against a few milliseconds to check the store's stamp and copy. */
static int get_series(ui_ctx *ui, const base_http_request *req, base_http_response *resp, json_t *repo)
{
	series_req q;
	if (series_args(&q, req, resp, repo) < 0)
		return 0;
	long limit = query_int(req, "limit", SERIES_DEFAULT, SERIES_MAX);
	if (limit < 0)
		return ui_error(resp, 400, "limit: a number from 1 to 5000");
	char key[600], stamp[96];
	int keyed = snprintf(key, sizeof(key), "%s\n%s\n%s\n%ld", q.full_name ? q.full_name : "", q.branch, q.metric,
			     limit) < (int)sizeof(key) &&
		    q.full_name && store_series_stamp(ui->store, stamp, sizeof(stamp), q.full_name, q.branch) == 0;
	json_t *data = NULL, *per = NULL;
	double top = thresholds(ui, q.full_name, &per);
	int error = 0;
	if (keyed && series_cached(ui, key, stamp, top, per, resp, &error)) {
		json_decref(per);
		return error;
	}
	error = store_series_get(ui->store, &data, q.full_name, q.branch, q.metric, (int)limit);
	if (error < 0) {
		json_decref(per);
		return error;
	}
	json_t *commits = json_array(), *series = json_array(), *marks = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(data, "commits"), i, c)
	{
		json_array_append_new(commits, json_pack("{s:s?, s:O, s:O, s:o, s:I}", "sha", base_json_str(c, "sha"),
							 "author", json_object_get(c, "author") ? json_object_get(c, "author") : json_null(),
							 "message", json_object_get(c, "message") ? json_object_get(c, "message") : json_null(),
							 "at", iso_time(base_json_int(c, "at_ms")), "run_id",
							 (json_int_t)base_json_int(c, "run_id")));
	}
	const char *name;
	json_t *values;
	json_object_foreach(json_object_get(data, "series"), name, values)
	{
		json_t *t = json_object_get(per, name);
		double thr = json_is_number(t) ? json_number_value(t) : top;
		double prev = NAN;
		json_t *v;
		json_array_foreach(values, i, v)
		{
			if (!json_is_number(v))
				continue;
			double x = json_number_value(v);
			if (!isnan(prev) && prev > 0) {
				double pct = (x - prev) * 100.0 / prev;
				if (fabs(pct) > thr)
					json_array_append_new(marks, json_pack("{s:s, s:I, s:s, s:f}", "benchmark", name, "index",
									       (json_int_t)i, "kind",
									       pct > 0 ? "regression" : "improvement",
									       "change_pct", round(pct * 100.0) / 100.0));
			}
			prev = x;
		}
		json_array_append_new(series, json_pack("{s:s, s:O}", "benchmark", name, "values", values));
	}
	json_decref(data);
	json_t *root = json_pack("{s:s, s:s, s:s, s:f, s:o, s:o, s:o}", "repository", q.full_name, "branch", q.branch,
				 "metric", q.metric, "threshold_pct", top, "commits", commits, "series", series, "marks",
				 marks);
	char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (!text) {
		json_decref(per);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	if (keyed)
		series_remember(ui, key, stamp, top, per, text);
	json_decref(per);
	error = base_http_response_json(resp, 200, text);
	free(text);
	return error;
}

static int get_benchmarks(ui_ctx *ui, const base_http_request *req, base_http_response *resp, json_t *repo)
{
	series_req q;
	if (series_args(&q, req, resp, repo) < 0)
		return 0;
	json_t *data = NULL, *per = NULL;
	int error = store_series_get(ui->store, &data, q.full_name, q.branch, q.metric, 101);
	if (error < 0)
		return error;
	double top = thresholds(ui, q.full_name, &per);
	json_t *list = json_array();
	const char *name;
	json_t *values;
	json_object_foreach(json_object_get(data, "series"), name, values)
	{
		long n = (long)json_array_size(values);
		double latest = value_at(values, n - 1);
		json_array_append_new(list, json_pack("{s:s, s:o, s:o, s:o}", "name", name, "latest",
						      isnan(latest) ? json_null() : json_integer((json_int_t)latest),
						      "change_10_pct", pct_or_null(latest, n > 10 ? value_at(values, n - 11) : NAN),
						      "change_100_pct", pct_or_null(latest, n > 100 ? value_at(values, n - 101) : NAN)));
	}
	json_decref(data);
	json_decref(per);
	return ui_reply(resp, 200, json_pack("{s:s, s:s, s:s, s:f, s:o}", "repository", q.full_name, "branch", q.branch,
					     "metric", q.metric, "threshold_pct", top, "benchmarks", list));
}

/* ---- runs ---------------------------------------------------------------------------- */

static json_t *run_summary(const json_t *run)
{
	store_run_state st = store_run_state_of(run);
	return json_pack("{s:I, s:s?, s:s?, s:s?, s:s?, s:s?, s:o, s:s?}", "id", (json_int_t)base_json_int(run, "id"),
			 "kind", base_json_str(run, "kind"), "state", base_json_str(run, "state"), "reason",
			 base_json_str(run, "reason"), "sha", base_json_str(run, "head_sha"), "created_at",
			 base_json_str(run, "created"), "finished_at",
			 run_ended(st) && base_json_str(run, "updated") ? json_string(base_json_str(run, "updated")) : json_null(),
			 "trigger", base_json_str(run, "trigger"));
}

static int list_runs(ui_ctx *ui, const base_http_request *req, base_http_response *resp, const char *repository,
		     int local_only)
{
	long limit = query_int(req, "limit", RUNS_DEFAULT, RUNS_MAX);
	const char *kind = base_http_request_query(req, "kind");
	if (limit < 0)
		return ui_error(resp, 400, "limit: a number from 1 to 200");
	if (kind && strcmp(kind, "bench") && strcmp(kind, "agent"))
		return ui_error(resp, 400, "kind: bench or agent");
	json_t *filter = json_pack("{s:s?, s:s?}", "repository", repository, "kind", kind), *runs = NULL;
	/* local runs are mixed with others in the store: read more, keep theirs */
	int error = filter ? store_run_list(ui->store, filter, local_only ? (int)limit * 10 : (int)limit, &runs)
			   : base_error_set(BASE_ENOMEM, "out of memory");
	json_decref(filter);
	if (error < 0)
		return error;
	json_t *list = json_array();
	size_t i;
	json_t *r;
	json_array_foreach(runs, i, r)
	{
		if (local_only && base_json_int(r, "installation_id") != 0)
			continue;
		if ((long)json_array_size(list) >= limit)
			break;
		json_t *s = run_summary(r);
		if (local_only && s)
			json_object_set_new(s, "repository", json_string(base_json_str(r, "repository")));
		json_array_append_new(list, s);
	}
	json_decref(runs);
	return ui_reply(resp, 200, json_pack("{s:o}", "runs", list));
}

/* Whether GitHub says the user may write to the run's repository. */
static int may_write(ui_ctx *ui, const ui_who *who, const json_t *run, int *out)
{
	char *perm = NULL;
	*out = 0;
	if (!ui->gh.permission)
		return base_error_set(BASE_EINVALID, "no GitHub App is configured");
	int error = ui->gh.permission(ui->gh.payload, base_json_int(run, "installation_id"), base_json_str(run, "repository"),
				      who->s.login, &perm);
	if (error < 0)
		return error;
	*out = !strcmp(perm, "admin") || !strcmp(perm, "maintain") || !strcmp(perm, "write");
	free(perm);
	return 0;
}

static int approvable(store_run_state s)
{
	return s == STORE_RUN_PROPOSAL || s == STORE_RUN_MERGED || s == STORE_RUN_CLOSED;
}

static json_t *comparison_of(const json_t *run, const json_t *proposal)
{
	const json_t *d = json_object_get(run, "data");
	const json_t *rows = json_object_get(d, "comparison");
	if (!rows)
		rows = json_object_get(proposal, "benchmarks");
	if (!rows)
		rows = json_object_get(json_object_get(d, "outcome"), "benchmarks");
	json_t *out = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(rows, i, e)
	{
		json_array_append_new(out, json_pack("{s:s?, s:o, s:o, s:o}", "name", base_json_str(e, "name"), "base",
						     borrow_or_null(json_object_get(e, "base")), "head",
						     borrow_or_null(json_object_get(e, "head")), "change_pct",
						     borrow_or_null(json_object_get(e, "change_pct"))));
	}
	return out;
}

static int get_run(ui_ctx *ui, const ui_who *who, base_http_response *resp, const json_t *run)
{
	int64_t id = base_json_int(run, "id");
	const json_t *d = json_object_get(run, "data");
	json_t *proposal = NULL, *pull = NULL, *ms = NULL;
	store_proposal_get(ui->store, id, &proposal);
	store_pull_get(ui->store, id, &pull);
	store_measurement_list(ui->store, id, &ms);
	json_t *out = run_summary(run);
	if (!out)
		return base_error_set(BASE_ENOMEM, "out of memory");
	json_object_set_new(out, "repository", json_string(base_json_str(run, "repository")));
	const json_t *t = json_object_get(d, "timings");
	json_object_set_new(out, "timings",
			    t ? json_pack("{s:o, s:o, s:o, s:o, s:o}", "queued_ms", borrow_or_null(json_object_get(t, "queued_ms")),
					  "baseline_ms", borrow_or_null(json_object_get(t, "baseline_ms")), "agent_ms",
					  borrow_or_null(json_object_get(t, "agent_ms")), "verify_ms",
					  borrow_or_null(json_object_get(t, "verify_ms")), "total_ms",
					  borrow_or_null(json_object_get(t, "total_ms")))
			      : json_null());
	json_object_set_new(out, "comparison", comparison_of(run, proposal));
	const char *diff = base_json_str(proposal, "diff");
	const char *vlog = base_json_str(proposal, "verification_log");
	if (!vlog)
		vlog = base_json_str(d, "verification_log");
	json_object_set_new(out, "diff", diff ? json_string(diff) : json_null());
	json_object_set_new(out, "verification_log", vlog ? json_string(vlog) : json_null());
	json_t *calls = json_object_get(json_object_get(d, "budgets"), "calls");
	json_object_set_new(out, "tool_calls", calls ? json_incref(calls) : json_array());
	json_object_set_new(out, "managed", borrow_or_null(json_object_get(d, "managed")));
	const json_t *pd = json_object_get(d, "pull");
	if (pull || pd)
		json_object_set_new(out, "pull",
				    json_pack("{s:I, s:o, s:o}", "number",
					      (json_int_t)(pull ? base_json_int(pull, "number") : base_json_int(pd, "number")),
					      "url", borrow_or_null(json_object_get(pd, "url") ? json_object_get(pd, "url")
										   : json_object_get(json_object_get(pull, "data"), "url")),
					      "state", borrow_or_null(pull ? json_object_get(pull, "state") : json_object_get(pd, "state"))));
	else
		json_object_set_new(out, "pull", json_null());
	json_t *mlist = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(ms, i, m)
	{
		json_array_append_new(mlist, json_pack("{s:I, s:s?, s:s}", "id", (json_int_t)base_json_int(m, "id"), "benchmark",
						       base_json_str(m, "benchmark"), "side", side_of(run, m)));
	}
	json_object_set_new(out, "measurements", mlist);
	/* the buttons: GitHub is asked only when one could apply */
	store_run_state st = store_run_state_of(run);
	int is_agent = store_run_kind_of(run) == STORE_RUN_AGENT;
	/* approved once: the pull request is on its way or open (a merged or
	 * closed one may be opened again, as /perfbot apply allows) */
	int approved = base_json_str(d, "approved_by") && st == STORE_RUN_PROPOSAL;
	int could_approve = is_agent && approvable(st) && proposal && !approved;
	int could_cancel = is_agent && store_run_state_active(st);
	int writer = 0;
	if (who->signed_in && base_json_int(run, "installation_id") && (could_approve || could_cancel) &&
	    may_write(ui, who, run, &writer) < 0)
		writer = 0;
	json_object_set_new(out, "can_approve", json_boolean(writer && could_approve && ui->agent));
	json_object_set_new(out, "can_cancel", json_boolean(writer && could_cancel && ui->agent));
	json_decref(proposal);
	json_decref(pull);
	json_decref(ms);
	return ui_reply(resp, 200, out);
}

/* POST approve | cancel: the comment commands' checks and entry points. */
static int act_on_run(ui_ctx *ui, const ui_who *who, const base_http_request *req, base_http_response *resp,
		      const json_t *run, int approve)
{
	int64_t id = base_json_int(run, "id");
	const char *repo = base_json_str(run, "repository");
	char msg[512];
	(void)req;
	if (base_json_int(run, "installation_id") == 0 || !ui->agent)
		return ui_error(resp, 409, "runs made on this machine are approved from the command line");
	int writer = 0;
	int error = may_write(ui, who, run, &writer);
	if (error < 0)
		return access_failed(who, resp, error == BASE_ENOTFOUND ? BASE_EGENERIC : error);
	if (!writer) {
		snprintf(msg, sizeof(msg),
			 "Sorry @%s, only people with write access to %s can use perfbot commands. Nothing was started.",
			 who->s.login, repo);
		return ui_error(resp, 403, msg);
	}
	if (approve)
		error = agent_run_approve(ui->agent, repo, id, who->s.login, "dashboard");
	else
		error = agent_run_cancel(ui->agent, repo, id, who->s.login);
	if (error == BASE_EEXISTS || error == BASE_ENOTFOUND || error == BASE_EINVALID) {
		snprintf(msg, sizeof(msg), "Cannot %s run %" PRId64 ": %s.", approve ? "apply" : "cancel", id,
			 base_error_last());
		return ui_error(resp, 409, msg);
	}
	if (error < 0)
		return error;
	if (approve)
		snprintf(msg, sizeof(msg), "Approved perfbot run %" PRId64 ": opening its pull request.", id);
	else
		snprintf(msg, sizeof(msg), "Cancelled perfbot run %" PRId64 ".", id);
	return ui_reply(resp, 202, json_pack("{s:s, s:s}", "state", approve ? "approved" : "cancelled", "message", msg));
}

/* ---- profiles -------------------------------------------------------------------- */

static json_t *flame_of(const json_t *m)
{
	return borrow_or_null(json_object_get(json_object_get(m, "data"), "flame"));
}

static int get_flame(ui_ctx *ui, const base_http_request *req, base_http_response *resp, const json_t *run)
{
	const char *bench = base_http_request_query(req, "benchmark");
	if (!bench)
		return ui_error(resp, 400, "benchmark: missing");
	json_t *ms = NULL, *base = NULL, *head = NULL;
	int error = store_measurement_list(ui->store, base_json_int(run, "id"), &ms);
	if (error < 0)
		return error;
	size_t i;
	json_t *m;
	json_array_foreach(ms, i, m)
	{
		const char *b = base_json_str(m, "benchmark");
		if (!b || strcmp(b, bench))
			continue;
		json_t **side = !strcmp(side_of(run, m), "head") ? &head : &base;
		json_decref(*side);
		*side = flame_of(m); /* the newest measurement of each side wins */
	}
	json_decref(ms);
	return ui_reply(resp, 200, json_pack("{s:o, s:o}", "base", base ? base : json_null(), "head", head ? head : json_null()));
}

static int get_profile(ui_ctx *ui, const ui_who *who, const base_http_request *req, base_http_response *resp,
		       int64_t mid)
{
	json_t *m = NULL, *run = NULL;
	int error = store_measurement_get(ui->store, mid, &m);
	if (error == BASE_ENOTFOUND)
		return ui_hidden(who, resp);
	if (error < 0)
		return error;
	error = store_run_get(ui->store, base_json_int(m, "run_id"), &run);
	if (error == 0 && (error = ui_access_run(ui, who, run, NULL)) < 0) {
		error = access_failed(who, resp, error);
		goto done;
	}
	if (error == BASE_ENOTFOUND) {
		error = ui_hidden(who, resp);
		goto done;
	}
	if (error < 0)
		goto done;
	const char *metric = metric_arg(req);
	long limit = query_int(req, "limit", PROFILE_DEFAULT, 1000);
	if (!metric || limit < 0) {
		error = ui_error(resp, 400, !metric ? "metric: cycles or instructions" : "limit: a number from 1 to 1000");
		goto done;
	}
	const char *key = !strcmp(metric, "instructions") ? "instructions" : "estimated_cycles";
	const json_t *d = json_object_get(m, "data");
	json_t *fns = json_array();
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(d, "top_functions"), i, f)
	{
		if ((long)i >= limit)
			break;
		json_array_append_new(fns, json_pack("{s:s?, s:s?, s:I, s:I}", "name", base_json_str(f, "name"), "file",
						     base_json_str(f, "file"), "exclusive",
						     (json_int_t)base_json_int(json_object_get(f, "self"), key), "inclusive",
						     (json_int_t)base_json_int(json_object_get(f, "inclusive"), key)));
	}
	error = ui_reply(resp, 200, json_pack("{s:s?, s:s, s:o, s:o}", "benchmark", base_json_str(m, "benchmark"), "metric",
					      metric, "functions", fns, "flame", flame_of(m)));
done:
	json_decref(m);
	json_decref(run);
	return error;
}

/* ---- routing --------------------------------------------------------------------- */

static int repo_route(ui_ctx *ui, const ui_who *who, const base_http_request *req, base_http_response *resp,
		      char **seg, size_t nseg)
{
	/* /repositories/{owner}/{name}/{what} */
	if (nseg != 4 || strcmp(req->method, "GET"))
		return nseg == 4 ? ui_error(resp, 405, "method not allowed") : ui_error(resp, 404, "not found");
	char full[300];
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", seg[1], seg[2]) >= sizeof(full))
		return ui_hidden(who, resp);
	if (!who->signed_in)
		return ui_hidden(who, resp);
	json_t *repo = NULL;
	int error = ui_access_repo(ui, who, full, &repo);
	if (error < 0)
		return access_failed(who, resp, error);
	if (!strcmp(seg[3], "series"))
		error = get_series(ui, req, resp, repo);
	else if (!strcmp(seg[3], "benchmarks"))
		error = get_benchmarks(ui, req, resp, repo);
	else if (!strcmp(seg[3], "runs"))
		error = list_runs(ui, req, resp, base_json_str(repo, "full_name"), 0);
	else
		error = ui_error(resp, 404, "not found");
	json_decref(repo);
	return error;
}

static int run_route(ui_ctx *ui, const ui_who *who, const base_http_request *req, base_http_response *resp,
		     char **seg, size_t nseg)
{
	int post = !strcmp(req->method, "POST");
	const char *what = nseg == 3 ? seg[2] : NULL;
	int is_action = what && (!strcmp(what, "approve") || !strcmp(what, "cancel"));
	if (nseg < 2 || nseg > 3 || (what && !is_action && strcmp(what, "flame")))
		return ui_error(resp, 404, "not found");
	if (is_action ? !post : strcmp(req->method, "GET"))
		return ui_error(resp, 405, "method not allowed");
	if (post) {
		/* a state change: signed in, and the page's CSRF token, before anything is looked up */
		if (!who->signed_in)
			return ui_hidden(who, resp);
		if (!ui_csrf_ok(who, req))
			return ui_error(resp, 403, "missing or wrong CSRF token");
	}
	int64_t id = parse_id(seg[1]);
	json_t *run = NULL, *repo = NULL;
	int error = id ? store_run_get(ui->store, id, &run) : BASE_ENOTFOUND;
	if (error == 0)
		error = ui_access_run(ui, who, run, &repo);
	if (error < 0 && (error == BASE_ENOTFOUND || error == BASE_EAUTH || error == BASE_ERETRY ||
			  error == BASE_ETIMEOUT || error == BASE_EINVALID)) {
		error = access_failed(who, resp, error);
		goto done;
	}
	if (error < 0)
		goto done;
	if (is_action)
		error = act_on_run(ui, who, req, resp, run, !strcmp(what, "approve"));
	else if (what)
		error = get_flame(ui, req, resp, run);
	else
		error = get_run(ui, who, resp, run);
done:
	json_decref(run);
	json_decref(repo);
	return error;
}

int ui_api_handle(ui_ctx *ui, const ui_who *who, const base_http_request *req, base_http_response *resp)
{
	char path[PATH_CAP];
	char *seg[MAX_SEGMENTS];
	size_t nseg = 0;
	if (strlen(req->path) >= sizeof(path))
		return ui_error(resp, 404, "not found");
	snprintf(path, sizeof(path), "%s", req->path + 7); /* after "/api/v1" */
	for (char *p = path; *p && nseg < MAX_SEGMENTS;) {
		while (*p == '/')
			*p++ = '\0';
		if (!*p)
			break;
		seg[nseg++] = p;
		while (*p && *p != '/')
			p++;
	}
	if (nseg == 0)
		return ui_error(resp, 404, "not found");
	int get = !strcmp(req->method, "GET");
	if (!strcmp(seg[0], "me") && nseg == 1)
		return get ? get_me(who, resp) : ui_error(resp, 405, "method not allowed");
	if (!strcmp(seg[0], "repositories") && nseg == 1)
		return get ? get_repositories(ui, who, resp) : ui_error(resp, 405, "method not allowed");
	if (!strcmp(seg[0], "repositories"))
		return repo_route(ui, who, req, resp, seg, nseg);
	if (!strcmp(seg[0], "runs") && nseg == 1) {
		/* runs made on this machine, for a browser on it */
		if (!get)
			return ui_error(resp, 405, "method not allowed");
		if (!who->local)
			return ui_hidden(who, resp);
		return list_runs(ui, req, resp, NULL, 1);
	}
	if (!strcmp(seg[0], "runs"))
		return run_route(ui, who, req, resp, seg, nseg);
	if (!strcmp(seg[0], "measurements") && nseg == 3 && !strcmp(seg[2], "profile")) {
		if (!get)
			return ui_error(resp, 405, "method not allowed");
		int64_t mid = parse_id(seg[1]);
		return mid ? get_profile(ui, who, req, resp, mid) : ui_hidden(who, resp);
	}
	return ui_error(resp, 404, "not found");
}
