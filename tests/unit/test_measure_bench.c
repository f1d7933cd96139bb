/* Unit tests: comparison of measurements (verdicts, change_pct, per-benchmark
 * thresholds, metric choice, failures, new benchmarks, functions that
 * changed most), the check-run report (title, summary table, conclusion),
 * and the limits each command of a measurement gets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "measure/bench.h"
#include "base/error.h"

static const char *config_text = "benchmarks:\n"
				 "  - name: sort\n    command: ./sort\n"
				 "  - name: hash\n    command: ./hash\n    threshold: 10%\n"
				 "  - name: parse\n    command: ./parse\n"
				 "  - name: fresh\n    command: ./fresh\n"
				 "  - name: broken\n    command: ./broken\n";

static json_t *m(const char *name, json_int_t instr, json_int_t cycles, json_int_t fn_a, json_int_t fn_b)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:[{s:s, s:s, s:{s:I, s:I}}, {s:s, s:s, s:{s:I, s:I}}]}", "name", name,
			 "status", "ok", "instructions", instr, "estimated_cycles", cycles, "top_functions", "name",
			 "sort_ints", "file", "sort.c", "self", "instructions", fn_a, "estimated_cycles", fn_a, "name",
			 "main", "file", "sort.c", "self", "instructions", fn_b, "estimated_cycles", fn_b);
}

static json_t *verdict_of(json_t *cmp, const char *name)
{
	size_t i;
	json_t *e;
	json_array_foreach(cmp, i, e) if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) return e;
	fail_msg("no %s in comparison", name);
	return NULL;
}

static void test_compare_and_report(void **state)
{
	(void)state;
	measure_repo_config *cfg;
	assert_int_equal(measure_repo_config_parse(&cfg, config_text, strlen(config_text)), 0);
	json_t *base = json_pack("[o, o, o, o]", m("sort", 1000, 2000, 800, 100), m("hash", 1000, 1000, 0, 0),
				 m("parse", 1000, 1000, 0, 0), m("broken", 10, 10, 0, 0));
	json_t *head = json_pack("[o, o, o, o, o]", m("sort", 1100, 2500, 1250, 100), m("hash", 1000, 920, 0, 0),
				 m("parse", 1000, 800, 0, 0), m("fresh", 5, 5, 0, 0),
				 json_pack("{s:s, s:s, s:s}", "name", "broken", "status", "failed", "error",
					   "exited with status 2"));
	json_t *cmp;
	assert_int_equal(measure_bench_compare(&cmp, base, head, cfg), 0);
	json_t *e = verdict_of(cmp, "sort");
	assert_string_equal(json_string_value(json_object_get(e, "verdict")), "regressed");
	assert_true(json_real_value(json_object_get(e, "change_pct")) == 25.0); /* cycles, the default metric */
	json_t *tc = json_object_get(e, "top_changes");
	assert_int_equal(json_array_size(tc), 1); /* main did not change */
	assert_string_equal(json_string_value(json_object_get(json_array_get(tc, 0), "name")), "sort_ints");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(tc, 0), "change")), 450);
	e = verdict_of(cmp, "hash"); /* -8% under its own 10% threshold */
	assert_string_equal(json_string_value(json_object_get(e, "verdict")), "unchanged");
	e = verdict_of(cmp, "parse");
	assert_string_equal(json_string_value(json_object_get(e, "verdict")), "improved");
	assert_true(json_real_value(json_object_get(e, "change_pct")) == -20.0);
	assert_string_equal(json_string_value(json_object_get(verdict_of(cmp, "fresh"), "verdict")), "new");
	e = verdict_of(cmp, "broken");
	assert_string_equal(json_string_value(json_object_get(e, "verdict")), "failed");
	assert_string_equal(json_string_value(json_object_get(e, "error")), "exited with status 2");

	measure_bench_report r;
	assert_int_equal(measure_bench_report_make(&r, cmp, "feature", "1234567890abcdef", "main", "abcdef0123456789"), 0);
	assert_string_equal(r.title, "1 regression, 1 improvement, 1 failed");
	assert_string_equal(r.conclusion, "failure");
	assert_non_null(strstr(r.summary, "Comparing `feature` (1234567) with `main` (abcdef0)"));
	assert_non_null(strstr(r.summary, "| ❌ | `sort` | 2000 | 2500 | **+25.00%** |"));
	assert_non_null(strstr(r.summary, "| ⚡ | `parse` | 1000 | 800 | **-20.00%** |"));
	assert_non_null(strstr(r.summary, "| ✅ | `hash` | 1000 | 920 | -8.00% |"));
	assert_non_null(strstr(r.summary, "| ❌ | `broken` | 10 | failed | N/A |"));
	assert_non_null(strstr(r.summary, "### `sort`: functions that changed most"));
	assert_non_null(strstr(r.summary, "| `sort_ints` | sort.c | 800 | 1250 | +56.25% |"));
	assert_non_null(strstr(r.summary, "exited with status 2"));
	measure_bench_report_dispose(&r);
	json_decref(cmp);

	/* instructions as the metric: sort is +10% there */
	cfg->metric = MEASURE_METRIC_INSTRUCTIONS;
	assert_int_equal(measure_bench_compare(&cmp, base, head, cfg), 0);
	assert_true(json_real_value(json_object_get(verdict_of(cmp, "sort"), "change_pct")) == 10.0);
	json_decref(cmp);
	json_decref(base);
	json_decref(head);
	measure_repo_config_free(cfg);
}

