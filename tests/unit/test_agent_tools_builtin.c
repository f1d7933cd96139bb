/* Unit tests: the Managed Agents built-in tools against the real bwrap
 * sandbox — read with view_range (numbered lines), write then read, edit
 * (unique, not unique, replace_all, absent), protected paths refused with
 * the reason, paths outside /workspace refused, glob with ** and braces,
 * grep's modes; bash: one persistent shell (cd, variables, background
 * jobs), exit status, stderr merged, the output cap, a timeout that kills
 * and restarts, restart, the end of the run killing a command in flight and
 * an idle shell with everything it started, the shell's confinement
 * (perfbot's files, the network) and the tool-call budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/tools_builtin.h"
#include "base/clock.h"
#include "base/diff_policy.h"
#include "base/error.h"

static measure_sandbox *g_sb; /* one for the whole file: its probe is slow */

typedef struct fixture {
	char root[64]; /* stands for DATA_DIR */
	char ws[96];   /* the run's work tree */
	agent_tools *t;
	agent_builtin *b;
} fixture;

static void put(const char *dir, const char *rel, const char *text)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *slurp(const char *dir, const char *rel)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "r");
	if (!f)
		return NULL;
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static pid_t g_pid; /* this test binary's, set first thing in main() */

/* The duration that marks a test's sleep: `secs` followed by this test
 * binary's pid as more decimals ("30.31" -> "30.3142424"), so that another
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

/* A tool input: fmt with its %s replaced by mark(secs) (static, a ring of 4). */
static const char *marked(const char *fmt, const char *secs)
{
	static char ring[4][256];
	static int next;
	char *m = ring[next++ % 4];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(m, sizeof(ring[0]), fmt, mark(secs));
#pragma GCC diagnostic pop
	return m;
}

/* Running host processes whose command line is exactly "sleep" mark(secs). */
static int count_procs(const char *secs)
{
	const char *argv0 = "sleep", *arg1 = mark(secs);
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

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* count_procs once it is `want`, or after 10 s what it is then: starting
 * and killing take their time on a loaded machine, and 10 s is still well
 * short of the marked sleeps (20 s and more). */
static int procs_settle(const char *secs, int want)
{
	int n = count_procs(secs);
	for (int i = 0; i < 200 && n != want; i++) {
		nap_ms(50);
		n = count_procs(secs);
	}
	return n;
}

/* Child processes of this one (a shell's bwrap), zombies included: 0 once
 * every sandbox it started ended and was reaped, or after 10 s. */
static int children_settle(void)
{
	char want[32];
	snprintf(want, sizeof(want), " %d ", (int)getpid());
	int n = 0;
	for (int i = 0; i < 200; i++) {
		n = 0;
		DIR *d = opendir("/proc");
		assert_non_null(d);
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] < '0' || e->d_name[0] > '9')
				continue;
			char path[300], buf[512];
			snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
			FILE *fp = fopen(path, "r");
			if (!fp)
				continue;
			size_t len = fread(buf, 1, sizeof(buf) - 1, fp);
			fclose(fp);
			buf[len] = '\0';
			/* "pid (comm) state ppid ..." */
			const char *p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] && strncmp(p + 3, want, strlen(want)) == 0)
				n++;
		}
		closedir(d);
		if (n == 0)
			break;
		nap_ms(50);
	}
	return n;
}

