/* The bench pipeline (see bench.h): build once, measure each benchmark
 * under callgrind in the sandbox, compare two runs, format the report.
 *
 * The build runs once; the benchmarks then run side by side on up to
 * opts->parallel threads (one at a time by default).  Each is one process
 * under callgrind's simulation in a sandbox of its own (own /tmp, own
 * cgroup, own callgrind output dir), so its counts are the same whatever
 * runs beside it; documents come back in the configuration's order.  Comparison and
 * formatting are pure functions of JSON documents, so the same code serves
 * the CLI, check runs and the agent tools.  No shared state. */
#include "measure/bench.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/callgrind_run.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/json.h"

#define TAIL_BYTES 2000
#define TOP_FUNCTIONS 50
#define FLAME_NODES 400        /* nodes of a measurement's flame tree */
#define FLAME_DEPTH 32
#define FLAME_MIN_PERMILLE 5   /* calls under 0.5% of the total are left out */
#define REPORT_CAP (60 * 1024) /* GitHub caps a check run summary at 65535 */

static json_t *failure_doc(const measure_benchmark_config *b, const char *status, const char *error,
			   const measure_sandbox_result *r, const json_t *toolchain)
{
	char *tail = r ? measure_sandbox_result_tail(r, TAIL_BYTES) : NULL;
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:O}", "name", b->name, "command", b->command,
				"mode", b->mode == MEASURE_MODE_REGION ? "region" : "process", "status", status, "error",
				error, "output_tail", tail ? tail : "", "wall_ms", (json_int_t)(r ? r->wall_ms : 0),
				"toolchain", toolchain ? toolchain : json_null());
	free(tail);
	return doc;
}

static json_t *costs_events_json(const measure_cg_costs *c)
{
	json_t *o = json_object();
	for (int i = 0; i < MEASURE_CG_NEVENTS; i++)
		json_object_set_new(o, measure_cg_event_names[i], json_integer((json_int_t)c->ev[i]));
	return o;
}

static json_t *success_doc(const measure_benchmark_config *b, const measure_cg_profile *p, const measure_sandbox_result *r,
			   const json_t *toolchain, int metric)
{
	measure_cg_summary s;
	measure_cg_summarize(&s, &p->totals);
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:i, s:I, s:O}", "name", b->name,
				"command", b->command, "mode", b->mode == MEASURE_MODE_REGION ? "region" : "process",
				"status", "ok", "instructions", (json_int_t)s.instructions, "estimated_cycles",
				(json_int_t)s.estimated_cycles, "l1_misses", (json_int_t)s.l1_misses, "ll_misses",
				(json_int_t)s.ll_misses, "events", costs_events_json(&p->totals), "processes",
				p->nfiles, "wall_ms", (json_int_t)r->wall_ms, "toolchain",
				toolchain ? toolchain : json_null());
	if (!doc)
		return NULL;
	json_t *fns = json_array();
	size_t *top = NULL, ntop = 0;
	if (measure_cg_top(&top, &ntop, p, metric == MEASURE_METRIC_INSTRUCTIONS, TOP_FUNCTIONS) == 0) {
		for (size_t i = 0; i < ntop; i++)
			json_array_append_new(fns, measure_cg_function_json(&p->fns[top[i]]));
	}
	free(top);
	json_object_set_new(doc, "top_functions", fns);
	/* the dashboard's flame graph, capped: the biggest paths only */
	json_t *flame = measure_cg_flame_json(p, metric == MEASURE_METRIC_INSTRUCTIONS, FLAME_NODES, FLAME_DEPTH,
					      FLAME_MIN_PERMILLE);
	if (flame)
		json_object_set_new(doc, "flame", flame);
	return doc;
}

/* The limits of a command given `timeout_s` of wall clock: the CPU-time
 * limit is raised to at least the timeout, or a long benchmark would die of
 * SIGXCPU (reported as killed by a signal) before its timeout. */
static measure_sandbox_limits limits_for(const measure_sandbox_limits *base, int timeout_s)
{
	measure_sandbox_limits l = *base;
	l.timeout_s = timeout_s;
	if (l.cpu_s > 0 && l.cpu_s < timeout_s)
		l.cpu_s = timeout_s;
	return l;
}

