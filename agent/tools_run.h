/* The hooks of agent/tools.h for a real run: exec in the run's sandbox,
 * and run_benchmarks / get_profile / compare over the bench pipeline
 * (measure/bench.h) against the run's baseline.
 *
 * Measurements taken during the run are kept in memory with ids "m1",
 * "m2", ...; "baseline" names the baseline.  Threading: the tool context
 * serialises calls, so the hooks need no lock of their own. */
#ifndef AGENT_TOOLS_RUN_H
#define AGENT_TOOLS_RUN_H

#include <stdatomic.h>
#include <jansson.h>

#include "measure/repo_config.h"
#include "measure/sandbox.h"
#include "agent/tools.h"

typedef struct agent_run_hooks agent_run_hooks;

typedef struct agent_run_hooks_options {
	measure_sandbox *sandbox;          /* borrowed */
	const char *workspace;           /* host work tree (copied) */
	const char *scratch_dir;         /* host dir for callgrind output (copied) */
	const measure_repo_config *config; /* borrowed */
	const json_t *baseline;          /* borrows (a reference is kept): run document of measure_bench_measure */
	const atomic_int *cancel;      /* optional; nonzero kills commands in flight when the
					  * tools give no stop flag of their own (theirs is raised
					  * by a cancel too: the run's cancel ends its tools) */
	measure_sandbox_limits limits;     /* for exec; timeout_s and output_cap are set per call */
	/* Optional: called after each measurement with its id and run document
	 * (borrowed), e.g. to store it. */
	void (*on_measurement)(void *payload, const char *id, const json_t *run_doc);
	void *payload;
} agent_run_hooks_options;

#define AGENT_RUN_HOOKS_OPTIONS_INIT { NULL, NULL, NULL, NULL, NULL, NULL, MEASURE_SANDBOX_LIMITS_INIT, NULL, NULL }

int agent_run_hooks_new(agent_run_hooks **out, const agent_run_hooks_options *opts);
void agent_run_hooks_free(agent_run_hooks *h);

/* Fills hooks (exec, run_benchmarks, get_profile, compare; submit left
 * NULL for the caller) with h as payload. */
void agent_run_hooks_fill(agent_tool_hooks *hooks, agent_run_hooks *h);

/* The measurement documents taken so far: {"m1": run_doc, ...} (borrowed). */
const json_t *agent_run_hooks_measurements(const agent_run_hooks *h);

#endif