static int group_setup(void **state)
{
	(void)state;
	if (measure_sandbox_new(&g_sb, "bwrap") < 0) {
		fprintf(stderr, "sandbox: %s\n", base_error_last());
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	measure_sandbox_free(g_sb);
	return 0;
}

static const char *const protected_globs[] = { "secret/**" };
static const base_diff_policy policy = { NULL, 0, NULL, 0, protected_globs, 1, NULL, 0 };

/* A fresh work tree with a few files, perfbot's hidden state beside it, a
 * tool context and the built-in tools over it. */
static fixture *make(int max_tool_calls, size_t output_cap)
{
	fixture *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/var/tmp/perfbot-builtin-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	chmod(f->root, 0700);
	snprintf(f->ws, sizeof(f->ws), "%s/ws", f->root);
	assert_int_equal(mkdir(f->ws, 0755), 0);
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/.state", f->root);
	assert_int_equal(mkdir(p, 0755), 0);
	put(p, "secret.txt", "PERFBOT-STATE\n");
	put(f->ws, "f.txt", "alpha\nbeta\ngamma\ndelta\n");
	put(f->ws, "a.c", "int needle;\n");
	snprintf(p, sizeof(p), "mkdir -p '%s/src/deep' '%s/secret' '%s/.git'", f->ws, f->ws, f->ws);
	assert_int_equal(system(p), 0);
	put(f->ws, "src/b.c", "static int x;\nint Needle(void) { return x; }\n");
	put(f->ws, "src/d.h", "int needle(void);\n");
	put(f->ws, "src/deep/c.c", "/* needle needle */\n");
	put(f->ws, "secret/k.c", "int k;\n");
	put(f->ws, ".git/x.c", "int needle;\n");
	assert_int_equal(measure_sandbox_prepare_dir(g_sb, f->ws), 0);

	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = f->ws;
	o.base_commit = "0000000000000000000000000000000000000000";
	o.max_tool_calls = max_tool_calls;
	o.policy = &policy;
	assert_int_equal(agent_tools_new(&f->t, &o), 0);
	agent_builtin_options bo = { .tools = f->t, .sandbox = g_sb, .workspace = f->ws };
	measure_sandbox_limits lim = MEASURE_SANDBOX_LIMITS_INIT;
	bo.limits = lim;
	bo.limits.timeout_s = 60;
	bo.limits.output_cap = output_cap;
	assert_int_equal(agent_builtin_new(&f->b, &bo), 0);
	return f;
}

static void unmake(fixture *f)
{
	agent_builtin_free(f->b);
	agent_tools_free(f->t);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
}

/* Calls a tool; *is_error receives isError; returns the text (static). */
static const char *call(fixture *f, const char *name, const char *input_json, int *is_error)
{
	json_error_t je;
	json_t *in = json_loads(input_json, 0, &je);
	if (!in)
		fail_msg("bad test JSON %s: %s", input_json, je.text);
	json_t *r = NULL;
	assert_int_equal(agent_builtin_call(f->b, name, in, &r), 0);
	json_decref(in);
	assert_non_null(r);
	assert_null(json_object_get(r, "structuredContent"));
	*is_error = json_is_true(json_object_get(r, "isError"));
	static _Thread_local char text[300000];
	const char *s = json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
	assert_non_null(s);
	snprintf(text, sizeof(text), "%s", s);
	json_decref(r);
	return text;
}

static void expect_ok(fixture *f, const char *name, const char *input, const char *want)
{
	int err = 1;
	const char *got = call(f, name, input, &err);
	if (err || strcmp(got, want) != 0)
		fail_msg("%s %s: isError %d, got [%s], want [%s]", name, input, err, got, want);
}

static void expect_error(fixture *f, const char *name, const char *input, const char *needle)
{
	int err = 0;
	const char *got = call(f, name, input, &err);
	if (!err || !strstr(got, needle))
		fail_msg("%s %s: isError %d, got [%s], want an error with [%s]", name, input, err, got, needle);
}

/* ---- files --------------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	const char *names[] = { "bash", "read", "write", "edit", "glob", "grep" };
	for (int i = 0; i < 6; i++)
		assert_true(agent_builtin_exists(names[i]));
	assert_false(agent_builtin_exists("web_fetch"));
	assert_false(agent_builtin_exists("read_file"));
	fixture *f = make(0, 0);
	json_t *r = NULL;
	assert_int_equal(agent_builtin_call(f->b, "web_search", NULL, &r), BASE_ENOTFOUND);
	assert_null(r);
	unmake(f);
}

static void test_read_view_range(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_ok(f, "read", "{\"file_path\":\"f.txt\",\"view_range\":[2,3]}", "     2\tbeta\n     3\tgamma\n");
	expect_ok(f, "read", "{\"file_path\":\"/workspace/f.txt\",\"view_range\":[3,0]}",
		  "     3\tgamma\n     4\tdelta\n");
	expect_ok(f, "read", "{\"file_path\":\"/workspace/f.txt\",\"view_range\":[3,-1]}",
		  "     3\tgamma\n     4\tdelta\n");
	expect_ok(f, "read", "{\"file_path\":\"./f.txt\"}",
		  "     1\talpha\n     2\tbeta\n     3\tgamma\n     4\tdelta\n");
	expect_ok(f, "read", "{\"file_path\":\"f.txt\",\"offset\":2,\"limit\":1}", "     2\tbeta\n");
	expect_error(f, "read", "{\"file_path\":\"f.txt\",\"view_range\":[3,2]}", "view_range");
	expect_error(f, "read", "{\"file_path\":\"f.txt\",\"view_range\":[9,0]}", "fewer than 9 lines");
	expect_error(f, "read", "{\"file_path\":\"missing.txt\"}", "does not exist");
	expect_error(f, "read", "{}", "file_path");
	/* a directory is listed */
	int err = 1;
	const char *got = call(f, "read", "{\"file_path\":\"/workspace/src\"}", &err);
	assert_false(err);
	assert_non_null(strstr(got, "b.c"));
	assert_non_null(strstr(got, "deep/"));
	unmake(f);
}

