/* The pure half of CPU-simulation measurement: reading callgrind's output
 * files (events, totals and the function-level profile with exclusive and
 * inclusive costs) and cachegrind's totals.  No I/O: text in, profile out.
 * Running valgrind in the sandbox is callgrind_run.h.
 *
 * The parser accumulates, so the files of several processes of one
 * benchmark (--trace-children=yes) sum into one profile.  Costs are the nine
 * cache-simulation events in a fixed order; events a file lacks count as 0.
 * Its input is written by the measured code, so it is untrusted: every
 * table is bounded and the parser is fuzzed (fuzz/fuzz_callgrind.c). */
#ifndef MEASURE_CALLGRIND_PARSE_H
#define MEASURE_CALLGRIND_PARSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

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

/* One call edge (calls= line and the cost line after it): caller and
 * callee are indices into fns, cost the inclusive cost of the call. */
typedef struct measure_cg_call {
	size_t caller, callee;
	measure_cg_costs cost;
} measure_cg_call;

typedef struct measure_cg_profile {
	measure_cg_costs totals;    /* the files' summary/totals lines, summed */
	measure_cg_function *fns;   /* owned array; one entry per (file, name) */
	size_t nfns;
	size_t alloc;
	measure_cg_call *calls;     /* owned; the call graph, one entry per calls= line
				     * (at most MEASURE_CG_MAX_CALLS; later ones are dropped) */
	size_t ncalls;
	size_t calls_alloc;
	int nfiles;               /* output files added */
	void *index;              /* private lookup table */
} measure_cg_profile;

void measure_cg_profile_init(measure_cg_profile *p);
void measure_cg_profile_dispose(measure_cg_profile *p);

/* Parses one callgrind output file and adds it into p.  BASE_EINVALID with
 * the line number on malformed input (p may then hold part of the file). */
int measure_cg_parse(measure_cg_profile *p, const char *text, size_t len);

/* Adds the totals of one cachegrind output file (its "events:" and
 * "summary:" lines) into p; function lines are not read.  BASE_EINVALID when
 * the file has neither. */
int measure_cg_parse_totals(measure_cg_profile *p, const char *text, size_t len);

/* Indices into p->fns of the n functions of highest inclusive cost by
 * `metric` (0 = estimated cycles, 1 = instructions); *out owned. */
int measure_cg_top(size_t **out, size_t *nout, const measure_cg_profile *p, int metric, size_t n);

#define MEASURE_CG_MAX_CALLS 500000

/* A flame tree of the profile by `metric` (0 = estimated cycles, 1 =
 * instructions): {"name": "all", "value": N, "children": [{"name", "file",
 * "value", "children"}]}, built from the call graph: the roots are the
 * functions nobody calls, a child's value is the inclusive cost of the
 * calls from its parent, scaled down where the parent itself is only part
 * of its function's cost (callgrind keeps no call stacks).  A function is
 * not expanded inside itself (recursion), children below min_permille of
 * the total are left out, and the tree holds at most max_nodes nodes and
 * max_depth levels.  Owned; NULL when out of memory. */
json_t *measure_cg_flame_json(const measure_cg_profile *p, int metric, size_t max_nodes, int max_depth,
			      int min_permille);

/* {"name", "file", "self": {...}, "inclusive": {...}} where each cost object
 * holds instructions, estimated_cycles, l1_misses, ll_misses.  Owned. */
json_t *measure_cg_function_json(const measure_cg_function *f);

/* A summary as {"instructions", "estimated_cycles", "l1_misses", "ll_misses"}; owned. */
json_t *measure_cg_summary_json(const measure_cg_summary *s);

#endif