static int wanted(const measure_bench_options *o, const char *name)
{
	if (!o->only)
		return 1;
	for (size_t i = 0; i < o->nonly; i++)
		if (strcmp(o->only[i], name) == 0)
			return 1;
	return 0;
}

/* One benchmark's slot in a parallel measurement: its document, or the
 * error that stops the whole run (a sandbox that cannot start at all). */
struct bench_slot {
	const measure_benchmark_config *b;
	json_t *doc;
	int error;
	char msg[400];
};

struct bench_queue {
	pthread_mutex_t lock;
	struct bench_slot *slots;
	size_t n, next;
	const measure_bench_options *o;
	measure_sandbox *sb;
	const char *workspace;
	const measure_repo_config *cfg;
	const json_t *toolchain;
	const char *build_error;
	const measure_sandbox_result *build_result;
};

struct one_bench {
	struct bench_queue *q;
	pthread_t thread;
};

/* Measures slot->b (build done); fills slot->doc or slot->error. */
static void measure_one(struct bench_queue *q, struct bench_slot *slot)
{
	const measure_bench_options *o = q->o;
	const measure_benchmark_config *b = slot->b;
	const json_t *toolchain = q->toolchain;
	json_t *doc;
	if (q->build_error[0]) {
		slot->doc = failure_doc(b, "failed", q->build_error, q->build_result, toolchain);
		return;
	}
	if (o->cancel && *o->cancel) {
		slot->doc = failure_doc(b, "cancelled", "cancelled", NULL, toolchain);
		return;
	}
	measure_cg_run cr = MEASURE_CG_RUN_INIT;
	cr.workspace = q->workspace;
	cr.command = b->command;
	cr.region = b->mode == MEASURE_MODE_REGION;
	cr.scratch_dir = o->scratch_dir;
	cr.limits = limits_for(&o->limits, b->timeout_s);
	cr.cancel = o->cancel;
	measure_cg_profile p;
	measure_sandbox_result br;
	int rc = measure_cg_measure(&p, &br, q->sb, &cr);
	doc = NULL;
	if (rc == 0) {
		doc = success_doc(b, &p, &br, toolchain, q->cfg->metric);
		if (doc && cr.region && o->whole_process) {
			measure_cg_profile_dispose(&p);
			measure_sandbox_result_dispose(&br);
			cr.region = 0;
			cr.whole_process = 1;
			rc = measure_cg_measure(&p, &br, q->sb, &cr);
			if (rc == 0) {
				measure_cg_summary ws;
				measure_cg_summarize(&ws, &p.totals);
				json_object_set_new(doc, "whole_process", measure_cg_summary_json(&ws));
			} else {
				char why[400];
				snprintf(why, sizeof(why), "%s", base_error_last());
				base_error_set(rc, "whole-process count (cachegrind): %s", why);
				json_decref(doc);
				doc = NULL;
			}
		}
	}
	if (rc != 0) {
		char msg[400];
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		const char *status = rc == BASE_ETIMEOUT ? "timeout" : rc == BASE_ECANCELLED ? "cancelled" : "failed";
		/* a sandbox that cannot start at all stops the run */
		if (br.out == NULL && br.err == NULL && rc != BASE_ETIMEOUT && rc != BASE_ECANCELLED &&
		    strncmp(msg, "sandbox", 7) == 0) {
			measure_cg_profile_dispose(&p);
			measure_sandbox_result_dispose(&br);
			slot->error = rc;
			snprintf(slot->msg, sizeof(slot->msg), "%s", msg);
			return;
		}
		doc = failure_doc(b, status, msg, &br, toolchain);
	}
	measure_cg_profile_dispose(&p);
	measure_sandbox_result_dispose(&br);
	if (!doc) {
		slot->error = BASE_ENOMEM;
		snprintf(slot->msg, sizeof(slot->msg), "out of memory");
		return;
	}
	/* what built the tree: a stored measurement is reused only for the
	 * same build (bench_run.c's reusable) */
	json_object_set_new(doc, "build_command", json_string(q->cfg->build ? q->cfg->build : ""));
	slot->doc = doc;
}

