/* The tools an agent calls during an agent run: one implementation, reached
 * today through the MCP endpoint (agent/mcp.h) by the `command` backend; a
 * later backend calls the same functions.
 *
 * An agent_tools is the per-run tool context: the workspace on the host,
 * the base commit, the hooks into the run's sandbox and measurement, the
 * budgets and the counters.  Every path an agent names is confined to the
 * workspace (no absolute paths, no "..", nothing under .git, no symbolic
 * link that leads outside).  A tool that fails answers a result with
 * isError true and one sentence; only internal errors (out of memory)
 * return a negative code.
 *
 * Every call is bounded in time: searches and commands run in the sandbox
 * with a timeout, and ending the run (agent_tools_end: cancel, budget) sets
 * a stop flag that kills the sandbox command of a call in flight.  With a
 * wall-time budget, the context ends itself when the budget is over, even
 * in the middle of a call.
 *
 * Threading: calls on one context are serialised by its own lock; different
 * contexts are independent; agent_tools_end may be called from any thread
 * at any time. */
#ifndef AGENT_TOOLS_H
#define AGENT_TOOLS_H

#include <stdatomic.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/diff_policy.h"

typedef struct agent_tools agent_tools;

/* What a command run in the sandbox gave back. Strings owned by the struct. */
typedef struct agent_exec_result {
	int exit_code;      /* -1 when killed by a signal or timed out */
	int timed_out;
	char *out;          /* stdout, NUL-terminated, at most the cap */
	int out_cut;        /* 1 when stdout was longer than the cap */
	char *err;
	int err_cut;
} agent_exec_result;

void agent_exec_result_dispose(agent_exec_result *r);

/* The run's side of the tools: the sandbox and the measurement.  Any hook
 * may be NULL; its tool then answers that it is not available.
 * JSON shapes (all owned by the caller of the hook when returned):
 *   run_benchmarks -> {"measurement": "ID", "metric": "cycles",
 *                      "benchmarks": [{"name", "base", "head", "change_pct"}]}
 *   get_profile    -> {"benchmark", "measurement", "metric",
 *                      "functions": [{"name", "file", "exclusive", "inclusive"}]}
 *   compare        -> {"base", "head", "metric",
 *                      "benchmarks": [{"name", "base", "head", "change_pct"}]}
 * A hook that fails returns a negative code with base_error_set's sentence,
 * which the tool passes on to the agent. */
typedef struct agent_tool_hooks {
	/* Runs `command` with /bin/sh -c in the run's sandbox, working
	 * directory the workspace; stdout and stderr capped at `cap` bytes each.
	 * `stop` (borrowed, never NULL) is the tool context's stop flag: it
	 * becomes nonzero when the run ends (cancel, wall-time budget) and the
	 * hook must then kill the command at once (it is the sandbox's cancel
	 * flag). */
	int (*exec)(void *payload, const char *command, int timeout_s, size_t cap, const atomic_int *stop,
		    agent_exec_result *out);
	/* names borrows (an array of strings) and may be NULL: all benchmarks.
	 * stop: as for exec. */
	int (*run_benchmarks)(void *payload, const json_t *names, const atomic_int *stop, json_t **out);
	/* measurement NULL: the latest one (or the baseline). */
	int (*get_profile)(void *payload, const char *benchmark, const char *measurement, int limit, json_t **out);
	int (*compare)(void *payload, const char *base, const char *head, json_t **out);
	/* Called once by submit_result with the summary and the workspace diff
	 * (both borrowed for the call).  The run has ended when it is called. */
	int (*submit)(void *payload, const char *summary, const char *diff);
	void *payload;
} agent_tool_hooks;

typedef struct agent_tools_options {
	const char *workspace;     /* host directory holding the work tree */
	const char *repo_path;     /* a git repository (bare cache or not) holding base_commit;
				    * NULL: the workspace is itself a repository */
	const char *base_commit;   /* commit the diff is taken against */
	agent_tool_hooks hooks;
	int64_t max_wall_ms;       /* 0: no limit; counted from agent_tools_new */
	int max_tool_calls;        /* 0: no limit */
	int max_benchmark_runs;    /* 0: no limit */
	int exec_timeout_s;        /* default and ceiling of exec's timeout_s (default 600) */
	size_t output_cap;         /* bytes of each text answer (default 64 KiB) */
	size_t file_cap;           /* largest file read or written (default 4 MiB) */
	const base_diff_policy *policy; /* borrowed, must outlive the context: write_file and
					* edit_file refuse protected paths; NULL: the built-in rules */
} agent_tools_options;

