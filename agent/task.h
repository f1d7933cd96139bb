/* The task prompt handed to an agent (PERFBOT_TASK_FILE): the repository,
 * the benchmarks with their baseline numbers, the top functions of the
 * baseline profile, the budgets and the rules (keep tests passing, keep
 * public APIs, work through perfbot's tools, call submit_result).
 * Pure formatting; no state. */
#ifndef AGENT_TASK_H
#define AGENT_TASK_H

#include <jansson.h>
#include <stdint.h>

#include "measure/repo_config.h"

typedef struct agent_task_info {
	int64_t run_id;
	const char *repository;          /* "owner/name" or a local path */
	const char *base_sha;
	const measure_repo_config *config; /* borrowed */
	const json_t *baseline;          /* borrows: run document of measure_bench_measure */
	const char *const *focus;        /* benchmarks named by the trigger (NULL-terminated), or NULL */
	int max_minutes;
	int max_benchmark_runs;
	int max_tool_calls;              /* 0: none */
	int top_functions;               /* per benchmark (default 10) */
	int managed;                     /* the tools as a Managed Agents session names them (built-in
					  * bash/read/write/edit/glob/grep), not the MCP server's */
} agent_task_info;

/* The prompt as markdown (owned). */
int agent_task_render(char **out, const agent_task_info *info);

/* Renders and writes the prompt to path (mode 0600). */
int agent_task_write(const char *path, const agent_task_info *info);

#endif
