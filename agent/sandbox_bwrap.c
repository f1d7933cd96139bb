/* The bubblewrap sandbox backend.
 *
 * Each run forks a child that puts itself in a new process group, closes
 * every descriptor but stdin (/dev/null), stdout and stderr (bwrap hands
 * whatever it inherits to the command: perfbot's sockets to GitHub, its
 * database and key files would be reachable), sets the rlimits, drops to an
 * unprivileged host uid when perfbot is root (RLIMIT_NPROC does not apply to
 * root, and a fork bomb must hit it), then asks for SIGKILL when its parent
 * thread dies (after the drop: a credential change clears that request) and
 * execs bwrap with: read-only /usr and /etc, the /lib /lib64 /bin /sbin
 * symlinks, a private /proc, /dev and a /tmp tmpfs of AGENT_SANDBOX_TMP_BYTES
 * (a tmpfs is host memory that no rlimit counts), the work tree at
 * /workspace, every namespace unshared (no network), --die-with-parent,
 * --new-session and a cleared environment.  Nothing else of the host is
 * mounted, so DATA_DIR, keys and perfbot's environment are out of reach.
 *
 * The parent drains stdout/stderr into capped buffers (reading on after the
 * cap so the child never blocks), and on timeout or cancellation kills the
 * process group: bwrap dies, its pid-namespace init dies with it
 * (--die-with-parent) and the kernel kills everything left in the namespace.
 *
 * Between fork and exec the child calls only async-signal-safe functions;
 * the argv is built before the fork.  No state is shared between runs. */
#include "agent/sandbox.h"
#include "app/clock.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app/buf.h"
#include "app/error.h"

#define DEFAULT_UID 65534
/* Each run gets its own host uid from this range, so that RLIMIT_NPROC (a
 * per-uid count) bounds every sandbox on its own instead of all concurrent
 * sandboxes together.  All of them share the group of the prepared trees,
 * which are group-writable, and run with umask 002 so that what one run
 * writes the next can change. */
#define RUN_UID_BASE 200000u
#define RUN_UID_SPAN 4096u
#define DEFAULT_OUTPUT_CAP (1u << 20)
#define MAX_ARGS 256

typedef struct bwrap_sandbox {
	agent_sandbox base;
	char *bwrap;       /* absolute path of the binary */
	int drop;          /* running as root: drop to uid/gid */
	uid_t uid;         /* owner of prepared trees */
	gid_t gid;         /* group of prepared trees and of every run */
	atomic_uint next;  /* picks each run's uid */
} bwrap_sandbox;

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

/* Closes every descriptor from `from` on except `keep`, in the child
 * between fork and exec (async-signal-safe).  close_range(2) (Linux 5.9)
 * does it in one call; otherwise each number below `limit` (the soft
 * RLIMIT_NOFILE read before the fork) is closed. */
static void close_from(int from, int keep, rlim_t limit)
{
#ifdef SYS_close_range
	int ok = 1;
	if (keep > from)
		ok = syscall(SYS_close_range, (unsigned)from, (unsigned)keep - 1, 0u) == 0;
	if (ok && syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0)
		return;
#endif
	for (rlim_t fd = (rlim_t)from; fd < limit && fd <= (rlim_t)INT_MAX; fd++)
		if ((int)fd != keep)
			close((int)fd);
}

static void child_fail(int fd, int err)
{
	ssize_t w = write(fd, &err, sizeof(err));
	(void)w;
	_exit(127);
}

/* Reads what is available from fd into b; past the cap, counts and drops.
 * Returns 0 on EOF, 1 when more may come. */
static int drain(int fd, app_buf *b, size_t cap, size_t *seen)
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
		app_buf_put(b, chunk, keep);
	*seen += (size_t)n;
	return 1;
}

static void finish_stream(app_buf *b, size_t cap, size_t seen, char **out, size_t *len, int *truncated)
{
	if (seen > cap) {
		*truncated = 1;
		app_buf_printf(b, "\n[output truncated at %zu bytes]\n", cap);
	}
	*len = b->len;
	*out = app_buf_detach(b);
}