/* Takes the next benchmark until none is left. */
static void *bench_worker(void *arg)
{
	struct one_bench *w = arg;
	struct bench_queue *q = w->q;
	for (;;) {
		pthread_mutex_lock(&q->lock);
		size_t k = q->next < q->n ? q->next++ : q->n;
		pthread_mutex_unlock(&q->lock);
		if (k >= q->n)
			break;
		measure_one(q, &q->slots[k]);
	}
	return NULL;
}

int measure_bench_measure(json_t **out, measure_sandbox *sb, const char *workspace, const measure_repo_config *cfg,
			const measure_bench_options *opts)
{
	int error = 0;
	json_t *run = NULL, *toolchain = NULL, *benches = NULL;
	measure_bench_options defaults = MEASURE_BENCH_OPTIONS_INIT;
	const measure_bench_options *o = opts ? opts : &defaults;
	measure_sandbox_result r;
	memset(&r, 0, sizeof(r));

	*out = NULL;
	if (!o->scratch_dir)
		return base_error_set(BASE_EINVALID, "bench: a scratch directory is required");
	if ((error = measure_cg_toolchain(&toolchain, sb, workspace)) < 0)
		goto done;
	run = json_pack("{s:s?, s:O}", "commit", o->commit, "toolchain", toolchain);
	benches = json_array();
	if (!run || !benches) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}

	/* the build: once, unmeasured */
	const char *build_status = "none";
	char build_error[400] = "";
	if (cfg->build && !o->skip_build) {
		measure_sandbox_cmd cmd = MEASURE_SANDBOX_CMD_INIT;
		cmd.workspace = workspace;
		cmd.shell = cfg->build;
		cmd.limits = limits_for(&o->limits, cfg->timeout_s);
		cmd.cancel = o->cancel;
		if ((error = measure_sandbox_run(sb, &r, &cmd)) < 0)
			goto done;
		char *tail = measure_sandbox_result_tail(&r, TAIL_BYTES);
		if (r.timed_out)
			build_status = "timeout";
		else if (r.cancelled)
			build_status = "cancelled";
		else if (!measure_sandbox_result_ok(&r))
			build_status = "failed";
		else
			build_status = "ok";
		char why[160];
		measure_sandbox_result_reason(&r, why, sizeof(why));
		if (strcmp(build_status, "ok") != 0)
			snprintf(build_error, sizeof(build_error), "build `%.120s` %s%s%s", cfg->build,
				 r.timed_out ? "timed out" : r.cancelled ? "was cancelled" : "failed",
				 why[0] ? ": " : r.term_signal ? " (killed by a signal)" : "", why);
		json_object_set_new(run, "build",
				    json_pack("{s:s, s:I, s:s}", "status", build_status, "wall_ms",
					      (json_int_t)r.wall_ms, "output_tail",
					      strcmp(build_status, "ok") ? (tail ? tail : "") : ""));
		free(tail);
	} else {
		json_object_set_new(run, "build", json_pack("{s:s}", "status", "none"));
	}

	/* the benchmarks: side by side on up to o->parallel threads (each a
	 * single process under callgrind's simulation, so its counts do not
	 * depend on what runs beside it), reported in the configuration's order */
	struct one_bench jobs[MEASURE_MAX_PARALLEL_BENCH];
	size_t nwanted = 0;
	for (size_t i = 0; i < cfg->nbenchmarks; i++)
		if (wanted(o, cfg->benchmarks[i].name))
			nwanted++;
	struct bench_slot *slots = calloc(nwanted ? nwanted : 1, sizeof(*slots));
	if (!slots) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	struct bench_queue q = { .slots = slots, .n = nwanted, .next = 0, .o = o, .sb = sb, .workspace = workspace,
				 .cfg = cfg, .toolchain = toolchain, .build_error = build_error, .build_result = &r };
	pthread_mutex_init(&q.lock, NULL);
	for (size_t i = 0, k = 0; i < cfg->nbenchmarks; i++)
		if (wanted(o, cfg->benchmarks[i].name))
			slots[k++].b = &cfg->benchmarks[i];
	int nthreads = o->parallel > 1 ? o->parallel : 1;
	if (nthreads > MEASURE_MAX_PARALLEL_BENCH)
		nthreads = MEASURE_MAX_PARALLEL_BENCH;
	if ((size_t)nthreads > nwanted)
		nthreads = nwanted ? (int)nwanted : 1;
	int started = 0;
	for (int t = 1; t < nthreads; t++) {
		jobs[t].q = &q;
		if (pthread_create(&jobs[t].thread, NULL, bench_worker, &jobs[t]) != 0)
			break;
		started = t;
	}
	jobs[0].q = &q;
	bench_worker(&jobs[0]);
	for (int t = 1; t <= started; t++)
		pthread_join(jobs[t].thread, NULL);
	pthread_mutex_destroy(&q.lock);
	for (size_t k = 0; k < nwanted; k++) {
		if (error == 0 && slots[k].error < 0)
			error = base_error_set(slots[k].error, "%s", slots[k].msg);
		if (slots[k].doc)
			json_array_append_new(benches, slots[k].doc);
	}
	free(slots);
	if (error < 0)
		goto done;
	json_object_set(run, "benchmarks", benches);
	*out = run;
	run = NULL;

