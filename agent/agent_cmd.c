/* The `command` agent backend: /bin/sh -c COMMAND, confined by bubblewrap,
 * its output collected through one pipe (capped), and a supervision loop
 * that kills it (SIGTERM, then SIGKILL two seconds later) at the wall
 * budget, on cancel, or once the run has ended and the grace period is over.
 *
 * The confinement (not the measurement sandbox: the agent needs the network
 * to reach its model and perfbot's MCP endpoint on loopback):
 *   - a new pid namespace with bwrap's reaper as its init, bwrap started with
 *     --die-with-parent: when bwrap goes (the command exited, or our kill)
 *     the init dies and the kernel kills everything left in the namespace,
 *     `setsid` escapees included.  /proc is the namespace's own, so
 *     /proc/$PPID is bwrap's init, whose environment is empty.
 *   - a user namespace when perfbot is not root; when it is, bwrap mounts as
 *     root and setpriv drops to an unprivileged uid of its own per run
 *     (AGENT_CMD_UID_BASE + run id mod AGENT_CMD_UID_SPAN), no groups, no
 *     capabilities, no new privileges.
 *   - the host's filesystem read-only, minus the hidden paths (a directory
 *     gets an empty tmpfs, a file /dev/null): DATA_DIR, .env, the key, the
 *     database, the user's runtime directory with its agent sockets.  The
 *     run's agent directory (workdir) is the command's /tmp, writable, its
 *     working directory, with HOME=/tmp/home, the task at /tmp/task.md and
 *     the MCP configuration at /tmp/mcp.json (0600: the URL and the bearer
 *     header, removed when the command is gone).  A fresh /dev, the network
 *     shared, a new session (no terminal to push keystrokes into).
 *   - the environment as perfbot's minus its secrets, handed to bwrap through
 *     a descriptor (--args), never in an argv that /proc/PID/cmdline shows.
 * When bwrap cannot set this up (no user namespaces, no setpriv as root),
 * the run fails with bwrap's reason: the command never runs unconfined.
 * A marker the command writes through a pipe before it starts tells a
 * setup failure from a command that failed.
 *
 * Everything the child needs (argv, descriptors) is built before fork():
 * the child only calls async-signal-safe functions.  Threading: one call
 * per run, on the worker thread that owns the run. */
#include "agent/agent_cmd.h"
#include "base/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"

extern char **environ;

#define AGENT_CMD_UID_BASE 230000u
#define AGENT_CMD_UID_SPAN 4096u
#define ARGS_FD 3                  /* bwrap's --args descriptor in the child */
#define MARK_FD 4                  /* the started marker's pipe in the child */
#define TASK_MAX (4u << 20)
#define SETUP_TIMEOUT_MS 30000

/* The command checks in through MARK_FD once bwrap (and setpriv) are done,
 * then runs with neither descriptor open. */
static const char WRAPPER[] = "printf x >&4 || exit 126; exec /bin/sh -c \"$1\" 3>&- 4>&-";

/* perfbot's secrets, its own agent variables and what would point the
 * command back at perfbot's home, runtime directory or agent sockets never
 * reach it.  ANTHROPIC_API_KEY does: a command such as Claude Code needs a
 * key for its model, and the operator gave perfbot's environment one. */
static const char *const STRIPPED[] = { "PRIVATE_KEY", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET", "WEBHOOK_SECRET_OLD",
					"GITHUB_CLIENT_SECRET", "DATABASE_URL", "GITHUB_TOKEN", "GH_TOKEN",
					"PERFBOT_MANAGED_ENVIRONMENT_KEY",
					"HOME", "TMPDIR", "PWD", "OLDPWD", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
					"XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "SSH_AUTH_SOCK",
					"DBUS_SESSION_BUS_ADDRESS", NULL };

