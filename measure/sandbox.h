/* The sandbox: runs one command on customer code with no network, nothing of
 * perfbot's visible (only /usr, the world-readable toolchain files of /etc
 * and the work tree), a fixed environment, resource limits and a wall-clock
 * timeout that kills the whole process tree.
 *
 * `measure_sandbox` is a struct of function pointers; a backend (bwrap today,
 * sandbox_bwrap.c) embeds it as its first member.  Tests may supply their own.
 * Inside, the work tree is always at /workspace (also the working directory),
 * /tmp is a private tmpfs of MEASURE_SANDBOX_TMP_BYTES and HOME is /tmp/home,
 * outside the work tree: nothing a change adds to the tree (.valgrindrc and
 * the like) is read as the user's own settings, and caches written to HOME
 * never land in the tree.  Only stdin (/dev/null), stdout and stderr are open
 * in the command: no other descriptor of perfbot's reaches the sandbox.
 * A long-lived process (spawn: the agent's persistent shell) gets the same
 * confinement, with a socket for its stdin and one pipe for its stdout and
 * stderr instead.
 *
 * Two kinds of limits hold: those of one command (measure_sandbox_limits: wall
 * clock, rlimits per process) and those of the whole sandbox, whatever it
 * forks (measure_sandbox_bwrap_options: memory, process count, CPU time through
 * a cgroup where one can be made, disk through a watchdog).  A run that
 * breaks a whole-sandbox limit is killed as a whole and says which limit in
 * measure_sandbox_result.limit.
 *
 * Ownership: a measure_sandbox is created by its backend's constructor and
 * freed with measure_sandbox_free.  One sandbox object may be used by several
 * threads at once: run() and spawn() keep no state between calls. */
#ifndef MEASURE_SANDBOX_H
#define MEASURE_SANDBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The fixed environment inside every sandbox, NULL-terminated
 * "NAME=value" strings: PATH, HOME=/tmp/home, LANG, TZ, PYTHONHASHSEED,
 * PYTHONMALLOC, PYTHONDONTWRITEBYTECODE=1 (no __pycache__ left in the tree
 * for the next step) and PWD=/workspace (bwrap sets PWD after --chdir).
 * Nothing else: no VALGRIND_OPTS, nothing of perfbot's environment. */
extern const char *const measure_sandbox_env[];

/* The path of the work tree inside the sandbox. */
#define MEASURE_SANDBOX_WORKSPACE "/workspace"

/* HOME inside the sandbox: an empty directory on the private /tmp. */
#define MEASURE_SANDBOX_HOME "/tmp/home"

/* The size of the sandbox's /tmp.  A tmpfs lives in the host's memory (and
 * swap), outside every rlimit of the sandbox, so it gets a fixed bound: as
 * much as one file may hold under the default RLIMIT_FSIZE. */
#define MEASURE_SANDBOX_TMP_BYTES (1ULL << 30)

typedef struct measure_sandbox_limits {
	int timeout_s;            /* wall clock for the whole tree; 0 = none */
	int cpu_s;                /* RLIMIT_CPU per process; 0 = none */
	uint64_t memory_bytes;    /* RLIMIT_AS per process; 0 = none */
	int max_procs;            /* RLIMIT_NPROC for the sandbox's uid; 0 = none */
	uint64_t max_file_bytes;  /* RLIMIT_FSIZE; 0 = none */
	int max_open_files;       /* RLIMIT_NOFILE; 0 = none */
	size_t output_cap;        /* bytes kept of stdout, and of stderr; 0 = 1 MiB */
} measure_sandbox_limits;

/* 10 min, 10 min CPU, 8 GiB address space (valgrind needs room), 256
 * processes, 1 GiB per file, 1024 files, 1 MiB of each output stream; and
 * always a 1 GiB /tmp (MEASURE_SANDBOX_TMP_BYTES). */
#define MEASURE_SANDBOX_LIMITS_INIT { 600, 600, 8ULL << 30, 256, 1ULL << 30, 1024, 1 << 20 }

/* An extra host directory made visible inside (e.g. a per-run output
 * directory at /tmp/cg).  Mounted after /tmp, in array order. */
typedef struct measure_sandbox_mount {
	const char *host_path;     /* absolute */
	const char *sandbox_path;  /* absolute, not "/" */
	int writable;
} measure_sandbox_mount;

typedef struct measure_sandbox_cmd {
	const char *workspace;             /* host directory mounted read-write at /workspace */
	const char *const *argv;           /* command and arguments, NULL-terminated ... */
	const char *shell;                 /* ... or, when argv is NULL, run `/bin/sh -c shell` */
	const measure_sandbox_mount *mounts; /* may be NULL */
	size_t nmounts;
	measure_sandbox_limits limits;
	const atomic_int *cancel;        /* optional: polled; nonzero kills the tree */
} measure_sandbox_cmd;

#define MEASURE_SANDBOX_CMD_INIT { NULL, NULL, NULL, NULL, 0, MEASURE_SANDBOX_LIMITS_INIT, NULL }

