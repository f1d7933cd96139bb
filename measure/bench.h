/* The bench pipeline: build once (unmeasured), measure every benchmark of a
 * repository configuration under callgrind in the sandbox, compare two
 * measurements, and format the report of a check run.
 *
 * Results are JSON documents (jansson):
 *
 * measurement of one benchmark (what store_measurement_put keeps):
 *   {"name", "command", "mode": "process"|"region",
 *    "status": "ok"|"failed"|"timeout"|"cancelled",
 *    "instructions", "estimated_cycles", "l1_misses", "ll_misses",   (ok only)
 *    "events": {"Ir": n, "Dr": n, ...}, "processes": n,             (ok only)
 *    "top_functions": [{"name", "file", "self": {...}, "inclusive": {...}}],
 *                     (the 50 functions of highest inclusive cost; cost
 *                      objects hold instructions, estimated_cycles,
 *                      l1_misses, ll_misses)
 *    "whole_process": {"instructions", "estimated_cycles", "l1_misses",
 *                      "ll_misses"}    (region mode with opts->whole_process)
 *    "error": "...", "output_tail": "...",                          (failures)
 *    "wall_ms", "toolchain": {"valgrind", "cc"}}
 *
 * run document (measure_bench_measure):
 *   {"commit": sha|null, "build": {"status": "ok"|"failed"|"timeout"|"none",
 *    "wall_ms", "output_tail"}, "toolchain": {...}, "benchmarks": [measurement...]}
 *
 * comparison (measure_bench_compare), one entry per benchmark of the head:
 *   {"name", "metric": "cycles"|"instructions", "threshold_pct",
 *    "base": n|null, "head": n|null, "change_pct": x|null,
 *    "verdict": "improved"|"regressed"|"unchanged"|"new"|"failed",
 *    "base_instructions", "head_instructions", "base_cycles", "head_cycles",
 *    "error" (failed), "top_changes": [{"name", "file", "base", "head",
 *    "change"}] (five functions whose exclusive cost changed most; regressed
 *    benchmarks only)}
 *
 * Formatting functions are pure.  Threading: no shared state. */
#ifndef MEASURE_BENCH_H
#define MEASURE_BENCH_H

#include <stdatomic.h>
#include <jansson.h>
#include <stddef.h>

#include "measure/checkout.h"
#include "measure/repo_config.h"
#include "measure/sandbox.h"

/* Changes smaller than this are never reported as regressions or
 * improvements, whatever the configured threshold (heap-layout noise). */
#define MEASURE_BENCH_NOISE_FLOOR_PCT 0.5

typedef struct measure_bench_options {
	const char *commit;             /* recorded in the document; may be NULL */
	const char *scratch_dir;        /* host dir for per-benchmark callgrind output dirs */
	const char *const *only;        /* names to measure (NULL = all) ... */
	size_t nonly;                   /* ... and their count */
	int skip_build;                 /* the tree was built already */
	int whole_process;              /* region-mode benchmarks also get a "whole_process" count
					 * (cachegrind: the whole process and its children, which no
					 * client request steers) */
	measure_sandbox_limits limits;    /* per command; timeout_s is replaced by the config's,
					 * and cpu_s raised to at least that timeout */
	const atomic_int *cancel;     /* optional */
	int parallel;                 /* benchmarks measured at once (0 or 1: one at a time;
					 * at most MEASURE_MAX_PARALLEL_BENCH) */
} measure_bench_options;

#define MEASURE_MAX_PARALLEL_BENCH 16

#define MEASURE_BENCH_OPTIONS_INIT { NULL, NULL, NULL, 0, 0, 0, MEASURE_SANDBOX_LIMITS_INIT, NULL, 0 }

/* Builds (cfg->build, once) and measures each benchmark in the work tree.
 * A failing build marks every benchmark failed with the build's output tail;
 * a failing or timed-out benchmark is reported failed and the others still
 * run.  Returns 0 with *out (owned run document) whenever the sandbox worked;
 * a negative code only when the sandbox could not run at all. */
int measure_bench_measure(json_t **out, measure_sandbox *sb, const char *workspace, const measure_repo_config *cfg,
			const measure_bench_options *opts);

/* The same for a commit of a repository: exports `rev` of src into a fresh
 * work tree (measure_checkout_worktree), makes it writable by the sandbox,
 * measures it with opts (commit set to the resolved sha; scratch_dir
 * DATA_DIR/work when unset) and removes the work tree whatever happened.
 * sha_out receives the resolved commit.  Errors are those of the checkout
 * or of measure_bench_measure. */
int measure_bench_measure_rev(json_t **out, char sha_out[41], measure_sandbox *sb, const measure_checkout_source *src,
			    const char *rev, const measure_repo_config *cfg, const measure_bench_options *opts);

/* Compares two lists of measurement documents (arrays, borrowed; base may
 * be NULL when nothing is known) with cfg's metric and per-benchmark
 * thresholds.  *out: owned comparison array. */
int measure_bench_compare(json_t **out, const json_t *base, const json_t *head, const measure_repo_config *cfg);

typedef struct measure_bench_report {
	char *title;             /* owned: "2 regressions, 1 improvement" | "No change" | ... */
	char *summary;           /* owned markdown */
	const char *conclusion;  /* static: "failure" | "success" */
	int regressions;
	int improvements;
	int failures;
} measure_bench_report;

/* The check run's title, markdown summary and conclusion for a comparison
 * (borrowed).  Refs may be NULL; shas are shortened to 7 characters.
 * conclusion is "failure" when a benchmark regressed past its threshold or
 * failed at the head, "success" otherwise. */
int measure_bench_report_make(measure_bench_report *out, const json_t *comparison, const char *head_ref,
			    const char *head_sha, const char *base_ref, const char *base_sha);
void measure_bench_report_dispose(measure_bench_report *r);

/* Markdown text of a run document alone (no base): a table of benchmark,
 * status, instructions, estimated cycles.  Owned. */
char *measure_bench_format_run(const json_t *run);

/* A plain-text table of a comparison for terminals.  Owned. */
char *measure_bench_format_comparison_text(const json_t *comparison);

/* "+12.34%" / "-0.50%" / "0.00%" into buf. */
void measure_bench_format_pct(char *buf, size_t size, double pct);

/* The same for a comparison row's "change_pct", or `none` when the row has
 * no number there. */
void measure_bench_row_pct(char *buf, size_t size, const json_t *row, const char *none);

#endif
