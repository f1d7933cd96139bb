/* Verification of an agent's submission: perfbot never trusts the agent's
 * numbers.  The workspace diff is checked (nothing outside the tree, under
 * .git/ or .github/workflows/, no binary, symlink or submodule change, not
 * over the size cap), applied to a fresh work tree of the base commit,
 * built, tested with the repository's test command and measured; the impact
 * is computed against the baseline.  A proposal exists only when at least
 * one benchmark improves past its threshold and none regresses past it or
 * fails.
 *
 * Result document (owned by the caller):
 *   {"status": "proposal" | "no_improvement" | "failed" | "cancelled",
 *    "reason": "...", "refused": bool (the diff itself was refused),
 *    "summary": the agent's summary, "diff": the diff,
 *    "benchmarks": [{"name", "base", "head", "change_pct", "verdict",
 *                    "threshold_pct"}],
 *    "measurement": run document of the verified tree (when measured),
 *    "log": verification log text, "budgets": budgets used (when given)}
 *
 * Threading: blocking; run on a worker thread. */
#ifndef AGENT_VERIFY_H
#define AGENT_VERIFY_H

#include <jansson.h>
#include <stddef.h>

#include "agent/repo_config.h"
#include "agent/sandbox.h"

#define AGENT_VERIFY_MAX_DIFF ((size_t)1024 * 1024)

/* Checks a diff without applying it.  0 when acceptable; APP_EINVALID (or
 * APP_ETOOBIG) with one sentence naming the path and the problem. */
int agent_diff_check(const char *diff, size_t len, size_t max_bytes);

typedef struct agent_verify_options {
	agent_sandbox *sandbox;          /* borrowed */
	const agent_repo_config *config; /* of the base commit; borrowed */
	const char *repo_path;           /* git repository holding the base commit */
	const char *fresh_dir;           /* a fresh plain work tree of the base commit (agent_checkout_worktree) */
	const char *scratch_dir;         /* for callgrind output */
	const json_t *baseline;          /* borrows: run document of the baseline */
	const char *diff;                /* the workspace diff at submission */
	size_t diff_len;
	size_t max_diff_bytes;           /* 0: AGENT_VERIFY_MAX_DIFF */
	const char *summary;             /* the agent's summary */
	const json_t *budgets;           /* borrows; may be NULL */
	const volatile int *cancel;      /* optional */
} agent_verify_options;

#define AGENT_VERIFY_OPTIONS_INIT { NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL, NULL }

/* Runs the whole verification; 0 with *out whenever a verdict was reached
 * (including "failed" for a change that does not build or pass the tests);
 * a negative code only when the sandbox itself could not run. */
int agent_verify(json_t **out, const agent_verify_options *opts);

#endif