static int bwrap_run_impl(bwrap_sandbox *sb, agent_sandbox_result *out, const agent_sandbox_cmd *cmd, int probe)
{
	int error = 0;
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, exec_pipe[2] = { -1, -1 };
	pid_t pid = -1;
	argv_list a = { .n = 0 };
	char links[4][PATH_MAX];
	const agent_sandbox_limits *lim = &cmd->limits;
	size_t cap = lim->output_cap ? lim->output_cap : DEFAULT_OUTPUT_CAP;
	app_buf ob, eb;

	memset(out, 0, sizeof(*out));
	app_buf_init(&ob, cap + 128);
	app_buf_init(&eb, cap + 128);

	if (!probe) {
		struct stat st;
		if (!cmd->workspace || cmd->workspace[0] != '/' || stat(cmd->workspace, &st) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			error = app_error_set(APP_EINVALID, "sandbox: workspace %s is not an existing absolute directory",
					      cmd->workspace ? cmd->workspace : "(none)");
			goto done;
		}
	}
	if (!cmd->argv && !cmd->shell) {
		error = app_error_set(APP_EINVALID, "sandbox: no command given");
		goto done;
	}

	arg(&a, sb->bwrap);
	arg(&a, "--unshare-all");
	/* whatever host uid a run gets, inside it is always the same identity,
	 * so nothing a benchmark sees differs between runs */
	arg(&a, "--unshare-user");
	arg(&a, "--uid");
	arg(&a, "1000");
	arg(&a, "--gid");
	arg(&a, "1000");
	arg(&a, "--die-with-parent");
	arg(&a, "--new-session");
	arg(&a, "--hostname");
	arg(&a, "sandbox");
	arg(&a, "--ro-bind");
	arg(&a, "/usr");
	arg(&a, "/usr");
	arg(&a, "--ro-bind");
	arg(&a, "/etc");
	arg(&a, "/etc");
	add_root_links(&a, links);
	arg(&a, "--proc");
	arg(&a, "/proc");
	arg(&a, "--dev");
	arg(&a, "/dev");
	char tmp_size[32];
	snprintf(tmp_size, sizeof(tmp_size), "%llu", (unsigned long long)AGENT_SANDBOX_TMP_BYTES);
	arg(&a, "--size");
	arg(&a, tmp_size);
	arg(&a, "--tmpfs");
	arg(&a, "/tmp");
	if (probe) {
		arg(&a, "--dir");
		arg(&a, AGENT_SANDBOX_WORKSPACE);
	} else {
		arg(&a, "--bind");
		arg(&a, cmd->workspace);
		arg(&a, AGENT_SANDBOX_WORKSPACE);
	}
	for (size_t i = 0; i < cmd->nmounts; i++) {
		const agent_sandbox_mount *m = &cmd->mounts[i];
		if (!m->host_path || m->host_path[0] != '/' || !valid_sandbox_path(m->sandbox_path)) {
			error = app_error_set(APP_EINVALID, "sandbox: invalid mount %s -> %s",
					      m->host_path ? m->host_path : "(null)",
					      m->sandbox_path ? m->sandbox_path : "(null)");
			goto done;
		}
		arg(&a, m->writable ? "--bind" : "--ro-bind");
		arg(&a, m->host_path);
		arg(&a, m->sandbox_path);
	}
	arg(&a, "--clearenv");
	/* --setenv NAME VALUE for each fixed variable: split "NAME=value" into
	 * static copies kept in envbuf. */
	char envbuf[1024];
	size_t envpos = 0;
	for (int i = 0; agent_sandbox_env[i]; i++) {
		const char *kv = agent_sandbox_env[i];
		const char *eq = strchr(kv, '=');
		size_t nl = (size_t)(eq - kv), vl = strlen(eq + 1);
		if (envpos + nl + vl + 2 > sizeof(envbuf)) {
			error = app_error_set(APP_EGENERIC, "sandbox: environment too large");
			goto done;
		}
		char *name = envbuf + envpos;
		memcpy(name, kv, nl);
		name[nl] = '\0';
		envpos += nl + 1;
		char *val = envbuf + envpos;
		memcpy(val, eq + 1, vl + 1);
		envpos += vl + 1;
		arg(&a, "--setenv");
		arg(&a, name);
		arg(&a, val);
	}
	arg(&a, "--chdir");
	arg(&a, AGENT_SANDBOX_WORKSPACE);
	arg(&a, "--");
	if (cmd->argv) {
		for (size_t i = 0; cmd->argv[i]; i++)
			arg(&a, cmd->argv[i]);
	} else {
		arg(&a, "/bin/sh");
		arg(&a, "-c");
		arg(&a, cmd->shell);
	}
	if (a.overflow) {
		error = app_error_set(APP_EINVALID, "sandbox: too many arguments (max %d)", MAX_ARGS);
		goto done;
	}

	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 || pipe2(exec_pipe, O_CLOEXEC) < 0) {
		error = app_error_set(APP_EGENERIC, "sandbox: pipe: %s", strerror(errno));
		goto done;
	}

	/* the fallback bound for closing inherited descriptors in the child */
	struct rlimit nofile;
	rlim_t fd_limit = 65536;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
		fd_limit = nofile.rlim_cur;
	int64_t start = app_mono_ms();
	pid_t parent = getpid();
	uid_t run_uid = (uid_t)(RUN_UID_BASE + atomic_fetch_add(&sb->next, 1) % RUN_UID_SPAN);
	pid = fork();
	if (pid < 0) {
		error = app_error_set(APP_EGENERIC, "sandbox: fork: %s", strerror(errno));
		goto done;
	}
	if (pid == 0) {
		/* child: async-signal-safe calls only */
		setpgid(0, 0);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_pipe[1], 1) < 0 || dup2(err_pipe[1], 2) < 0)
			child_fail(exec_pipe[1], errno);
		/* only 0, 1, 2 and the exec-error pipe (close-on-exec) stay */
		close_from(3, exec_pipe[1], fd_limit);
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
		execve(sb->bwrap, (char *const *)a.v, no_env);
		child_fail(exec_pipe[1], errno);
	}
	setpgid(pid, pid);
	close(out_pipe[1]);
	out_pipe[1] = -1;
	close(err_pipe[1]);
	err_pipe[1] = -1;
	close(exec_pipe[1]);
	exec_pipe[1] = -1;

	int exec_errno = 0;
	ssize_t en;
	do
		en = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
	while (en < 0 && errno == EINTR);
	if (en == (ssize_t)sizeof(exec_errno)) {
		waitpid(pid, NULL, 0);
		pid = -1;
		error = app_error_set(APP_EGENERIC, "sandbox: cannot start %s: %s", sb->bwrap, strerror(exec_errno));
		goto done;
	}

	size_t oseen = 0, eseen = 0;
	int oopen = 1, eopen = 1, killed = 0;
	int64_t deadline = lim->timeout_s > 0 ? start + (int64_t)lim->timeout_s * 1000 : 0;
	int64_t kill_deadline = 0;
	while (oopen || eopen) {
		int64_t now = app_mono_ms();
		if (!killed) {
			int why = 0;
			if (deadline && now >= deadline)
				why = 1;
			else if (cmd->cancel && *cmd->cancel)
				why = 2;
			if (why) {
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
				killed = 1;
				kill_deadline = now + 5000;
				if (why == 1)
					out->timed_out = 1;
				else
					out->cancelled = 1;
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
			kill(-pid, SIGKILL);
			error = app_error_set(APP_EGENERIC, "sandbox: poll: %s", strerror(errno));
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
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			status = 0;
			break;
		}
		int64_t now = app_mono_ms();
		if (!killed && ((deadline && now >= deadline) || (cmd->cancel && *cmd->cancel))) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			killed = 1;
			if (deadline && now >= deadline)
				out->timed_out = 1;
			else
				out->cancelled = 1;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	pid = -1;
	out->wall_ms = app_mono_ms() - start;
	if (WIFEXITED(status)) {
		out->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		out->exit_code = -1;
		out->term_signal = WTERMSIG(status);
	}
	finish_stream(&ob, cap, oseen, &out->out, &out->out_len, &out->out_truncated);
	finish_stream(&eb, cap, eseen, &out->err, &out->err_len, &out->err_truncated);
	if (!out->out || !out->err) {
		error = app_error_set(APP_ENOMEM, "sandbox: out of memory");
		goto done;
	}
	/* bwrap reports its own setup failures as exit status 1 with
	 * "bwrap: ..." on stderr; the command never ran. */
	if (!killed && out->exit_code == 1 && strncmp(out->err, "bwrap: ", 7) == 0) {
		char line[512];
		size_t l = strcspn(out->err, "\n");
		if (l >= sizeof(line))
			l = sizeof(line) - 1;
		memcpy(line, out->err, l);
		line[l] = '\0';
		error = app_error_set(APP_EGENERIC, "sandbox could not be set up: %s", line);
		goto done;
	}

done:
	if (pid > 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	for (int i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
		if (exec_pipe[i] >= 0)
			close(exec_pipe[i]);
	}
	app_buf_dispose(&ob);
	app_buf_dispose(&eb);
	return error;
}

static int bwrap_run(agent_sandbox *base, agent_sandbox_result *out, const agent_sandbox_cmd *cmd)
{
	return bwrap_run_impl((bwrap_sandbox *)base, out, cmd, 0);
}

/* ---- prepare_dir: chown the tree, make the ancestors traversable -------- */

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

static int bwrap_prepare_dir(agent_sandbox *base, const char *host_path)
{
	bwrap_sandbox *sb = (bwrap_sandbox *)base;
	char path[PATH_MAX];
	if (!realpath(host_path, path))
		return app_error_set(APP_ENOTFOUND, "sandbox: %s: %s", host_path, strerror(errno));
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
		return app_error_set(APP_EGENERIC, "sandbox: cannot hand %s to uid %u: %s", path, (unsigned)sb->uid,
				     strerror(err));
	/* bwrap resolves the mount source as the sandbox's uid: every ancestor
	 * needs search (x) permission for others.  Listing (r) is not added. */
	for (char *slash = strrchr(path, '/'); slash && slash != path; slash = strrchr(path, '/')) {
		*slash = '\0';
		struct stat st;
		if (stat(path, &st) < 0)
			return app_error_set(APP_EGENERIC, "sandbox: %s: %s", path, strerror(errno));
		if (!(st.st_mode & S_IXOTH) && chmod(path, (st.st_mode & 07777) | S_IXOTH) < 0)
			return app_error_set(APP_EGENERIC, "sandbox: %s is not searchable by uid %u: %s", path,
					     (unsigned)sb->uid, strerror(errno));
	}
	return 0;
}

static void bwrap_free(agent_sandbox *base)
{
	bwrap_sandbox *sb = (bwrap_sandbox *)base;
	if (!sb)
		return;
	free(sb->bwrap);
	free(sb);
}

static char *find_in_path(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	const char *p = getenv("PATH");
	if (!p || !*p)
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p) {
		size_t l = strcspn(p, ":");
		char cand[PATH_MAX];
		if (l > 0 && (size_t)snprintf(cand, sizeof(cand), "%.*s/%s", (int)l, p, name) < sizeof(cand) &&
		    access(cand, X_OK) == 0)
			return strdup(cand);
		p += l;
		if (*p == ':')
			p++;
	}
	return NULL;
}

int agent_sandbox_bwrap_new(agent_sandbox **out, const agent_sandbox_bwrap_options *opts)
{
	*out = NULL;
	const char *name = opts && opts->bwrap_path ? opts->bwrap_path : "bwrap";
	bwrap_sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return app_error_set(APP_ENOMEM, "out of memory");
	sb->base.name = "bwrap";
	sb->base.run = bwrap_run;
	sb->base.prepare_dir = bwrap_prepare_dir;
	sb->base.free = bwrap_free;
	sb->drop = geteuid() == 0;
	sb->uid = opts && opts->uid ? opts->uid : DEFAULT_UID;
	sb->gid = opts && opts->gid ? opts->gid : DEFAULT_UID;
	sb->bwrap = find_in_path(name);
	if (!sb->bwrap) {
		bwrap_free(&sb->base);
		return app_error_set(APP_EGENERIC,
				     "sandbox: %s not found; install bubblewrap (perfbot never runs code unsandboxed)",
				     name);
	}

	agent_sandbox_cmd probe = AGENT_SANDBOX_CMD_INIT;
	const char *const argv[] = { "/bin/true", NULL };
	probe.argv = argv;
	probe.limits.timeout_s = 30;
	agent_sandbox_result r;
	int error = bwrap_run_impl(sb, &r, &probe, 1);
	if (error == 0 && !agent_sandbox_result_ok(&r)) {
		char *tail = agent_sandbox_result_tail(&r, 300);
		error = app_error_set(APP_EGENERIC, "sandbox: probe `bwrap ... true` failed (exit %d): %s", r.exit_code,
				      tail ? tail : "");
		free(tail);
	} else if (error < 0) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", app_error_last());
		error = app_error_set(error, "sandbox: bwrap probe failed: %s", msg);
	}
	agent_sandbox_result_dispose(&r);
	if (error < 0) {
		bwrap_free(&sb->base);
		return error;
	}
	*out = &sb->base;
	return 0;
}
