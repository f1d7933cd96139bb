/* Unit tests: the `command` agent backend — the environment the command
 * gets (run variables in, perfbot's secrets out), the MCP configuration file,
 * the confinement (hidden paths, its own /proc, its own uid when perfbot is
 * root, a user namespace when it is not), exit status, the output cap, the
 * kills (wall budget, cancel, the grace period after the run's tools ended)
 * each taking everything the command started down, `setsid` escapees
 * included, and the refusal to run unconfined. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_cmd.h"
#include "agent/tools.h"
#include "base/error.h"

struct fixture {
	char root[64];      /* everything of one test */
	char workdir[96];   /* the run's agent directory (0700) */
	char task[96];
	char secret_dir[96];
	char secret_file[96];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/var/tmp/perfbot-cmd-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	chmod(f->root, 0755);
	snprintf(f->workdir, sizeof(f->workdir), "%s/agent", f->root);
	assert_int_equal(mkdir(f->workdir, 0700), 0);
	snprintf(f->task, sizeof(f->task), "%s/task.md", f->root);
	FILE *t = fopen(f->task, "w");
	assert_non_null(t);
	fputs("# the task\nmake it fast\n", t);
	fclose(t);
	snprintf(f->secret_dir, sizeof(f->secret_dir), "%s/data", f->root);
	assert_int_equal(mkdir(f->secret_dir, 0755), 0);
	char p[160];
	snprintf(p, sizeof(p), "%s/perfbot.db", f->secret_dir);
	t = fopen(p, "w");
	fputs("DATABASE-CONTENT\n", t);
	fclose(t);
	chmod(p, 0644);
	snprintf(f->secret_file, sizeof(f->secret_file), "%s/.env", f->root);
	t = fopen(f->secret_file, "w");
	fputs("WEBHOOK_SECRET=ENV-FILE-SECRET\n", t);
	fclose(t);
	chmod(f->secret_file, 0644);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static agent_cmd_options base_opts(struct fixture *f, const char *command)
{
	agent_cmd_options o = AGENT_CMD_OPTIONS_INIT;
	o.command = command;
	o.mcp_url = "http://127.0.0.1:3000/mcp";
	o.token = "feedface";
	o.run_id = 17;
	o.task_file = f->task;
	o.workdir = f->workdir;
	return o;
}

static pid_t g_pid; /* this test binary's, set first thing in main() */

/* The duration that marks a test's process: `secs` followed by this test
 * binary's pid as more decimals ("30.71" -> "30.7142424"), so that another
 * copy of the suite running at the same time never counts ours, nor we its.
 * Static, a ring of 8. */
static const char *mark(const char *secs)
{
	static char ring[8][32];
	static int next;
	char *m = ring[next++ % 8];
	snprintf(m, sizeof(ring[0]), "%s%d", secs, (int)g_pid);
	return m;
}

/* Host processes whose command line is exactly argv0 arg1 ("sleep",
 * mark("30.7")): a unique duration marks a test's process, wherever its pid
 * namespace puts it. */
static int count_procs(const char *argv0, const char *arg1)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300], buf[256];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		FILE *fp = fopen(path, "r");
		if (!fp)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[len] = '\0';
		size_t l0 = strlen(buf);
		if (strcmp(buf, argv0) != 0 || l0 + 1 >= len || strcmp(buf + l0 + 1, arg1) != 0)
			continue;
		/* a zombie is not running */
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fp = fopen(path, "r");
		if (!fp)
			continue;
		len = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[len] = '\0';
		const char *p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X')
			n++;
	}
	closedir(d);
	return n;
}

/* The marked sleeps (mark(secs), NULL-ended) still running once none is,
 * or after 10 s: the kill and the reaping take their time on a loaded
 * machine, and 10 s is still well short of the sleeps' 30 s. */
