/* CPU-simulation measurement: running a command under callgrind inside the
 * sandbox, and reading callgrind's output files (events, totals and the
 * function-level profile with exclusive and inclusive costs).
 *
 * The parser is pure (text in, profile out) and accumulates, so the files of
 * several processes of one benchmark (--trace-children=yes) sum into one
 * profile.  Costs are the nine cache-simulation events in a fixed order;
 * events a file lacks count as 0. */
#ifndef AGENT_CALLGRIND_H
#define AGENT_CALLGRIND_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/sandbox.h"

enum {
	AGENT_CG_IR = 0,
	AGENT_CG_DR,
	AGENT_CG_DW,
	AGENT_CG_I1MR,
	AGENT_CG_D1MR,
	AGENT_CG_D1MW,
	AGENT_CG_ILMR,
	AGENT_CG_DLMR,
	AGENT_CG_DLMW,
	AGENT_CG_NEVENTS
};

/* "Ir", "Dr", ... for each index above. */
extern const char *const agent_cg_event_names[AGENT_CG_NEVENTS];

typedef struct agent_cg_costs {
	uint64_t ev[AGENT_CG_NEVENTS];
} agent_cg_costs;

/* The derived numbers perfbot reports. */
typedef struct agent_cg_summary {
	uint64_t instructions;      /* Ir */
	uint64_t l1_misses;         /* I1mr + D1mr + D1mw */
	uint64_t ll_misses;         /* ILmr + DLmr + DLmw */
	uint64_t estimated_cycles;  /* (A - M1) + 5 (M1 - ML) + 35 ML, A = Ir + Dr + Dw */
} agent_cg_summary;

void agent_cg_summarize(agent_cg_summary *out, const agent_cg_costs *c);

typedef struct agent_cg_function {
	char *name;              /* owned */
	char *file;              /* owned; "???" when unknown */
	agent_cg_costs self;     /* exclusive */
	agent_cg_costs inclusive;/* self + the inclusive cost of calls made */
} agent_cg_function;

typedef struct agent_cg_profile {
	agent_cg_costs totals;    /* the files' summary/totals lines, summed */
	agent_cg_function *fns;   /* owned array; one entry per (file, name) */
	size_t nfns;
	size_t alloc;
	int nfiles;               /* output files added */
	void *index;              /* private lookup table */
} agent_cg_profile;

void agent_cg_profile_init(agent_cg_profile *p);
void agent_cg_profile_dispose(agent_cg_profile *p);

/* Parses one callgrind output file and adds it into p.  APP_EINVALID with
 * the line number on malformed input (p may then hold part of the file). */
int agent_cg_parse(agent_cg_profile *p, const char *text, size_t len);

/* Indices into p->fns of the n functions of highest inclusive cost by
 * `metric` (0 = estimated cycles, 1 = instructions); *out owned. */
int agent_cg_top(size_t **out, size_t *nout, const agent_cg_profile *p, int metric, size_t n);

/* {"name", "file", "self": {...}, "inclusive": {...}} where each cost object
 * holds instructions, estimated_cycles, l1_misses, ll_misses.  Owned. */
json_t *agent_cg_function_json(const agent_cg_function *f);

/* A summary as {"instructions", "estimated_cycles", "l1_misses", "ll_misses"}; owned. */
json_t *agent_cg_summary_json(const agent_cg_summary *s);

/* ---- running a benchmark under callgrind ------------------------------- */

typedef struct agent_cg_run {
	const char *workspace;   /* host work tree (mounted at /workspace) */
	const char *command;     /* shell command of the benchmark */
	int region;              /* 1: --instr-atstart=no (the harness marks the region) */
	int whole_process;       /* 1: cachegrind instead, which no client request steers: the
				  * whole process and its children (totals only, no calls) */
	const char *scratch_dir; /* host directory for the per-run output dir (removed after) */
	agent_sandbox_limits limits;
	const volatile int *cancel;
} agent_cg_run;

#define AGENT_CG_RUN_INIT { NULL, NULL, 0, 0, NULL, AGENT_SANDBOX_LIMITS_INIT, NULL }

/* The exact argv used inside the sandbox for `command` (owned array of
 * owned strings, NULL-terminated; free with agent_cg_argv_free).  The output
 * files go to /tmp/cg/out.%p.  valgrind takes its options from this command
 * line only (--command-line-only=yes, passed on to traced children): never
 * from ~/.valgrindrc, ./.valgrindrc or $VALGRIND_OPTS, which the measured
 * code could write. */
int agent_cg_build_argv(char ***out, const char *command, int region);

/* The same for the whole-process count (cachegrind, see whole_process). */
int agent_cg_build_argv_whole(char ***out, const char *command);
void agent_cg_argv_free(char **argv);

/* Runs the benchmark under callgrind in sb and parses every output file into
 * *profile (initialised here; dispose it).  A regular file
 * /workspace/.valgrindrc is hidden behind an empty read-only file.  *result gets the sandbox result
 * (dispose it).  Returns 0 when the command ran and exited 0 and at least one
 * output file was read; APP_EGENERIC with a message naming the exit status,
 * APP_ETIMEOUT on timeout, or the sandbox's error otherwise. */
int agent_cg_measure(agent_cg_profile *profile, agent_sandbox_result *result, agent_sandbox *sb,
		     const agent_cg_run *run);

/* The toolchain inside the sandbox: {"valgrind": "valgrind-3.19.0", "cc":
 * first line of `cc --version`} (owned).  Missing tools give null values. */
int agent_cg_toolchain(json_t **out, agent_sandbox *sb, const char *workspace);

#endif
