/* The `command` agent backend: perfbot starts PERFBOT_AGENT_COMMAND (with
 * /bin/sh -c) for a run, confined by bubblewrap (agent_cmd.c says how): its
 * own pid namespace, a user namespace or (perfbot being root) a uid of its
 * own, the host's filesystem read-only without DATA_DIR, .env, the key and
 * the database, the network shared.  Its /tmp is the run's agent directory
 * (AGENT_CMD_DIR), also its working directory.  It reaches the run's tools
 * over perfbot's MCP endpoint with the environment:
 *   PERFBOT_MCP_URL     the endpoint (http://127.0.0.1:PORT/mcp)
 *   PERFBOT_MCP_CONFIG  /tmp/mcp.json: {"mcpServers":{"perfbot":{"type":"http",
 *                       "url":…,"headers":{"Authorization":"Bearer …"}}}}, 0600
 *   PERFBOT_RUN_TOKEN   the run's bearer token (for scripts: keep it out of argv)
 *   PERFBOT_RUN_ID      the run id
 *   PERFBOT_TASK_FILE   /tmp/task.md, the task prompt (agent/task.h)
 *   HOME                /tmp/home
 * The rest of perfbot's environment is passed on except its secrets
 * (private key, webhook secrets, client secret, database URL, GitHub
 * tokens) and what points at perfbot's home or sockets.  The whole
 * namespace is killed at the wall budget, on cancel, or a grace period
 * after the run's tools have ended (submission or exhausted budget), and
 * when the command exits (nothing it started outlives it).
 *
 * Threading: agent_cmd_run blocks the calling (worker) thread until the
 * command is gone; several runs may supervise their commands at once. */
#ifndef AGENT_AGENT_CMD_H
#define AGENT_AGENT_CMD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/tools.h"

/* Where the run's agent directory appears to the command. */
#define AGENT_CMD_DIR "/tmp"

typedef struct agent_cmd_options {
	const char *command;        /* shell command line */
	const char *mcp_url;
	const char *token;          /* never logged, never in an argv */
	int64_t run_id;
	const char *task_file;      /* copied to AGENT_CMD_DIR/task.md */
	const char *workdir;        /* the run's agent directory: private to perfbot (0700),
				     * never the workspace; the command's /tmp.  Handed to the
				     * command's uid when perfbot is root. */
	const char *const *hide;    /* NULL-terminated host paths the command must not see
				     * (DATA_DIR, .env, the key, the database); borrowed */
	const char *bwrap;          /* bubblewrap binary (NULL: "bwrap" on PATH) */
	int64_t wall_ms;            /* 0: no limit */
	int64_t grace_ms;           /* after the tools ended, before the command is killed (default 30 s) */
	size_t output_cap;          /* bytes of combined stdout+stderr kept (default 256 KiB) */
	const atomic_int *cancel; /* optional; nonzero kills the command */
	agent_tools *tools;         /* optional: watched for the end of the run */
} agent_cmd_options;

#define AGENT_CMD_OPTIONS_INIT { NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, 0, 0, 0, NULL, NULL }

typedef struct agent_cmd_result {
	int exit_code;    /* -1 when it was killed by a signal */
	int term_signal;
	int timed_out;    /* killed at the wall budget */
	int cancelled;    /* killed by *cancel */
	int stopped;      /* killed after the grace period that followed the run's end */
	char *output;     /* owned: stdout and stderr interleaved, capped */
	int output_cut;
	int64_t wall_ms;
} agent_cmd_result;

/* Runs the command to its end (or its kill).  0 when it was started (any
 * exit status); a negative code when it could not be started, among them
 * when bwrap cannot confine it (base_error_last() gives bwrap's reason).
 * AGENT_CMD_DIR/mcp.json is removed before the call returns. */
int agent_cmd_run(agent_cmd_result *out, const agent_cmd_options *opts);

void agent_cmd_result_dispose(agent_cmd_result *r);

#endif