#define AGENT_TOOLS_OPTIONS_INIT { NULL, NULL, NULL, { NULL, NULL, NULL, NULL, NULL, NULL }, 0, 0, 0, 600, 65536, 4u << 20, NULL }

/* Creates a context; strings in opts are copied, hooks.payload is borrowed
 * and must outlive the context. */
int agent_tools_new(agent_tools **out, const agent_tools_options *opts);
void agent_tools_free(agent_tools *t);

/* Calls tool `name` with args (borrows; NULL = {}).  *result_out (owned) is
 * an MCP CallToolResult: {content: [{type: "text", text}], isError,
 * structuredContent?}.  BASE_ENOTFOUND (and no result) for an unknown tool
 * name; other negative codes only for internal failures. */
int agent_tool_call(agent_tools *t, const char *name, const json_t *args, json_t **result_out);

/* The tool descriptions for tools/list: [{name, title, description,
 * inputSchema}] (owned). */
json_t *agent_tools_list(void);

/* 1 if `name` is a tool. */
int agent_tools_exists(const char *name);

/* Ends the run (cancel, budget, submission): later calls answer isError
 * with the reason, and the sandbox command of a call in flight is killed
 * (the stop flag the hooks get).  The first reason wins.  Never waits for
 * a call in flight. */
void agent_tools_end(agent_tools *t, const char *reason);

/* For a tool executed outside agent_tool_call (the Managed Agents built-in
 * tools): counts one call against the tool-call budget and checks the
 * wall-time budget and the end of the run, as agent_tool_call does.  0 when
 * the call may go on; 1 with *refusal (owned) the isError result saying why
 * it may not; negative when out of memory. */
int agent_tools_begin_call(agent_tools *t, json_t **refusal);

/* The run's stop flag (borrowed, lives as long as t): nonzero once the run
 * has ended; what kills a sandbox command of a call in flight. */
const atomic_int *agent_tools_stop_flag(agent_tools *t);

/* 1 when the run has ended; *reason_out (may be NULL) receives a copy
 * (owned) of the reason. */
int agent_tools_ended(agent_tools *t, char **reason_out);

/* Counters for the proposal's "budgets used": {tool_calls, benchmark_runs,
 * wall_ms, max_tool_calls, max_benchmark_runs, max_wall_ms, calls} (owned);
 * calls is the timeline of the run's tool calls, [{tool, started_ms (from
 * the run's start), duration_ms, error (null or the sentence)}], at most
 * 1000 of them. */
json_t *agent_tools_usage(agent_tools *t);

/* The submission, once submit_result was called: copies (owned) of the
 * summary and the diff; BASE_ENOTFOUND before. */
int agent_tools_submission(agent_tools *t, char **summary_out, char **diff_out);

/* The diff of the plain directory `workspace` against the tree of
 * base_commit in repository repo_path (NULL: the workspace is itself a
 * repository) as git patch text (owned): new files included; files the
 * workspace's .gitignore ignores and new binary files (build products) left
 * out.  BASE_ETOOBIG past cap bytes.
 * Also used by verification. */
int agent_workspace_diff(char **out, const char *repo_path, const char *workspace, const char *base_commit, size_t cap);

/* Applies patch text to the plain directory `workspace` holding the tree of
 * a commit of repo_path (NULL: the workspace is a repository).
 * BASE_EINVALID with the reason when the patch does not apply. */
int agent_workspace_apply(const char *repo_path, const char *workspace, const char *diff, size_t len);

/* Resolves `rel` (as an agent gave it) inside `workspace`; *abs_out (owned)
 * is the resolved absolute path.  must_exist 0 allows a missing last
 * component (its parent must exist).  BASE_EFORBIDDEN with a sentence when
 * the path is absolute, climbs with "..", touches .git or resolves outside
 * the workspace. */
int agent_path_resolve(char **abs_out, const char *workspace, const char *rel, int must_exist);

#endif