done:
	measure_sandbox_result_dispose(&r);
	json_decref(benches);
	json_decref(toolchain);
	json_decref(run);
	return error;
}

int measure_bench_measure_rev(json_t **out, char sha_out[41], measure_sandbox *sb, const measure_checkout_source *src,
			    const char *rev, const measure_repo_config *cfg, const measure_bench_options *opts)
{
	char *dir = NULL;
	*out = NULL;
	int error = measure_checkout_worktree(&dir, sha_out, src, rev);
	if (error < 0)
		return error;
	measure_bench_options o = MEASURE_BENCH_OPTIONS_INIT;
	if (opts)
		o = *opts;
	o.commit = sha_out;
	char scratch[4096];
	if (!o.scratch_dir) {
		snprintf(scratch, sizeof(scratch), "%s/work", src->data_dir);
		o.scratch_dir = scratch;
	}
	if ((error = measure_sandbox_prepare_dir(sb, dir)) == 0)
		error = measure_bench_measure(out, sb, dir, cfg, &o);
	/* removing the tree must not replace the measurement's error */
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s", base_error_last());
	measure_worktree_remove(src->data_dir, dir);
	free(dir);
	if (error < 0)
		base_error_set(error, "%s", msg);
	return error;
}

/* ---- comparison ------------------------------------------------------- */

static const json_t *find_named(const json_t *arr, const char *name)
{
	size_t i;
	json_t *v;
	if (!json_is_array(arr))
		return NULL;
	json_array_foreach(arr, i, v)
	{
		const char *n = base_json_str(v, "name");
		if (n && strcmp(n, name) == 0)
			return v;
	}
	return NULL;
}

static int is_ok(const json_t *m)
{
	const char *s = base_json_str(m, "status");
	return m && s && strcmp(s, "ok") == 0;
}

static json_int_t metric_value(const json_t *obj, int metric)
{
	return json_integer_value(
		json_object_get(obj, metric == MEASURE_METRIC_INSTRUCTIONS ? "instructions" : "estimated_cycles"));
}

typedef struct fn_change {
	const char *name;
	const char *file;
	json_int_t base, head;
	json_int_t delta;
} fn_change;

static int cmp_change(const void *a, const void *b)
{
	const fn_change *x = a, *y = b;
	json_int_t ax = x->delta < 0 ? -x->delta : x->delta, ay = y->delta < 0 ? -y->delta : y->delta;
	if (ax != ay)
		return ax < ay ? 1 : -1;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->file, y->file);
}

static json_int_t self_cost(const json_t *fn, int metric)
{
	return metric_value(json_object_get(fn, "self"), metric);
}

/* The five functions whose exclusive cost changed most between the two
 * profiles (a function absent on one side counts as 0 there). */
