/* Unit tests: .github/perfbot.yml parsing — a full valid file, every
 * default, error messages with line and column, "did you mean". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/repo_config.h"
#include "base/error.h"

static measure_repo_config *parse_ok(const char *text)
{
	measure_repo_config *cfg = NULL;
	int rc = measure_repo_config_parse(&cfg, text, strlen(text));
	if (rc != 0)
		fail_msg("unexpected error: %s", base_error_last());
	return cfg;
}

static void expect_error(const char *text, const char *message)
{
	measure_repo_config *cfg = (measure_repo_config *)1;
	int rc = measure_repo_config_parse(&cfg, text, strlen(text));
	assert_int_equal(rc, BASE_EINVALID);
	assert_null(cfg);
	if (strcmp(base_error_last(), message) != 0)
		fail_msg("message\n  got:      %s\n  expected: %s", base_error_last(), message);
}

static void test_full_file(void **state)
{
	(void)state;
	const char *text = "build: make -j2                 # optional\n"
			   "test: make test\n"
			   "benchmarks:\n"
			   "  - name: parse-small\n"
			   "    command: ./bench/parse data/small.json\n"
			   "  - name: parse-large\n"
			   "    command: ./bench/parse data/large.json\n"
			   "    mode: region\n"
			   "    threshold: 1%\n"
			   "    timeout: 2m\n"
			   "threshold: 2.5%\n"
			   "metric: instructions\n"
			   "branches: [main, release]\n"
			   "timeout: 90s\n"
			   "optimize:\n"
			   "  on: [comment, push]\n"
			   "  max_minutes: 10\n"
			   "  max_benchmark_runs: 5\n";
	measure_repo_config *cfg = parse_ok(text);
	assert_string_equal(cfg->build, "make -j2");
	assert_string_equal(cfg->test, "make test");
	assert_int_equal(cfg->nbenchmarks, 2);
	assert_string_equal(cfg->benchmarks[0].name, "parse-small");
	assert_string_equal(cfg->benchmarks[0].command, "./bench/parse data/small.json");
	assert_int_equal(cfg->benchmarks[0].mode, MEASURE_MODE_PROCESS);
	assert_true(cfg->benchmarks[0].threshold_pct == 2.5); /* inherits the top level */
	assert_int_equal(cfg->benchmarks[0].timeout_s, 90);
	assert_int_equal(cfg->benchmarks[1].mode, MEASURE_MODE_REGION);
	assert_true(cfg->benchmarks[1].threshold_pct == 1.0);
	assert_int_equal(cfg->benchmarks[1].timeout_s, 120);
	assert_true(cfg->threshold_pct == 2.5);
	assert_int_equal(cfg->metric, MEASURE_METRIC_INSTRUCTIONS);
	assert_int_equal(cfg->nbranches, 2);
	assert_string_equal(cfg->branches[1], "release");
	assert_true(cfg->optimize_on_comment);
	assert_true(cfg->optimize_on_push);
	assert_int_equal(cfg->optimize_max_minutes, 10);
	assert_int_equal(cfg->optimize_max_benchmark_runs, 5);
	assert_true(measure_repo_config_tracks_branch(cfg, "release", "main"));
	assert_false(measure_repo_config_tracks_branch(cfg, "dev", "dev"));
	assert_non_null(measure_repo_config_benchmark(cfg, "parse-large"));
	assert_null(measure_repo_config_benchmark(cfg, "nope"));
	measure_repo_config_free(cfg);
}