static void test_write_then_read(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	int err = 1;
	const char *got = call(f, "write", "{\"file_path\":\"/workspace/src/new/n.c\",\"content\":\"one\\ntwo\"}",
			       &err);
	assert_false(err);
	assert_non_null(strstr(got, "7 bytes"));
	assert_string_equal(slurp(f->ws, "src/new/n.c"), "one\ntwo");
	expect_ok(f, "read", "{\"file_path\":\"src/new/n.c\"}", "     1\tone\n     2\ttwo\n");
	expect_error(f, "write", "{\"file_path\":\"x.c\"}", "content");
	unmake(f);
}

static void test_edit(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	put(f->ws, "e.c", "int a = 1;\nint b = 1;\nint c = 2;\n");
	int err = 1;
	call(f, "edit", "{\"file_path\":\"/workspace/e.c\",\"old_string\":\"c = 2\",\"new_string\":\"c = 3\"}", &err);
	assert_false(err);
	assert_string_equal(slurp(f->ws, "e.c"), "int a = 1;\nint b = 1;\nint c = 3;\n");
	expect_error(f, "edit", "{\"file_path\":\"e.c\",\"old_string\":\"= 1\",\"new_string\":\"= 0\"}",
		     "occurs 2 times");
	assert_string_equal(slurp(f->ws, "e.c"), "int a = 1;\nint b = 1;\nint c = 3;\n");
	expect_error(f, "edit", "{\"file_path\":\"e.c\",\"old_string\":\"zzz\",\"new_string\":\"y\"}", "not found");
	expect_error(f, "edit", "{\"file_path\":\"e.c\",\"old_string\":\"\",\"new_string\":\"y\"}", "use write");
	expect_error(f, "edit", "{\"file_path\":\"e.c\",\"old_string\":\"a\"}", "new_string");
	call(f, "edit", "{\"file_path\":\"e.c\",\"old_string\":\"= 1\",\"new_string\":\"= 0\",\"replace_all\":true}",
	     &err);
	assert_false(err);
	assert_string_equal(slurp(f->ws, "e.c"), "int a = 0;\nint b = 0;\nint c = 3;\n");
	unmake(f);
}