/* The whole-sandbox limit that ended a run. */
typedef enum {
	MEASURE_SANDBOX_LIMIT_NONE = 0,
	MEASURE_SANDBOX_LIMIT_MEMORY,     /* the memory of all its processes (and its /tmp) */
	MEASURE_SANDBOX_LIMIT_PIDS,       /* the number of processes and threads */
	MEASURE_SANDBOX_LIMIT_CPU,        /* the CPU time of all its processes */
	MEASURE_SANDBOX_LIMIT_DISK,       /* what it wrote to its work tree and mounts */
	MEASURE_SANDBOX_LIMIT_DISK_FREE,  /* the host disk fell below the reserve */
} measure_sandbox_limit;

typedef struct measure_sandbox_result {
	int exit_code;       /* the command's exit status; -1 when it died of a signal */
	int term_signal;     /* the signal that ended it, 0 when it exited */
	int timed_out;       /* the wall-clock timeout killed the tree */
	int cancelled;       /* *cancel became nonzero and the tree was killed */
	measure_sandbox_limit limit; /* a whole-sandbox limit killed the tree */
	uint64_t limit_value;      /* that limit: bytes, processes or CPU seconds */
	char *out;           /* owned, NUL-terminated stdout (capped, see truncation marker) */
	size_t out_len;
	char *err;           /* owned, NUL-terminated stderr */
	size_t err_len;
	int out_truncated;   /* more was written than the cap; the text ends with
			      * "\n[output truncated at N bytes]\n" */
	int err_truncated;
	int64_t wall_ms;     /* from start to the last process's end */
} measure_sandbox_result;

/* 1 if the command ran and exited with status 0 within every limit. */
int measure_sandbox_result_ok(const measure_sandbox_result *r);

/* Why a whole-sandbox limit ended the run, as the user reads it ("the
 * sandbox exceeded its memory limit (1 GiB)"), into buf; "" when none. */
const char *measure_sandbox_result_reason(const measure_sandbox_result *r, char *buf, size_t cap);

/* The last `max` bytes of stderr then stdout, for error reports; owned.
 * When a whole-sandbox limit ended the run, the last line is its reason
 * in brackets (kept whatever `max`).  Never NULL unless out of memory. */
char *measure_sandbox_result_tail(const measure_sandbox_result *r, size_t max);

void measure_sandbox_result_dispose(measure_sandbox_result *r);

/* A long-lived process in a sandbox (spawn): the same confinement as run()
 * (mounts, uid, rlimits, whole-sandbox limits, hidden state, no descriptor
 * of perfbot's but its own), with its stdin and its output left open to the
 * owner.  in_fd is a socket (write with send(..., MSG_NOSIGNAL): a process
 * that has gone raises no SIGPIPE), out_fd the read end of a pipe carrying
 * stdout and stderr merged; both non-blocking and close-on-exec, owned by
 * the proc.  A thread of the proc's own is the process's parent (a sandbox
 * dies with the thread that made it): it reaps it, kills the whole tree on
 * cmd.cancel, on cmd.limits.timeout_s (the whole life; 0 = none) and on a
 * broken whole-sandbox limit.  The cgroup CPU limit counts the whole life.
 * kill() may be called from any thread; the other calls by the owner.  A
 * proc is freed before the sandbox that made it. */
typedef struct measure_sandbox_proc measure_sandbox_proc;
struct measure_sandbox_proc {
	int in_fd;   /* the process's stdin, or -1 */
	int out_fd;  /* its stdout and stderr */
	/* Kills the whole tree (never waits). */
	void (*kill)(measure_sandbox_proc *p);
	/* Waits up to timeout_ms (0: just looks; -1: no bound) for the tree
	 * to end: 1 when it has, with *status's exit_code, term_signal,
	 * timed_out, cancelled, limit, limit_value and wall_ms filled (no
	 * output: out and err are NULL); 0 when it still runs. */
	int (*wait)(measure_sandbox_proc *p, int timeout_ms, measure_sandbox_result *status);
	/* Kills the tree, reaps it, closes the descriptors and frees. */
	void (*free)(measure_sandbox_proc *p);
};

typedef struct measure_sandbox measure_sandbox;
struct measure_sandbox {
	const char *name; /* "bwrap" */
	/* Runs cmd; fills *out (dispose it even on error).  Returns 0 when the
	 * command ran (whatever its exit status, timeout or signal), or a
	 * negative code with base_error_set when the sandbox itself could not be
	 * set up: the command never runs outside it. */
	int (*run)(measure_sandbox *sb, measure_sandbox_result *out, const measure_sandbox_cmd *cmd);
	/* Makes a host directory writable by the sandbox's user (the work tree
	 * and output directories perfbot creates): chowns the tree. */
	int (*prepare_dir)(measure_sandbox *sb, const char *host_path);
	void (*free)(measure_sandbox *sb);
	const char *limits_mechanism; /* what holds the whole-sandbox limits: "cgroup v1 (...)",
				       * "cgroup v2 (...)" or "rlimits"; borrowed (NULL: not said) */
	/* Starts cmd as a long-lived process (measure_sandbox_proc); *out
	 * owned.  cmd and what it points to are borrowed for the call, except
	 * cmd->cancel, which must outlive the proc.  NULL: the backend cannot. */
	int (*spawn)(measure_sandbox *sb, measure_sandbox_proc **out, const measure_sandbox_cmd *cmd);
};