static void test_defaults(void **state)
{
	(void)state;
	measure_repo_config *cfg = parse_ok("benchmarks:\n  - name: a\n    command: ./a\n");
	assert_null(cfg->build);
	assert_null(cfg->test);
	assert_true(cfg->threshold_pct == 3.0);
	assert_int_equal(cfg->metric, MEASURE_METRIC_CYCLES);
	assert_int_equal(cfg->timeout_s, 600);
	assert_int_equal(cfg->nbranches, 0);
	assert_true(cfg->optimize_on_comment);
	assert_false(cfg->optimize_on_push);
	assert_int_equal(cfg->optimize_max_minutes, 30);
	assert_int_equal(cfg->optimize_max_benchmark_runs, 40);
	assert_int_equal(cfg->benchmarks[0].mode, MEASURE_MODE_PROCESS);
	assert_true(cfg->benchmarks[0].threshold_pct == 3.0);
	assert_int_equal(cfg->benchmarks[0].timeout_s, 600);
	/* no branches: the default branch only */
	assert_true(measure_repo_config_tracks_branch(cfg, "main", "main"));
	assert_false(measure_repo_config_tracks_branch(cfg, "feature", "main"));
	measure_repo_config_free(cfg);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("benchmarks:\n  - name: a\n    command: ./a\nthreshold: fast\n",
		     "line 4, column 12: threshold: expected a percentage like 3%, got \"fast\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\n    threshold: 3\n",
		     "line 4, column 16: threshold: expected a percentage like 3%, got \"3\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\nmetric: seconds\n",
		     "line 4, column 9: metric: expected cycles or instructions, got \"seconds\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\n    mode: fast\n",
		     "line 4, column 11: mode: expected process or region, got \"fast\"");
	expect_error("benchmarks:\n  - name: a\n", "line 2, column 5: benchmark a: missing \"command\"");
	expect_error("benchmarks:\n  - command: ./a\n", "line 2, column 5: benchmarks: a benchmark is missing \"name\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\n  - name: a\n    command: ./b\n",
		     "line 4, column 5: benchmarks: the name \"a\" is used twice");
	expect_error("build: make\n", "line 1, column 1: benchmarks: missing; expected a list of benchmarks "
				      "(- name: ..., command: ...)");
	expect_error("benchmarks: ./run\n", "line 1, column 13: benchmarks: expected a list of benchmarks "
					    "(- name: ..., command: ...), got \"./run\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  max_minutes: soon\n",
		     "line 5, column 16: optimize.max_minutes: expected a whole number, got \"soon\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  on: [sometimes]\n",
		     "line 5, column 7: optimize.on: expected comment or push, got \"sometimes\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\ntimeout: forever\n",
		     "line 4, column 10: timeout: expected a duration like 10m or 90s (at most 6h), got \"forever\"");
	expect_error("benchmarks:\n  - name: a b\n    command: ./a\n",
		     "line 2, column 11: name: expected letters, digits, '.', '_' or '-', got \"a b\"");
	expect_error("threshold: 3%\nthreshold: 4%\nbenchmarks: []\n", "line 2, column 1: threshold: duplicate key");
	expect_error("benchmarks:\n  - name: a\n    command: [x\n",
		     "line 4, column 1: YAML syntax error: did not find expected ',' or ']' while parsing a flow "
		     "sequence");
	expect_error("", "line 1, column 1: the file is empty: expected a mapping with \"benchmarks\"");
	/* bytes libyaml's reader refuses: named at their own line and column */
	expect_error("benchmarks:\n  - name: \xff\n    command: ./a\n",
		     "line 2, column 11: YAML syntax error: invalid leading UTF-8 octet");
	expect_error("benchmarks:\r\n  - name: a\r\n    command: ./\xc3\xa9\x01\r\n",
		     "line 3, column 17: YAML syntax error: control characters are not allowed");
	expect_error("- a\n- b\n", "line 1, column 1: top level: expected a mapping of keys, got a list");
}

static void test_did_you_mean(void **state)
{
	(void)state;
	expect_error("benchmarks:\n  - name: a\n    command: ./a\ntreshold: 3%\n",
		     "line 4, column 1: unknown key \"treshold\" (did you mean \"threshold\"?)");
	expect_error("benchmarks:\n  - name: a\n    comand: ./a\n",
		     "line 3, column 5: unknown key \"comand\" in a benchmark (did you mean \"command\"?)");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  max_minute: 3\n",
		     "line 5, column 3: unknown key \"max_minute\" in optimize (did you mean \"max_minutes\"?)");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\ncolour: blue\n",
		     "line 4, column 1: unknown key \"colour\" (expected one of: build, test, benchmarks, threshold, "
		     "metric, branches, optimize, timeout)");
}

/* optimize.protected and optimize.paths: globs kept, errors named at their
 * line, and the diff policy built from them with the commands' files */