static void test_protected_refused(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_error(f, "write", "{\"file_path\":\"/workspace/.valgrindrc\",\"content\":\"--x\"}", "refused");
	assert_null(slurp(f->ws, ".valgrindrc"));
	expect_error(f, "edit", "{\"file_path\":\"secret/k.c\",\"old_string\":\"k\",\"new_string\":\"j\"}", "refused");
	expect_error(f, "write", "{\"file_path\":\"secret/k.c\",\"content\":\"x\"}", "verification would refuse");
	assert_string_equal(slurp(f->ws, "secret/k.c"), "int k;\n");
	unmake(f);
}

static void test_outside_refused(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_error(f, "read", "{\"file_path\":\"/etc/passwd\"}", "outside the workspace");
	expect_error(f, "read", "{\"file_path\":\"/workspacex/f.txt\"}", "outside the workspace");
	expect_error(f, "write", "{\"file_path\":\"/tmp/x\",\"content\":\"x\"}", "outside the workspace");
	expect_error(f, "read", "{\"file_path\":\"../.state/secret.txt\"}", "..");
	expect_error(f, "read", "{\"file_path\":\"/workspace/.git/x.c\"}", ".git");
	expect_error(f, "glob", "{\"pattern\":\"*\",\"path\":\"/\"}", "outside the workspace");
	expect_error(f, "glob", "{\"pattern\":\"../*\"}", "..");
	expect_error(f, "grep", "{\"pattern\":\"x\",\"path\":\"/root\"}", "outside the workspace");
	unmake(f);
}

static void test_glob(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_ok(f, "glob", "{\"pattern\":\"**/*.c\"}", "a.c\nsecret/k.c\nsrc/b.c\nsrc/deep/c.c\n");
	expect_ok(f, "glob", "{\"pattern\":\"*.c\"}", "a.c\n");
	expect_ok(f, "glob", "{\"pattern\":\"src/**/*.c\"}", "src/b.c\nsrc/deep/c.c\n");
	expect_ok(f, "glob", "{\"pattern\":\"**/*.{c,h}\",\"path\":\"/workspace/src\"}",
		  "/workspace/src/b.c\n/workspace/src/d.h\n/workspace/src/deep/c.c\n");
	expect_ok(f, "glob", "{\"pattern\":\"/workspace/src/*.h\"}", "/workspace/src/d.h\n");
	expect_ok(f, "glob", "{\"pattern\":\"**/*.rs\"}", "no files match\n");
	unmake(f);
}

static void test_grep(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	/* the .git directory is never searched */
	expect_ok(f, "grep", "{\"pattern\":\"needle\"}", "a.c\nsrc/d.h\nsrc/deep/c.c\n");
	expect_ok(f, "grep", "{\"pattern\":\"needle\",\"-i\":true,\"glob\":\"*.c\",\"path\":\"/workspace/src\"}",
		  "src/b.c\nsrc/deep/c.c\n");
	int err = 1;
	const char *got = call(
		f, "grep",
		"{\"pattern\":\"ne+dle\",\"output_mode\":\"content\",\"path\":\"src\",\"glob\":\"**/*.{c,h}\"}", &err);
	assert_false(err);
	assert_non_null(strstr(got, "src/d.h:1:int needle(void);\n"));
	assert_non_null(strstr(got, "src/deep/c.c:1:/* needle needle */\n"));
	assert_null(strstr(got, "b.c"));
	expect_ok(f, "grep", "{\"pattern\":\"Needle\",\"output_mode\":\"content\",\"-n\":false,\"-A\":0}",
		  "src/b.c:int Needle(void) { return x; }\n");
	expect_ok(f, "grep", "{\"pattern\":\"needle\",\"head_limit\":1}", "a.c\n");
	expect_ok(f, "grep", "{\"pattern\":\"needle\",\"output_mode\":\"count\",\"path\":\"src\"}",
		  "src/d.h:1\nsrc/deep/c.c:1\n");
	expect_ok(f, "grep", "{\"pattern\":\"nothing-like-this\"}", "no files match\n");
	expect_error(f, "grep", "{\"pattern\":\"(\"}", "not a valid");
	expect_error(f, "grep", "{\"pattern\":\"x\",\"output_mode\":\"all\"}", "output_mode");
	unmake(f);
}