__attribute__((sentinel)) static int survivors(const char *secs, ...)
{
	int n = 0;
	for (int i = 0; i < 200; i++) {
		n = 0;
		va_list ap;
		va_start(ap, secs);
		for (const char *s = secs; s; s = va_arg(ap, const char *))
			n += count_procs("sleep", mark(s));
		va_end(ap);
		if (n == 0)
			break;
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return n;
}

static void test_environment(void **state)
{
	struct fixture *f = *state;
	setenv("WEBHOOK_SECRET", "hush", 1);
	setenv("PRIVATE_KEY", "-----BEGIN", 1);
	setenv("PERFBOT_AGENT_COMMAND", "x", 1);
	setenv("SOME_USER_VAR", "kept", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
	setenv("ANTHROPIC_API_KEY", "sk-ant-managed-key", 1);
	setenv("PERFBOT_MANAGED_ENVIRONMENT_KEY", "envkey-managed", 1);
	agent_cmd_options o = base_opts(f, "env; pwd; cat \"$PERFBOT_TASK_FILE\"; exit 3");
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_int_equal(r.exit_code, 3);
	assert_non_null(strstr(r.output, "PERFBOT_MCP_URL=http://127.0.0.1:3000/mcp\n"));
	assert_non_null(strstr(r.output, "PERFBOT_RUN_TOKEN=feedface\n"));
	assert_non_null(strstr(r.output, "PERFBOT_RUN_ID=17\n"));
	assert_non_null(strstr(r.output, "PERFBOT_TASK_FILE=/tmp/task.md\n"));
	assert_non_null(strstr(r.output, "PERFBOT_MCP_CONFIG=/tmp/mcp.json\n"));
	assert_non_null(strstr(r.output, "HOME=/tmp/home\n"));
	assert_non_null(strstr(r.output, "SOME_USER_VAR=kept\n"));
	assert_non_null(strstr(r.output, "\n/tmp\n"));
	assert_non_null(strstr(r.output, "# the task\nmake it fast\n"));
	assert_null(strstr(r.output, "WEBHOOK_SECRET"));
	assert_null(strstr(r.output, "PRIVATE_KEY"));
	assert_null(strstr(r.output, "PERFBOT_AGENT_COMMAND"));
	assert_null(strstr(r.output, "XDG_RUNTIME_DIR"));
	/* the model's key reaches a command that needs one; the managed
	 * environment's key is perfbot's */
	assert_non_null(strstr(r.output, "ANTHROPIC_API_KEY=sk-ant-managed-key\n"));
	assert_null(strstr(r.output, "envkey-managed"));
	assert_false(r.timed_out);
	agent_cmd_result_dispose(&r);
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("ANTHROPIC_API_KEY");
	unsetenv("PERFBOT_MANAGED_ENVIRONMENT_KEY");
}

/* The token reaches the command in a 0600 file, never in an argv; the file
 * is gone once the command is. */
static void test_mcp_config_file(void **state)
{
	struct fixture *f = *state;
	agent_cmd_options o = base_opts(f, "stat -c '%a %u' \"$PERFBOT_MCP_CONFIG\"; cat \"$PERFBOT_MCP_CONFIG\"; echo; "
					   "cat /proc/[0-9]*/cmdline | tr '\\0' ' '");
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_int_equal(r.exit_code, 0);
	char want[64];
	snprintf(want, sizeof(want), "600 %u\n", geteuid() == 0 ? 230000u + 17u : (unsigned)geteuid());
	assert_int_equal(strncmp(r.output, want, strlen(want)), 0);
	assert_non_null(strstr(r.output, "{\"mcpServers\":{\"perfbot\":{\"type\":\"http\",\"url\":\"http://127.0.0.1:"
					 "3000/mcp\",\"headers\":{\"Authorization\":\"Bearer feedface\"}}}}\n"));
	/* the command lines in its namespace (bwrap's, the command's) show
	 * no token: it is only in the file */
	assert_non_null(strstr(r.output, "bwrap --args"));
	const char *first = strstr(r.output, "feedface");
	assert_non_null(first);
	assert_null(strstr(first + 1, "feedface"));
	char path[160];
	snprintf(path, sizeof(path), "%s/mcp.json", f->workdir);
	struct stat st;
	assert_int_equal(stat(path, &st), -1);
	agent_cmd_result_dispose(&r);
}

/* What an agent tries first: perfbot's files, its parent's environment. */
static void test_hidden_paths(void **state)
{
	struct fixture *f = *state;
	setenv("WEBHOOK_SECRET", "PARENT-ENV-SECRET", 1);
	const char *hide[] = { f->secret_dir, f->secret_file, "/nonexistent/key.pem", NULL };
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "echo \"ppid=$PPID uid=$(id -u)\"; cat '%s/perfbot.db'; ls -A '%s'; cat '%s'; cat /proc/$PPID/environ; "
		 "ls /proc | grep -c '^[0-9]'; touch /tmp/mine && echo wrote-tmp; touch '%s/x' || echo read-only",
		 f->secret_dir, f->secret_dir, f->secret_file, f->root);
	agent_cmd_options o = base_opts(f, cmd);
	o.hide = hide;
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_null(strstr(r.output, "DATABASE-CONTENT"));
	assert_null(strstr(r.output, "ENV-FILE-SECRET"));
	assert_null(strstr(r.output, "PARENT-ENV-SECRET"));
	assert_null(strstr(r.output, "perfbot.db\n")); /* the directory lists empty */
	assert_non_null(strstr(r.output, "ppid=1 uid="));
	char uid[64];
	snprintf(uid, sizeof(uid), "uid=%u\n", geteuid() == 0 ? 230017u : (unsigned)geteuid());
	assert_non_null(strstr(r.output, uid));
	assert_non_null(strstr(r.output, "wrote-tmp\n"));
	assert_non_null(strstr(r.output, "read-only\n"));
	char mine[160];
	snprintf(mine, sizeof(mine), "%s/mine", f->workdir);
	assert_int_equal(access(mine, F_OK), 0); /* its /tmp is the run's directory */
	agent_cmd_result_dispose(&r);
	unsetenv("WEBHOOK_SECRET");
}

static void test_output_cap(void **state)
{
	struct fixture *f = *state;
	agent_cmd_options o = base_opts(f, "yes | head -c 100000");
	o.output_cap = 1000;
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_int_equal(strlen(r.output), 1000);
	assert_true(r.output_cut);
	assert_int_equal(r.exit_code, 0);
	agent_cmd_result_dispose(&r);
}

/* A child that left the session and the group ends with the command. */
static void test_setsid_escapee_dies_with_command(void **state)
{
	struct fixture *f = *state;
	char sh[128];
	snprintf(sh, sizeof(sh), "setsid sleep %s </dev/null >/dev/null 2>&1 & sleep 0.3; exit 0", mark("30.71"));
	agent_cmd_options o = base_opts(f, sh);
	agent_cmd_result r;
	time_t t0 = time(NULL);
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_int_equal(r.exit_code, 0);
	assert_true(time(NULL) - t0 < 15);
	assert_int_equal(survivors("30.71", NULL), 0);
	agent_cmd_result_dispose(&r);
}

static void test_wall_budget_kills_everything(void **state)
{
	struct fixture *f = *state;
	char sh[160];
	snprintf(sh, sizeof(sh), "sleep %s & setsid sleep %s >/dev/null 2>&1 & sleep %s", mark("30.72"), mark("30.73"),
		 mark("30.74"));
	agent_cmd_options o = base_opts(f, sh);
	o.wall_ms = 800;
	agent_cmd_result r;
	time_t t0 = time(NULL);
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	/* killed at 800 ms, not after its 30 s sleep (the margin is for load) */
	assert_true(time(NULL) - t0 < 15);
	assert_true(r.timed_out);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(survivors("30.72", "30.73", "30.74", NULL), 0);
	agent_cmd_result_dispose(&r);
}

struct canceller {
	atomic_int *flag;
	int after_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	struct timespec ts = { c->after_ms / 1000, (long)(c->after_ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	*c->flag = 1;
	return NULL;
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	atomic_int cancel = 0;
	char sh[128];
	snprintf(sh, sizeof(sh), "setsid sleep %s >/dev/null 2>&1 & sleep %s", mark("30.75"), mark("30.76"));
	agent_cmd_options o = base_opts(f, sh);
	o.cancel = &cancel;
	struct canceller c = { &cancel, 700 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cancel_later, &c), 0);
	agent_cmd_result r;
	time_t t0 = time(NULL);
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	pthread_join(th, NULL);
	assert_true(time(NULL) - t0 < 15);
	assert_true(r.cancelled);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(survivors("30.75", "30.76", NULL), 0);
	agent_cmd_result_dispose(&r);
}

static void test_stopped_after_run_ended(void **state)
{
	struct fixture *f = *state;
	agent_tools *t = NULL;
	agent_tools_options to = AGENT_TOOLS_OPTIONS_INIT;
	to.workspace = "/tmp";
	to.base_commit = "HEAD";
	assert_int_equal(agent_tools_new(&t, &to), 0);
	agent_tools_end(t, "submitted");
	char sh[64];
	snprintf(sh, sizeof(sh), "trap '' TERM; sleep %s", mark("30.77"));
	agent_cmd_options o = base_opts(f, sh);
	o.tools = t;
	o.grace_ms = 300;
	agent_cmd_result r;
	time_t t0 = time(NULL);
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_true(time(NULL) - t0 < 15);
	assert_true(r.stopped);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(survivors("30.77", NULL), 0); /* ignoring SIGTERM does not save it */
	agent_cmd_result_dispose(&r);
	agent_tools_free(t);
}

/* bwrap that cannot make its namespaces: the run is refused with bwrap's
 * reason, the command never runs (unconfined or otherwise). */
static void test_refused_when_not_confinable(void **state)
{
	struct fixture *f = *state;
	char fake[160], ran[160];
	snprintf(fake, sizeof(fake), "%s/bwrap", f->root);
	snprintf(ran, sizeof(ran), "%s/ran", f->root);
	FILE *b = fopen(fake, "w");
	assert_non_null(b);
	fputs("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the kernel does not "
	      "allow non-privileged user namespaces.' >&2\nexit 1\n", b);
	fclose(b);
	chmod(fake, 0755);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "touch '%s'", ran);
	agent_cmd_options o = base_opts(f, cmd);
	o.bwrap = fake;
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), BASE_EGENERIC);
	assert_non_null(strstr(base_error_last(), "the agent command cannot be confined"));
	assert_non_null(strstr(base_error_last(), "bwrap: No permissions to creating new namespace"));
	assert_int_equal(access(ran, F_OK), -1);
	char path[160];
	snprintf(path, sizeof(path), "%s/mcp.json", f->workdir);
	assert_int_equal(access(path, F_OK), -1);

	o.bwrap = "/nonexistent/bwrap";
	assert_int_equal(agent_cmd_run(&r, &o), BASE_EGENERIC);
	assert_non_null(strstr(base_error_last(), "never runs unconfined"));
}

