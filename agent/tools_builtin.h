/* The built-in toolset of Claude Managed Agents (bash, read, write, edit,
 * glob, grep) as the `managed` backend's worker executes it: inside the
 * run's sandbox, with the same confinement, limits, budgets and protected
 * paths as perfbot's own tools (agent/tools.h), which these calls go
 * through wherever one fits.
 *
 * Paths are those the agent sees: absolute under MEASURE_SANDBOX_WORKSPACE
 * ("/workspace/src/x.c") or relative to it; anything else is refused with a
 * sentence.  `bash` is one persistent shell per run, started in the sandbox
 * on first use: the working directory, variables and background jobs of
 * one command are there for the next; `restart: true` or a timeout starts a
 * fresh one.  stderr is merged into stdout; a non-zero exit is an error
 * result.  Each call counts against the run's tool-call budget, and ending
 * the run's tools (agent_tools_end) kills the shell and any call in flight.
 *
 * Inputs (reference/managed-agents.md): bash {command, timeout_ms?,
 * restart?}; read {file_path, view_range?}; write {file_path, content};
 * edit {file_path, old_string, new_string, replace_all?}; glob {pattern,
 * path?}; grep {pattern, path?, ...}.
 *
 * Threading: calls on one agent_builtin are serialised; agent_tools_end on
 * its tool context may come from any thread. */
#ifndef AGENT_TOOLS_BUILTIN_H
#define AGENT_TOOLS_BUILTIN_H

#include <jansson.h>

#include "agent/tools.h"
#include "measure/sandbox.h"

typedef struct agent_builtin agent_builtin;

typedef struct agent_builtin_options {
	agent_tools *tools;            /* borrowed, outlives the agent_builtin: paths, policy,
					* budgets, stop flag */
	measure_sandbox *sandbox;      /* borrowed: where bash runs */
	const char *workspace;         /* host work tree (copied), /workspace inside */
	measure_sandbox_limits limits; /* of the shell's sandbox; timeout_s is the ceiling
					* of one command (default 600 s) */
} agent_builtin_options;

int agent_builtin_new(agent_builtin **out, const agent_builtin_options *opts);
/* Kills the shell, if one runs, and frees.  A call in flight on another
 * thread is ended (its shell killed) and waited for; no call may start
 * after. */
void agent_builtin_free(agent_builtin *b);

/* 1 if `name` is one of the built-in tools. */
int agent_builtin_exists(const char *name);

/* Runs tool `name` with input (borrowed; NULL = {}).  *result_out (owned):
 * {content: [{type: "text", text}], isError} as agent_tool_call's, to be
 * posted as a user.tool_result.  BASE_ENOTFOUND for an unknown name; other
 * negative codes only for internal failures. */
int agent_builtin_call(agent_builtin *b, const char *name, const json_t *input, json_t **result_out);

#endif
