/* Unit tests: the `command` agent backend — the environment the command
 * gets (run variables in, perfbot's secrets out), exit status, the output
 * cap, and the kills: wall budget, cancel, and the grace period after the
 * run's tools ended, each taking the whole process group down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_cmd.h"
#include "agent/tools.h"

static agent_cmd_options base_opts(const char *command)
{
	agent_cmd_options o = AGENT_CMD_OPTIONS_INIT;
	o.command = command;
	o.mcp_url = "http://127.0.0.1:3000/mcp";
	o.token = "feedface";
	o.run_id = 17;
	o.task_file = "/tmp/task.md";
	o.workdir = "/tmp";
	return o;
}

static void test_environment(void **state)
{
	(void)state;
	setenv("WEBHOOK_SECRET", "hush", 1);
	setenv("PRIVATE_KEY", "-----BEGIN", 1);
	setenv("PERFBOT_AGENT_COMMAND", "x", 1);
	setenv("SOME_USER_VAR", "kept", 1);
	agent_cmd_options o = base_opts("env; pwd; exit 3");
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_int_equal(r.exit_code, 3);
	assert_non_null(strstr(r.output, "PERFBOT_MCP_URL=http://127.0.0.1:3000/mcp\n"));
	assert_non_null(strstr(r.output, "PERFBOT_RUN_TOKEN=feedface\n"));
	assert_non_null(strstr(r.output, "PERFBOT_RUN_ID=17\n"));
	assert_non_null(strstr(r.output, "PERFBOT_TASK_FILE=/tmp/task.md\n"));
	assert_non_null(strstr(r.output, "SOME_USER_VAR=kept\n"));
	assert_non_null(strstr(r.output, "\n/tmp\n"));
	assert_null(strstr(r.output, "WEBHOOK_SECRET"));
	assert_null(strstr(r.output, "PRIVATE_KEY"));
	assert_null(strstr(r.output, "PERFBOT_AGENT_COMMAND"));
	assert_false(r.timed_out);
	agent_cmd_result_dispose(&r);
}

static void test_output_cap(void **state)
{
	(void)state;
	agent_cmd_options o = base_opts("yes | head -c 100000");
	o.output_cap = 1000;
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_int_equal(strlen(r.output), 1000);
	assert_true(r.output_cut);
	assert_int_equal(r.exit_code, 0);
	agent_cmd_result_dispose(&r);
}

/* The background child's pid is in `pidfile`; 1 when it still runs. */
static int still_running(const char *pidfile)
{
	FILE *f = fopen(pidfile, "r");
	assert_non_null(f);
	char line[32] = "";
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	pid_t pid = (pid_t)strtol(line, NULL, 10);
	struct timespec ts = { 0, 200 * 1000000L };
	nanosleep(&ts, NULL);
	if (pid <= 0 || kill(pid, 0) != 0)
		return 0;
	/* a zombie waiting for an init that does not reap is not running */
	char path[64], stat[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	const char *p = strrchr(stat, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void test_wall_budget_kills_group(void **state)
{
	(void)state;
	unlink("/tmp/perfbot-cmd-test.pid");
	agent_cmd_options o = base_opts("sleep 30 & echo $! > /tmp/perfbot-cmd-test.pid; sleep 30");
	o.wall_ms = 500;
	agent_cmd_result r;
	time_t t0 = time(NULL);
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_true(time(NULL) - t0 < 6);
	assert_true(r.timed_out);
	assert_int_equal(r.exit_code, -1);
	assert_false(still_running("/tmp/perfbot-cmd-test.pid"));
	unlink("/tmp/perfbot-cmd-test.pid");
	agent_cmd_result_dispose(&r);
}

static void test_cancel(void **state)
{
	(void)state;
	volatile int cancel = 1;
	agent_cmd_options o = base_opts("sleep 30");
	o.cancel = &cancel;
	agent_cmd_result r;
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_true(r.cancelled);
	assert_int_equal(r.term_signal, SIGTERM);
	agent_cmd_result_dispose(&r);
}

static void test_stopped_after_run_ended(void **state)
{
	(void)state;
	agent_tools *t = NULL;
	agent_tools_options to = AGENT_TOOLS_OPTIONS_INIT;
	to.workspace = "/tmp";
	to.base_commit = "HEAD";
	assert_int_equal(agent_tools_new(&t, &to), 0);
	agent_tools_end(t, "submitted");
	agent_cmd_options o = base_opts("trap '' TERM; sleep 30");
	o.tools = t;
	o.grace_ms = 300;
	agent_cmd_result r;
	time_t t0 = time(NULL);
	assert_int_equal(agent_cmd_run(&r, &o), 0);
	assert_true(time(NULL) - t0 < 8);
	assert_true(r.stopped);
	assert_int_equal(r.term_signal, SIGKILL); /* it ignored SIGTERM */
	agent_cmd_result_dispose(&r);
	agent_tools_free(t);
}

static void test_no_command(void **state)
{
	(void)state;
	agent_cmd_options o = base_opts(NULL);
	agent_cmd_result r;
	assert_true(agent_cmd_run(&r, &o) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_output_cap),
		cmocka_unit_test(test_wall_budget_kills_group),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_stopped_after_run_ended),
		cmocka_unit_test(test_no_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
