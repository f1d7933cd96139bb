/* Control groups for sandbox runs: limits that hold for a whole process
 * tree (memory, process count, CPU time) and a kill that reaches every
 * process of it, `setsid` escapees included.
 *
 * measure_cgroups_probe finds where run cgroups can be made: cgroup v2
 * (memory.max, pids.max, cpu.stat, cgroup.kill) when /sys/fs/cgroup is the
 * unified hierarchy with the controllers available, else the v1 hierarchies
 * memory, pids, cpuacct and freezer that are mounted and writable, else
 * nothing (the caller falls back to rlimits).  Each run gets its own child
 * cgroup under "<perfbot's own cgroup>/perfbot/<pid>.<start>-<n>" (start: the
 * process's start time, so a reused pid is not taken for a live perfbot);
 * measure_cgroups_probe kills what is left in those of a perfbot that no
 * longer runs and removes them, one log line each.  Its first process
 * joins it between fork and exec (measure_cgroup_join, async-signal-safe) so
 * everything the run forks is counted.
 *
 * A measure_cgroups is made once and read-only after (thread-safe); a
 * measure_cgroup belongs to one run on one thread. */
#ifndef MEASURE_CGROUP_H
#define MEASURE_CGROUP_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MEASURE_CGROUP_NONE = 0, MEASURE_CGROUP_V1, MEASURE_CGROUP_V2 } measure_cgroup_kind;

/* v1 hierarchies (and the single v2 directory uses slot 0) */
enum { MEASURE_CG_MEMORY = 0, MEASURE_CG_PIDS, MEASURE_CG_CPUACCT, MEASURE_CG_FREEZER, MEASURE_CG_NCTL };

typedef struct measure_cgroups measure_cgroups;

/* Finds the hierarchies under `root` (NULL: "/sys/fs/cgroup") that this
 * process may create cgroups in.  Never fails for want of cgroups: *out then
 * has kind MEASURE_CGROUP_NONE.  Fails only when out of memory. */
int measure_cgroups_probe(measure_cgroups **out, const char *root);

void measure_cgroups_free(measure_cgroups *cgs);

measure_cgroup_kind measure_cgroups_kind(const measure_cgroups *cgs);

/* Which limits hold, for the start-up log: e.g. "cgroup v1 (memory, pids,
 * cpuacct, freezer)" or "none".  Borrowed. */
const char *measure_cgroups_describe(const measure_cgroups *cgs);

/* 1 when the named controller (MEASURE_CG_*) is in force. */
int measure_cgroups_has(const measure_cgroups *cgs, int ctl);

typedef struct measure_cgroup {
	const measure_cgroups *cgs;    /* borrowed */
	char *dir[MEASURE_CG_NCTL];    /* owned; NULL where the controller is missing */
	int procs_fd[MEASURE_CG_NCTL]; /* cgroup.procs of each, open for the child to join */
} measure_cgroup;

/* Creates a run's cgroup with the given limits (0 = no limit for that one)
 * and opens its cgroup.procs files.  On failure nothing is left behind. */
int measure_cgroup_create(measure_cgroup *cg, const measure_cgroups *cgs, uint64_t memory_bytes, int pids);

/* In the child between fork and exec: moves the calling process into the
 * cgroup.  Returns 0 or an errno value.  Async-signal-safe. */
int measure_cgroup_join(const measure_cgroup *cg);

/* Closes the descriptors the child needed (call in the parent after fork). */
void measure_cgroup_close_fds(measure_cgroup *cg);

typedef struct measure_cgroup_stats {
	uint64_t oom_kills;  /* processes the kernel killed for the memory limit */
	uint64_t pids_max;   /* forks refused for the process-count limit */
	uint64_t cpu_ns;     /* CPU time of the whole tree; UINT64_MAX unknown */
	uint64_t memory_failcnt; /* times the memory limit was reached (v1) */
} measure_cgroup_stats;

/* Reads the counters of the run's cgroup. */
void measure_cgroup_stats_read(const measure_cgroup *cg, measure_cgroup_stats *out);

/* Kills every process in the cgroup (cgroup.kill, or freeze then SIGKILL
 * each pid, then thaw).  Returns the number of processes seen. */
int measure_cgroup_kill(measure_cgroup *cg);

/* Kills what is left, waits up to ~2 s for the cgroup to empty, removes it
 * and frees the paths.  Safe on a zeroed or already destroyed cgroup. */
void measure_cgroup_destroy(measure_cgroup *cg);

#endif
