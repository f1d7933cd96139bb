/* CPU-simulation measurement: running a command under callgrind inside the
 * sandbox, and reading callgrind's output files (events, totals and the
 * function-level profile with exclusive and inclusive costs).
 *
 * The parser is pure (text in, profile out) and accumulates, so the files of
 * several processes of one benchmark (--trace-children=yes) sum into one
 * profile.  Costs are the nine cache-simulation events in a fixed order;
 * events a file lacks count as 0. */
#ifndef MEASURE_CALLGRIND_H
#define MEASURE_CALLGRIND_H

#include <stdatomic.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "measure/sandbox.h"

enum {
	MEASURE_CG_IR = 0,
	MEASURE_CG_DR,
	MEASURE_CG_DW,
	MEASURE_CG_I1MR,
	MEASURE_CG_D1MR,
	MEASURE_CG_D1MW,
	MEASURE_CG_ILMR,
	MEASURE_CG_DLMR,
	MEASURE_CG_DLMW,
	MEASURE_CG_NEVENTS
};

/* "Ir", "Dr", ... for each index above. */
extern const char *const measure_cg_event_names[MEASURE_CG_NEVENTS];

typedef struct measure_cg_costs {
	uint64_t ev[MEASURE_CG_NEVENTS];
} measure_cg_costs;

/* The derived numbers perfbot reports. */
typedef struct measure_cg_summary {
	uint64_t instructions;      /* Ir */
	uint64_t l1_misses;         /* I1mr + D1mr + D1mw */
	uint64_t ll_misses;         /* ILmr + DLmr + DLmw */
	uint64_t estimated_cycles;  /* (A - M1) + 5 (M1 - ML) + 35 ML, A = Ir + Dr + Dw */
} measure_cg_summary;

void measure_cg_summarize(measure_cg_summary *out, const measure_cg_costs *c);

typedef struct measure_cg_function {
	char *name;              /* owned */
	char *file;              /* owned; "???" when unknown */
	measure_cg_costs self;     /* exclusive */
	measure_cg_costs inclusive;/* self + the inclusive cost of calls made */
} measure_cg_function;

typedef struct measure_cg_profile {
	measure_cg_costs totals;    /* the files' summary/totals lines, summed */
	measure_cg_function *fns;   /* owned array; one entry per (file, name) */
	size_t nfns;
	size_t alloc;
	int nfiles;               /* output files added */
	void *index;              /* private lookup table */
} measure_cg_profile;

void measure_cg_profile_init(measure_cg_profile *p);
void measure_cg_profile_dispose(measure_cg_profile *p);

/* Parses one callgrind output file and adds it into p.  BASE_EINVALID with
 * the line number on malformed input (p may then hold part of the file). */
int measure_cg_parse(measure_cg_profile *p, const char *text, size_t len);

/* Indices into p->fns of the n functions of highest inclusive cost by
 * `metric` (0 = estimated cycles, 1 = instructions); *out owned. */
int measure_cg_top(size_t **out, size_t *nout, const measure_cg_profile *p, int metric, size_t n);

/* {"name", "file", "self": {...}, "inclusive": {...}} where each cost object
 * holds instructions, estimated_cycles, l1_misses, ll_misses.  Owned. */
json_t *measure_cg_function_json(const measure_cg_function *f);

/* A summary as {"instructions", "estimated_cycles", "l1_misses", "ll_misses"}; owned. */
json_t *measure_cg_summary_json(const measure_cg_summary *s);

/* ---- running a benchmark under callgrind ------------------------------- */

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