static void test_optimize_globs(void **state)
{
	(void)state;
	const char *yml = "build: ./tools/build.sh\nbenchmarks:\n  - name: a\n    command: ./bench/a data/in.txt\n"
			  "optimize:\n  protected: [\"src/generated/**\", \"*.lock\"]\n  paths:\n    - src/**\n";
	measure_repo_config *cfg = NULL;
	assert_int_equal(measure_repo_config_parse(&cfg, yml, strlen(yml)), 0);
	assert_int_equal(cfg->noptimize_protected, 2);
	assert_string_equal(cfg->optimize_protected[0], "src/generated/**");
	assert_int_equal(cfg->noptimize_paths, 1);
	assert_string_equal(cfg->optimize_paths[0], "src/**");
	base_diff_policy *p = NULL;
	assert_int_equal(measure_repo_config_diff_policy(&p, cfg), 0);
	char why[256];
	assert_false(base_diff_policy_path(p, "src/a.c", why, sizeof(why)));
	assert_true(base_diff_policy_path(p, "src/generated/t.c", why, sizeof(why)));
	assert_string_equal(why, "matches optimize.protected (src/generated/**)");
	assert_true(base_diff_policy_path(p, "lib/a.c", why, sizeof(why)));
	assert_string_equal(why, "is outside optimize.paths");
	assert_true(base_diff_policy_path(p, "bench/a.c", why, sizeof(why)));
	assert_true(base_diff_policy_path(p, "data/in.txt", why, sizeof(why)));
	assert_true(base_diff_policy_path(p, "tools/build.sh", why, sizeof(why)));
	free(p);
	measure_repo_config_free(cfg);

	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  protected: [\"../x\"]\n",
		     "line 5, column 14: optimize.protected: expected globs of paths inside the repository, got \"../x\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  paths: {a: b}\n",
		     "line 5, column 10: optimize.paths: expected a list like [main], got a mapping");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  protect: [x]\n",
		     "line 5, column 3: unknown key \"protect\" in optimize (did you mean \"protected\"?)");
}

/* optimize.agent and optimize.max_cost_usd: kept, defaults, errors named
 * at their line */
static void test_optimize_agent_and_cost(void **state)
{
	(void)state;
	measure_repo_config *cfg = parse_ok("benchmarks:\n  - name: a\n    command: ./a\n");
	assert_int_equal(cfg->optimize_agent, MEASURE_AGENT_DEFAULT);
	assert_true(cfg->optimize_max_cost_usd == 0);
	measure_repo_config_free(cfg);
	cfg = parse_ok("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  agent: managed\n  max_cost_usd: 2.50\n");
	assert_int_equal(cfg->optimize_agent, MEASURE_AGENT_MANAGED);
	assert_true(cfg->optimize_max_cost_usd == 2.5);
	measure_repo_config_free(cfg);
	cfg = parse_ok("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  agent: command\n  max_cost_usd: 7\n");
	assert_int_equal(cfg->optimize_agent, MEASURE_AGENT_COMMAND);
	assert_true(cfg->optimize_max_cost_usd == 7);
	measure_repo_config_free(cfg);

	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  agent: claude\n",
		     "line 5, column 10: optimize.agent: expected command or managed, got \"claude\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  agent: [managed]\n",
		     "line 5, column 10: optimize.agent: expected command or managed, got a list");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  max_cost_usd: 0\n",
		     "line 5, column 17: optimize.max_cost_usd: expected a positive amount of at most 10000 dollars, "
		     "got \"0\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  max_cost_usd: -3\n",
		     "line 5, column 17: optimize.max_cost_usd: expected an amount of US dollars like 5 or 2.50, "
		     "got \"-3\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  max_cost_usd: $5\n",
		     "line 5, column 17: optimize.max_cost_usd: expected an amount of US dollars like 5 or 2.50, "
		     "got \"$5\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  max_cost_usd: 1.005\n",
		     "line 5, column 17: optimize.max_cost_usd: expected an amount of US dollars like 5 or 2.50, "
		     "got \"1.005\"");
	expect_error("benchmarks:\n  - name: a\n    command: ./a\noptimize:\n  max_cost_usd_: 5\n",
		     "line 5, column 3: unknown key \"max_cost_usd_\" in optimize (did you mean \"max_cost_usd\"?)");
}

static void test_size_cap(void **state)
{
	(void)state;
	static char big[MEASURE_REPO_CONFIG_MAX + 2];
	memset(big, '#', sizeof(big) - 1);
	measure_repo_config *cfg = NULL;
	assert_int_equal(measure_repo_config_parse(&cfg, big, sizeof(big) - 1), BASE_ETOOBIG);
	assert_null(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_did_you_mean),
		cmocka_unit_test(test_optimize_globs),
		cmocka_unit_test(test_optimize_agent_and_cost),
		cmocka_unit_test(test_size_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