/* The directory becomes the command's /tmp (and its uid's): a shared one
 * is refused. */
static void test_workdir_must_be_private(void **state)
{
	struct fixture *f = *state;
	agent_cmd_options o = base_opts(f, "true");
	o.workdir = "/tmp";
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), BASE_EINVALID);
	assert_non_null(strstr(base_error_last(), "not a private directory"));
}

/* perfbot as a service user (not root): the same confinement through a
 * user namespace. */
static void test_as_service_user(void **state)
{
	struct fixture *f = *state;
	if (geteuid() != 0) {
		test_hidden_paths(state); /* already the unprivileged path */
		return;
	}
	const uid_t svc = 64998;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "chown -R %u:%u '%s'", (unsigned)svc, (unsigned)svc, f->root);
	assert_int_equal(system(cmd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(svc) < 0 || setuid(svc) < 0)
			_exit(10);
		const char *hide[] = { f->secret_dir, f->secret_file, NULL };
		char line[512];
		snprintf(line, sizeof(line),
			 "echo \"uid=$(id -u) ppid=$PPID\"; cat '%s/perfbot.db' '%s' /proc/$PPID/environ; "
			 "setsid sleep %s >/dev/null 2>&1 & exit 0",
			 f->secret_dir, f->secret_file, mark("30.78"));
		agent_cmd_options o = base_opts(f, line);
		o.hide = hide;
		agent_cmd_result r;
		if (agent_cmd_run(&r, &o) < 0) {
			fprintf(stderr, "%s\n", base_error_last());
			_exit(11);
		}
		char want[64];
		snprintf(want, sizeof(want), "uid=%u ppid=1\n", (unsigned)svc);
		if (!strstr(r.output, want) || strstr(r.output, "DATABASE-CONTENT") || strstr(r.output, "ENV-FILE-SECRET")) {
			fprintf(stderr, "output: %s\n", r.output);
			_exit(12);
		}
		agent_cmd_result_dispose(&r);
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(survivors("30.78", NULL), 0);
}

static void test_no_command(void **state)
{
	struct fixture *f = *state;
	agent_cmd_options o = base_opts(f, NULL);
	agent_cmd_result r;
	assert_true(agent_cmd_run(&r, &o) < 0);
}

int main(void)
{
	g_pid = getpid();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mcp_config_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hidden_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setsid_escapee_dies_with_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wall_budget_kills_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stopped_after_run_ended, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_when_not_confinable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workdir_must_be_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_as_service_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_command, setup, teardown),
	};
	return cmocka_run_group_tests_name("agent_cmd", tests, NULL, NULL);
}
