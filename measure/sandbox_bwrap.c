/* The bubblewrap sandbox backend.
 *
 * Each run forks a child that puts itself in a new process group, joins the
 * run's own cgroup (where one can be made: see cgroup.h), closes every
 * descriptor but stdin (/dev/null), stdout, stderr and the directories it
 * mounts (bwrap hands whatever it inherits to the command: perfbot's sockets
 * to GitHub, its database and key files would be reachable), sets the
 * rlimits, drops to an unprivileged host uid when perfbot is root
 * (RLIMIT_NPROC does not apply to root, and a fork bomb must hit it), then
 * asks for SIGKILL when its parent thread dies (after the drop: a credential
 * change clears that request) and execs bwrap with: read-only /usr, the
 * world-readable toolchain files of /etc (a fixed list: what perfbot's own
 * user may read there stays out), the /lib /lib64 /bin /sbin symlinks, a
 * private /proc, /dev and a /tmp tmpfs of MEASURE_SANDBOX_TMP_BYTES with HOME
 * in it, the work tree at /workspace, every namespace unshared (no network),
 * no nested user namespaces (--disable-userns), --die-with-parent,
 * --new-session and a cleared environment.  Nothing else of the host is
 * mounted, so DATA_DIR, keys and perfbot's environment are out of reach.
 *
 * bwrap resolves every mount source as the run's uid.  As root, the child
 * (still root) mounts the work tree and the extra mounts on an empty
 * directory (/mnt) in a mount namespace of its own and bwrap binds them from
 * there, so the run's uid needs no search permission on their ancestors:
 * DATA_DIR stays 0700.  Not root, the run's uid is perfbot's own and bwrap
 * gets descriptors (--bind-fd).  See TREES_*.
 *
 * The parent drains stdout/stderr into capped buffers (reading on after the
 * cap so the child never blocks) and every WATCH_MS checks the whole-sandbox
 * limits: the cgroup's OOM kills, refused forks and CPU time, and the disk
 * (a cgroup has no disk limit): the free space of the work tree's
 * filesystem, and when it fell by more than the disk limit, a capped scan of
 * what the run's writable trees grew by.  On timeout, cancellation or a
 * broken limit it kills the process group and every process of the cgroup
 * (freezer or cgroup.kill: `setsid` escapees too): bwrap dies, its
 * pid-namespace init dies with it (--die-with-parent) and the kernel kills
 * everything left in the namespace.  The run's cgroup is removed after.
 *
 * spawn() starts the same child (launch_start, shared with run()) with a
 * socket as stdin and one pipe for stdout and stderr, both left to the
 * caller, and hands the watching to a thread of the process's own: it is
 * bwrap's parent (the parent-death signal follows the thread that forked),
 * reaps it, and applies the cancel flag, the wall clock and the
 * whole-sandbox limits every WATCH_MS or at once on kill().
 *
 * Between fork and exec the child calls only async-signal-safe functions;
 * the argv is built before the fork.  No state is shared between runs. */
#include "measure/sandbox.h"
#include "measure/cgroup.h"
#include "base/clock.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <dirent.h>
#include <fnmatch.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"

#define DEFAULT_UID 65534
/* Each run gets its own host uid from this range, so that RLIMIT_NPROC (a
 * per-uid count) bounds every sandbox on its own instead of all concurrent
 * sandboxes together.  All of them share the group of the prepared trees,
 * which are group-writable, and run with umask 002 so that what one run
 * writes the next can change.  The range must not overlap a range of
 * /etc/subuid or /etc/subgid: the user owning it could enter the runs. */
#define RUN_UID_BASE 200000u
#define RUN_UID_SPAN 4096u
#define DEFAULT_OUTPUT_CAP (1u << 20)
#define MAX_ARGS 384
#define MAX_MOUNTS 16
#define WATCH_MS 200
#define STAGE_MAX 128 /* longest directory work trees are mounted on */
/* The disk scan of a run's writable trees gives up past this many entries
 * (then the fall in free space alone decides) and runs at most this often. */
#define SCAN_MAX_ENTRIES 200000
#define SCAN_EVERY_MS 1000

/* What of /etc a sandbox sees: the files toolchains read (the loader's
 * cache, users and groups, name service, time zone, TLS roots, the system
 * settings of Python, Perl and Java), and of those only entries every user
 * may read.  Anything else there (perfbot's own settings, keys readable by
 * its user) is not mounted. */
static const char *const etc_patterns[] = {
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "passwd", "group", "hosts", "host.conf",
	"nsswitch.conf", "gai.conf", "localtime", "timezone", "os-release", "debian_version", "lsb-release",
	"ssl", "ca-certificates", "ca-certificates.conf", "python3*", "perl", "java*", "mime.types",
	"protocols", "services", "locale.alias", "locale.conf", "inputrc", "shells", "bash.bashrc", "profile",
	"gitconfig", "fonts", "environment", NULL,
};
#define MAX_ETC 64

typedef struct bwrap_sandbox {
	measure_sandbox base;
	char *bwrap;       /* absolute path of the binary */
	int drop;          /* running as root: drop to uid/gid */
	uid_t uid;         /* owner of prepared trees */
	gid_t gid;         /* group of prepared trees and of every run */
	atomic_uint next;  /* picks each run's uid */
	measure_sandbox_bwrap_options opts; /* whole-sandbox limits; test paths not kept */
	measure_cgroups *cgs;               /* owned; kind NONE when no cgroup can be made */
	/* the /etc entries mounted: "--ro-bind SRC DST" or "--symlink TARGET DST" */
	char *etc_src[MAX_ETC];           /* owned: host path, or symlink target */
	char *etc_dst[MAX_ETC];           /* owned */
	int etc_link[MAX_ETC];
	int netc;
	const char *stage;                /* an empty host directory the child mounts over */
	int trees;                        /* how work trees reach bwrap: TREES_* */
} bwrap_sandbox;

/* How the work tree and the extra mounts reach bwrap, which resolves every
 * source path as the run's uid (even a descriptor's, through its path). */
enum {
	TREES_FD,     /* not root: the run's uid is perfbot's own; --bind-fd */
	TREES_STAGED, /* root: the child mounts them on `stage` in a mount
		       * namespace of its own; no ancestor needs opening */
	TREES_PATH,   /* root where no mount namespace can be made (a container
		       * without CAP_SYS_ADMIN): by path, so prepare_dir makes
		       * the ancestors searchable (o+x) */
};

/* An argv under construction; strings are borrowed. */
typedef struct argv_list {
	const char *v[MAX_ARGS + 1];
	int n;
	int overflow;
} argv_list;