static json_t *top_changes(const json_t *base, const json_t *head, int metric)
{
	const json_t *bf = json_object_get(base, "top_functions"), *hf = json_object_get(head, "top_functions");
	size_t nb = json_array_size(bf), nh = json_array_size(hf);
	fn_change *ch = calloc(nb + nh + 1, sizeof(*ch));
	json_t *out = json_array();
	if (!ch || !out) {
		free(ch);
		return out;
	}
	size_t n = 0;
	for (size_t i = 0; i < nh; i++) {
		const json_t *f = json_array_get(hf, i);
		const char *name = base_json_str(f, "name");
		const char *file = base_json_str(f, "file");
		if (!name || !file)
			continue;
		ch[n] = (fn_change){ name, file, 0, self_cost(f, metric), 0 };
		for (size_t j = 0; j < nb; j++) {
			const json_t *g = json_array_get(bf, j);
			const char *gn = base_json_str(g, "name");
			const char *gf = base_json_str(g, "file");
			if (gn && gf && strcmp(gn, name) == 0 && strcmp(gf, file) == 0)
				ch[n].base = self_cost(g, metric);
		}
		ch[n].delta = ch[n].head - ch[n].base;
		n++;
	}
	for (size_t j = 0; j < nb; j++) {
		const json_t *g = json_array_get(bf, j);
		const char *gn = base_json_str(g, "name");
		const char *gf = base_json_str(g, "file");
		if (!gn || !gf)
			continue;
		int found = 0;
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(ch[i].name, gn) == 0 && strcmp(ch[i].file, gf) == 0;
		if (!found) {
			ch[n] = (fn_change){ gn, gf, self_cost(g, metric), 0, 0 };
			ch[n].delta = -ch[n].base;
			n++;
		}
	}
	qsort(ch, n, sizeof(*ch), cmp_change);
	for (size_t i = 0; i < n && i < 5; i++) {
		if (ch[i].delta == 0)
			break;
		json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:I, s:I}", "name", ch[i].name, "file", ch[i].file,
						     "base", ch[i].base, "head", ch[i].head, "change", ch[i].delta));
	}
	free(ch);
	return out;
}

int measure_bench_compare(json_t **out, const json_t *base, const json_t *head, const measure_repo_config *cfg)
{
	*out = NULL;
	if (!json_is_array(head))
		return base_error_set(BASE_EINVALID, "compare: the head measurements must be an array");
	json_t *res = json_array();
	if (!res)
		return base_error_set(BASE_ENOMEM, "out of memory");
	int metric = cfg ? (int)cfg->metric : MEASURE_METRIC_CYCLES;
	size_t i;
	json_t *h;
	json_array_foreach(head, i, h)
	{
		const char *name = base_json_str(h, "name");
		if (!name)
			continue;
		const measure_benchmark_config *bc = measure_repo_config_benchmark(cfg, name);
		double threshold = bc ? bc->threshold_pct : cfg ? cfg->threshold_pct : 3.0;
		double effective = threshold > MEASURE_BENCH_NOISE_FLOOR_PCT ? threshold : MEASURE_BENCH_NOISE_FLOOR_PCT;
		const json_t *b = find_named(base, name);
		json_t *e = json_pack("{s:s, s:s, s:f}", "name", name, "metric",
				      metric == MEASURE_METRIC_INSTRUCTIONS ? "instructions" : "cycles", "threshold_pct",
				      threshold);
		if (!e) {
			json_decref(res);
			return base_error_set(BASE_ENOMEM, "out of memory");
		}
		const char *verdict;
		if (!is_ok(h)) {
			verdict = "failed";
			const char *err = base_json_str(h, "error");
			json_object_set_new(e, "error", json_string(err ? err : "failed"));
			json_object_set_new(e, "head", json_null());
			json_object_set_new(e, "base", is_ok(b) ? json_integer(metric_value(b, metric)) : json_null());
			json_object_set_new(e, "change_pct", json_null());
		} else if (!is_ok(b)) {
			verdict = "new";
			json_object_set_new(e, "base", json_null());
			json_object_set_new(e, "head", json_integer(metric_value(h, metric)));
			json_object_set_new(e, "change_pct", json_null());
		} else {
			json_int_t bv = metric_value(b, metric), hv = metric_value(h, metric);
			double pct = bv > 0 ? ((double)hv - (double)bv) * 100.0 / (double)bv : 0.0;
			/* the percentage is rounded to two decimals before the
			 * threshold test so that what is printed decides */
			pct = round(pct * 100.0) / 100.0;
			if (pct == 0.0)
				pct = 0.0; /* no "-0.00%" */
			if (pct > effective)
				verdict = "regressed";
			else if (pct < -effective)
				verdict = "improved";
			else
				verdict = "unchanged";
			json_object_set_new(e, "base", json_integer(bv));
			json_object_set_new(e, "head", json_integer(hv));
			json_object_set_new(e, "change_pct", json_real(pct));
			json_object_set(e, "base_instructions", json_object_get(b, "instructions"));
			json_object_set(e, "head_instructions", json_object_get(h, "instructions"));
			json_object_set(e, "base_cycles", json_object_get(b, "estimated_cycles"));
			json_object_set(e, "head_cycles", json_object_get(h, "estimated_cycles"));
			if (strcmp(verdict, "regressed") == 0)
				json_object_set_new(e, "top_changes", top_changes(b, h, metric));
		}
		json_object_set_new(e, "verdict", json_string(verdict));
		json_array_append_new(res, e);
	}
	*out = res;
	return 0;
}

