/* Tool hooks over the sandbox and the bench pipeline for one agent run.
 *
 * Invariants: every command runs through measure_sandbox_run (never on the
 * host); measurement ids are assigned in order and never reused; the
 * baseline document is held with a reference for the hooks' lifetime.
 * Every sandbox command gets the tool context's stop flag as its cancel
 * flag: ending the run (cancel, wall-time budget) kills it at once.
 * Threading: called under the tool context's lock, one call at a time. */
#include "agent/tools_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/bench.h"
#include "base/error.h"
#include "base/json.h"

struct agent_run_hooks {
	measure_sandbox *sb;
	char *workspace;
	char *scratch;
	const measure_repo_config *cfg;
	json_t *baseline;     /* run document */
	json_t *measurements; /* {"m1": run document, ...} */
	int next_id;
	char latest[16];
	const atomic_int *cancel;
	measure_sandbox_limits limits;
	void (*on_measurement)(void *payload, const char *id, const json_t *run_doc);
	void *payload;
};

int agent_run_hooks_new(agent_run_hooks **out, const agent_run_hooks_options *opts)
{
	*out = NULL;
	if (!opts->sandbox || !opts->workspace || !opts->config || !opts->scratch_dir)
		return base_error_set(BASE_EINVALID, "run hooks need a sandbox, a workspace, a scratch directory and a config");
	agent_run_hooks *h = calloc(1, sizeof(*h));
	if (!h)
		return base_error_set(BASE_ENOMEM, "out of memory");
	h->sb = opts->sandbox;
	h->workspace = strdup(opts->workspace);
	h->scratch = strdup(opts->scratch_dir);
	h->cfg = opts->config;
	h->baseline = opts->baseline ? json_incref((json_t *)opts->baseline) : NULL;
	h->measurements = json_object();
	h->next_id = 1;
	h->cancel = opts->cancel;
	h->limits = opts->limits;
	h->on_measurement = opts->on_measurement;
	h->payload = opts->payload;
	if (!h->workspace || !h->scratch || !h->measurements) {
		agent_run_hooks_free(h);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	*out = h;
	return 0;
}

void agent_run_hooks_free(agent_run_hooks *h)
{
	if (!h)
		return;
	free(h->workspace);
	free(h->scratch);
	json_decref(h->baseline);
	json_decref(h->measurements);
	free(h);
}

const json_t *agent_run_hooks_measurements(const agent_run_hooks *h)
{
	return h->measurements;
}

/* The flag that kills a command in flight: the tool context's stop flag,
 * which the run's cancel sets too (it ends the tools), else the run's own
 * cancel flag. */
static const atomic_int *stop_flag(const agent_run_hooks *h, const atomic_int *stop)
{
	return stop ? stop : h->cancel;
}

static int hook_exec(void *payload, const char *command, int timeout_s, size_t cap, const atomic_int *stop,
		     agent_exec_result *out)
{
	agent_run_hooks *h = payload;
	measure_sandbox_cmd cmd = MEASURE_SANDBOX_CMD_INIT;
	measure_sandbox_result r;
	memset(&r, 0, sizeof(r));
	cmd.workspace = h->workspace;
	cmd.shell = command;
	cmd.limits = h->limits;
	cmd.limits.timeout_s = timeout_s;
	cmd.limits.output_cap = cap;
	cmd.cancel = stop_flag(h, stop);
	int error = measure_sandbox_run(h->sb, &r, &cmd);
	if (error < 0) {
		measure_sandbox_result_dispose(&r);
		return error;
	}
	out->exit_code = r.exit_code;
	out->timed_out = r.timed_out || r.cancelled;
	out->out = r.out;
	out->err = r.err;
	out->out_cut = r.out_truncated;
	out->err_cut = r.err_truncated;
	r.out = r.err = NULL;
	measure_sandbox_result_dispose(&r);
	return 0;
}

/* The run document named by id ("baseline", "latest" or NULL, "mN"); borrowed. */
static const json_t *find_doc(agent_run_hooks *h, const char *id)
{
	if (!id || !*id || strcmp(id, "latest") == 0)
		id = h->latest[0] ? h->latest : "baseline";
	if (strcmp(id, "baseline") == 0)
		return h->baseline;
	const json_t *d = json_object_get(h->measurements, id);
	if (!d && id[0] >= '0' && id[0] <= '9') { /* "2" for "m2" */
		char key[32];
		snprintf(key, sizeof(key), "m%s", id);
		d = json_object_get(h->measurements, key);
	}
	return d;
}

/* Rows {name, base, head, change_pct, verdict} from a comparison. */
static json_t *rows_of(const json_t *cmp)
{
	json_t *rows = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(cmp, i, c) {
		json_t *row = json_pack("{s:O,s:O,s:O,s:O,s:O}", "name", json_object_get(c, "name"), "base",
					json_object_get(c, "base") ? json_object_get(c, "base") : json_null(), "head",
					json_object_get(c, "head") ? json_object_get(c, "head") : json_null(), "change_pct",
					json_object_get(c, "change_pct") ? json_object_get(c, "change_pct") : json_null(),
					"verdict", json_object_get(c, "verdict") ? json_object_get(c, "verdict") : json_null());
		json_t *err = json_object_get(c, "error");
		if (row && err)
			json_object_set(row, "error", err);
		if (row)
			json_array_append_new(rows, row);
	}
	return rows;
}

static const char *metric_name(const agent_run_hooks *h)
{
	return h->cfg->metric == MEASURE_METRIC_INSTRUCTIONS ? "instructions" : "cycles";
}

static int hook_run_benchmarks(void *payload, const json_t *names, const atomic_int *stop, json_t **out)
{
	agent_run_hooks *h = payload;
	json_t *doc = NULL, *cmp = NULL;
	const char **only = NULL;
	size_t nonly = 0;
	int error = 0;
	if (names) {
		size_t i;
		json_t *v;
		only = calloc(json_array_size(names) + 1, sizeof(*only));
		if (!only)
			return base_error_set(BASE_ENOMEM, "out of memory");
		json_array_foreach(names, i, v) {
			if (!measure_repo_config_benchmark(h->cfg, json_string_value(v))) {
				error = base_error_set(BASE_ENOTFOUND, "there is no benchmark named \"%s\" in %s",
						      json_string_value(v), MEASURE_REPO_CONFIG_PATH);
				goto done;
			}
			only[nonly++] = json_string_value(v);
		}
	}
	measure_bench_options bo = MEASURE_BENCH_OPTIONS_INIT;
	char id[16];
	snprintf(id, sizeof(id), "m%d", h->next_id);
	bo.commit = NULL;
	bo.scratch_dir = h->scratch;
	bo.only = only;
	bo.nonly = nonly;
	bo.cancel = stop_flag(h, stop);
	if ((error = measure_bench_measure(&doc, h->sb, h->workspace, h->cfg, &bo)) < 0)
		goto done;
	h->next_id++;
	json_object_set(h->measurements, id, doc);
	snprintf(h->latest, sizeof(h->latest), "%s", id);
	if (h->on_measurement)
		h->on_measurement(h->payload, id, doc);
	const json_t *base = h->baseline ? json_object_get(h->baseline, "benchmarks") : NULL;
	if ((error = measure_bench_compare(&cmp, base, json_object_get(doc, "benchmarks"), h->cfg)) < 0)
		goto done;
	json_t *build = json_object_get(doc, "build");
	*out = json_pack("{s:s,s:s,s:o,s:O}", "measurement", id, "metric", metric_name(h), "benchmarks", rows_of(cmp),
			 "build", build ? build : json_null());
	if (!*out)
		error = base_error_set(BASE_ENOMEM, "out of memory");
done:
	json_decref(doc);
	json_decref(cmp);
	free(only);
	return error;
}

static int by_exclusive(const void *a, const void *b)
{
	double x = json_number_value(json_object_get(*(json_t *const *)a, "exclusive"));
	double y = json_number_value(json_object_get(*(json_t *const *)b, "exclusive"));
	return x < y ? 1 : x > y ? -1 : 0;
}

static int hook_get_profile(void *payload, const char *benchmark, const char *measurement, int limit, json_t **out)
{
	agent_run_hooks *h = payload;
	const json_t *doc = find_doc(h, measurement);
	if (!doc)
		return base_error_set(BASE_ENOTFOUND, "there is no measurement \"%s\"", measurement ? measurement : "latest");
	size_t i;
	json_t *b, *found = NULL;
	json_array_foreach(json_object_get(doc, "benchmarks"), i, b) if (strcmp(
		base_json_str(b, "name") ? base_json_str(b, "name") : "",
		benchmark) == 0) found = b;
	if (!found)
		return base_error_set(BASE_ENOTFOUND, "the measurement has no benchmark named \"%s\"", benchmark);
	const char *status = base_json_str(found, "status");
	if (status && strcmp(status, "ok") != 0) {
		const char *e = base_json_str(found, "error");
		return base_error_set(BASE_EINVALID, "benchmark \"%s\" did not run: %s", benchmark, e ? e : status);
	}
	const char *key = h->cfg->metric == MEASURE_METRIC_INSTRUCTIONS ? "instructions" : "estimated_cycles";
	json_t *fns = json_array();
	json_t *f;
	json_array_foreach(json_object_get(found, "top_functions"), i, f) {
		json_t *self = json_object_get(f, "self"), *incl = json_object_get(f, "inclusive");
		json_array_append_new(fns, json_pack("{s:O?,s:O?,s:I,s:I}", "name", json_object_get(f, "name"), "file",
						     json_object_get(f, "file"), "exclusive",
						     (json_int_t)json_integer_value(json_object_get(self, key)), "inclusive",
						     (json_int_t)json_integer_value(json_object_get(incl, key))));
	}
	/* hottest own code first: what an optimiser looks at */
	size_t n = json_array_size(fns);
	json_t **v = calloc(n ? n : 1, sizeof(*v));
	json_t *sorted = json_array();
	if (!v || !sorted) {
		free(v);
		json_decref(sorted);
		json_decref(fns);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	for (size_t k = 0; k < n; k++)
		v[k] = json_array_get(fns, k);
	qsort(v, n, sizeof(*v), by_exclusive);
	for (size_t k = 0; k < n && (int)k < limit; k++)
		json_array_append(sorted, v[k]);
	free(v);
	json_decref(fns);
	fns = sorted;
	*out = json_pack("{s:s,s:s,s:s,s:o}", "benchmark", benchmark, "measurement",
			 measurement && *measurement ? measurement : (h->latest[0] ? h->latest : "baseline"), "metric",
			 metric_name(h), "functions", fns);
	return *out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

static int hook_compare(void *payload, const char *base, const char *head, json_t **out)
{
	agent_run_hooks *h = payload;
	const json_t *b = find_doc(h, base), *hd = find_doc(h, head);
	json_t *cmp = NULL;
	if (!b)
		return base_error_set(BASE_ENOTFOUND, "there is no measurement \"%s\"", base);
	if (!hd)
		return base_error_set(BASE_ENOTFOUND, "there is no measurement \"%s\"", head);
	int error = measure_bench_compare(&cmp, json_object_get(b, "benchmarks"), json_object_get(hd, "benchmarks"), h->cfg);
	if (error < 0)
		return error;
	*out = json_pack("{s:s,s:s,s:s,s:o}", "base", base, "head", head, "metric", metric_name(h), "benchmarks",
			 rows_of(cmp));
	json_decref(cmp);
	return *out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
}

void agent_run_hooks_fill(agent_tool_hooks *hooks, agent_run_hooks *h)
{
	hooks->exec = hook_exec;
	hooks->run_benchmarks = hook_run_benchmarks;
	hooks->get_profile = hook_get_profile;
	hooks->compare = hook_compare;
	hooks->payload = h;
}
