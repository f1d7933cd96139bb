/* perfbot's configuration: environment variables, a .env file in the working
 * directory (the real environment wins), then command-line flags
 * (`--port 4000` sets PORT).  Built once at start-up and read-only after. */
#ifndef BASE_CONFIG_H
#define BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "base/log.h"

typedef struct base_config {
	const char *app_id;             /* NULL when unset */
	const char *private_key;        /* PEM text as configured; never logged */
	const char *private_key_path;
	const char *webhook_secret;     /* never logged */
	const char *webhook_secret_old; /* accepted during a rotation */
	const char *webhook_path;       /* "/api/github/webhooks" */
	const char *ghe_host;
	const char *github_api_url;     /* effective: GITHUB_API_URL, GHE, or api.github.com */
	const char *host;               /* "127.0.0.1" */
	int port;                       /* 3000 */
	const char *data_dir;           /* "./var" */
	const char *database_url;       /* effective: "sqlite:DATA_DIR/perfbot.db" by default;
					 * may hold a password: never logged */
	const char *role;               /* PERFBOT_ROLE: "all" | "web" | "worker" */
	int workers;                    /* WORKERS: threads for every job but bench and agent
					 * runs (default: number of cores) */
	int bench_workers;              /* BENCH_WORKERS: threads for bench and agent runs
					 * (default: cores - 1, at least 1) */
	base_log_level log_level;
	int log_json;                   /* LOG_FORMAT=json, or not a terminal */
	const char *public_url;
	const char *agent;              /* "command" or "managed" */
	const char *agent_command;
	const char *anthropic_api_key;  /* ANTHROPIC_API_KEY; never logged */
	const char *anthropic_base_url; /* ANTHROPIC_BASE_URL, an http(s) URL without trailing '/' */
	const char *managed_environment_id;  /* PERFBOT_MANAGED_ENVIRONMENT_ID */
	const char *managed_environment_key; /* PERFBOT_MANAGED_ENVIRONMENT_KEY; never logged */
	const char *managed_model;           /* PERFBOT_MANAGED_MODEL */
	const char *managed_agent_id;        /* PERFBOT_MANAGED_AGENT_ID (optional) */
	const char *sandbox;            /* "bwrap" */
	uint64_t sandbox_memory;        /* bytes, SANDBOX_MEMORY (8 GiB); 0 = no limit */
	int sandbox_pids;               /* SANDBOX_PIDS (512); 0 = no limit */
	int sandbox_cpu_s;              /* SANDBOX_CPU_SECONDS (3600); 0 = no limit */
	uint64_t sandbox_disk;          /* bytes, SANDBOX_DISK (10 GiB); 0 = no limit */
	uint64_t sandbox_disk_reserve;  /* bytes, SANDBOX_DISK_RESERVE (1 GiB); 0 = none */
	size_t max_body;                /* bytes, MAX_BODY (default 25 MiB) */
	size_t max_buffered_bodies;     /* bytes, MAX_BUFFERED_BODIES (default 64 MiB) */
	int max_connections;            /* MAX_CONNECTIONS */
	int job_attempts;               /* JOB_ATTEMPTS: tries before a job is failed */
	int job_lease_s;                /* JOB_LEASE_SECONDS */
	int shutdown_grace_s;           /* SHUTDOWN_GRACE_SECONDS */
	int insecure_no_signature;      /* --insecure-no-signature */
	const char *gh_org;
	const char *github_client_id;
	const char *github_client_secret; /* never logged */
	const char *github_web_url;     /* GITHUB_WEB_URL; NULL: https://github.com or https://GHE_HOST */
	int redelivery_interval_s;      /* REDELIVERY_INTERVAL_SECONDS, 0 = off */
} base_config;

/* Builds the configuration from `environ`, the .env file in `dotenv_dir`
 * (NULL: the working directory) and the flags in argv (argv[0] is the first
 * flag, not a program name).  Unknown flags and bad values fail with
 * BASE_EINVALID and one line naming the variable and the problem.  Flags that
 * are not configuration (e.g. --json) are left for the caller: with
 * `rest_out` non-NULL they are collected there (a NULL-terminated array the
 * caller frees with free(), whose strings are borrowed from argv); with
 * `rest_out` NULL they are errors.  *out is freed with base_config_free. */
int base_config_load(base_config **out, const char *dotenv_dir, int argc, char **argv, char ***rest_out);

void base_config_free(base_config *cfg);

/* 0 when the settings the managed backend needs are all set
 * (ANTHROPIC_API_KEY, PERFBOT_MANAGED_ENVIRONMENT_ID,
 * PERFBOT_MANAGED_ENVIRONMENT_KEY, PERFBOT_MANAGED_MODEL; their form is
 * checked at load), else BASE_EINVALID with one line naming the first
 * missing one (never a value). */
int base_config_managed_ready(const base_config *cfg);

/* The raw value of any known variable by its environment name, or NULL.
 * Borrowed for the configuration's lifetime. */
const char *base_config_get(const base_config *cfg, const char *name);

/* Parses a .env text: calls cb for each KEY=VALUE (quotes removed, escapes in
 * double quotes expanded).  BASE_EINVALID names the line of a malformed entry. */
int base_dotenv_parse(const char *text, int (*cb)(const char *key, const char *value, void *payload), void *payload);

/* Prints the table of variables for --help. */
void base_config_print_help(void);

#endif