/* ---- formatting ------------------------------------------------------- */

void measure_bench_format_pct(char *buf, size_t size, double pct)
{
	if (fabs(pct) < 0.005)
		snprintf(buf, size, "0.00%%");
	else
		snprintf(buf, size, "%+.2f%%", pct);
}

void measure_bench_row_pct(char *buf, size_t size, const json_t *row, const char *none)
{
	const json_t *c = json_object_get(row, "change_pct");
	if (json_is_number(c))
		measure_bench_format_pct(buf, size, json_number_value(c));
	else
		snprintf(buf, size, "%s", none);
}

/* 1234567 -> "1.23 M", 12345 -> "12.35 K", 999 -> "999" */
static void human(char *buf, size_t size, json_int_t v)
{
	double d = (double)v;
	if (v >= 1000000000)
		snprintf(buf, size, "%.2f G", d / 1e9);
	else if (v >= 1000000)
		snprintf(buf, size, "%.2f M", d / 1e6);
	else if (v >= 10000)
		snprintf(buf, size, "%.2f K", d / 1e3);
	else
		snprintf(buf, size, "%lld", (long long)v);
}

static void short_sha(char out[8], const char *sha)
{
	snprintf(out, 8, "%s", sha ? sha : "");
}

/* Markdown table cells must not contain '|' or newlines. */
static void md_cell(base_buf *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '|')
			base_buf_puts(b, "\\|");
		else if (*s == '\n' || *s == '\r')
			base_buf_puts(b, " ");
		else if (*s == '`')
			base_buf_puts(b, "'");
		else
			base_buf_put(b, s, 1);
	}
}

