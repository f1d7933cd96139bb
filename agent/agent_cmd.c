/* The `command` agent backend: fork/exec of /bin/sh -c COMMAND in a new
 * process group, its output collected through one pipe (capped), and a
 * supervision loop that kills the whole group (SIGTERM, then SIGKILL two
 * seconds later) at the wall budget, on cancel, or once the run has ended
 * and the grace period is over.  After the leader exits, leftovers of the
 * group are killed too, so nothing the agent started outlives the run.
 *
 * Everything the child needs (argv, environment) is built before fork():
 * the child only calls async-signal-safe functions.  Threading: one call
 * per run, on the worker thread that owns the run. */
#include "agent/agent_cmd.h"
#include "app/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app/buf.h"
#include "app/error.h"
#include "app/log.h"

extern char **environ;

/* perfbot's secrets and its own agent variables never reach the command. */
static const char *const STRIPPED[] = { "PRIVATE_KEY", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET", "WEBHOOK_SECRET_OLD",
					"GITHUB_CLIENT_SECRET", "DATABASE_URL", "GITHUB_TOKEN", "GH_TOKEN", NULL };

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

static void free_env(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

static char **build_env(const agent_cmd_options *o)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = calloc(n + 5, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!stripped(environ[i]) && !(env[k++] = strdup(environ[i])))
			goto fail;
	char run[32];
	snprintf(run, sizeof(run), "%lld", (long long)o->run_id);
	const char *pairs[][2] = { { "PERFBOT_MCP_URL", o->mcp_url }, { "PERFBOT_RUN_TOKEN", o->token },
				   { "PERFBOT_RUN_ID", run }, { "PERFBOT_TASK_FILE", o->task_file } };
	for (size_t i = 0; i < 4; i++) {
		size_t len = strlen(pairs[i][0]) + strlen(pairs[i][1] ? pairs[i][1] : "") + 2;
		if (!(env[k] = malloc(len)))
			goto fail;
		snprintf(env[k++], len, "%s=%s", pairs[i][0], pairs[i][1] ? pairs[i][1] : "");
	}
	return env;
fail:
	free_env(env);
	return NULL;
}

void agent_cmd_result_dispose(agent_cmd_result *r)
{
	if (!r)
		return;
	free(r->output);
	memset(r, 0, sizeof(*r));
}

int agent_cmd_run(agent_cmd_result *out, const agent_cmd_options *o)
{
	int fds[2] = { -1, -1 };
	char **env = NULL;
	app_buf output = APP_BUF_INIT(o->output_cap ? o->output_cap : 256u << 10);
	int error = 0;
	pid_t pid = -1;

	memset(out, 0, sizeof(*out));
	if (!o->command || !*o->command)
		return app_error_set(APP_EINVALID, "no agent command is configured (PERFBOT_AGENT_COMMAND)");
	if (!(env = build_env(o)))
		return app_error_set(APP_ENOMEM, "out of memory");
	if (pipe2(fds, O_CLOEXEC) < 0) {
		error = app_error_set(APP_EGENERIC, "pipe: %s", strerror(errno));
		goto done;
	}
	const char *workdir = o->workdir ? o->workdir : "/tmp";
	int64_t start = app_mono_ms();
	pid_t parent = getpid();
	pid = fork();
	if (pid < 0) {
		error = app_error_set(APP_EGENERIC, "fork: %s", strerror(errno));
		goto done;
	}
	if (pid == 0) {
		setpgid(0, 0);
		/* the agent goes when perfbot does (a crash, a kill -9) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close_range(3, ~0U, 0); /* perfbot's sockets, database, pipes */
		if (chdir(workdir) < 0)
			_exit(126);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execle("/bin/sh", "sh", "-c", o->command, (char *)NULL, env);
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no window where the group does not exist */
	close(fds[1]);
	fds[1] = -1;
	char run[32];
	snprintf(run, sizeof(run), "%lld", (long long)o->run_id);
	char spid[32];
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	app_log(APP_LOG_INFO, "agent command started", "run", run, "pid", spid, NULL);

	int status = 0, exited = 0, eof = 0, term_sent = 0;
	int64_t kill_at = 0, ended_at = 0, exited_at = 0, grace = o->grace_ms > 0 ? o->grace_ms : 30000;
	while (!exited || !eof) {
		struct pollfd p = { fds[0], POLLIN, 0 };
		if (!eof && poll(&p, 1, 200) > 0) {
			char chunk[8192];
			ssize_t n = read(fds[0], chunk, sizeof(chunk));
			if (n > 0) {
				if (!out->output_cut && app_buf_put(&output, chunk, (size_t)n) < 0) {
					size_t room = output.max - output.len;
					app_buf_put(&output, chunk, room);
					out->output_cut = 1;
				}
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				eof = 1;
			}
		} else if (eof) {
			struct timespec ts = { 0, 100 * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			exited_at = app_mono_ms();
			kill(-pid, SIGKILL); /* whatever it left behind in its group */
		}
		if (exited) {
			if (app_mono_ms() - exited_at > 2000)
				break; /* a process that left the group still holds the pipe */
			continue;
		}
		int64_t now = app_mono_ms();
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
				app_log(APP_LOG_INFO, "stopping agent command", "run", run, "reason", why, NULL);
				kill(-pid, SIGTERM);
				term_sent = 1;
				kill_at = now + 2000;
			}
		} else if (now >= kill_at) {
			kill(-pid, SIGKILL);
			kill_at = now + 1000;
		}
	}
	out->wall_ms = app_mono_ms() - start;
	if (WIFEXITED(status)) {
		out->exit_code = WEXITSTATUS(status);
	} else {
		out->exit_code = -1;
		out->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
	out->output = app_buf_detach(&output);
	if (!out->output)
		error = app_error_set(APP_ENOMEM, "out of memory");
	char code[16];
	snprintf(code, sizeof(code), "%d", out->exit_code);
	app_log(APP_LOG_INFO, "agent command ended", "run", run, "exit_code", code, NULL);
done:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	free_env(env);
	app_buf_dispose(&output);
	return error;
}