static inline int measure_sandbox_run(measure_sandbox *sb, measure_sandbox_result *out, const measure_sandbox_cmd *cmd)
{
	return sb->run(sb, out, cmd);
}

static inline int measure_sandbox_prepare_dir(measure_sandbox *sb, const char *host_path)
{
	return sb->prepare_dir(sb, host_path);
}

void measure_sandbox_free(measure_sandbox *sb);

/* sb->spawn, or BASE_EINVALID with a sentence when the backend has none. */
int measure_sandbox_spawn(measure_sandbox *sb, measure_sandbox_proc **out, const measure_sandbox_cmd *cmd);

/* Frees p (kills its tree first); NULL is allowed. */
void measure_sandbox_proc_free(measure_sandbox_proc *p);

/* ---- the bwrap backend (sandbox_bwrap.c) ------------------------------- */

typedef struct measure_sandbox_bwrap_options {
	const char *bwrap_path;  /* NULL: "bwrap" from PATH */
	uid_t uid;               /* when perfbot runs as root, the owner of the
				  * trees handed to the sandbox; 0 = 65534.  Each
				  * run gets its own host uid of 200000..+4096 (so
				  * RLIMIT_NPROC applies).  Ignored when not root. */
	gid_t gid;               /* likewise; 0 = 65534 */
	/* Whole-sandbox limits of every run (0 = none): */
	uint64_t memory_bytes;   /* memory of all processes and /tmp (SANDBOX_MEMORY) */
	int pids;                /* processes and threads (SANDBOX_PIDS) */
	int cpu_s;               /* CPU seconds of all processes (SANDBOX_CPU_SECONDS);
				  * a run's own cpu_s may raise it for that run */
	uint64_t disk_bytes;     /* growth of the work tree and writable mounts (SANDBOX_DISK) */
	uint64_t disk_reserve_bytes; /* free space kept on the work tree's
				  * filesystem: the run is killed below it */
	/* For tests (NULL = the real ones): */
	const char *cgroup_root; /* "/sys/fs/cgroup"; "" = use no cgroup */
	const char *subuid_path; /* "/etc/subuid" */
	const char *subgid_path; /* "/etc/subgid" */
	const char *stage_dir;   /* as root, the empty directory work trees are
				  * mounted on in each run's own mount namespace:
				  * the first of /mnt, /media, /srv.  Where none can
				  * be mounted on, trees are bound by path and their
				  * ancestors made searchable (o+x). */
} measure_sandbox_bwrap_options;

#define MEASURE_SANDBOX_MEMORY_DEFAULT (8ULL << 30)
#define MEASURE_SANDBOX_PIDS_DEFAULT 512
#define MEASURE_SANDBOX_CPU_DEFAULT 3600
#define MEASURE_SANDBOX_DISK_DEFAULT (10ULL << 30)
#define MEASURE_SANDBOX_DISK_RESERVE_DEFAULT (1ULL << 30)

#define MEASURE_SANDBOX_BWRAP_OPTIONS_INIT                                                                         \
	{ NULL, 0, 0, MEASURE_SANDBOX_MEMORY_DEFAULT, MEASURE_SANDBOX_PIDS_DEFAULT, MEASURE_SANDBOX_CPU_DEFAULT,        \
	  MEASURE_SANDBOX_DISK_DEFAULT, MEASURE_SANDBOX_DISK_RESERVE_DEFAULT, NULL, NULL, NULL, NULL }

/* Creates the bwrap backend after a probe (`bwrap ... true` with the real
 * mount set).  Fails with a clear message when bwrap is missing or cannot
 * create its namespaces, or when the runs' uid range overlaps a range of
 * /etc/subuid or /etc/subgid (a user owning those ids could enter the
 * sandbox's processes); nothing then runs.  Logs once which mechanism
 * holds the whole-sandbox limits.  opts may be NULL (the defaults). */
int measure_sandbox_bwrap_new(measure_sandbox **out, const measure_sandbox_bwrap_options *opts);

/* Creates the backend named by PERFBOT_SANDBOX ("bwrap"; NULL = "bwrap")
 * with the default whole-sandbox limits. */
int measure_sandbox_new(measure_sandbox **out, const char *backend);

/* The same with whole-sandbox limits; opts may be NULL. */
int measure_sandbox_new_with(measure_sandbox **out, const char *backend, const measure_sandbox_bwrap_options *opts);

/* The backend and whole-sandbox limits perfbot's configuration names
 * (PERFBOT_SANDBOX, SANDBOX_MEMORY, SANDBOX_PIDS, SANDBOX_CPU_SECONDS,
 * SANDBOX_DISK, SANDBOX_DISK_RESERVE). */
struct base_config;
int measure_sandbox_new_config(measure_sandbox **out, const struct base_config *cfg);

#endif