int measure_bench_report_make(measure_bench_report *out, const json_t *comparison, const char *head_ref,
			    const char *head_sha, const char *base_ref, const char *base_sha)
{
	memset(out, 0, sizeof(*out));
	size_t i;
	json_t *e;
	int unchanged = 0, added = 0;
	json_array_foreach(comparison, i, e)
	{
		const char *v = base_json_str(e, "verdict");
		if (!v)
			continue;
		if (strcmp(v, "regressed") == 0)
			out->regressions++;
		else if (strcmp(v, "improved") == 0)
			out->improvements++;
		else if (strcmp(v, "failed") == 0)
			out->failures++;
		else if (strcmp(v, "new") == 0)
			added++;
		else
			unchanged++;
	}
	base_buf t;
	base_buf_init(&t, 256);
	int parts = 0;
	if (out->regressions) {
		base_buf_printf(&t, "%d regression%s", out->regressions, out->regressions == 1 ? "" : "s");
		parts++;
	}
	if (out->improvements) {
		base_buf_printf(&t, "%s%d improvement%s", parts ? ", " : "", out->improvements,
			       out->improvements == 1 ? "" : "s");
		parts++;
	}
	if (out->failures) {
		base_buf_printf(&t, "%s%d failed", parts ? ", " : "", out->failures);
		parts++;
	}
	if (!parts)
		base_buf_puts(&t, added && !unchanged ? "New benchmarks measured" : "No change");
	out->title = base_buf_detach(&t);
	out->conclusion = (out->regressions || out->failures) ? "failure" : "success";

	char hs[8], bs[8], cell[64];
	short_sha(hs, head_sha);
	short_sha(bs, base_sha);
	base_buf m;
	base_buf_init(&m, REPORT_CAP);
	base_buf_printf(&m, "Comparing `%s` (%s) with `%s` (%s)\n\n", head_ref ? head_ref : hs, hs,
		       base_ref ? base_ref : bs, bs);
	if (out->regressions || out->improvements || out->failures) {
		base_buf_printf(&m, "%s", "");
		if (out->regressions)
			base_buf_printf(&m, "❌ %d regressed benchmark%s  \n", out->regressions,
				       out->regressions == 1 ? "" : "s");
		if (out->improvements)
			base_buf_printf(&m, "⚡ %d improved benchmark%s  \n", out->improvements,
				       out->improvements == 1 ? "" : "s");
		if (out->failures)
			base_buf_printf(&m, "❌ %d failed benchmark%s  \n", out->failures, out->failures == 1 ? "" : "s");
		base_buf_printf(&m, "✅ %d untouched benchmark%s\n\n", unchanged, unchanged == 1 ? "" : "s");
	} else {
		base_buf_printf(&m, "✅ %d untouched benchmark%s\n\n", unchanged, unchanged == 1 ? "" : "s");
	}
	const char *metric = base_json_str(json_array_get(comparison, 0), "metric");
	base_buf_printf(&m, "| | Benchmark | `%s` | `%s` | Change |\n|---|---|---:|---:|---:|\n", bs, hs);
	json_array_foreach(comparison, i, e)
	{
		const char *v = base_json_str(e, "verdict");
		const char *icon = "✅";
		if (v && (strcmp(v, "regressed") == 0 || strcmp(v, "failed") == 0))
			icon = "❌";
		else if (v && strcmp(v, "improved") == 0)
			icon = "⚡";
		else if (v && strcmp(v, "new") == 0)
			icon = "🆕";
		base_buf_printf(&m, "| %s | `", icon);
		md_cell(&m, base_json_str(e, "name"));
		base_buf_puts(&m, "` | ");
		const json_t *bv = json_object_get(e, "base"), *hv = json_object_get(e, "head");
		if (json_is_integer(bv)) {
			human(cell, sizeof(cell), json_integer_value(bv));
			base_buf_puts(&m, cell);
		} else {
			base_buf_puts(&m, "—");
		}
		base_buf_puts(&m, " | ");
		if (json_is_integer(hv)) {
			human(cell, sizeof(cell), json_integer_value(hv));
			base_buf_puts(&m, cell);
		} else {
			base_buf_puts(&m, "failed");
		}
		base_buf_puts(&m, " | ");
		const json_t *pct = json_object_get(e, "change_pct");
		if (json_is_number(pct)) {
			measure_bench_format_pct(cell, sizeof(cell), json_number_value(pct));
			base_buf_printf(&m, "%s%s%s", v && strcmp(v, "unchanged") ? "**" : "", cell,
				       v && strcmp(v, "unchanged") ? "**" : "");
		} else if (v && strcmp(v, "new") == 0) {
			base_buf_puts(&m, "new");
		} else {
			base_buf_puts(&m, "N/A");
		}
		base_buf_puts(&m, " |\n");
	}
	base_buf_printf(&m, "\nMeasured under CPU simulation (callgrind); %s = %s.\n",
		       metric && strcmp(metric, "instructions") == 0 ? "values" : "values",
		       metric && strcmp(metric, "instructions") == 0 ? "instructions"
								      : "estimated cycles (L1 hits + 5 × LL hits + 35 × RAM accesses)");
	/* details: regressed benchmarks' functions, failures' output */
	json_array_foreach(comparison, i, e)
	{
		const char *v = base_json_str(e, "verdict");
		const char *name = base_json_str(e, "name");
		if (!v || !name)
			continue;
		if (strcmp(v, "regressed") == 0) {
			const json_t *tc = json_object_get(e, "top_changes");
			base_buf_puts(&m, "\n### `");
			md_cell(&m, name);
			base_buf_puts(&m, "`: functions that changed most\n\n| Function | File | Base | Head | Change |\n"
					 "|---|---|---:|---:|---:|\n");
			size_t j;
			json_t *f;
			json_array_foreach(tc, j, f)
			{
				base_buf_puts(&m, "| `");
				md_cell(&m, base_json_str(f, "name"));
				base_buf_puts(&m, "` | ");
				md_cell(&m, base_json_str(f, "file"));
				json_int_t fb = json_integer_value(json_object_get(f, "base"));
				json_int_t fh = json_integer_value(json_object_get(f, "head"));
				human(cell, sizeof(cell), fb);
				base_buf_printf(&m, " | %s | ", cell);
				human(cell, sizeof(cell), fh);
				base_buf_printf(&m, "%s | ", cell);
				if (fb > 0) {
					measure_bench_format_pct(cell, sizeof(cell), ((double)fh - (double)fb) * 100.0 / (double)fb);
					base_buf_printf(&m, "%s |\n", cell);
				} else {
					base_buf_puts(&m, "new |\n");
				}
			}
		} else if (strcmp(v, "failed") == 0) {
			base_buf_puts(&m, "\n### `");
			md_cell(&m, name);
			base_buf_puts(&m, "` failed\n\n```\n");
			const char *err = base_json_str(e, "error");
			for (const char *s = err ? err : ""; *s; s++)
				base_buf_put(&m, *s == '`' ? "'" : s, 1);
			base_buf_puts(&m, "\n```\n");
		}
	}
	if (m.len + 1 >= m.max)
		base_buf_puts(&m, "\n…");
	out->summary = base_buf_detach(&m);
	if (!out->title || !out->summary) {
		measure_bench_report_dispose(out);
		return base_error_set(BASE_ENOMEM, "out of memory");
	}
	return 0;
}