static int stripped(const char *entry)
{
	if (strncmp(entry, "PERFBOT_", 8) == 0)
		return 1;
	for (size_t i = 0; STRIPPED[i]; i++) {
		size_t n = strlen(STRIPPED[i]);
		if (strncmp(entry, STRIPPED[i], n) == 0 && entry[n] == '=')
			return 1;
	}
	return 0;
}

/* One NUL-terminated argument for bwrap's --args. */
static int put_arg(base_buf *b, const char *s)
{
	return base_buf_put(b, s, strlen(s) + 1);
}

static int put_env(base_buf *b, const char *name, size_t name_len, const char *value)
{
	if (put_arg(b, "--setenv") < 0 || base_buf_put(b, name, name_len) < 0 || base_buf_put(b, "", 1) < 0)
		return -1;
	return put_arg(b, value);
}

/* The environment: perfbot's minus STRIPPED, plus the run's variables. */
static int put_environment(base_buf *b, const agent_cmd_options *o)
{
	if (put_arg(b, "--clearenv") < 0)
		return -1;
	for (size_t i = 0; environ && environ[i]; i++) {
		const char *eq = strchr(environ[i], '=');
		if (!eq || eq == environ[i] || stripped(environ[i]))
			continue;
		if (put_env(b, environ[i], (size_t)(eq - environ[i]), eq + 1) < 0)
			return -1;
	}
	char run[32];
	snprintf(run, sizeof(run), "%lld", (long long)o->run_id);
	const char *pairs[][2] = { { "PERFBOT_MCP_URL", o->mcp_url ? o->mcp_url : "" },
				   { "PERFBOT_RUN_TOKEN", o->token ? o->token : "" },
				   { "PERFBOT_RUN_ID", run },
				   { "PERFBOT_TASK_FILE", AGENT_CMD_DIR "/task.md" },
				   { "PERFBOT_MCP_CONFIG", AGENT_CMD_DIR "/mcp.json" },
				   { "HOME", AGENT_CMD_DIR "/home" },
				   { "TMPDIR", AGENT_CMD_DIR } };
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (put_env(b, pairs[i][0], strlen(pairs[i][0]), pairs[i][1]) < 0)
			return -1;
	return 0;
}

/* Hides `path` when it exists: an empty tmpfs over a directory, /dev/null
 * over anything else.  The real path is hidden, so a symlink to it is too. */
static int put_hidden(base_buf *b, const char *path)
{
	char real[PATH_MAX];
	struct stat st;
	if (!path || !*path || !realpath(path, real) || stat(real, &st) < 0 || strcmp(real, "/") == 0)
		return 0; /* nothing there, or nothing this uid can reach either */
	if (S_ISDIR(st.st_mode))
		return put_arg(b, "--tmpfs") < 0 || put_arg(b, real) < 0 ? -1 : 0;
	return put_arg(b, "--ro-bind") < 0 || put_arg(b, "/dev/null") < 0 || put_arg(b, real) < 0 ? -1 : 0;
}


/* Writes a private file (0600) in the run's directory, owned by the
 * command's uid. */
static int write_private(int dirfd, const char *name, const char *data, size_t len, uid_t uid, gid_t gid, int chown_it)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "agent command: cannot create %s: %s", name, strerror(errno));
	int error = 0;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			error = base_error_set(BASE_EGENERIC, "agent command: cannot write %s: %s", name, strerror(errno));
			break;
		}
		off += (size_t)n;
	}
	if (!error && fchmod(fd, 0600) < 0)
		error = base_error_set(BASE_EGENERIC, "agent command: chmod %s: %s", name, strerror(errno));
	if (!error && chown_it && fchown(fd, uid, gid) < 0)
		error = base_error_set(BASE_EGENERIC, "agent command: chown %s: %s", name, strerror(errno));
	close(fd);
	return error;
}