/* grep's answer is capped like every other. */
static void test_grep_capped(void **state)
{
	(void)state;
	fixture *f = make(0, 4096);
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/many.txt", f->ws);
	FILE *fp = fopen(p, "w");
	for (int i = 0; i < 5000; i++)
		fprintf(fp, "needle %d\n", i);
	fclose(fp);
	int err = 1;
	const char *got = call(f, "grep", "{\"pattern\":\"needle\",\"output_mode\":\"content\",\"path\":\"many.txt\"}",
			       &err);
	assert_false(err);
	assert_true(strlen(got) < 4096 + 200);
	assert_true(strncmp(got, "many.txt:1:needle 0\nmany.txt:2:needle 1\n", 40) == 0);
	assert_non_null(strstr(got, "[output truncated at 4096 bytes]"));
	unmake(f);
}

/* ---- bash ---------------------------------------------------------------- */

static void test_bash_persistent(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_ok(f, "bash", "{\"command\":\"mkdir -p sub && cd sub && export X=1 && Y=two\"}", "");
	expect_ok(f, "bash", "{\"command\":\"pwd; echo $X $Y\"}", "/workspace/sub\n1 two\n");
	/* a background job lives on to the next command */
	expect_ok(f, "bash", marked("{\"command\":\"sleep %s & echo started\"}", "30.31"), "started\n");
	expect_ok(f, "bash", "{\"command\":\"kill -0 $! && echo alive; jobs | grep -c sleep\"}", "alive\n1\n");
	assert_int_equal(procs_settle("30.31", 1), 1);
	/* a command reading stdin cannot eat the frame; quoting survives */
	expect_ok(f, "bash", "{\"command\":\"cat; echo \\\"'$X'\\\"\"}", "'1'\n");
	/* a syntax error is the command's failure, the shell goes on */
	expect_error(f, "bash", "{\"command\":\"if then fi (\"}", "syntax error");
	expect_ok(f, "bash", "{\"command\":\"echo $X\"}", "1\n");
	agent_builtin_free(f->b);
	f->b = NULL;
	nap_ms(200);
	assert_int_equal(procs_settle("30.31", 0), 0);
	unmake(f);
}

static void test_bash_exit_status(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_error(f, "bash", "{\"command\":\"echo out; (exit 3)\"}", "out\n[exit status 3]");
	expect_error(f, "bash", "{\"command\":\"false\"}", "[exit status 1]");
	expect_ok(f, "bash", "{\"command\":\"export Z=9; true\"}", "");
	/* `exit` ends the shell: an error naming the status, then a new shell */
	expect_error(f, "bash", "{\"command\":\"echo bye; exit 3\"}", "the shell exited with status 3");
	expect_ok(f, "bash", "{\"command\":\"echo [$Z]\"}", "[]\n");
	unmake(f);
}

static void test_bash_stderr_merged(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_ok(f, "bash", "{\"command\":\"echo one; echo two >&2; echo three\"}", "one\ntwo\nthree\n");
	expect_ok(f, "bash", "{\"command\":\"printf 'no newline'\"}", "no newline");
	unmake(f);
}

/* What a background job prints between two commands opens the next answer;
 * a shell that died between two commands is said to have, and replaced. */
static void test_bash_between_commands(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	/* the job printed (then stands still as a marked sleep) between two commands */
	expect_ok(f, "bash", marked("{\"command\":\"(sleep 0.3; echo late; exec sleep %s) & echo now\"}", "30.34"),
		  "now\n");
	assert_int_equal(procs_settle("30.34", 1), 1);
	expect_ok(f, "bash", "{\"command\":\"echo next\"}", "late\nnext\n");
	expect_ok(f, "bash", "{\"command\":\"export V=1; (sleep 0.3; kill -9 $$) &\"}", "");
	/* the shell killed, its sandbox ended and reaped (and the marked sleep
	 * with it), then a moment for the reaping thread to note it (a few
	 * system calls after its waitpid) */
	assert_int_equal(children_settle(), 0);
	nap_ms(500);
	expect_ok(f, "bash", "{\"command\":\"echo [$V]\"}",
		  "[the shell had ended since the last command; this one ran in a new shell]\n[]\n");
	unmake(f);
}

