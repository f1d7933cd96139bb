/* Verification of an agent's submission: perfbot never trusts the agent's
 * numbers, and the change never controls how it is measured.
 *
 * The workspace diff is checked (nothing outside the tree, under .git/, no
 * binary, symlink or submodule change, not over the size cap, no protected
 * path and no line naming valgrind's measurement: base/diff_policy.h, the
 * same policy pr/ applies at approval).  Then two fresh work trees of the
 * base commit, one with the diff applied, go through the same steps, each
 * its own sandbox run: build, a scan of the built files for valgrind
 * client-request instructions (the candidate may hold no more of them in any
 * file than the base), tests, measurement.  The impact is the candidate's
 * measurement against the base's, taken now, the same way.  A region-mode
 * benchmark also gets a whole-process count (cachegrind, which no client
 * request steers): a region that got cheaper counts only when the whole
 * process got cheaper by at least AGENT_VERIFY_WHOLE_PROCESS_SHARE of it,
 * so work moved before the region starts (a constructor, an exec'd helper)
 * is no speed-up.  A proposal exists only when at least one benchmark
 * improves past its threshold and none regresses past it or fails.
 *
 * Result document (owned by the caller):
 *   {"status": "proposal" | "no_improvement" | "failed" | "cancelled",
 *    "reason": "...", "refused": bool (the diff itself was refused),
 *    "summary": the agent's summary, "diff": the diff,
 *    "benchmarks": [{"name", "base", "head", "change_pct", "verdict",
 *                    "threshold_pct"}]  (verdict "moved_out_of_region"
 *                    for a region gain the whole process does not show),
 *    "measurement": run document of the candidate tree (when measured),
 *    "base_measurement": run document of the base tree (when measured),
 *    "log": verification log text, "budgets": budgets used (when given)}
 *
 * Threading: blocking; run on a worker thread. */
#ifndef AGENT_VERIFY_H
#define AGENT_VERIFY_H

#include <stdatomic.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "measure/repo_config.h"
#include "measure/sandbox.h"
#include "base/diff_policy.h"

#define AGENT_VERIFY_MAX_DIFF ((size_t)1024 * 1024)

/* The bytes of built files scanned for client requests in one tree; a
 * tree past it cannot be verified. */
#define AGENT_VERIFY_SCAN_MAX ((uint64_t)2 << 30)

/* A region's gain counts when the whole process's gain is at least this
 * share of it (what the region saved must not reappear outside it). */
#define AGENT_VERIFY_WHOLE_PROCESS_SHARE 0.9

/* Checks a diff without applying it against policy (NULL: the built-in
 * rules; see base/diff_policy.h).  0 when acceptable; BASE_EINVALID (or
 * BASE_ETOOBIG) with one sentence naming the path and the problem. */
int agent_diff_check(const char *diff, size_t len, size_t max_bytes, const base_diff_policy *policy);

/* Counts valgrind's special-instruction preamble (x86-64 and AArch64: what
 * every client request compiles to, whatever its source spelling) in the
 * regular files under dir (links are not followed).  *out (owned):
 * {"relative/path": count} for the files holding any.  BASE_ETOOBIG when the
 * files hold more than max_bytes. */
int agent_verify_scan_requests(json_t **out, const char *dir, uint64_t max_bytes);

typedef struct agent_verify_options {
	measure_sandbox *sandbox;          /* borrowed */
	const measure_repo_config *config; /* of the base commit; borrowed */
	const char *repo_path;           /* git repository holding the base commit */
	const char *fresh_dir;           /* a fresh plain work tree of the base commit (measure_checkout_worktree):
					  * the candidate, the diff is applied here */
	const char *base_dir;            /* another fresh plain work tree of the base commit: the baseline */
	const char *scratch_dir;         /* for callgrind output */
	const char *diff;                /* the workspace diff at submission */
	size_t diff_len;
	size_t max_diff_bytes;           /* 0: AGENT_VERIFY_MAX_DIFF */
	const char *summary;             /* the agent's summary */
	const json_t *budgets;           /* borrows; may be NULL */
	const atomic_int *cancel;      /* optional */
} agent_verify_options;

#define AGENT_VERIFY_OPTIONS_INIT { NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL, NULL }

/* Runs the whole verification; 0 with *out whenever a verdict was reached
 * (including "failed" for a change that does not build or pass the tests);
 * a negative code only when the sandbox itself could not run. */
int agent_verify(json_t **out, const agent_verify_options *opts);

#endif
