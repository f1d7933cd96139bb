/* `perfbot optimize --repo DIR [--agent command|managed] [--agent-command CMD]
 * [--json] [--diff-out FILE]`: one agent run on a local repository, without
 * GitHub and without an approval step.  With the command backend the agent
 * reaches its tools over an MCP endpoint served for the run on 127.0.0.1 (an
 * ephemeral port); with the managed backend (--agent managed, or perfbot.yml's
 * optimize.agent) a Managed Agents session runs the agent and this process's
 * own worker serves its tool calls.  The run is recorded in the store under
 * DATA_DIR like a server's, so `perfbot runs show N` shows it.
 *
 * Exit status: 0 a verified proposal, 1 no proposal (no_improvement, failed,
 * cancelled), 2 the command could not run.  SIGINT / SIGTERM cancel the run
 * (the agent and the sandbox commands are killed) and it ends "cancelled". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/run_local.h"
#include "measure/bench.h"
#include "agent/mcp.h"
#include "measure/sandbox.h"
#include "agent/services.h"
#include "app/cmd.h"
#include "app/cmd_agent.h"
#include "base/config.h"
#include "base/error.h"
#include "store/store.h"
#include "webhooks/server.h"

#define MAX_FOCUS 32

/* set by the signal handler only; the run's watcher polls it */
static atomic_int interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: perfbot optimize --repo DIR [--agent command|managed] [--agent-command CMD] [--rev REV]\n"
		   "                        [--json] [--diff-out FILE] [--benchmark NAME ...]\n"
		   "  Runs an agent on DIR at REV (default HEAD): it works in the sandbox through perfbot's tools;\n"
		   "  perfbot verifies its change on a clean checkout and prints the verified table.\n"
		   "  --agent command (default): CMD is started with PERFBOT_MCP_URL, PERFBOT_RUN_TOKEN,\n"
		   "  PERFBOT_RUN_ID, PERFBOT_TASK_FILE and reaches the tools over MCP.\n"
		   "  --agent managed: a Claude Managed Agents session (ANTHROPIC_API_KEY, PERFBOT_MANAGED_*);\n"
		   "  this process serves its tool calls.\n");
}

static void print_text(const json_t *doc)
{
	printf("run %lld: %s: %s\n", (long long)json_integer_value(json_object_get(doc, "run")),
	       json_string_value(json_object_get(doc, "status")), json_string_value(json_object_get(doc, "reason")));
	const json_t *rows = json_object_get(doc, "benchmarks");
	if (json_array_size(rows)) {
		printf("%-24s %16s %16s %10s\n", "benchmark", "before", "after", "change");
		size_t i;
		json_t *r;
		json_array_foreach(rows, i, r)
		{
			char pct[32];
			measure_bench_row_pct(pct, sizeof(pct), r, "-");
			printf("%-24.60s %16.0f %16.0f %10s\n", json_string_value(json_object_get(r, "name")),
			       json_number_value(json_object_get(r, "base")), json_number_value(json_object_get(r, "head")), pct);
		}
	}
	const char *summary = json_string_value(json_object_get(doc, "summary"));
	if (summary && *summary)
		printf("\nsummary: %s\n", summary);
}

