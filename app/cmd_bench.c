/* `perfbot bench [--repo DIR] [--rev REV] [--base REV] [--json]`: the bench
 * pipeline on a local repository, without GitHub.  Each revision is
 * exported into its own work tree under DATA_DIR/work (removed afterwards),
 * built and measured in the sandbox.  The configuration is read from the
 * measured head commit and used for the base too, so both sides run the same
 * benchmarks.  Exit status: 0 ok, 1 a benchmark failed or regressed, 2 the
 * command could not run (usage, repository, configuration, sandbox). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/bench.h"
#include "measure/checkout.h"
#include "measure/repo_config.h"
#include "measure/sandbox.h"
#include "app/cmd.h"
#include "base/config.h"
#include "base/error.h"

int app_cmd_bench(const base_config *cfg, int argc, char **argv);

/* The CLI's view of a measurement: counts and the first ten functions. */
static json_t *cli_benchmarks(const json_t *run)
{
	json_t *arr = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(run, "benchmarks"), i, m)
	{
		json_t *o = json_deep_copy(m);
		json_t *top = json_object_get(o, "top_functions");
		while (json_array_size(top) > 10)
			json_array_remove(top, json_array_size(top) - 1);
		json_object_del(o, "toolchain");
		json_array_append_new(arr, o);
	}
	return arr;
}

static void print_run_text(const json_t *run)
{
	size_t i;
	json_t *m;
	const char *commit = json_string_value(json_object_get(run, "commit"));
	printf("commit %s\n", commit ? commit : "?");
	printf("%-24s %-8s %16s %16s %10s %10s\n", "benchmark", "status", "instructions", "est. cycles", "L1 miss",
	       "LL miss");
	json_array_foreach(json_object_get(run, "benchmarks"), i, m)
	{
		const char *status = json_string_value(json_object_get(m, "status"));
		if (status && strcmp(status, "ok") == 0) {
			printf("%-24.60s %-8s %16lld %16lld %10lld %10lld\n", json_string_value(json_object_get(m, "name")),
			       status, (long long)json_integer_value(json_object_get(m, "instructions")),
			       (long long)json_integer_value(json_object_get(m, "estimated_cycles")),
			       (long long)json_integer_value(json_object_get(m, "l1_misses")),
			       (long long)json_integer_value(json_object_get(m, "ll_misses")));
		} else {
			printf("%-24.60s %-8s %s\n", json_string_value(json_object_get(m, "name")), status ? status : "?",
			       json_string_value(json_object_get(m, "error")));
			const char *tail = json_string_value(json_object_get(m, "output_tail"));
			if (tail && *tail)
				printf("  output:\n%s\n", tail);
		}
	}
}

static int any_failed(const json_t *run)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(run, "benchmarks"), i, m)
	{
		const char *s = json_string_value(json_object_get(m, "status"));
		if (!s || strcmp(s, "ok") != 0)
			return 1;
	}
	return 0;
}

int app_cmd_bench(const base_config *cfg, int argc, char **argv)
{
	const char *repo = ".", *rev = "HEAD", *base = NULL;
	int json = 0, status = 2;
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, 'r' }, { "rev", required_argument, NULL, 'v' },
		{ "base", required_argument, NULL, 'b' }, { "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	app_cmd_opts o = { .cmd = "bench", .longopts = longopts };
	int c;
	while ((c = app_cmd_getopt(&o, argc, argv, 0)) != APP_CMD_END) {
		switch (c) {
		case 'r': repo = optarg; break;
		case 'v': rev = optarg; break;
		case 'b': base = optarg; break;
		case 'j': json = 1; break;
		default: return o.status;
		}
	}

	measure_sandbox *sb = NULL;
	measure_repo_config *rc = NULL;
	json_t *head_run = NULL, *base_run = NULL, *cmp = NULL;
	char *yml = NULL;
	size_t yml_len = 0;
	char head_sha[41] = "", base_sha[41] = "";
	measure_checkout_source src = { 0 };
	src.data_dir = cfg->data_dir;
	src.local_path = repo;

	if (measure_checkout_fetch(head_sha, &src, rev) < 0) {
		fprintf(stderr, "perfbot bench: %s\n", base_error_last());
		goto done;
	}
	int rcode = measure_checkout_read_file(&yml, &yml_len, &src, head_sha, MEASURE_REPO_CONFIG_PATH,
					     MEASURE_REPO_CONFIG_MAX);
	if (rcode == BASE_ENOTFOUND) {
		fprintf(stderr,
			"perfbot bench: %s has no %s; add one, e.g.\n\n"
			"benchmarks:\n  - name: my-benchmark\n    command: ./bench/my-benchmark\n",
			head_sha, MEASURE_REPO_CONFIG_PATH);
		goto done;
	}
	if (rcode < 0 || measure_repo_config_parse(&rc, yml, yml_len) < 0) {
		fprintf(stderr, "perfbot bench: %s: %s\n", MEASURE_REPO_CONFIG_PATH, base_error_last());
		goto done;
	}
	if (measure_sandbox_new_config(&sb, cfg) < 0) {
		fprintf(stderr, "perfbot bench: %s\n", base_error_last());
		goto done;
	}
	if (measure_bench_measure_rev(&head_run, head_sha, sb, &src, head_sha, rc, NULL) < 0) {
		fprintf(stderr, "perfbot bench: %s\n", base_error_last());
		goto done;
	}
	if (base) {
		if (measure_bench_measure_rev(&base_run, base_sha, sb, &src, base, rc, NULL) < 0) {
			fprintf(stderr, "perfbot bench: base %s: %s\n", base, base_error_last());
			goto done;
		}
		if (measure_bench_compare(&cmp, json_object_get(base_run, "benchmarks"),
					json_object_get(head_run, "benchmarks"), rc) < 0) {
			fprintf(stderr, "perfbot bench: %s\n", base_error_last());
			goto done;
		}
	}

	measure_bench_report report = { 0 };
	if (cmp && measure_bench_report_make(&report, cmp, rev, head_sha, base, base_sha) < 0) {
		fprintf(stderr, "perfbot bench: %s\n", base_error_last());
		goto done;
	}
	if (json) {
		json_t *doc = json_pack("{s:s, s:o}", "commit", head_sha, "benchmarks", cli_benchmarks(head_run));
		if (cmp) {
			json_object_set_new(doc, "base_commit", json_string(base_sha));
			json_object_set(doc, "comparison", cmp);
		}
		char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (text)
			printf("%s\n", text);
		free(text);
		json_decref(doc);
	} else {
		print_run_text(head_run);
		if (cmp) {
			char *t = measure_bench_format_comparison_text(cmp);
			printf("\ncompared with %s (%s)\n%s\n%s (%s)\n", base, base_sha, t ? t : "", report.title,
			       report.conclusion);
			free(t);
		}
	}
	status = (any_failed(head_run) || (cmp && strcmp(report.conclusion, "failure") == 0)) ? 1 : 0;
	measure_bench_report_dispose(&report);

done:
	json_decref(cmp);
	json_decref(head_run);
	json_decref(base_run);
	free(yml);
	measure_repo_config_free(rc);
	measure_sandbox_free(sb);
	return status;
}
