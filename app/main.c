/* perfbot's entry point: finds the subcommand, loads the configuration
 * (environment, .env, flags) once, and runs the command.  A configuration
 * error stops here with one line naming the variable and the problem. */
#include "app/cmd.h"
#include "app/cmd_agent.h"
#include "app/cmd_doctor.h"
#include "base/config.h"
#include "base/error.h"
#include "base/json_arena.h"
#include "base/log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct command {
	const char *name;
	int (*run)(const base_config *cfg, int argc, char **argv);
	const char *usage;
	const char *summary;
};

static const struct command commands[] = {
	{ "serve", app_cmd_serve, "perfbot serve [--port N] [--host ADDR] [--insecure-no-signature] [--VAR value...]",
	  "run the GitHub App server: webhook intake, workers, health and metrics" },
	{ "deliveries", app_cmd_deliveries, "perfbot deliveries [--json] [--limit N] [--event EVENT]",
	  "list stored webhook deliveries, newest first" },
	{ "jobs", app_cmd_jobs, "perfbot jobs [--json] [--limit N]", "list jobs and their states" },
	{ "migrate", app_cmd_migrate, "perfbot migrate",
	  "apply the store's schema migrations (SQLite or PostgreSQL) and print the version" },
	{ "store", app_cmd_store, "perfbot store copy [--from sqlite:PATH] [--to postgres://...] [--force]",
	  "copy a SQLite store into PostgreSQL (ids kept); refuses a target with data unless --force" },
	{ "bench", app_cmd_bench, "perfbot bench [--repo DIR] [--rev REV] [--base REV] [--json]",
	  "measure a local checkout's benchmarks under CPU simulation (no GitHub needed)" },
	{ "optimize", app_cmd_optimize,
	  "perfbot optimize --repo DIR [--agent command|managed] [--agent-command CMD] [--rev REV] [--json] "
	  "[--diff-out FILE] [--benchmark NAME...]",
	  "run an agent run on a local checkout: the agent's change is verified and measured, nothing is pushed" },
	{ "runs", app_cmd_runs, "perfbot runs [--json] [--limit N] [--kind bench|agent] | perfbot runs show N [--json]",
	  "list bench and agent runs, or show one with its proposal and approvals" },
	{ "managed", app_cmd_managed, "perfbot managed setup [--json]",
	  "create or update the Claude Managed Agents agent and self-hosted environment; print the settings to add" },
	{ "receive", app_cmd_receive,
	  "perfbot receive -e EVENT -p PAYLOAD.json [--url URL] [--secret S] [--delivery ID]",
	  "sign a payload as GitHub does and POST it to a running perfbot" },
	{ "doctor", app_cmd_doctor, "perfbot doctor [--json]",
	  "check the installation end to end (configuration, store, GitHub, webhook, sandbox, agent, disk, queue)" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "perfbot %s: a GitHub App that measures benchmarks under CPU simulation and proposes speed-ups.\n\n",
		PERFBOT_VERSION);
	fprintf(f, "Usage: perfbot <command> [options]\n\nCommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "  %-12s %s\n", "version", "print the version");
	fprintf(f, "\n'perfbot <command> --help' shows a command's options.\n\n");
	if (f == stdout)
		base_config_print_help();
}

int main(int argc, char **argv)
{
	base_json_arena_install();
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("perfbot %s\n", PERFBOT_VERSION);
		return 0;
	}
	const struct command *cmd = NULL;
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "perfbot: unknown command \"%s\"\n\n", argv[1]);
		usage(stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("Usage: %s\n\n%s.\n\n", cmd->usage, cmd->summary);
			base_config_print_help();
			return 0;
		}
	}
	base_config *cfg = NULL;
	char **rest = NULL;
	if (base_config_load(&cfg, NULL, argc - 2, argv + 2, &rest) < 0) {
		if (cmd->run == app_cmd_doctor)
			return app_cmd_doctor_unloaded(argc - 1, argv + 1, base_error_last());
		fprintf(stderr, "perfbot %s: %s\n", cmd->name, base_error_last());
		return 2;
	}
	base_log_configure(cfg->log_level, cfg->log_json, 2);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* the command sees its name, then what configuration left, as a main
	 * would (args owns the array, borrows the strings from argv) */
	int nrest = 0;
	while (rest[nrest])
		nrest++;
	char **args = calloc((size_t)nrest + 2, sizeof(*args));
	int rc = 1;
	if (!args) {
		fprintf(stderr, "perfbot: out of memory\n");
	} else {
		args[0] = argv[1];
		memcpy(args + 1, rest, (size_t)nrest * sizeof(*args));
		rc = cmd->run(cfg, nrest + 1, args);
	}
	curl_global_cleanup();
	free(args);
	free(rest);
	base_config_free(cfg);
	return rc;
}