static int read_task(char **out, size_t *len, const char *path)
{
	*out = NULL;
	*len = 0;
	if (!path || !*path) {
		*out = strdup("");
		return *out ? 0 : base_error_set(BASE_ENOMEM, "out of memory");
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return base_error_set(BASE_EGENERIC, "agent command: cannot read the task %s: %s", path, strerror(errno));
	base_buf b = BASE_BUF_INIT(TASK_MAX);
	int error = 0;
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error = base_error_set(BASE_EGENERIC, "agent command: cannot read the task %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (base_buf_put(&b, chunk, (size_t)n) < 0) {
			error = base_error_set(BASE_ETOOBIG, "agent command: the task %s is over %u bytes", path, TASK_MAX);
			break;
		}
	}
	close(fd);
	if (!error) {
		*len = b.len;
		if (!(*out = base_buf_detach(&b)))
			error = base_error_set(BASE_ENOMEM, "out of memory");
	}
	base_buf_dispose(&b);
	return error;
}

/* The run's directory as the command will see it: home/, task.md and
 * mcp.json, all the command's own when it gets its own uid. */
static int prepare_dir(const agent_cmd_options *o, int drop, uid_t uid, gid_t gid)
{
	int dirfd = open(o->workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return base_error_set(BASE_EINVALID, "agent command: %s: %s", o->workdir, strerror(errno));
	struct stat st;
	int error = 0;
	char *task = NULL, *config = NULL;
	size_t task_len = 0;
	/* it becomes the command's /tmp and may be handed to another uid:
	 * only a private per-run directory qualifies (never /tmp itself) */
	if (fstat(dirfd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
		error = base_error_set(BASE_EINVALID, "agent command: %s is not a private directory of perfbot's (0700)",
				      o->workdir);
		goto done;
	}
	if ((error = read_task(&task, &task_len, o->task_file)) < 0)
		goto done;
	json_t *doc = json_pack("{s:{s:{s:s, s:s, s:{s:s+}}}}", "mcpServers", "perfbot", "type", "http", "url",
				o->mcp_url ? o->mcp_url : "", "headers", "Authorization", "Bearer ",
				o->token ? o->token : "");
	config = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!config) {
		error = base_error_set(BASE_ENOMEM, "out of memory");
		goto done;
	}
	if (mkdirat(dirfd, "home", 0700) < 0 && errno != EEXIST) {
		error = base_error_set(BASE_EGENERIC, "agent command: mkdir %s/home: %s", o->workdir, strerror(errno));
		goto done;
	}
	if (drop && fchownat(dirfd, "home", uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
		error = base_error_set(BASE_EGENERIC, "agent command: chown %s/home: %s", o->workdir, strerror(errno));
		goto done;
	}
	if ((error = write_private(dirfd, "task.md", task, task_len, uid, gid, drop)) < 0 ||
	    (error = write_private(dirfd, "mcp.json", config, strlen(config), uid, gid, drop)) < 0)
		goto done;
	if (drop && fchown(dirfd, uid, gid) < 0)
		error = base_error_set(BASE_EGENERIC, "agent command: chown %s: %s", o->workdir, strerror(errno));
done:
	if (config) {
		memset(config, 0, strlen(config));
		free(config);
	}
	free(task);
	close(dirfd);
	return error;
}

static void remove_config(const agent_cmd_options *o)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/mcp.json", o->workdir) < sizeof(path))
		unlink(path);
}

/* The confinement's options, NUL-separated, for bwrap's --args. */
static int build_args(base_buf *b, const agent_cmd_options *o, int drop)
{
	static const char *const fixed[] = { "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
					     "--die-with-parent", "--new-session", "--ro-bind", "/", "/", NULL };
	if (!drop && put_arg(b, "--unshare-user") < 0)
		return -1;
	for (size_t i = 0; fixed[i]; i++)
		if (put_arg(b, fixed[i]) < 0)
			return -1;
	for (size_t i = 0; o->hide && o->hide[i]; i++)
		if (put_hidden(b, o->hide[i]) < 0)
			return -1;
	/* the user's runtime directory holds its agent and bus sockets */
	char runtime[64];
	snprintf(runtime, sizeof(runtime), "/run/user/%u", (unsigned)geteuid());
	if (put_hidden(b, getenv("XDG_RUNTIME_DIR")) < 0 || put_hidden(b, runtime) < 0)
		return -1;
	if (put_arg(b, "--bind") < 0 || put_arg(b, o->workdir) < 0 || put_arg(b, AGENT_CMD_DIR) < 0 ||
	    put_arg(b, "--proc") < 0 || put_arg(b, "/proc") < 0 || put_arg(b, "--dev") < 0 || put_arg(b, "/dev") < 0 ||
	    put_arg(b, "--chdir") < 0 || put_arg(b, AGENT_CMD_DIR) < 0)
		return -1;
	return put_environment(b, o);
}

void agent_cmd_result_dispose(agent_cmd_result *r)
{
	if (!r)
		return;
	free(r->output);
	memset(r, 0, sizeof(*r));
}

/* Appends what fds[0] has; returns 0 on EOF. */
static int drain(int fd, base_buf *output, agent_cmd_result *out)
{
	char chunk[8192];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	if (n > 0) {
		if (!out->output_cut && base_buf_put(output, chunk, (size_t)n) < 0) {
			size_t room = output->max - output->len;
			base_buf_put(output, chunk, room);
			out->output_cut = 1;
		}
		return 1;
	}
	return n == 0 || (errno != EINTR && errno != EAGAIN) ? 0 : 1;
}

int agent_cmd_run(agent_cmd_result *out, const agent_cmd_options *o)
{
	int fds[2] = { -1, -1 }, mark[2] = { -1, -1 }, args_fd = -1;
	base_buf output = BASE_BUF_INIT(o->output_cap ? o->output_cap : 256u << 10);
	base_buf args = BASE_BUF_INIT(16u << 20);
	char *bwrap = NULL, *setpriv = NULL;
	int error = 0, prepared = 0;
	pid_t pid = -1;

	memset(out, 0, sizeof(*out));
	if (!o->command || !*o->command)
		return base_error_set(BASE_EINVALID, "no agent command is configured (PERFBOT_AGENT_COMMAND)");
	if (!o->workdir || o->workdir[0] != '/')
		return base_error_set(BASE_EINVALID, "agent command: no run directory");
	int drop = geteuid() == 0;
	uid_t uid = (uid_t)(AGENT_CMD_UID_BASE + (uint64_t)o->run_id % AGENT_CMD_UID_SPAN);
	gid_t gid = (gid_t)uid;
	const char *bwrap_name = o->bwrap ? o->bwrap : "bwrap";
	if (!(bwrap = base_find_in_path(bwrap_name))) {
		error = base_error_set(BASE_EGENERIC,
				      "agent command: %s not found; install bubblewrap (the agent command never runs unconfined)",
				      bwrap_name);
		goto done;
	}
	if (drop && !(setpriv = base_find_in_path("setpriv"))) {
		error = base_error_set(BASE_EGENERIC, "agent command: setpriv (util-linux) not found; running as root, perfbot "
						    "needs it to start the agent command as an unprivileged user");
		goto done;
	}
	if ((error = prepare_dir(o, drop, uid, gid)) < 0)
		goto done;
	prepared = 1;
	if (build_args(&args, o, drop) < 0) {
		error = base_error_set(BASE_ETOOBIG, "agent command: the environment is too large");
		goto done;
	}
	args_fd = memfd_create("perfbot-agent-args", MFD_CLOEXEC);
	if (args_fd < 0 || write(args_fd, args.ptr, args.len) != (ssize_t)args.len || lseek(args_fd, 0, SEEK_SET) != 0) {
		error = base_error_set(BASE_EGENERIC, "agent command: memfd: %s", strerror(errno));
		goto done;
	}
	memset(args.ptr, 0, args.len); /* it holds the token */

	char uid_s[32], gid_s[32], args_fd_s[16];
	snprintf(uid_s, sizeof(uid_s), "--reuid=%u", (unsigned)uid);
	snprintf(gid_s, sizeof(gid_s), "--regid=%u", (unsigned)gid);
	snprintf(args_fd_s, sizeof(args_fd_s), "%d", ARGS_FD);
	const char *argv[24];
	size_t n = 0;
	argv[n++] = bwrap;
	argv[n++] = "--args";
	argv[n++] = args_fd_s;
	argv[n++] = "--";
	if (drop) {
		argv[n++] = setpriv;
		argv[n++] = uid_s;
		argv[n++] = gid_s;
		argv[n++] = "--clear-groups";
		argv[n++] = "--inh-caps=-all";
		argv[n++] = "--bounding-set=-all";
		argv[n++] = "--no-new-privs";
		argv[n++] = "--";
	}
	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = WRAPPER;
	argv[n++] = "sh";
	argv[n++] = o->command;
	argv[n] = NULL;

	if (pipe2(fds, O_CLOEXEC) < 0 || pipe2(mark, O_CLOEXEC) < 0) {
		error = base_error_set(BASE_EGENERIC, "pipe: %s", strerror(errno));
		goto done;
	}
	int64_t start = base_mono_ms();
	pid_t parent = getpid();
	pid = fork();
	if (pid < 0) {
		error = base_error_set(BASE_EGENERIC, "fork: %s", strerror(errno));
		goto done;
	}
	if (pid == 0) {
		setpgid(0, 0);
		/* bwrap goes when perfbot does (a crash, a kill -9), and the
		 * namespace with it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		/* fixed numbers for bwrap and the wrapper; dup2 drops CLOEXEC */
		int a = fcntl(args_fd, F_DUPFD_CLOEXEC, 10), m = fcntl(mark[1], F_DUPFD_CLOEXEC, 10);
		if (a < 0 || m < 0 || dup2(a, ARGS_FD) < 0 || dup2(m, MARK_FD) < 0)
			_exit(127);
		close_range(MARK_FD + 1, ~0U, 0); /* perfbot's sockets, database, pipes */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		/* bwrap's own environment stays empty: it is the namespace's
		 * init, and /proc/1/environ is readable from inside */
		char *const no_env[] = { NULL };
		execve(bwrap, (char *const *)argv, no_env);
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no window where the group does not exist */
	close(fds[1]);
	fds[1] = -1;
	close(mark[1]);
	mark[1] = -1;
	close(args_fd);
	args_fd = -1;
	char run[32];
	snprintf(run, sizeof(run), "%lld", (long long)o->run_id);
	char spid[32];
	snprintf(spid, sizeof(spid), "%d", (int)pid);

	/* until the command checks in, only bwrap runs: a setup failure is
	 * reported as such, never as the agent's exit */
	int started = 0, eof = 0;
	while (!started) {
		struct pollfd p[2] = { { mark[0], POLLIN, 0 }, { fds[0], POLLIN, 0 } };
		int r = poll(p, eof ? 1 : 2, 200);
		if (r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			char c;
			ssize_t got = read(mark[0], &c, 1);
			if (got == 1)
				started = 1;
			else if (got == 0 || (errno != EINTR && errno != EAGAIN))
				break;
		}
		if (!eof && r > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			eof = !drain(fds[0], &output, out);
		if (!started && ((o->cancel && *o->cancel) || base_mono_ms() - start > SETUP_TIMEOUT_MS))
			break;
	}
	if (!started) {
		int cancelled = o->cancel && *o->cancel;
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = -1;
		int64_t until = base_mono_ms() + 1000;
		while (!eof && base_mono_ms() < until) {
			struct pollfd p = { fds[0], POLLIN, 0 };
			if (poll(&p, 1, 100) > 0)
				eof = !drain(fds[0], &output, out);
		}
		if (cancelled) {
			out->cancelled = 1;
			out->exit_code = -1;
			out->term_signal = SIGKILL;
			out->wall_ms = base_mono_ms() - start;
			out->output = base_buf_detach(&output);
			if (!out->output)
				error = base_error_set(BASE_ENOMEM, "out of memory");
			goto done;
		}
		const char *text = base_buf_cstr(&output);
		const char *line = strstr(text, "bwrap: ");
		if (!line)
			line = strstr(text, "setpriv: ");
		size_t len = line ? strcspn(line, "\n") : 0;
		error = base_error_set(BASE_EGENERIC,
				      "the agent command cannot be confined, so it was not started (it never runs "
				      "unconfined): %.*s",
				      (int)(len ? len : 300), len ? line : (*text ? text : "bwrap exited before the command started"));
		base_log(BASE_LOG_ERROR, "agent command not confined", "run", run, "error", base_error_last(), NULL);
		goto done;
	}
	base_log(BASE_LOG_INFO, "agent command started", "run", run, "pid", spid, "uid", drop ? uid_s + 8 : NULL, NULL);

	int status = 0, exited = 0, term_sent = 0;
	int64_t kill_at = 0, ended_at = 0, exited_at = 0, grace = o->grace_ms > 0 ? o->grace_ms : 30000;
	while (!exited || !eof) {
		struct pollfd p = { fds[0], POLLIN, 0 };
		if (!eof && poll(&p, 1, 200) > 0) {
			eof = !drain(fds[0], &output, out);
		} else if (eof) {
			struct timespec ts = { 0, 100 * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			exited_at = base_mono_ms();
			kill(-pid, SIGKILL); /* whatever it left behind in its group */
		}
		if (exited) {
			if (base_mono_ms() - exited_at > 2000)
				break; /* a process that left the group still holds the pipe */
			continue;
		}
		int64_t now = base_mono_ms();
		if (!term_sent) {
			const char *why = NULL;
			if (o->cancel && *o->cancel) {
				out->cancelled = 1;
				why = "cancelled";
			} else if (o->wall_ms > 0 && now - start >= o->wall_ms) {
				out->timed_out = 1;
				why = "wall time budget";
			} else if (o->tools && agent_tools_ended(o->tools, NULL)) {
				if (!ended_at)
					ended_at = now;
				else if (now - ended_at >= grace) {
					out->stopped = 1;
					why = "run ended";
				}
			}
			if (why) {
				/* bwrap dies of it, and its namespace with everything
				 * in it */
				base_log(BASE_LOG_INFO, "stopping agent command", "run", run, "reason", why, NULL);
				kill(-pid, SIGTERM);
				term_sent = 1;
				kill_at = now + 2000;
			}
		} else if (now >= kill_at) {
			kill(-pid, SIGKILL);
			kill_at = now + 1000;
		}
	}
	pid = -1;
	out->wall_ms = base_mono_ms() - start;
	if (WIFEXITED(status)) {
		out->exit_code = WEXITSTATUS(status);
	} else {
		out->exit_code = -1;
		out->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
	out->output = base_buf_detach(&output);
	if (!out->output)
		error = base_error_set(BASE_ENOMEM, "out of memory");
	char code[16];
	snprintf(code, sizeof(code), "%d", out->exit_code);
	base_log(BASE_LOG_INFO, "agent command ended", "run", run, "exit_code", code, NULL);
done:
	if (pid > 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (prepared)
		remove_config(o);
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		if (mark[i] >= 0)
			close(mark[i]);
	}
	if (args_fd >= 0)
		close(args_fd);
	if (args.ptr)
		memset(args.ptr, 0, args.len);
	base_buf_dispose(&args);
	base_buf_dispose(&output);
	free(bwrap);
	free(setpriv);
	return error;
}