static void test_no_change(void **state)
{
	(void)state;
	measure_repo_config *cfg;
	assert_int_equal(measure_repo_config_parse(&cfg, config_text, strlen(config_text)), 0);
	json_t *base = json_pack("[o]", m("sort", 1000000, 2000000, 0, 0));
	json_t *head = json_pack("[o]", m("sort", 1000000, 2004000, 0, 0)); /* +0.2%: noise */
	json_t *cmp;
	assert_int_equal(measure_bench_compare(&cmp, base, head, cfg), 0);
	measure_bench_report r;
	assert_int_equal(measure_bench_report_make(&r, cmp, NULL, "aaaaaaaaaa", NULL, "bbbbbbbbbb"), 0);
	assert_string_equal(r.title, "No change");
	assert_string_equal(r.conclusion, "success");
	assert_non_null(strstr(r.summary, "| ✅ | `sort` | 2.00 M | 2.00 M | +0.20% |"));
	measure_bench_report_dispose(&r);
	json_decref(cmp);
	json_decref(base);
	json_decref(head);
	measure_repo_config_free(cfg);

	char buf[32];
	measure_bench_format_pct(buf, sizeof(buf), -0.001);
	assert_string_equal(buf, "0.00%");
	measure_bench_format_pct(buf, sizeof(buf), 19.996);
	assert_string_equal(buf, "+20.00%");
}

/* A sandbox that runs nothing and records the limits of every command. */
typedef struct limits_sandbox {
	measure_sandbox base;
	measure_sandbox_limits seen[8];
	int shell[8]; /* the command was a shell line (the build) */
	int n;
} limits_sandbox;

static int limits_run(measure_sandbox *base, measure_sandbox_result *out, const measure_sandbox_cmd *cmd)
{
	limits_sandbox *sb = (limits_sandbox *)base;
	memset(out, 0, sizeof(*out));
	if (sb->n < 8) {
		sb->seen[sb->n] = cmd->limits;
		sb->shell[sb->n] = cmd->shell != NULL;
		sb->n++;
	}
	out->out = strdup("");
	out->err = strdup("");
	return 0;
}

static int limits_prepare(measure_sandbox *base, const char *host_path)
{
	(void)base;
	(void)host_path;
	return 0;
}

static void test_cpu_limit_follows_timeout(void **state)
{
	(void)state;
	const char *text = "build: make\ntimeout: 30m\nbenchmarks:\n"
			   "  - name: long\n    command: ./long\n"
			   "  - name: short\n    command: ./short\n    timeout: 90s\n";
	measure_repo_config *cfg;
	assert_int_equal(measure_repo_config_parse(&cfg, text, strlen(text)), 0);
	limits_sandbox sb = { .base = { "limits", limits_run, limits_prepare, NULL } };
	char scratch[] = "/tmp/perfbot-benchtest-XXXXXX";
	assert_non_null(mkdtemp(scratch));
	measure_bench_options o = MEASURE_BENCH_OPTIONS_INIT;
	o.scratch_dir = scratch;
	json_t *run = NULL;
	int rc = measure_bench_measure(&run, &sb.base, scratch, cfg, &o);
	rmdir(scratch);
	assert_int_equal(rc, 0);
	assert_int_equal(o.limits.cpu_s, 600);
	/* the toolchain probes, the build, then one run per benchmark */
	assert_int_equal(sb.n, 5);
	assert_true(sb.shell[2]);
	for (int i = 2; i < 5; i++) {
		int timeout = i == 4 ? 90 : 1800;
		assert_int_equal(sb.seen[i].timeout_s, timeout);
		/* SIGXCPU must not come before the timeout */
		if (sb.seen[i].cpu_s < timeout)
			fail_msg("command %d: %d s of CPU under a %d s timeout", i, sb.seen[i].cpu_s, timeout);
	}
	assert_int_equal(sb.seen[4].cpu_s, 600); /* never lowered */
	json_decref(run);
	measure_repo_config_free(cfg);
}