static void arg(argv_list *a, const char *s)
{
	if (a->n >= MAX_ARGS) {
		a->overflow = 1;
		return;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static int is_symlink(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

/* The symlinks /lib -> usr/lib etc. exist on merged-/usr systems (Debian 12);
 * elsewhere the directory is bound read-only when it exists. */
static void add_root_links(argv_list *a, char targets[4][PATH_MAX])
{
	static const char *const dirs[] = { "/lib", "/lib64", "/bin", "/sbin" };
	for (int i = 0; i < 4; i++) {
		if (is_symlink(dirs[i])) {
			ssize_t n = readlink(dirs[i], targets[i], PATH_MAX - 1);
			if (n <= 0)
				continue;
			targets[i][n] = '\0';
			arg(a, "--symlink");
			arg(a, targets[i]);
			arg(a, dirs[i]);
		} else if (access(dirs[i], F_OK) == 0) {
			arg(a, "--ro-bind");
			arg(a, dirs[i]);
			arg(a, dirs[i]);
		}
	}
}

static int valid_sandbox_path(const char *p)
{
	return p && p[0] == '/' && p[1] != '\0' && !strstr(p, "..");
}

static void set_limit(int resource, rlim_t v)
{
	struct rlimit rl = { v, v };
	setrlimit(resource, &rl);
}

/* Closes every descriptor from `from` on except those in keep[] (sorted,
 * each >= from), in the child between fork and exec (async-signal-safe).
 * close_range(2) (Linux 5.9) closes each gap in one call; otherwise each
 * number below `limit` (the soft RLIMIT_NOFILE read before the fork) is
 * closed. */
static void close_except(int from, const int *keep, int nkeep, rlim_t limit)
{
#ifdef SYS_close_range
	int ok = 1;
	unsigned lo = (unsigned)from;
	for (int i = 0; ok && i < nkeep; i++) {
		if ((unsigned)keep[i] > lo)
			ok = syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0u) == 0;
		lo = (unsigned)keep[i] + 1;
	}
	if (ok && syscall(SYS_close_range, lo, ~0u, 0u) == 0)
		return;
#endif
	for (rlim_t fd = (rlim_t)from; fd < limit && fd <= (rlim_t)INT_MAX; fd++) {
		int kept = 0;
		for (int i = 0; i < nkeep; i++)
			kept |= keep[i] == (int)fd;
		if (!kept)
			close((int)fd);
	}
}

static void child_fail(int fd, int err)
{
	ssize_t w = write(fd, &err, sizeof(err));
	(void)w;
	_exit(127);
}

/* Reads what is available from fd into b; past the cap, counts and drops.
 * Returns 0 on EOF, 1 when more may come. */
static int drain(int fd, base_buf *b, size_t cap, size_t *seen)
{
	char chunk[16384];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	if (n < 0)
		return (errno == EINTR || errno == EAGAIN) ? 1 : 0;
	if (n == 0)
		return 0;
	size_t keep = 0;
	if (*seen < cap)
		keep = (size_t)n < cap - *seen ? (size_t)n : cap - *seen;
	if (keep)
		base_buf_put(b, chunk, keep);
	*seen += (size_t)n;
	return 1;
}

static void finish_stream(base_buf *b, size_t cap, size_t seen, char **out, size_t *len, int *truncated)
{
	if (seen > cap) {
		*truncated = 1;
		base_buf_printf(b, "\n[output truncated at %zu bytes]\n", cap);
	}
	*len = b->len;
	*out = base_buf_detach(b);
}

/* Adds the bytes allocated under dirfd (closed here) to *bytes, without
 * following links or leaving its filesystem; *budget counts entries down,
 * and at 0 the scan stops (the result is then a lower bound). */
static void tree_bytes(int dirfd, dev_t dev, uint64_t *bytes, long *budget, int depth)
{
	DIR *d = depth < 64 ? fdopendir(dirfd) : NULL;
	if (!d) {
		close(dirfd);
		return;
	}
	struct dirent *e;
	while (*budget > 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		(*budget)--;
		struct stat st;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
			continue;
		*bytes += (uint64_t)st.st_blocks * 512u;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				tree_bytes(sub, dev, bytes, budget, depth + 1);
		}
	}
	closedir(d);
}

/* The bytes under the writable trees fds[] (O_PATH descriptors); sets
 * *complete to 0 when the scan gave up. */
static uint64_t trees_bytes(const int *fds, int n, int *complete)
{
	uint64_t bytes = 0;
	long budget = SCAN_MAX_ENTRIES;
	for (int i = 0; i < n; i++) {
		int d = openat(fds[i], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct stat st;
		if (d < 0)
			continue;
		if (fstat(d, &st) < 0) {
			close(d);
			continue;
		}
		tree_bytes(d, st.st_dev, &bytes, &budget, 0);
	}
	*complete = budget > 0;
	return bytes;
}

static uint64_t free_bytes(int fd)
{
	struct statvfs sv;
	if (fstatvfs(fd, &sv) < 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

/* The state of one run's whole-sandbox checks. */
typedef struct watch {
	const bwrap_sandbox *sb;
	measure_cgroup *cg;
	uint64_t cpu_limit_ns;     /* 0 = none */
	const int *wfds;           /* writable trees (O_PATH), borrowed */
	int nwfds;
	uint64_t free0;            /* free bytes at the start; UINT64_MAX unknown */
	uint64_t size0;            /* bytes of the writable trees at the start */
	int size0_complete;
	int64_t last_scan;
} watch;

/* Which limit, if any, the run has broken; sets *value to that limit. */
static measure_sandbox_limit watch_check(watch *w, int64_t now, uint64_t *value)
{
	const measure_sandbox_bwrap_options *o = &w->sb->opts;
	if (w->cg && w->cg->cgs) {
		measure_cgroup_stats st;
		measure_cgroup_stats_read(w->cg, &st);
		if (st.oom_kills > 0 && o->memory_bytes) {
			*value = o->memory_bytes;
			return MEASURE_SANDBOX_LIMIT_MEMORY;
		}
		if (st.pids_max > 0 && o->pids > 0) {
			*value = (uint64_t)o->pids;
			return MEASURE_SANDBOX_LIMIT_PIDS;
		}
		if (w->cpu_limit_ns && st.cpu_ns != UINT64_MAX && st.cpu_ns > w->cpu_limit_ns) {
			*value = w->cpu_limit_ns / 1000000000u;
			return MEASURE_SANDBOX_LIMIT_CPU;
		}
	}
	if (w->nwfds == 0 || w->free0 == UINT64_MAX)
		return MEASURE_SANDBOX_LIMIT_NONE;
	uint64_t f = free_bytes(w->wfds[0]);
	if (f == UINT64_MAX)
		return MEASURE_SANDBOX_LIMIT_NONE;
	if (o->disk_reserve_bytes && f < o->disk_reserve_bytes && f < w->free0) {
		*value = o->disk_reserve_bytes;
		return MEASURE_SANDBOX_LIMIT_DISK_FREE;
	}
	if (!o->disk_bytes || f >= w->free0 || w->free0 - f <= o->disk_bytes)
		return MEASURE_SANDBOX_LIMIT_NONE;
	/* the filesystem lost more than the limit: was it this run? */
	if (now - w->last_scan < SCAN_EVERY_MS)
		return MEASURE_SANDBOX_LIMIT_NONE;
	w->last_scan = now;
	int complete = 0;
	uint64_t size = trees_bytes(w->wfds, w->nwfds, &complete);
	if (!complete || !w->size0_complete || (size > w->size0 && size - w->size0 > o->disk_bytes)) {
		*value = o->disk_bytes;
		return MEASURE_SANDBOX_LIMIT_DISK;
	}
	return MEASURE_SANDBOX_LIMIT_NONE;
}

static void kill_tree(pid_t pid, measure_cgroup *cg)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	if (cg && cg->cgs)
		measure_cgroup_kill(cg);
}

/* Adds the bind of the tree open at fd to `dest`.  Not root, the sandbox
 * runs as perfbot's uid and bwrap gets the descriptor (--bind-fd).  As root
 * the run's uid could not resolve the tree's host path (bwrap resolves even
 * a descriptor's path, and DATA_DIR is 0700): the child, still root, mounts
 * it at <stage>/<i> in a private mount namespace first (a mount of the
 * parent's namespace cannot be bound from there, so by path), and bwrap
 * binds that. */
static void add_tree(argv_list *a, const bwrap_sandbox *sb, int i, int fd, const char *src, int writable,
		     const char *dest, char fdnum[16], char stage[STAGE_MAX + 16], int *isdir)
{
	struct stat st;
	*isdir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
	snprintf(fdnum, 16, "%d", fd);
	snprintf(stage, STAGE_MAX + 16, "%s/%d", sb->stage ? sb->stage : "/mnt", i);
	if (sb->trees != TREES_FD) {
		arg(a, writable ? "--bind" : "--ro-bind");
		arg(a, sb->trees == TREES_STAGED ? stage : src);
	} else {
		arg(a, writable ? "--bind-fd" : "--ro-bind-fd");
		arg(a, fdnum);
	}
	arg(a, dest);
}

/* ---- starting a sandbox: shared by run() and spawn() --------------------- */

/* One sandbox being started or running: the argv and what it borrows, the
 * trees opened for it, its cgroup and its whole-sandbox watch.  Heap
 * allocated (the paths are large); owned by whoever started it. */
typedef struct launch {
	int dir_fd[MAX_MOUNTS + 1]; /* [0] the work tree, then the mounts */
	int wfds[MAX_MOUNTS + 1];   /* the writable ones */
	int ndir, nw;
	char fdnum[MAX_MOUNTS + 1][16];
	const char *src[MAX_MOUNTS + 1];            /* host paths, borrowed for the start */
	char stage[MAX_MOUNTS + 1][STAGE_MAX + 16]; /* where the child mounts each for bwrap */
	int isdir[MAX_MOUNTS + 1];
	argv_list a;
	char links[4][PATH_MAX];
	char tmp_size[32];
	char envbuf[1024];
	measure_cgroup cg;
	watch w;
	pid_t pid;     /* bwrap; -1 when not started or reaped */
	int64_t start; /* monotonic ms at the fork */
} launch;

static launch *launch_new(void)
{
	launch *l = calloc(1, sizeof(*l));
	if (l)
		l->pid = -1;
	return l;
}

/* Kills and reaps what still runs, removes the cgroup, closes the trees. */
static void launch_free(launch *l)
{
	if (!l)
		return;
	if (l->pid > 0) {
		kill_tree(l->pid, &l->cg);
		waitpid(l->pid, NULL, 0);
	}
	measure_cgroup_destroy(&l->cg);
	for (int i = 0; i < l->ndir; i++)
		close(l->dir_fd[i]);
	free(l);
}

/* Builds the argv, opens the trees, makes the cgroup and forks the child
 * that becomes bwrap, with in_fd as its stdin (-1: /dev/null), out_fd as
 * its stdout and err_fd as its stderr (may be the same).  The caller closes
 * its copies of the child's ends after.  Returns when bwrap was executed
 * (l->pid set) or with a negative code when anything failed (nothing then
 * runs, l->pid is -1). */
static int launch_start(bwrap_sandbox *sb, launch *l, const measure_sandbox_cmd *cmd, int probe, int in_fd,
			int out_fd, int err_fd)
{
	int error = 0;
	int exec_pipe[2] = { -1, -1 };
	argv_list *a = &l->a;
	const measure_sandbox_limits *lim = &cmd->limits;

	if (!probe) {
		struct stat st;
		if (!cmd->workspace || cmd->workspace[0] != '/' || stat(cmd->workspace, &st) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			error = base_error_set(BASE_EINVALID, "sandbox: workspace %s is not an existing absolute directory",
					      cmd->workspace ? cmd->workspace : "(none)");
			goto done;
		}
	}
	if (!cmd->argv && !cmd->shell) {
		error = base_error_set(BASE_EINVALID, "sandbox: no command given");
		goto done;
	}
	if (cmd->nmounts > MAX_MOUNTS) {
		error = base_error_set(BASE_EINVALID, "sandbox: too many mounts (max %d)", MAX_MOUNTS);
		goto done;
	}

	arg(a, sb->bwrap);
	arg(a, "--unshare-all");
	/* whatever host uid a run gets, inside it is always the same identity,
	 * so nothing a benchmark sees differs between runs */
	arg(a, "--unshare-user");
	/* no nested namespaces: they would reach kernel code no seccomp
	 * filter of ours looks at, and let a process leave the limits of
	 * the user namespace it was given */
	arg(a, "--disable-userns");
	arg(a, "--uid");
	arg(a, "1000");
	arg(a, "--gid");
	arg(a, "1000");
	arg(a, "--die-with-parent");
	arg(a, "--new-session");
	arg(a, "--hostname");
	arg(a, "sandbox");
	arg(a, "--ro-bind");
	arg(a, "/usr");
	arg(a, "/usr");
	/* picked at start: one removed since (a package upgrade) is skipped,
	 * not a sandbox that no longer starts */
	for (int i = 0; i < sb->netc; i++) {
		arg(a, sb->etc_link[i] ? "--symlink" : "--ro-bind-try");
		arg(a, sb->etc_src[i]);
		arg(a, sb->etc_dst[i]);
	}
	add_root_links(a, l->links);
	arg(a, "--proc");
	arg(a, "/proc");
	arg(a, "--dev");
	arg(a, "/dev");
	snprintf(l->tmp_size, sizeof(l->tmp_size), "%llu", (unsigned long long)MEASURE_SANDBOX_TMP_BYTES);
	arg(a, "--size");
	arg(a, l->tmp_size);
	arg(a, "--tmpfs");
	arg(a, "/tmp");
	arg(a, "--dir");
	arg(a, MEASURE_SANDBOX_HOME);
	/* the trees are opened here, with perfbot's rights: the disk watch
	 * reads them, and they reach bwrap as add_tree says */
	if (probe) {
		arg(a, "--dir");
		arg(a, MEASURE_SANDBOX_WORKSPACE);
	} else {
		if ((l->dir_fd[l->ndir] = open(cmd->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
			error = base_error_set(BASE_EGENERIC, "sandbox: cannot open %s: %s", cmd->workspace, strerror(errno));
			goto done;
		}
		l->wfds[l->nw++] = l->dir_fd[l->ndir];
		l->src[l->ndir] = cmd->workspace;
		add_tree(a, sb, l->ndir, l->dir_fd[l->ndir], l->src[l->ndir], 1, MEASURE_SANDBOX_WORKSPACE,
			 l->fdnum[l->ndir], l->stage[l->ndir], &l->isdir[l->ndir]);
		l->ndir++;
	}
	for (size_t i = 0; i < cmd->nmounts; i++) {
		const measure_sandbox_mount *m = &cmd->mounts[i];
		if (!m->host_path || m->host_path[0] != '/' || !valid_sandbox_path(m->sandbox_path)) {
			error = base_error_set(BASE_EINVALID, "sandbox: invalid mount %s -> %s",
					      m->host_path ? m->host_path : "(null)",
					      m->sandbox_path ? m->sandbox_path : "(null)");
			goto done;
		}
		if ((l->dir_fd[l->ndir] = open(m->host_path, O_PATH | O_CLOEXEC)) < 0) {
			error = base_error_set(BASE_EGENERIC, "sandbox: cannot open %s: %s", m->host_path, strerror(errno));
			goto done;
		}
		if (m->writable)
			l->wfds[l->nw++] = l->dir_fd[l->ndir];
		l->src[l->ndir] = m->host_path;
		add_tree(a, sb, l->ndir, l->dir_fd[l->ndir], l->src[l->ndir], m->writable, m->sandbox_path,
			 l->fdnum[l->ndir], l->stage[l->ndir], &l->isdir[l->ndir]);
		l->ndir++;
	}
	arg(a, "--clearenv");
	/* --setenv NAME VALUE for each fixed variable: split "NAME=value" into
	 * copies kept in envbuf. */
	size_t envpos = 0;
	for (int i = 0; measure_sandbox_env[i]; i++) {
		const char *kv = measure_sandbox_env[i];
		const char *eq = strchr(kv, '=');
		size_t nl = (size_t)(eq - kv), vl = strlen(eq + 1);
		if (envpos + nl + vl + 2 > sizeof(l->envbuf)) {
			error = base_error_set(BASE_EGENERIC, "sandbox: environment too large");
			goto done;
		}
		char *name = l->envbuf + envpos;
		memcpy(name, kv, nl);
		name[nl] = '\0';
		envpos += nl + 1;
		char *val = l->envbuf + envpos;
		memcpy(val, eq + 1, vl + 1);
		envpos += vl + 1;
		arg(a, "--setenv");
		arg(a, name);
		arg(a, val);
	}
	arg(a, "--chdir");
	arg(a, MEASURE_SANDBOX_WORKSPACE);
	arg(a, "--");
	if (cmd->argv) {
		for (size_t i = 0; cmd->argv[i]; i++)
			arg(a, cmd->argv[i]);
	} else {
		arg(a, "/bin/sh");
		arg(a, "-c");
		arg(a, cmd->shell);
	}
	if (a->overflow) {
		error = base_error_set(BASE_EINVALID, "sandbox: too many arguments (max %d)", MAX_ARGS);
		goto done;
	}

	if (pipe2(exec_pipe, O_CLOEXEC) < 0) {
		error = base_error_set(BASE_EGENERIC, "sandbox: pipe: %s", strerror(errno));
		goto done;
	}
	if ((error = measure_cgroup_create(&l->cg, sb->cgs, sb->opts.memory_bytes, sb->opts.pids)) < 0)
		goto done;

	/* the descriptors the child keeps past close_except, sorted */
	int keep[MAX_MOUNTS + 2], nkeep = 0;
	keep[nkeep++] = exec_pipe[1];
	for (int i = 0; i < l->ndir && sb->trees == TREES_FD; i++)
		keep[nkeep++] = l->dir_fd[i];
	for (int i = 1; i < nkeep; i++)
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}

	l->w = (watch){ .sb = sb, .cg = &l->cg, .wfds = l->wfds, .nwfds = l->nw, .free0 = UINT64_MAX,
			.size0_complete = 1 };
	if (sb->opts.cpu_s > 0)
		l->w.cpu_limit_ns = (uint64_t)(lim->cpu_s > sb->opts.cpu_s ? lim->cpu_s : sb->opts.cpu_s) * 1000000000u;
	if (l->nw > 0) {
		l->w.free0 = free_bytes(l->wfds[0]);
		if (sb->opts.disk_bytes)
			l->w.size0 = trees_bytes(l->wfds, l->nw, &l->w.size0_complete);
	}

	/* the fallback bound for closing inherited descriptors in the child */
	struct rlimit nofile;
	rlim_t fd_limit = 65536;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
		fd_limit = nofile.rlim_cur;
	l->start = base_mono_ms();
	pid_t parent = getpid();
	uid_t run_uid = (uid_t)(RUN_UID_BASE + atomic_fetch_add(&sb->next, 1) % RUN_UID_SPAN);
	int ndir = l->ndir;
	pid_t pid = fork();
	if (pid < 0) {
		error = base_error_set(BASE_EGENERIC, "sandbox: fork: %s", strerror(errno));
		goto done;
	}
	if (pid == 0) {
		/* child: async-signal-safe calls only */
		setpgid(0, 0);
		/* first of all, so that everything it starts is counted */
		int cerr = measure_cgroup_join(&l->cg);
		if (cerr)
			child_fail(exec_pipe[1], cerr);
		/* as root: the trees are mounted where bwrap, which resolves
		 * every source path as the run's uid, can reach them, in a
		 * mount namespace of this child's own */
		if (sb->trees == TREES_STAGED && ndir > 0) {
			if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
			    mount("tmpfs", sb->stage, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755") < 0)
				child_fail(exec_pipe[1], errno);
			for (int i = 0; i < ndir; i++) {
				int made = l->isdir[i] ? mkdir(l->stage[i], 0755)
						       : open(l->stage[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
				if (made < 0)
					child_fail(exec_pipe[1], errno);
				if (!l->isdir[i])
					close(made);
				if (mount(l->src[i], l->stage[i], NULL, MS_BIND | MS_REC, NULL) < 0)
					child_fail(exec_pipe[1], errno);
			}
		}
		int in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
		if (in < 0 || dup2(in, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
			child_fail(exec_pipe[1], errno);
		/* only 0, 1, 2, the trees bwrap mounts and the exec-error pipe
		 * (close-on-exec) stay */
		close_except(3, keep, nkeep, fd_limit);
		for (int i = 0; i < ndir && sb->trees == TREES_FD; i++)
			if (fcntl(l->dir_fd[i], F_SETFD, 0) < 0)
				child_fail(exec_pipe[1], errno);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (lim->cpu_s > 0)
			set_limit(RLIMIT_CPU, (rlim_t)lim->cpu_s);
		if (lim->memory_bytes > 0)
			set_limit(RLIMIT_AS, (rlim_t)lim->memory_bytes);
		if (lim->max_file_bytes > 0)
			set_limit(RLIMIT_FSIZE, (rlim_t)lim->max_file_bytes);
		if (lim->max_open_files > 0)
			set_limit(RLIMIT_NOFILE, (rlim_t)lim->max_open_files);
		set_limit(RLIMIT_CORE, 0);
		if (sb->drop) {
			if (setgroups(0, NULL) < 0 || setgid(sb->gid) < 0 || setuid(run_uid) < 0)
				child_fail(exec_pipe[1], errno);
		}
		/* after the uid change, which resets the parent-death signal;
		 * a parent already gone by now would never send it */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			child_fail(exec_pipe[1], errno);
		if (getppid() != parent)
			_exit(127);
		umask(002);
		if (lim->max_procs > 0)
			set_limit(RLIMIT_NPROC, (rlim_t)lim->max_procs);
		/* bwrap itself gets an empty environment: as the sandbox's
		 * pid 1 its /proc/1/environ is readable from inside */
		char *const no_env[] = { NULL };
		execve(sb->bwrap, (char *const *)a->v, no_env);
		child_fail(exec_pipe[1], errno);
	}
	setpgid(pid, pid);
	measure_cgroup_close_fds(&l->cg);
	close(exec_pipe[1]);
	exec_pipe[1] = -1;

	int exec_errno = 0;
	ssize_t en;
	do
		en = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
	while (en < 0 && errno == EINTR);
	if (en == (ssize_t)sizeof(exec_errno)) {
		waitpid(pid, NULL, 0);
		error = base_error_set(BASE_EGENERIC, "sandbox: cannot start %s: %s", sb->bwrap, strerror(exec_errno));
		goto done;
	}
	l->pid = pid;

done:
	for (int i = 0; i < 2; i++)
		if (exec_pipe[i] >= 0)
			close(exec_pipe[i]);
	return error;
}

/* bwrap reports its own setup failures as exit status 1 with "bwrap: ..."
 * on stderr (the command never ran): that line as an error, else 0. */
static int bwrap_setup_failure(const char *err)
{
	if (!err || strncmp(err, "bwrap: ", 7) != 0)
		return 0;
	char line[512];
	size_t l = strcspn(err, "\n");
	if (l >= sizeof(line))
		l = sizeof(line) - 1;
	memcpy(line, err, l);
	line[l] = '\0';
	return base_error_set(BASE_EGENERIC, "sandbox could not be set up: %s", line);
}

/* ---- run: to completion, output captured --------------------------------- */

static int bwrap_run_impl(bwrap_sandbox *sb, measure_sandbox_result *out, const measure_sandbox_cmd *cmd, int probe)
{
	int error = 0;
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	const measure_sandbox_limits *lim = &cmd->limits;
	size_t cap = lim->output_cap ? lim->output_cap : DEFAULT_OUTPUT_CAP;
	base_buf ob, eb;
	launch *l = launch_new();

	memset(out, 0, sizeof(*out));
	base_buf_init(&ob, cap + 128);
	base_buf_init(&eb, cap + 128);
	if (!l) {
		error = base_error_set(BASE_ENOMEM, "sandbox: out of memory");
		goto done;
	}
	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
		error = base_error_set(BASE_EGENERIC, "sandbox: pipe: %s", strerror(errno));
		goto done;
	}
	error = launch_start(sb, l, cmd, probe, -1, out_pipe[1], err_pipe[1]);
	close(out_pipe[1]);
	out_pipe[1] = -1;
	close(err_pipe[1]);
	err_pipe[1] = -1;
	if (error < 0)
		goto done;

	pid_t pid = l->pid;
	int64_t start = l->start;
	size_t oseen = 0, eseen = 0;
	int oopen = 1, eopen = 1, killed = 0;
	int64_t deadline = lim->timeout_s > 0 ? start + (int64_t)lim->timeout_s * 1000 : 0;
	int64_t kill_deadline = 0, next_watch = start + WATCH_MS;
	while (oopen || eopen) {
		int64_t now = base_mono_ms();
		if (!killed) {
			int why = 0;
			uint64_t value = 0;
			measure_sandbox_limit broken = MEASURE_SANDBOX_LIMIT_NONE;
			if (deadline && now >= deadline)
				why = 1;
			else if (cmd->cancel && *cmd->cancel)
				why = 2;
			else if (now >= next_watch) {
				next_watch = now + WATCH_MS;
				if ((broken = watch_check(&l->w, now, &value)) != MEASURE_SANDBOX_LIMIT_NONE)
					why = 3;
			}
			if (why) {
				kill_tree(pid, &l->cg);
				killed = 1;
				kill_deadline = now + 5000;
				if (why == 1)
					out->timed_out = 1;
				else if (why == 2)
					out->cancelled = 1;
				else {
					out->limit = broken;
					out->limit_value = value;
				}
			}
		} else if (now >= kill_deadline) {
			break; /* whatever still holds the pipes is not ours to wait for */
		}
		int timeout = 100;
		if (!killed && deadline && deadline - now < timeout)
			timeout = (int)(deadline - now) + 1;
		struct pollfd pfd[2];
		int n = 0;
		if (oopen)
			pfd[n++] = (struct pollfd){ .fd = out_pipe[0], .events = POLLIN };
		if (eopen)
			pfd[n++] = (struct pollfd){ .fd = err_pipe[0], .events = POLLIN };
		int r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR) {
			kill_tree(pid, &l->cg);
			error = base_error_set(BASE_EGENERIC, "sandbox: poll: %s", strerror(errno));
			break;
		}
		for (int i = 0; r > 0 && i < n; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (pfd[i].fd == out_pipe[0])
				oopen = drain(out_pipe[0], &ob, cap, &oseen);
			else
				eopen = drain(err_pipe[0], &eb, cap, &eseen);
		}
	}

	/* The pipes are closed: bwrap is exiting or gone.  Wait with the same
	 * deadline so a stuck tree is still killed. */
	int status = 0;
	for (;;) {
		pid_t wp = waitpid(pid, &status, WNOHANG);
		if (wp == pid)
			break;
		if (wp < 0 && errno != EINTR) {
			status = 0;
			break;
		}
		int64_t now = base_mono_ms();
		if (!killed && ((deadline && now >= deadline) || (cmd->cancel && *cmd->cancel))) {
			kill_tree(pid, &l->cg);
			killed = 1;
			if (deadline && now >= deadline)
				out->timed_out = 1;
			else
				out->cancelled = 1;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	l->pid = -1;
	out->wall_ms = base_mono_ms() - start;
	if (WIFEXITED(status)) {
		out->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		out->exit_code = -1;
		out->term_signal = WTERMSIG(status);
	}
	/* a limit the kernel enforced between two checks (an OOM kill, a
	 * refused fork) and that made the command fail */
	if (!killed && (out->exit_code != 0 || out->term_signal)) {
		uint64_t value = 0;
		measure_sandbox_limit broken = watch_check(&l->w, base_mono_ms(), &value);
		if (broken == MEASURE_SANDBOX_LIMIT_MEMORY || broken == MEASURE_SANDBOX_LIMIT_PIDS) {
			out->limit = broken;
			out->limit_value = value;
		}
	}
	finish_stream(&ob, cap, oseen, &out->out, &out->out_len, &out->out_truncated);
	finish_stream(&eb, cap, eseen, &out->err, &out->err_len, &out->err_truncated);
	if (!out->out || !out->err) {
		error = base_error_set(BASE_ENOMEM, "sandbox: out of memory");
		goto done;
	}
	if (!killed && out->exit_code == 1 && (error = bwrap_setup_failure(out->err)) < 0)
		goto done;

done:
	launch_free(l);
	for (int i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
	}
	base_buf_dispose(&ob);
	base_buf_dispose(&eb);
	return error;
}

static int bwrap_run(measure_sandbox *base, measure_sandbox_result *out, const measure_sandbox_cmd *cmd)
{
	return bwrap_run_impl((bwrap_sandbox *)base, out, cmd, 0);
}

/* ---- spawn: a long-lived process ------------------------------------------ */

/* The proc's thread forks bwrap (the parent-death signal is tied to the
 * thread that forked, so a proc made by a short-lived thread would die with
 * it), then watches: every WATCH_MS, or at once when kill() wakes it, it
 * checks the cancel flag, the wall clock and the whole-sandbox limits and
 * reaps bwrap.  The mutex guards the state below and the pid (kill and
 * reap never race on a recycled pid). */
typedef struct bwrap_proc {
	measure_sandbox_proc base;
	bwrap_sandbox *sb;
	launch *l;                      /* owned */
	const measure_sandbox_cmd *cmd; /* borrowed until started */
	const atomic_int *cancel;       /* borrowed, may be NULL */
	int timeout_s;
	int child_in, child_out;        /* the child's ends, closed once started */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* started, kill_req, ended */
	int started;                    /* 1 running, -1 failed */
	char start_error[600];
	int start_code;
	int kill_req;
	int ended;
	measure_sandbox_result status;  /* once ended; no output */
} bwrap_proc;

static void *proc_main(void *arg)
{
	bwrap_proc *p = arg;
	/* the watch loop's own signals: none (the owner's threads handle them) */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	int error = launch_start(p->sb, p->l, p->cmd, 0, p->child_in, p->child_out, p->child_out);
	pthread_mutex_lock(&p->lock);
	p->started = error < 0 ? -1 : 1;
	if (error < 0) {
		p->start_code = error;
		snprintf(p->start_error, sizeof(p->start_error), "%s", base_error_last());
	}
	p->cmd = NULL;
	pthread_cond_broadcast(&p->cond);
	if (error < 0) {
		pthread_mutex_unlock(&p->lock);
		return NULL;
	}
	int64_t deadline = p->timeout_s > 0 ? p->l->start + (int64_t)p->timeout_s * 1000 : 0;
	int64_t next_watch = p->l->start + WATCH_MS;
	int killed = 0;
	for (;;) {
		int64_t now = base_mono_ms();
		int status = 0;
		pid_t wp = waitpid(p->l->pid, &status, WNOHANG);
		if (wp == p->l->pid || (wp < 0 && errno != EINTR)) {
			p->l->pid = -1;
			p->status.wall_ms = now - p->l->start;
			if (wp > 0 && WIFEXITED(status))
				p->status.exit_code = WEXITSTATUS(status);
			else if (wp > 0 && WIFSIGNALED(status)) {
				p->status.exit_code = -1;
				p->status.term_signal = WTERMSIG(status);
			}
			/* whatever its namespace's init left behind */
			if (p->l->cg.cgs)
				measure_cgroup_kill(&p->l->cg);
			if (!killed && (p->status.exit_code != 0 || p->status.term_signal)) {
				uint64_t value = 0;
				measure_sandbox_limit broken = watch_check(&p->l->w, now, &value);
				if (broken == MEASURE_SANDBOX_LIMIT_MEMORY || broken == MEASURE_SANDBOX_LIMIT_PIDS) {
					p->status.limit = broken;
					p->status.limit_value = value;
				}
			}
			p->ended = 1;
			pthread_cond_broadcast(&p->cond);
			break;
		}
		if (!killed) {
			int why = 0;
			uint64_t value = 0;
			measure_sandbox_limit broken = MEASURE_SANDBOX_LIMIT_NONE;
			if (p->kill_req)
				why = 4;
			else if (deadline && now >= deadline)
				why = 1;
			else if (p->cancel && *p->cancel)
				why = 2;
			else if (now >= next_watch) {
				next_watch = now + WATCH_MS;
				if ((broken = watch_check(&p->l->w, now, &value)) != MEASURE_SANDBOX_LIMIT_NONE)
					why = 3;
			}
			if (why) {
				kill_tree(p->l->pid, &p->l->cg);
				killed = 1;
				if (why == 1)
					p->status.timed_out = 1;
				else if (why == 2)
					p->status.cancelled = 1;
				else if (why == 3) {
					p->status.limit = broken;
					p->status.limit_value = value;
				}
			}
		}
		/* a short sleep after a kill (the tree goes at once), the watch
		 * period otherwise, woken by kill() */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		long wait_ms = killed ? 10 : 50;
		ts.tv_nsec += wait_ms * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!p->kill_req || killed)
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void proc_kill(measure_sandbox_proc *base)
{
	bwrap_proc *p = (bwrap_proc *)base;
	pthread_mutex_lock(&p->lock);
	p->kill_req = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static int proc_wait(measure_sandbox_proc *base, int timeout_ms, measure_sandbox_result *status)
{
	bwrap_proc *p = (bwrap_proc *)base;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t ns = (int64_t)ts.tv_nsec + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000LL;
	ts.tv_sec += (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	pthread_mutex_lock(&p->lock);
	while (!p->ended && timeout_ms != 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&p->cond, &p->lock);
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT)
			break;
	}
	int ended = p->ended;
	if (ended && status)
		*status = p->status;
	pthread_mutex_unlock(&p->lock);
	return ended;
}

static void proc_free(measure_sandbox_proc *base)
{
	bwrap_proc *p = (bwrap_proc *)base;
	if (!p)
		return;
	if (p->started != 0) {
		proc_kill(base);
		pthread_join(p->thread, NULL);
	}
	launch_free(p->l);
	if (p->base.in_fd >= 0)
		close(p->base.in_fd);
	if (p->base.out_fd >= 0)
		close(p->base.out_fd);
	if (p->child_in >= 0)
		close(p->child_in);
	if (p->child_out >= 0)
		close(p->child_out);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int bwrap_spawn(measure_sandbox *base, measure_sandbox_proc **out, const measure_sandbox_cmd *cmd)
{
	bwrap_sandbox *sb = (bwrap_sandbox *)base;
	*out = NULL;
	bwrap_proc *p = calloc(1, sizeof(*p));
	if (!p)
		return base_error_set(BASE_ENOMEM, "sandbox: out of memory");
	p->base.kill = proc_kill;
	p->base.wait = proc_wait;
	p->base.free = proc_free;
	p->base.in_fd = p->base.out_fd = p->child_in = p->child_out = -1;
	p->sb = sb;
	p->cmd = cmd;
	p->cancel = cmd->cancel;
	p->timeout_s = cmd->limits.timeout_s;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	int error = 0;
	int sv[2] = { -1, -1 }, op[2] = { -1, -1 };
	if (!(p->l = launch_new())) {
		error = base_error_set(BASE_ENOMEM, "sandbox: out of memory");
		goto done;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(op, O_CLOEXEC) < 0) {
		error = base_error_set(BASE_EGENERIC, "sandbox: pipe: %s", strerror(errno));
		goto done;
	}
	p->base.in_fd = sv[0];
	p->child_in = sv[1];
	p->base.out_fd = op[0];
	p->child_out = op[1];
	sv[0] = sv[1] = op[0] = op[1] = -1;
	/* the child's stdin reads only; the owner's end writes only */
	shutdown(p->child_in, SHUT_WR);
	shutdown(p->base.in_fd, SHUT_RD);
	if (fcntl(p->base.in_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(p->base.out_fd, F_SETFL, O_NONBLOCK) < 0) {
		error = base_error_set(BASE_EGENERIC, "sandbox: fcntl: %s", strerror(errno));
		goto done;
	}
	if (pthread_create(&p->thread, NULL, proc_main, p) != 0) {
		error = base_error_set(BASE_EGENERIC, "sandbox: cannot start the process's watch thread");
		goto done;
	}
	pthread_mutex_lock(&p->lock);
	while (p->started == 0)
		pthread_cond_wait(&p->cond, &p->lock);
	int started = p->started;
	pthread_mutex_unlock(&p->lock);
	if (started < 0) {
		pthread_join(p->thread, NULL);
		p->started = 0;
		error = base_error_set(p->start_code, "%s", p->start_error);
		goto done;
	}
	close(p->child_in);
	close(p->child_out);
	p->child_in = p->child_out = -1;
	*out = &p->base;
	return 0;
done:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (op[i] >= 0)
			close(op[i]);
	}
	proc_free(&p->base);
	return error;
}

/* ---- prepare_dir: hand the tree to the run uids' group ------------------- */

/* Adds group read and write (and search / execute where the owner has x). */
static int group_writable(int dirfd, const char *name, const struct stat *st)
{
	mode_t m = st->st_mode & 07777;
	mode_t want = m | S_IRGRP | S_IWGRP | ((m & S_IXUSR) ? S_IXGRP : 0);
	if (want != m && fchmodat(dirfd, name, want, 0) < 0)
		return errno;
	return 0;
}

/* lchown every entry under dirfd (an open directory), depth-first, and make
 * files and folders group-writable (links are left as they are). */
static int chown_tree(int dirfd, uid_t uid, gid_t gid, int depth)
{
	if (depth > 256) {
		close(dirfd);
		return ELOOP;
	}
	DIR *d = fdopendir(dirfd);
	if (!d) {
		int e = errno;
		close(dirfd);
		return e;
	}
	int err = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && !err) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fchownat(dirfd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			err = errno;
			break;
		}
		struct stat st;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			err = errno;
			break;
		}
		if ((S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) && (err = group_writable(dirfd, e->d_name, &st)) != 0)
			break;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			err = sub < 0 ? errno : chown_tree(sub, uid, gid, depth + 1);
		}
	}
	closedir(d);
	return err;
}

static int bwrap_prepare_dir(measure_sandbox *base, const char *host_path)
{
	bwrap_sandbox *sb = (bwrap_sandbox *)base;
	char path[PATH_MAX];
	if (!realpath(host_path, path))
		return base_error_set(BASE_ENOTFOUND, "sandbox: %s: %s", host_path, strerror(errno));
	if (!sb->drop)
		return 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = fd < 0 ? errno : 0;
	struct stat top;
	if (!err && fchown(fd, sb->uid, sb->gid) < 0)
		err = errno;
	if (!err && fstat(fd, &top) == 0 && fchmod(fd, (top.st_mode & 07777) | S_IRGRP | S_IWGRP | S_IXGRP) < 0)
		err = errno;
	if (!err)
		err = chown_tree(fd, sb->uid, sb->gid, 0);
	else if (fd >= 0)
		close(fd);
	if (err)
		return base_error_set(BASE_EGENERIC, "sandbox: cannot hand %s to uid %u: %s", path, (unsigned)sb->uid,
				     strerror(err));
	/* Staged, the ancestors are left as they are: the child mounts the tree
	 * while still root, and bwrap never resolves its path.  Otherwise
	 * bwrap resolves it as the run's uid: every ancestor needs search (x)
	 * permission for others.  Listing (r) is not added. */
	if (sb->trees != TREES_PATH)
		return 0;
	for (char *slash = strrchr(path, '/'); slash && slash != path; slash = strrchr(path, '/')) {
		*slash = '\0';
		struct stat st;
		if (stat(path, &st) < 0)
			return base_error_set(BASE_EGENERIC, "sandbox: %s: %s", path, strerror(errno));
		if (!(st.st_mode & S_IXOTH) && chmod(path, (st.st_mode & 07777) | S_IXOTH) < 0)
			return base_error_set(BASE_EGENERIC, "sandbox: %s is not searchable by uid %u: %s", path,
					     (unsigned)sb->uid, strerror(errno));
	}
	return 0;
}

static void bwrap_free(measure_sandbox *base)
{
	bwrap_sandbox *sb = (bwrap_sandbox *)base;
	if (!sb)
		return;
	for (int i = 0; i < sb->netc; i++) {
		free(sb->etc_src[i]);
		free(sb->etc_dst[i]);
	}
	measure_cgroups_free(sb->cgs);
	free(sb->bwrap);
	free(sb);
}


/* Refuses a run uid range that overlaps a subordinate id range of `path`
 * ("name:start:count" lines): whoever owns that range could map the runs'
 * ids into a user namespace of their own and signal or trace them. */
static int check_subids(const char *path, const char *what)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0
				       : base_error_set(BASE_EGENERIC, "sandbox: cannot read %s: %s", path, strerror(errno));
	char line[512];
	int error = 0, lineno = 0;
	while (!error && fgets(line, sizeof(line), f)) {
		lineno++;
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c1 || !c2 || line[0] == '#')
			continue;
		char *end1, *end2;
		errno = 0;
		unsigned long long first = strtoull(c1 + 1, &end1, 10);
		unsigned long long count = strtoull(c2 + 1, &end2, 10);
		if (errno || end1 != c2 || end2 == c2 + 1 || count == 0)
			continue;
		if (first < (unsigned long long)RUN_UID_BASE + RUN_UID_SPAN && first + count > RUN_UID_BASE)
			error = base_error_set(BASE_EINVALID,
					      "sandbox: %s line %d (%.*s) gives %ss %llu..%llu to a user, which overlaps "
					      "the sandbox's %ss %u..%u; move that range (e.g. above %u) so that no user "
					      "can enter the sandbox",
					      path, lineno, (int)(c1 - line), line, what, first, first + count - 1, what,
					      RUN_UID_BASE, RUN_UID_BASE + RUN_UID_SPAN - 1, RUN_UID_BASE + RUN_UID_SPAN);
	}
	fclose(f);
	return error;
}

static int etc_wanted(const char *name)
{
	for (int i = 0; etc_patterns[i]; i++)
		if (fnmatch(etc_patterns[i], name, 0) == 0)
			return 1;
	return 0;
}

/* Picks the /etc entries the sandbox sees (etc_patterns, world-readable
 * ones only: files o+r, directories o+rx; links are recreated as links). */
static int find_etc(bwrap_sandbox *sb)
{
	DIR *d = opendir("/etc");
	if (!d)
		return 0;
	struct dirent *e;
	int error = 0;
	while (!error && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !etc_wanted(e->d_name))
			continue;
		if (sb->netc >= MAX_ETC)
			break;
		char path[PATH_MAX], target[PATH_MAX];
		struct stat st;
		if ((size_t)snprintf(path, sizeof(path), "/etc/%s", e->d_name) >= sizeof(path) ||
		    lstat(path, &st) < 0)
			continue;
		int link = S_ISLNK(st.st_mode);
		if (link) {
			ssize_t n = readlink(path, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
		} else {
			mode_t need = S_ISDIR(st.st_mode) ? (S_IROTH | S_IXOTH) : S_IROTH;
			if ((st.st_mode & need) != need || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
				continue;
		}
		sb->etc_src[sb->netc] = strdup(link ? target : path);
		sb->etc_dst[sb->netc] = strdup(path);
		sb->etc_link[sb->netc] = link;
		if (!sb->etc_src[sb->netc] || !sb->etc_dst[sb->netc]) {
			free(sb->etc_src[sb->netc]);
			free(sb->etc_dst[sb->netc]);
			error = base_error_set(BASE_ENOMEM, "out of memory");
			break;
		}
		sb->netc++;
	}
	closedir(d);
	return error;
}

/* Whether a child of perfbot (root) can make a mount namespace of its own
 * and mount on `stage`, as every run's child does with TREES_STAGED. */
static int can_stage(const char *stage)
{
	if (!stage || strlen(stage) >= STAGE_MAX)
		return 0;
	pid_t pid = fork();
	if (pid < 0)
		return 0;
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755") < 0)
			_exit(1);
		_exit(0);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void fmt_limit(char *buf, size_t cap, uint64_t v, int bytes)
{
	if (!v)
		snprintf(buf, cap, "none");
	else if (bytes && v % (1ULL << 30) == 0)
		snprintf(buf, cap, "%lluGiB", (unsigned long long)(v >> 30));
	else if (bytes && v % (1ULL << 20) == 0)
		snprintf(buf, cap, "%lluMiB", (unsigned long long)(v >> 20));
	else
		snprintf(buf, cap, "%llu", (unsigned long long)v);
}

/* One line at start saying which mechanism holds each whole-sandbox limit. */
static void log_limits(const bwrap_sandbox *sb)
{
	char mem[32], pids[32], cpu[32], disk[32], reserve[32];
	fmt_limit(mem, sizeof(mem), sb->opts.memory_bytes, 1);
	fmt_limit(pids, sizeof(pids), (uint64_t)(sb->opts.pids > 0 ? sb->opts.pids : 0), 0);
	fmt_limit(cpu, sizeof(cpu), (uint64_t)(sb->opts.cpu_s > 0 ? sb->opts.cpu_s : 0), 0);
	fmt_limit(disk, sizeof(disk), sb->opts.disk_bytes, 1);
	fmt_limit(reserve, sizeof(reserve), sb->opts.disk_reserve_bytes, 1);
	int cg = measure_cgroups_kind(sb->cgs) != MEASURE_CGROUP_NONE;
	base_log(cg ? BASE_LOG_INFO : BASE_LOG_WARN, "sandbox limits", "mechanism",
		cg ? measure_cgroups_describe(sb->cgs)
		   : "rlimits only (no writable cgroup: memory and processes are bounded per process and per uid, "
		     "not for the whole sandbox)",
		"memory", mem, "pids", pids, "cpu_seconds", cpu, "disk", disk, "disk_reserve", reserve, "disk_mechanism",
		"watchdog (free space and growth of the work tree every 200 ms) and RLIMIT_FSIZE per file", NULL);
}

int measure_sandbox_bwrap_new(measure_sandbox **out, const measure_sandbox_bwrap_options *opts)
{
	*out = NULL;
	const char *name = opts && opts->bwrap_path ? opts->bwrap_path : "bwrap";
	bwrap_sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return base_error_set(BASE_ENOMEM, "out of memory");
	sb->base.name = "bwrap";
	sb->base.run = bwrap_run;
	sb->base.prepare_dir = bwrap_prepare_dir;
	sb->base.free = bwrap_free;
	sb->base.spawn = bwrap_spawn;
	measure_sandbox_bwrap_options defaults = MEASURE_SANDBOX_BWRAP_OPTIONS_INIT;
	sb->opts = opts ? *opts : defaults;
	sb->drop = geteuid() == 0;
	sb->uid = opts && opts->uid ? opts->uid : DEFAULT_UID;
	sb->gid = opts && opts->gid ? opts->gid : DEFAULT_UID;
	sb->bwrap = base_find_in_path(name);
	if (!sb->bwrap) {
		bwrap_free(&sb->base);
		return base_error_set(BASE_EGENERIC,
				     "sandbox: %s not found; install bubblewrap (perfbot never runs code unsandboxed)",
				     name);
	}
	int error = 0;
	if (sb->drop &&
	    ((error = check_subids(sb->opts.subuid_path ? sb->opts.subuid_path : "/etc/subuid", "uid")) < 0 ||
	     (error = check_subids(sb->opts.subgid_path ? sb->opts.subgid_path : "/etc/subgid", "gid")) < 0)) {
		bwrap_free(&sb->base);
		return error;
	}
	static const char *const stages[] = { "/mnt", "/media", "/srv", NULL };
	sb->stage = sb->opts.stage_dir;
	for (int i = 0; !sb->stage && stages[i]; i++) {
		struct stat st;
		if (lstat(stages[i], &st) == 0 && S_ISDIR(st.st_mode))
			sb->stage = stages[i];
	}
	sb->trees = !sb->drop ? TREES_FD : can_stage(sb->stage) ? TREES_STAGED : TREES_PATH;
	if (sb->trees == TREES_PATH)
		base_log(BASE_LOG_WARN, "sandbox: no private mount namespace (CAP_SYS_ADMIN) or empty /mnt to mount work trees on; "
				      "the ancestors of DATA_DIR are made searchable (o+x) for the sandbox's uid",
			NULL);
	const char *cg_root = sb->opts.cgroup_root;
	if ((error = find_etc(sb)) < 0 ||
	    (error = measure_cgroups_probe(&sb->cgs, cg_root && !*cg_root ? "/nonexistent" : cg_root)) < 0) {
		bwrap_free(&sb->base);
		return error;
	}
	sb->opts.cgroup_root = sb->opts.subuid_path = sb->opts.subgid_path = sb->opts.stage_dir = NULL;
	sb->base.limits_mechanism =
		measure_cgroups_kind(sb->cgs) != MEASURE_CGROUP_NONE ? measure_cgroups_describe(sb->cgs) : "rlimits";

	measure_sandbox_cmd probe = MEASURE_SANDBOX_CMD_INIT;
	const char *const argv[] = { "/bin/true", NULL };
	probe.argv = argv;
	probe.limits.timeout_s = 30;
	measure_sandbox_result r;
	error = bwrap_run_impl(sb, &r, &probe, 1);
	if (error == 0 && !measure_sandbox_result_ok(&r)) {
		char *tail = measure_sandbox_result_tail(&r, 300);
		error = base_error_set(BASE_EGENERIC, "sandbox: probe `bwrap ... true` failed (exit %d): %s", r.exit_code,
				      tail ? tail : "");
		free(tail);
	} else if (error < 0) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", base_error_last());
		error = base_error_set(error, "sandbox: bwrap probe failed: %s", msg);
	}
	measure_sandbox_result_dispose(&r);
	if (error < 0) {
		bwrap_free(&sb->base);
		return error;
	}
	log_limits(sb);
	*out = &sb->base;
	return 0;
}