/* A long file is cut at the answer cap, saying where to go on. */
static void test_read_cut(void **state)
{
	(void)state;
	fixture *f = make(0, 4096);
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/long.txt", f->ws);
	FILE *fp = fopen(p, "w");
	for (int i = 1; i <= 5000; i++)
		fprintf(fp, "line %d\n", i);
	fclose(fp);
	int err = 1;
	const char *got = call(f, "read", "{\"file_path\":\"long.txt\",\"view_range\":[10,-1]}", &err);
	assert_false(err);
	assert_true(strlen(got) <= 4096 + 200);
	assert_true(strncmp(got, "    10\tline 10\n    11\tline 11\n", 30) == 0);
	const char *cut = strstr(got, "[output cut: the file continues at line ");
	assert_non_null(cut);
	long next = strtol(cut + strlen("[output cut: the file continues at line "), NULL, 10);
	char want[128];
	snprintf(want, sizeof(want), "%6ld\tline %ld\n[output cut", next - 1, next - 1);
	assert_non_null(strstr(got, want));
	snprintf(want, sizeof(want), "read on with view_range [%ld, -1]]\n", next);
	assert_non_null(strstr(got, want));
	unmake(f);
}

static void test_bash_output_cap(void **state)
{
	(void)state;
	fixture *f = make(0, 4096);
	int err = 1;
	const char *got = call(f, "bash", "{\"command\":\"head -c 3000000 /dev/zero | tr '\\\\0' x; echo; echo end\"}",
			       &err);
	assert_false(err);
	assert_true(strlen(got) < 4096 + 200);
	assert_non_null(strstr(got, "[output cut: 4096 of 3000005 bytes shown]"));
	assert_null(strstr(got, "end"));
	expect_ok(f, "bash", "{\"command\":\"echo ok\"}", "ok\n");
	unmake(f);
}

static void test_bash_timeout_restarts(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_ok(f, "bash", "{\"command\":\"export W=1; cd src\"}", "");
	int64_t t0 = base_mono_ms();
	expect_error(f, "bash", marked("{\"command\":\"echo before; sleep %s; echo after\",\"timeout_ms\":700}", "20.41"),
		     "timed out after 700 ms: the shell was killed and restarted");
	int64_t took = base_mono_ms() - t0;
	/* not before its 700 ms, and long before the 20 s the command would
	 * have taken (the margin is for a loaded machine) */
	assert_true(took >= 600 && took < 15000);
	assert_int_equal(procs_settle("20.41", 0), 0);
	expect_ok(f, "bash", "{\"command\":\"pwd; echo [$W]\"}", "/workspace\n[]\n");
	/* a timeout above the ceiling (60 s here) is lowered to it */
	expect_ok(f, "bash", "{\"command\":\"echo fast\",\"timeout_ms\":99999999}", "fast\n");
	unmake(f);
}

static void test_bash_restart(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_ok(f, "bash", marked("{\"command\":\"export Y=2; sleep %s &\"}", "30.32"), "");
	assert_int_equal(procs_settle("30.32", 1), 1);
	expect_ok(f, "bash", "{\"restart\":true}", "the shell was restarted\n");
	assert_int_equal(procs_settle("30.32", 0), 0);
	expect_ok(f, "bash", "{\"command\":\"echo [$Y]\"}", "[]\n");
	expect_ok(f, "bash", "{\"command\":\"export Y=3\"}", "");
	expect_ok(f, "bash", "{\"command\":\"echo [$Y]\",\"restart\":true}", "[]\n");
	expect_error(f, "bash", "{}", "command");
	unmake(f);
}

