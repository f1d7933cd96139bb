/* `perfbot runs [--json] [--limit N] [--kind K]` and `perfbot runs show N
 * [--json]`: what bench and agent runs did, for operators, read from the
 * store under DATA_DIR (safe while a server runs).  `show` prints the state,
 * the reason, the timings, the budgets used, a managed run's session (id,
 * agent version, tokens, list cost), the proposal's verified table, the
 * approval and the pull request. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/bench.h"
#include "app/cmd.h"
#include "app/cmd_agent.h"
#include "base/config.h"
#include "base/error.h"
#include "store/store.h"

static const char *s(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "";
}

static long long n(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void print_json(const json_t *doc)
{
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text)
		printf("%s\n", text);
	free(text);
}

static void print_list(const json_t *runs)
{
	printf("%-6s %-6s %-15s %-10s %-24s %-9s %s\n", "id", "kind", "state", "trigger", "created", "commit", "repository / reason");
	size_t i;
	json_t *r;
	json_array_foreach(runs, i, r)
	{
		const json_t *d = json_object_get(r, "data");
		const char *commit = *s(r, "head_sha") ? s(r, "head_sha") : s(d, "commit");
		printf("%-6lld %-6s %-15s %-10s %-24s %-9.7s %s%s%s\n", n(r, "id"), s(r, "kind"), s(r, "state"), s(r, "trigger"),
		       s(r, "created"), commit, s(r, "repository"), *s(r, "reason") ? ": " : "", s(r, "reason"));
	}
}

static void print_table(const json_t *rows)
{
	printf("  %-24s %16s %16s %10s %s\n", "benchmark", "before", "after", "change", "verdict");
	size_t i;
	json_t *b;
	json_array_foreach(rows, i, b)
	{
		char pct[32];
		measure_bench_row_pct(pct, sizeof(pct), b, "-");
		printf("  %-24.60s %16.0f %16.0f %10s %s\n", s(b, "name"), json_number_value(json_object_get(b, "base")),
		       json_number_value(json_object_get(b, "head")), pct, s(b, "verdict"));
	}
}

static void print_show(const json_t *run, const json_t *proposal, const json_t *pull)
{
	const json_t *d = json_object_get(run, "data");
	printf("run %lld (%s) %s\n", n(run, "id"), s(run, "kind"), s(run, "repository"));
	printf("state:     %s%s%s\n", s(run, "state"), *s(run, "reason") ? ": " : "", s(run, "reason"));
	printf("trigger:   %s%s%s\n", s(run, "trigger"), *s(d, "requested_by") ? " by " : "", s(d, "requested_by"));
	printf("commit:    %s%s%s\n", *s(run, "head_sha") ? s(run, "head_sha") : s(d, "commit"),
	       *s(run, "branch") ? " on " : "", s(run, "branch"));
	printf("created:   %s\nupdated:   %s\n", s(run, "created"), s(run, "updated"));
	const json_t *t = json_object_get(d, "timings");
	if (t)
		printf("timings:   baseline %lld ms, agent %lld ms, verification %lld ms, total %lld ms\n",
		       n(t, "baseline_ms"), n(t, "agent_ms"), n(t, "verify_ms"), n(t, "total_ms"));
	const json_t *u = json_object_get(d, "budgets");
	if (u)
		printf("budgets:   %lld/%lld tool calls, %lld/%lld benchmark runs, %lld ms of %lld\n", n(u, "tool_calls"),
		       n(u, "max_tool_calls"), n(u, "benchmark_runs"), n(u, "max_benchmark_runs"), n(u, "wall_ms"),
		       n(u, "max_wall_ms"));
	const json_t *mg = json_object_get(d, "managed");
	if (mg) {
		const json_t *mu = json_object_get(mg, "usage");
		printf("session:   %s (agent %s", s(mg, "session_id"), s(mg, "agent_id"));
		if (json_integer_value(json_object_get(mg, "agent_version")))
			printf(" version %lld", n(mg, "agent_version"));
		printf(")%s%s\n", *s(mg, "end") ? ", ended: " : "", s(mg, "end"));
		if (mu)
			printf("tokens:    %lld input, %lld output, %lld cache read, %lld cache creation\n",
			       n(mu, "input_tokens"), n(mu, "output_tokens"), n(mu, "cache_read_input_tokens"),
			       n(mu, "cache_creation_input_tokens"));
		const json_t *usd = json_object_get(mg, "list_cost_usd");
		if (usd || json_object_get(mg, "active_seconds")) {
			printf("cost:      ");
			if (usd)
				printf("$%.2f list cost", json_number_value(usd));
			if (json_object_get(mg, "max_cost_usd"))
				printf(" of a $%.2f budget", json_number_value(json_object_get(mg, "max_cost_usd")));
			if (json_object_get(mg, "active_seconds"))
				printf("%s%.1f s active", usd ? ", " : "",
				       json_number_value(json_object_get(mg, "active_seconds")));
			printf("\n");
		}
	}
	if (*s(d, "cancelled_by"))
		printf("cancelled: by %s\n", s(d, "cancelled_by"));
	const json_t *outcome = json_object_get(d, "outcome");
	if (proposal) {
		printf("proposal:\n");
		print_table(json_object_get(proposal, "benchmarks"));
		printf("  summary: %s\n", s(proposal, "summary"));
	} else if (json_array_size(json_object_get(outcome, "benchmarks"))) {
		printf("verified (no proposal):\n");
		print_table(json_object_get(outcome, "benchmarks"));
	}
	if (*s(d, "approved_by"))
		printf("approved:  by %s via %s\n", s(d, "approved_by"), s(d, "approved_via"));
	if (pull)
		printf("pull:      #%lld %s (%s)\n", n(pull, "number"), s(pull, "branch"), s(pull, "state"));
	if (*s(d, "check_run_id") || json_integer_value(json_object_get(d, "check_run_id")))
		printf("check run: %lld\n", n(d, "check_run_id"));
	if (proposal && *s(proposal, "diff"))
		printf("\n%s", s(proposal, "diff"));
}

static int show(store *st, const char *arg, int json)
{
	char *end;
	long long id = strtoll(arg ? arg : "", &end, 10);
	if (!arg || *end || id <= 0) {
		fprintf(stderr, "perfbot runs show: expected a run number, got \"%s\"\n", arg ? arg : "");
		return 2;
	}
	json_t *run = NULL, *proposal = NULL, *pull = NULL;
	if (store_run_get(st, id, &run) < 0) {
		fprintf(stderr, "perfbot runs show: %s\n", base_error_last());
		return 1;
	}
	if (store_proposal_get(st, id, &proposal) < 0)
		proposal = NULL;
	if (store_pull_get(st, id, &pull) < 0)
		pull = NULL;
	if (json) {
		json_t *doc = json_pack("{s:O,s:O?,s:O?}", "run", run, "proposal", proposal, "pull", pull);
		print_json(doc);
		json_decref(doc);
	} else {
		print_show(run, proposal, pull);
	}
	json_decref(run);
	json_decref(proposal);
	json_decref(pull);
	return 0;
}

int app_cmd_runs(const base_config *cfg, int argc, char **argv)
{
	int json = 0, limit = 50, rc = 2;
	const char *kind = NULL, *show_id = NULL;
	int showing = 0;
	static const struct option longopts[] = {
		{ "limit", required_argument, NULL, 'n' }, { "kind", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },         { NULL, 0, NULL, 0 },
	};
	app_cmd_opts o = { .cmd = "runs", .longopts = longopts, .shortopts = "n:" };
	int c;
	while ((c = app_cmd_getopt(&o, argc, argv, 1)) != APP_CMD_END) {
		switch (c) {
		case 'n': {
			char *end;
			long l = strtol(optarg, &end, 10);
			if (*end || l <= 0 || l > 1000000) {
				fprintf(stderr, "perfbot runs: --limit expects a positive number\n");
				return 2;
			}
			limit = (int)l;
			break;
		}
		case 'k': kind = optarg; break;
		case 'j': json = 1; break;
		default: return o.status;
		}
	}
	/* operands: nothing, or "show N" */
	int nops = argc - o.next;
	if (nops > 0 && strcmp(argv[o.next], "show") == 0 && nops <= 2) {
		showing = 1;
		show_id = nops == 2 ? argv[o.next + 1] : NULL;
	} else if (nops > 0) {
		fprintf(stderr, "perfbot runs: unexpected argument '%s' (see perfbot runs --help)\n",
			argv[o.next + (strcmp(argv[o.next], "show") == 0 ? 2 : 0)]);
		return 2;
	}
	store *st = NULL;
	if (store_open_existing(&st, cfg->database_url) < 0) {
		fprintf(stderr, "perfbot runs: %s\n", base_error_last());
		return 2;
	}
	if (showing) {
		rc = show(st, show_id, json);
	} else {
		json_t *filter = json_pack("{s:s?}", "kind", kind), *runs = NULL;
		if (store_run_list(st, filter, limit, &runs) < 0) {
			fprintf(stderr, "perfbot runs: %s\n", base_error_last());
		} else {
			if (json)
				print_json(runs);
			else
				print_list(runs);
			rc = 0;
		}
		json_decref(filter);
		json_decref(runs);
	}
	store_free(st);
	return rc;
}