int app_cmd_optimize(const base_config *cfg, int argc, char **argv)
{
	const char *repo = NULL, *command = cfg->agent_command, *rev = NULL, *diff_out = NULL, *backend = NULL;
	const char *focus[MAX_FOCUS];
	size_t nfocus = 0;
	int json = 0, status = 2;
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, 'r' },     { "agent-command", required_argument, NULL, 'a' },
		{ "rev", required_argument, NULL, 'v' },      { "diff-out", required_argument, NULL, 'o' },
		{ "benchmark", required_argument, NULL, 'b' }, { "json", no_argument, NULL, 'j' },
		{ "agent", required_argument, NULL, 'g' },     { NULL, 0, NULL, 0 },
	};
	app_cmd_opts opts = { .cmd = "optimize", .longopts = longopts, .shortopts = "b:" };
	int c;
	while ((c = app_cmd_getopt(&opts, argc, argv, 0)) != APP_CMD_END) {
		switch (c) {
		case 'r': repo = optarg; break;
		case 'a': command = optarg; break;
		case 'v': rev = optarg; break;
		case 'o': diff_out = optarg; break;
		case 'j': json = 1; break;
		case 'g':
			if (strcmp(optarg, "command") && strcmp(optarg, "managed")) {
				fprintf(stderr, "perfbot optimize: --agent: expected command or managed, got \"%s\"\n", optarg);
				return 2;
			}
			backend = optarg;
			break;
		case 'b':
			if (nfocus == MAX_FOCUS) {
				fprintf(stderr, "perfbot optimize: at most %d --benchmark options\n", MAX_FOCUS);
				return 2;
			}
			focus[nfocus++] = optarg;
			break;
		default: return opts.status;
		}
	}
	/* the backend: --agent, else PERFBOT_AGENT; perfbot.yml's optimize.agent
	 * may still pick managed when neither names one */
	int managed = backend ? !strcmp(backend, "managed") : cfg->agent && !strcmp(cfg->agent, "managed");
	if (!repo || (!managed && (!command || !*command))) {
		fprintf(stderr, "perfbot optimize: %s is required\n", !repo ? "--repo" : "--agent-command (or PERFBOT_AGENT_COMMAND)");
		usage(stderr);
		return 2;
	}
	if (managed && base_config_managed_ready(cfg) < 0) {
		fprintf(stderr, "perfbot optimize: %s\n", base_error_last());
		return 2;
	}

	store *st = NULL;
	measure_sandbox *sb = NULL;
	agent_mcp *mcp = NULL;
	wh_server *srv = NULL;
	json_t *doc = NULL;
	char mcp_url[64];
	agent_managed_backend *mb = NULL;
	base_config local = *cfg; /* the same configuration with this run's agent command */
	local.agent_command = command;
	local.agent = managed ? "managed" : "command";

	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "perfbot optimize: DATA_DIR %s: %s\n", cfg->data_dir, strerror(errno));
		goto done;
	}
	if (store_open(&st, cfg->database_url) < 0 || measure_sandbox_new_config(&sb, cfg) < 0 ||
	    agent_mcp_new(&mcp, NULL) < 0) {
		fprintf(stderr, "perfbot optimize: %s\n", base_error_last());
		goto done;
	}
	/* a worker of its own, started by the run when its backend is managed
	 * (one session: this run's) */
	if ((managed || base_config_managed_ready(cfg) == 0) && agent_managed_backend_new(&mb, &local, 1) < 0) {
		fprintf(stderr, "perfbot optimize: %s\n", base_error_last());
		goto done;
	}
	wh_server_options so = { .host = "127.0.0.1", .port = 0, .max_connections = 32, .connection_timeout_s = 300 };
	wh_route route = { .path = "/mcp", .handler = agent_mcp_handle, .head_check = agent_mcp_check_head,
			   .payload = mcp, .max_body = 8u << 20 };
	if (wh_server_new(&srv, &so) < 0 || wh_server_route(srv, &route) < 0 || wh_server_start(srv) < 0) {
		fprintf(stderr, "perfbot optimize: MCP endpoint: %s\n", base_error_last());
		goto done;
	}
	snprintf(mcp_url, sizeof(mcp_url), "http://127.0.0.1:%d/mcp", wh_server_port(srv));

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	agent_services svc = { .cfg = &local, .store = st, .mcp = mcp, .mcp_url = mcp_url, .sandbox = sb,
			       .managed = mb, .agent_override = backend };
	agent_run_local_options o = { .repo_path = repo, .rev = rev, .benchmarks = nfocus ? focus : NULL,
				      .nbenchmarks = nfocus, .cancel = &interrupted };
	if (agent_run_local(&doc, &svc, &o) < 0) {
		fprintf(stderr, "perfbot optimize: %s\n", base_error_last());
		goto done;
	}
	const char *result = json_string_value(json_object_get(doc, "status"));
	const char *diff = json_string_value(json_object_get(doc, "diff"));
	if (diff_out) {
		FILE *f = fopen(diff_out, "w");
		if (!f || fputs(diff ? diff : "", f) < 0 || fclose(f) != 0) {
			fprintf(stderr, "perfbot optimize: --diff-out %s: %s\n", diff_out, strerror(errno));
			goto done;
		}
	}
	if (json) {
		char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (text)
			printf("%s\n", text);
		free(text);
	} else {
		print_text(doc);
		if (diff_out)
			printf("diff written to %s\n", diff_out);
	}
	status = result && !strcmp(result, "proposal") ? 0 : 1;
done:
	agent_managed_backend_free(mb);
	wh_server_free(srv);
	agent_mcp_free(mcp);
	measure_sandbox_free(sb);
	store_free(st);
	json_decref(doc);
	return status;
}