void measure_bench_report_dispose(measure_bench_report *r)
{
	if (!r)
		return;
	free(r->title);
	free(r->summary);
	memset(r, 0, sizeof(*r));
}

char *measure_bench_format_run(const json_t *run)
{
	base_buf b;
	base_buf_init(&b, REPORT_CAP);
	const char *commit = base_json_str(run, "commit");
	char sha[8];
	short_sha(sha, commit);
	base_buf_printf(&b, "Measured `%s`\n\n| Benchmark | Status | Instructions | Estimated cycles |\n"
			   "|---|---|---:|---:|\n",
		       commit ? sha : "working tree");
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(run, "benchmarks"), i, m)
	{
		char a[32] = "—", c[32] = "—";
		if (is_ok(m)) {
			human(a, sizeof(a), json_integer_value(json_object_get(m, "instructions")));
			human(c, sizeof(c), json_integer_value(json_object_get(m, "estimated_cycles")));
		}
		base_buf_puts(&b, "| `");
		md_cell(&b, base_json_str(m, "name"));
		base_buf_puts(&b, "` | ");
		md_cell(&b, base_json_str(m, "status"));
		base_buf_printf(&b, " | %s | %s |\n", a, c);
	}
	return base_buf_detach(&b);
}

char *measure_bench_format_comparison_text(const json_t *comparison)
{
	base_buf b;
	base_buf_init(&b, REPORT_CAP);
	base_buf_printf(&b, "%-24s %18s %18s %10s  %s\n", "benchmark", "base", "head", "change", "verdict");
	size_t i;
	json_t *e;
	json_array_foreach(comparison, i, e)
	{
		char bv[32] = "-", hv[32] = "-", pc[32];
		const json_t *x = json_object_get(e, "base"), *y = json_object_get(e, "head");
		if (json_is_integer(x))
			snprintf(bv, sizeof(bv), "%lld", (long long)json_integer_value(x));
		if (json_is_integer(y))
			snprintf(hv, sizeof(hv), "%lld", (long long)json_integer_value(y));
		measure_bench_row_pct(pc, sizeof(pc), e, "-");
		base_buf_printf(&b, "%-24.60s %18s %18s %10s  %s\n", base_json_str(e, "name"), bv, hv,
			       pc, base_json_str(e, "verdict"));
	}
	return base_buf_detach(&b);
}