typedef struct ender {
	agent_tools *t;
	int delay_ms;
} ender;

static void *end_later(void *arg)
{
	ender *e = arg;
	nap_ms(e->delay_ms);
	agent_tools_end(e->t, "cancelled by the user");
	return NULL;
}

static void test_bash_end_kills(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_ok(f, "bash", marked("{\"command\":\"sleep %s & echo bg\"}", "60.52"), "bg\n");
	pthread_t th;
	ender e = { f->t, 500 };
	assert_int_equal(pthread_create(&th, NULL, end_later, &e), 0);
	int64_t t0 = base_mono_ms();
	expect_error(f, "bash", marked("{\"command\":\"sleep %s\"}", "60.53"), "the run has ended: cancelled by the user");
	int64_t took = base_mono_ms() - t0;
	pthread_join(th, NULL);
	assert_true(took < 15000); /* ended by the run's end at 500 ms, not after the 60 s */
	nap_ms(100);
	assert_int_equal(procs_settle("60.53", 0), 0);
	assert_int_equal(procs_settle("60.52", 0), 0);
	expect_error(f, "bash", "{\"command\":\"echo again\"}", "the run has ended");
	expect_error(f, "read", "{\"file_path\":\"f.txt\"}", "the run has ended");
	unmake(f);
}

typedef struct in_flight {
	fixture *f;
	int done;
	int is_error;
} in_flight;

static void *call_sleep(void *arg)
{
	in_flight *c = arg;
	json_t *in = json_pack("{s:s+}", "command", "sleep ", mark("60.57")), *r = NULL;
	assert_int_equal(agent_builtin_call(c->f->b, "bash", in, &r), 0);
	c->is_error = json_is_true(json_object_get(r, "isError"));
	json_decref(r);
	json_decref(in);
	c->done = 1;
	return NULL;
}

/* Freeing the tools while a command runs on another thread ends that
 * command at once and leaves nothing behind. */
static void test_free_during_call(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	in_flight c = { f, 0, 0 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, call_sleep, &c), 0);
	assert_int_equal(procs_settle("60.57", 1), 1);
	int64_t t0 = base_mono_ms();
	agent_builtin_free(f->b);
	f->b = NULL;
	assert_true(base_mono_ms() - t0 < 15000); /* not after the command's 60 s */
	pthread_join(th, NULL);
	assert_true(c.done && c.is_error);
	assert_int_equal(procs_settle("60.57", 0), 0);
	unmake(f);
}

/* Ending the run between two calls kills the idle shell and its jobs. */
static void test_end_kills_idle_shell(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	expect_ok(f, "bash", marked("{\"command\":\"sleep %s & echo bg\"}", "40.61"), "bg\n");
	assert_int_equal(procs_settle("40.61", 1), 1);
	agent_tools_end(f->t, "the run is over");
	assert_int_equal(procs_settle("40.61", 0), 0);
	unmake(f);
}

static void test_bash_confined(void **state)
{
	(void)state;
	fixture *f = make(0, 0);
	char cmd[512];
	/* perfbot's state beside the work tree is not there */
	snprintf(cmd, sizeof(cmd), "{\"command\":\"cat %s/.state/secret.txt\"}", f->root);
	expect_error(f, "bash", cmd, "No such file or directory");
	snprintf(cmd, sizeof(cmd), "{\"command\":\"ls -a %s\"}", f->root);
	expect_error(f, "bash", cmd, "No such file or directory");
	expect_ok(
		f, "bash",
		"{\"command\":\"ls -d /workspace/src; find / -path /proc -prune -o -path /usr -prune -o -name secret.txt -print 2>/dev/null; echo searched\"}",
		"/workspace/src\nsearched\n");
	/* no descriptor of perfbot's: a command has 0, 1, 2 (and ls its own 3) */
	expect_ok(f, "bash", "{\"command\":\"echo $(ls /proc/self/fd)\"}", "0 1 2 3\n");
	/* no network: a listener on the host's loopback is out of reach */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 4), 0);
	socklen_t al = sizeof(a);
	getsockname(s, (struct sockaddr *)&a, &al);
	snprintf(cmd, sizeof(cmd), "{\"command\":\"echo hi > /dev/tcp/127.0.0.1/%d && echo connected\"}",
		 ntohs(a.sin_port));
	int err = 0;
	const char *got = call(f, "bash", cmd, &err);
	assert_true(err);
	assert_null(strstr(got, "connected"));
	expect_ok(f, "bash", "{\"command\":\"ls /sys/class/net 2>/dev/null; grep -c : /proc/net/dev\"}", "1\n");
	close(s);
	unmake(f);
}