/* A sandbox whose benchmark runs take 150 ms each and that counts how many
 * run at once (the toolchain probes and the build are instant). */
typedef struct overlap_sandbox {
	measure_sandbox base;
	pthread_mutex_t lock;
	int now, most, runs;
} overlap_sandbox;

static int overlap_run(measure_sandbox *base, measure_sandbox_result *out, const measure_sandbox_cmd *cmd)
{
	overlap_sandbox *sb = (overlap_sandbox *)base;
	memset(out, 0, sizeof(*out));
	if (!cmd->shell && cmd->argv && cmd->argv[0] && strcmp(cmd->argv[0], "setarch") == 0) {
		pthread_mutex_lock(&sb->lock);
		sb->runs++;
		if (++sb->now > sb->most)
			sb->most = sb->now;
		pthread_mutex_unlock(&sb->lock);
		usleep(150000);
		pthread_mutex_lock(&sb->lock);
		sb->now--;
		pthread_mutex_unlock(&sb->lock);
	}
	out->out = strdup("");
	out->err = strdup("");
	return 0;
}

static void measure_overlap(int parallel, int *most, json_t **run)
{
	const char *text = "benchmarks:\n"
			   "  - name: a\n    command: ./a\n  - name: b\n    command: ./b\n"
			   "  - name: c\n    command: ./c\n  - name: d\n    command: ./d\n";
	measure_repo_config *cfg;
	assert_int_equal(measure_repo_config_parse(&cfg, text, strlen(text)), 0);
	overlap_sandbox sb = { .base = { "overlap", overlap_run, limits_prepare, NULL } };
	pthread_mutex_init(&sb.lock, NULL);
	char scratch[] = "/tmp/perfbot-benchtest-XXXXXX";
	assert_non_null(mkdtemp(scratch));
	measure_bench_options o = MEASURE_BENCH_OPTIONS_INIT;
	o.scratch_dir = scratch;
	o.parallel = parallel;
	assert_int_equal(measure_bench_measure(run, &sb.base, scratch, cfg, &o), 0);
	rmdir(scratch);
	assert_int_equal(sb.runs, 4);
	*most = sb.most;
	pthread_mutex_destroy(&sb.lock);
	measure_repo_config_free(cfg);
}

static void test_parallel_benchmarks(void **state)
{
	(void)state;
	int most = 0;
	json_t *one = NULL, *two = NULL;
	measure_overlap(0, &most, &one);
	assert_int_equal(most, 1); /* the default: one at a time */
	measure_overlap(2, &most, &two);
	assert_int_equal(most, 2);
	/* the documents in the configuration's order either way */
	const json_t *b1 = json_object_get(one, "benchmarks"), *b2 = json_object_get(two, "benchmarks");
	assert_int_equal(json_array_size(b1), 4);
	assert_int_equal(json_array_size(b2), 4);
	const char *names[] = { "a", "b", "c", "d" };
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(json_string_value(json_object_get(json_array_get(b1, i), "name")), names[i]);
		assert_string_equal(json_string_value(json_object_get(json_array_get(b2, i), "name")), names[i]);
		assert_string_equal(json_string_value(json_object_get(json_array_get(b1, i), "status")),
				    json_string_value(json_object_get(json_array_get(b2, i), "status")));
	}
	json_decref(one);
	json_decref(two);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compare_and_report),
		cmocka_unit_test(test_no_change),
		cmocka_unit_test(test_cpu_limit_follows_timeout),
		cmocka_unit_test(test_parallel_benchmarks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
