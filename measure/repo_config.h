/* Repository configuration: `.github/perfbot.yml` of the measured commit,
 * parsed with libyaml into a typed struct.
 *
 * Errors (BASE_EINVALID) carry one line through base_error_set naming the line,
 * the column, the key and what was expected, e.g.
 *   line 4, column 3: threshold: expected a percentage like 3%, got "fast"
 * Unknown keys are errors with a "did you mean" suggestion.  Defaults:
 * threshold 3%, metric cycles, mode process, timeout 600 s, optimize.on
 * [comment], max_minutes 30, max_benchmark_runs 40, branches empty (= the
 * repository's default branch), optimize.protected and optimize.paths empty
 * (globs; see base/diff_policy.h), optimize.agent unset (the server's
 * backend), optimize.max_cost_usd unset (no cost budget). */
#ifndef MEASURE_REPO_CONFIG_H
#define MEASURE_REPO_CONFIG_H

#include <stddef.h>

#include "base/diff_policy.h"

/* Where perfbot looks for the file inside a repository. */
#define MEASURE_REPO_CONFIG_PATH ".github/perfbot.yml"

/* Largest accepted file, bytes. */
#define MEASURE_REPO_CONFIG_MAX (256 * 1024)

typedef enum { MEASURE_MODE_PROCESS = 0, MEASURE_MODE_REGION } measure_bench_mode;
typedef enum { MEASURE_METRIC_CYCLES = 0, MEASURE_METRIC_INSTRUCTIONS } measure_metric;
typedef enum { MEASURE_AGENT_DEFAULT = 0, MEASURE_AGENT_COMMAND, MEASURE_AGENT_MANAGED } measure_agent_backend;

typedef struct measure_benchmark_config {
	char *name;            /* owned; unique, [A-Za-z0-9._-]+ */
	char *command;         /* owned; shell command run in /workspace */
	measure_bench_mode mode;
	double threshold_pct;  /* this benchmark's threshold (the top-level one when unset) */
	int timeout_s;         /* wall clock under callgrind (top-level timeout when unset) */
} measure_benchmark_config;

typedef struct measure_repo_config {
	char *build;                         /* owned, NULL when unset */
	char *test;                          /* owned, NULL when unset */
	measure_benchmark_config *benchmarks;  /* owned array */
	size_t nbenchmarks;
	double threshold_pct;                /* 3.0 */
	measure_metric metric;                 /* cycles */
	int timeout_s;                       /* `timeout:` seconds for build, test and each benchmark; 600 */
	char **branches;                     /* owned; nbranches 0 = the default branch */
	size_t nbranches;
	int optimize_on_comment;             /* optimize.on contains comment (default) */
	int optimize_on_push;                /* optimize.on contains push */
	int optimize_max_minutes;            /* 30 */
	int optimize_max_benchmark_runs;     /* 40 */
	char **optimize_protected;           /* owned globs a change may not touch (beyond the built-in ones) */
	size_t noptimize_protected;
	char **optimize_paths;               /* owned globs a change must stay within; 0 = anywhere not protected */
	size_t noptimize_paths;
	measure_agent_backend optimize_agent; /* optimize.agent; DEFAULT: the server's PERFBOT_AGENT */
	double optimize_max_cost_usd;        /* optimize.max_cost_usd (the managed backend's list-cost
					      * budget); 0: none */
} measure_repo_config;

/* Parses the YAML text (len bytes, need not be NUL-terminated).  *out is
 * owned by the caller (measure_repo_config_free).  BASE_EINVALID with the
 * line/column message on any problem; BASE_ETOOBIG past MEASURE_REPO_CONFIG_MAX. */
int measure_repo_config_parse(measure_repo_config **out, const char *text, size_t len);

/* The diff policy of the configuration (base/diff_policy.h): its benchmark,
 * build and test commands and the optimize.protected / optimize.paths
 * globs.  *out is one allocation owned by the caller (free()); its strings
 * are borrowed from cfg, which must outlive it. */
int measure_repo_config_diff_policy(base_diff_policy **out, const measure_repo_config *cfg);

/* The configuration of a benchmark by name, borrowed; NULL when unknown. */
const measure_benchmark_config *measure_repo_config_benchmark(const measure_repo_config *cfg, const char *name);

/* 1 when pushes to `branch` are measured (branches list, or the default
 * branch when the list is empty). */
int measure_repo_config_tracks_branch(const measure_repo_config *cfg, const char *branch, const char *default_branch);

void measure_repo_config_free(measure_repo_config *cfg);

#endif