typedef struct concurrent {
	fixture *f;
	int ok;
} concurrent;

static void *run_sleepy(void *arg)
{
	concurrent *c = arg;
	int err = 1;
	const char *got = call(c->f, "bash", "{\"command\":\"sleep 2; echo $RUN\"}", &err);
	c->ok = !err && (strcmp(got, "a\n") == 0 || strcmp(got, "b\n") == 0);
	return NULL;
}

/* Two runs' shells are apart (each its own variables and sandbox) and run
 * at the same time. */
static void test_two_runs_apart(void **state)
{
	(void)state;
	fixture *a = make(0, 0), *b = make(0, 0);
	expect_ok(a, "bash", "{\"command\":\"export RUN=a; touch /tmp/only-a\"}", "");
	expect_ok(b, "bash", "{\"command\":\"export RUN=b; ls /tmp/only-a 2>/dev/null; echo $RUN\"}", "b\n");
	concurrent ca = { a, 0 }, cb = { b, 0 };
	pthread_t ta, tb;
	int64_t t0 = base_mono_ms();
	assert_int_equal(pthread_create(&ta, NULL, run_sleepy, &ca), 0);
	assert_int_equal(pthread_create(&tb, NULL, run_sleepy, &cb), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_true(ca.ok && cb.ok);
	/* one after the other would take 4 s at least */
	assert_true(base_mono_ms() - t0 < 4000);
	unmake(a);
	unmake(b);
}

static void test_budget(void **state)
{
	(void)state;
	fixture *f = make(3, 0);
	expect_ok(f, "bash", "{\"command\":\"echo 1\"}", "1\n");
	expect_ok(f, "glob", "{\"pattern\":\"*.txt\"}", "f.txt\n");
	expect_error(f, "read", "{\"file_path\":\"/etc/passwd\"}", "outside the workspace");
	expect_error(f, "grep", "{\"pattern\":\"x\"}", "tool call budget (3 calls)");
	expect_error(f, "bash", "{\"command\":\"echo 2\"}", "the run has ended");
	json_t *u = agent_tools_usage(f->t);
	assert_int_equal(json_integer_value(json_object_get(u, "tool_calls")), 3);
	json_decref(u);
	unmake(f);
}

int main(void)
{
	g_pid = getpid();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_read_view_range),
		cmocka_unit_test(test_write_then_read),
		cmocka_unit_test(test_edit),
		cmocka_unit_test(test_protected_refused),
		cmocka_unit_test(test_outside_refused),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_grep),
		cmocka_unit_test(test_grep_capped),
		cmocka_unit_test(test_bash_persistent),
		cmocka_unit_test(test_bash_exit_status),
		cmocka_unit_test(test_bash_stderr_merged),
		cmocka_unit_test(test_bash_output_cap),
		cmocka_unit_test(test_bash_between_commands),
		cmocka_unit_test(test_read_cut),
		cmocka_unit_test(test_bash_timeout_restarts),
		cmocka_unit_test(test_bash_restart),
		cmocka_unit_test(test_bash_end_kills),
		cmocka_unit_test(test_end_kills_idle_shell),
		cmocka_unit_test(test_free_during_call),
		cmocka_unit_test(test_bash_confined),
		cmocka_unit_test(test_two_runs_apart),
		cmocka_unit_test(test_budget),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
