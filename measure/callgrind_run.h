/* The side of CPU-simulation measurement that runs things: a benchmark
 * under callgrind (or cachegrind, for a whole-process count) inside the
 * sandbox, with a fixed valgrind command line, its output files read into a
 * profile by the pure parser of callgrind_parse.h; and the toolchain's
 * versions as seen inside the sandbox. */
#ifndef MEASURE_CALLGRIND_RUN_H
#define MEASURE_CALLGRIND_RUN_H

#include <stdatomic.h>
#include <jansson.h>

#include "measure/callgrind_parse.h"
#include "measure/sandbox.h"

typedef struct measure_cg_run {
	const char *workspace;   /* host work tree (mounted at /workspace) */
	const char *command;     /* shell command of the benchmark */
	int region;              /* 1: --instr-atstart=no (the harness marks the region) */
	int whole_process;       /* 1: cachegrind instead, which no client request steers: the
				  * whole process and its children (totals only, no calls) */
	const char *scratch_dir; /* host directory for the per-run output dir (removed after) */
	measure_sandbox_limits limits;
	const atomic_int *cancel;
} measure_cg_run;

#define MEASURE_CG_RUN_INIT { NULL, NULL, 0, 0, NULL, MEASURE_SANDBOX_LIMITS_INIT, NULL }

/* The exact argv used inside the sandbox for `command` (owned array of
 * owned strings, NULL-terminated; free with measure_cg_argv_free).  The output
 * files go to /tmp/cg/out.%p.  valgrind takes its options from this command
 * line only (--command-line-only=yes, passed on to traced children): never
 * from ~/.valgrindrc, ./.valgrindrc or $VALGRIND_OPTS, which the measured
 * code could write. */
int measure_cg_build_argv(char ***out, const char *command, int region);

/* The same for the whole-process count (cachegrind, see whole_process). */
int measure_cg_build_argv_whole(char ***out, const char *command);
void measure_cg_argv_free(char **argv);

/* Runs the benchmark under callgrind in sb and parses every output file into
 * *profile (initialised here; dispose it).  A regular file
 * /workspace/.valgrindrc is hidden behind an empty read-only file.  *result gets the sandbox result
 * (dispose it).  Returns 0 when the command ran and exited 0 and at least one
 * output file was read; BASE_EGENERIC with a message naming the exit status,
 * BASE_ETIMEOUT on timeout, or the sandbox's error otherwise. */
int measure_cg_measure(measure_cg_profile *profile, measure_sandbox_result *result, measure_sandbox *sb,
		     const measure_cg_run *run);

/* The toolchain inside the sandbox: {"valgrind": "valgrind-3.19.0", "cc":
 * first line of `cc --version`} (owned).  Missing tools give null values. */
int measure_cg_toolchain(json_t **out, measure_sandbox *sb, const char *workspace);

#endif
