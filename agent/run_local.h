/* Agent runs outside the worker pool: `perfbot optimize` runs one agent run
 * on a local repository on the calling thread, with the same steps as the
 * "agent.run" job (agent/services.h) but without GitHub: no check run, no
 * comment, no approval.  The run is recorded in the store like any other,
 * with the same budgets (agent/services.h). */
#ifndef AGENT_RUN_LOCAL_H
#define AGENT_RUN_LOCAL_H

#include <stdatomic.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/services.h"

typedef struct agent_run_local_options {
	const char *repo_path;          /* a local git repository */
	const char *rev;                /* the commit to optimise; NULL: HEAD */
	const char *const *benchmarks;  /* names to optimise; NULL = all */
	size_t nbenchmarks;
	const atomic_int *cancel;     /* optional: nonzero cancels the run (e.g. SIGINT) */
} agent_run_local_options;

/* Records an agent run (trigger "cli") in svc->store and runs it to its end
 * with svc->cfg->agent_command and the endpoint svc->mcp / svc->mcp_url, or
 * with the managed backend svc->managed (svc->gh and svc->github are not
 * used).
 * *out (owned) is the outcome:
 *   {"run": id, "status": "proposal" | "no_improvement" | "failed" | "cancelled",
 *    "reason", "benchmarks": [{"name", "base", "head", "change_pct"}],
 *    "summary", "diff", "commit"}
 * plus, with the managed backend, "managed": {session_id, agent_id,
 * agent_version, end, usage, list_cost, list_cost_usd, active_seconds}.
 * A negative code only when the run could not be recorded at all. */
int agent_run_local(json_t **out, const agent_services *svc, const agent_run_local_options *opts);

#endif
