/* Unit tests: the agent tools — path confinement (absolute, "..", .git,
 * symbolic links leading outside), the file tools' semantics, grep, the
 * workspace diff, budgets and submission.  Each test works in a fresh
 * temporary git repository made with the real git command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/tools.h"
#include "base/clock.h"
#include "base/error.h"

typedef struct fixture {
	char ws[64];      /* the workspace (a git repository) */
	char outside[64]; /* a directory outside it */
	char base[41];
	agent_tools *t;
} fixture;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

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

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static char *read_capped(int fd, size_t cap, int *cut)
{
	char *b = calloc(1, cap + 1);
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, b, cap);
	b[n > 0 ? n : 0] = '\0';
	char extra;
	*cut = read(fd, &extra, 1) == 1;
	return b;
}

/* The exec hook of the tests: /bin/sh -c in the workspace (payload) on the
 * host, killed (its process group) on the timeout or when *stop becomes
 * nonzero, as the sandbox does. */
static int host_exec(void *payload, const char *command, int timeout_s, size_t cap, const atomic_int *stop,
		     agent_exec_result *out)
{
	char of[] = "/tmp/perfbot-exec-out-XXXXXX", ef[] = "/tmp/perfbot-exec-err-XXXXXX";
	int ofd = mkstemp(of), efd = mkstemp(ef);
	assert_true(ofd >= 0 && efd >= 0);
	unlink(of);
	unlink(ef);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		if (chdir((const char *)payload) < 0)
			_exit(127);
		dup2(ofd, 1);
		dup2(efd, 2);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	int64_t start = base_mono_ms();
	int status = 0;
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		if (*stop || base_mono_ms() - start > (int64_t)timeout_s * 1000) {
			out->timed_out = 1;
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		nap_ms(10);
	}
	out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	out->out = read_capped(ofd, cap, &out->out_cut);
	out->err = read_capped(efd, cap, &out->err_cut);
	close(ofd);
	close(efd);
	return 0;
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->ws, sizeof(fx->ws), "/tmp/perfbot-tools-XXXXXX");
	snprintf(fx->outside, sizeof(fx->outside), "/tmp/perfbot-outside-XXXXXX");
	if (!mkdtemp(fx->ws) || !mkdtemp(fx->outside))
		return -1;
	put(fx->outside, "secret.txt", "top secret\n");
	sh("cd %s && git init -q && mkdir -p src && printf 'int slow(int n)\\n{\\n\\treturn n * 2;\\n}\\n' > src/hot.c && "
	   "printf 'one\\ntwo\\nthree\\ntwo\\n' > words.txt && printf 'build/\\n' > .gitignore && git add . && "
	   "git -c user.name=t -c user.email=t@example.com commit -qm base", fx->ws);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "git -C %s rev-parse HEAD", fx->ws);
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(fx->base, sizeof(fx->base), p))
		return -1;
	pclose(p);
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = fx->ws;
	o.base_commit = fx->base;
	o.hooks.exec = host_exec;
	o.hooks.payload = fx->ws;
	if (agent_tools_new(&fx->t, &o) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	agent_tools_free(fx->t);
	sh("rm -rf %s %s", fx->ws, fx->outside);
	free(fx);
	return 0;
}

/* Calls a tool with args given as JSON text; returns the result (owned). */
static json_t *call(agent_tools *t, const char *name, const char *args_json)
{
	json_error_t e;
	json_t *args = json_loads(args_json, 0, &e);
	assert_non_null(args);
	json_t *res = NULL;
	assert_int_equal(agent_tool_call(t, name, args, &res), 0);
	json_decref(args);
	assert_non_null(res);
	return res;
}

static const char *text_of(const json_t *res)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
}

static int is_error(const json_t *res)
{
	return json_is_true(json_object_get(res, "isError"));
}

/* Asserts a failed result whose text contains `needle`. */
static void expect_error(agent_tools *t, const char *name, const char *args, const char *needle)
{
	json_t *r = call(t, name, args);
	if (!is_error(r) || !strstr(text_of(r), needle))
		fail_msg("%s %s: expected an error with \"%s\", got %s", name, args, needle, text_of(r));
	json_decref(r);
}

static void test_read_file_and_ranges(void **state)
{
	fixture *fx = *state;
	json_t *r = call(fx->t, "read_file", "{\"path\": \"words.txt\"}");
	assert_false(is_error(r));
	assert_string_equal(text_of(r), "one\ntwo\nthree\ntwo\n");
	json_decref(r);
	r = call(fx->t, "read_file", "{\"path\": \"./words.txt\", \"offset\": 2, \"limit\": 2}");
	assert_string_equal(text_of(r), "two\nthree\n");
	json_decref(r);
	expect_error(fx->t, "read_file", "{\"path\": \"missing.txt\"}", "does not exist");
	expect_error(fx->t, "read_file", "{}", "\"path\" is required");
	expect_error(fx->t, "read_file", "{\"path\": 3}", "must be a string");
}

/* Text that is not UTF-8 comes back cleaned, not as a protocol error; a
 * FIFO is refused at once instead of blocking the run. */
static void test_odd_files(void **state)
{
	fixture *fx = *state;
	put(fx->ws, "latin1.txt", "caf\xe9 cr\xe8me\n");
	json_t *r = call(fx->t, "read_file", "{\"path\": \"latin1.txt\"}");
	assert_false(is_error(r));
	assert_string_equal(text_of(r), "caf\xef\xbf\xbd cr\xef\xbf\xbdme\n");
	json_decref(r);
	sh("mkfifo %s/pipe", fx->ws);
	expect_error(fx->t, "read_file", "{\"path\": \"pipe\"}", "not a regular file");
	expect_error(fx->t, "write_file", "{\"path\": \"pipe\", \"content\": \"x\"}", "not a regular file");
	expect_error(fx->t, "edit_file", "{\"path\": \"pipe\", \"old_string\": \"a\", \"new_string\": \"b\"}",
		     "not a regular file");
}

static void test_confinement_lexical(void **state)
{
	fixture *fx = *state;
	expect_error(fx->t, "read_file", "{\"path\": \"/etc/passwd\"}", "absolute paths are not allowed");
	expect_error(fx->t, "read_file", "{\"path\": \"../../etc/passwd\"}", "\"..\" is not allowed");
	expect_error(fx->t, "read_file", "{\"path\": \"src/../../x\"}", "\"..\" is not allowed");
	expect_error(fx->t, "read_file", "{\"path\": \".git/config\"}", ".git directory is off limits");
	expect_error(fx->t, "write_file", "{\"path\": \".git/hooks/pre-commit\", \"content\": \"x\"}",
		     ".git directory is off limits");
	expect_error(fx->t, "write_file", "{\"path\": \"src/.GIT/x\", \"content\": \"x\"}", ".git directory is off limits");
	expect_error(fx->t, "list_files", "{\"path\": \".git\"}", ".git directory is off limits");
	expect_error(fx->t, "grep", "{\"pattern\": \"x\", \"path\": \"/etc\"}", "absolute paths");
	/* nothing was written in .git */
	struct stat st;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/.git/hooks/pre-commit", fx->ws);
	assert_int_not_equal(stat(p, &st), 0);
}

static void test_confinement_symlinks(void **state)
{
	fixture *fx = *state;
	char link[PATH_MAX];
	snprintf(link, sizeof(link), "%s/out", fx->ws);
	assert_int_equal(symlink(fx->outside, link), 0);
	snprintf(link, sizeof(link), "%s/secret-link", fx->ws);
	char target[PATH_MAX];
	snprintf(target, sizeof(target), "%s/secret.txt", fx->outside);
	assert_int_equal(symlink(target, link), 0);
	snprintf(link, sizeof(link), "%s/gitlink", fx->ws);
	assert_int_equal(symlink(".git", link), 0);
	snprintf(link, sizeof(link), "%s/dangling", fx->ws);
	assert_int_equal(symlink("/nonexistent/dir", link), 0);
	snprintf(link, sizeof(link), "%s/inside-link", fx->ws);
	assert_int_equal(symlink("words.txt", link), 0);

	expect_error(fx->t, "read_file", "{\"path\": \"out/secret.txt\"}", "resolves outside the workspace");
	expect_error(fx->t, "read_file", "{\"path\": \"secret-link\"}", "resolves outside the workspace");
	expect_error(fx->t, "write_file", "{\"path\": \"out/new.txt\", \"content\": \"pwned\"}", "outside the workspace");
	expect_error(fx->t, "write_file", "{\"path\": \"secret-link\", \"content\": \"pwned\"}", "outside the workspace");
	expect_error(fx->t, "edit_file",
		     "{\"path\": \"secret-link\", \"old_string\": \"top\", \"new_string\": \"pwned\"}", "outside");
	expect_error(fx->t, "write_file", "{\"path\": \"dangling/x\", \"content\": \"pwned\"}", "symbolic link");
	expect_error(fx->t, "read_file", "{\"path\": \"gitlink/config\"}", ".git directory is off limits");
	expect_error(fx->t, "list_files", "{\"path\": \"out\"}", "outside the workspace");
	expect_error(fx->t, "grep", "{\"pattern\": \"secret\", \"path\": \"out\"}", "outside the workspace");
	assert_null(slurp(fx->outside, "new.txt"));
	assert_string_equal(slurp(fx->outside, "secret.txt"), "top secret\n");

	/* grep over the whole workspace does not follow the links out */
	json_t *r = call(fx->t, "grep", "{\"pattern\": \"secret\"}");
	assert_false(is_error(r));
	assert_null(strstr(text_of(r), "top secret"));
	json_decref(r);

	/* a link that stays inside is fine */
	r = call(fx->t, "read_file", "{\"path\": \"inside-link\"}");
	assert_false(is_error(r));
	assert_string_equal(text_of(r), "one\ntwo\nthree\ntwo\n");
	json_decref(r);
}

static void test_write_file(void **state)
{
	fixture *fx = *state;
	json_t *r = call(fx->t, "write_file", "{\"path\": \"new/dir/a.txt\", \"content\": \"hello\\n\"}");
	assert_false(is_error(r));
	assert_string_equal(text_of(r), "wrote 6 bytes to new/dir/a.txt");
	json_decref(r);
	assert_string_equal(slurp(fx->ws, "new/dir/a.txt"), "hello\n");
	expect_error(fx->t, "write_file", "{\"path\": \"src\", \"content\": \"x\"}", "directory");
	expect_error(fx->t, "write_file", "{\"path\": \"a.txt\"}", "\"content\" is required");
}

static void test_edit_file(void **state)
{
	fixture *fx = *state;
	expect_error(fx->t, "edit_file", "{\"path\": \"words.txt\", \"old_string\": \"four\", \"new_string\": \"4\"}",
		     "old_string was not found in words.txt");
	expect_error(fx->t, "edit_file", "{\"path\": \"words.txt\", \"old_string\": \"two\", \"new_string\": \"2\"}",
		     "old_string occurs 2 times in words.txt");
	assert_string_equal(slurp(fx->ws, "words.txt"), "one\ntwo\nthree\ntwo\n");
	expect_error(fx->t, "edit_file", "{\"path\": \"words.txt\", \"old_string\": \"\", \"new_string\": \"2\"}",
		     "must not be empty");

	json_t *r = call(fx->t, "edit_file", "{\"path\": \"words.txt\", \"old_string\": \"three\", \"new_string\": \"3\"}");
	assert_false(is_error(r));
	assert_string_equal(text_of(r), "replaced 1 occurrence in words.txt");
	json_decref(r);
	assert_string_equal(slurp(fx->ws, "words.txt"), "one\ntwo\n3\ntwo\n");

	r = call(fx->t, "edit_file",
		 "{\"path\": \"words.txt\", \"old_string\": \"two\", \"new_string\": \"deux\", \"replace_all\": true}");
	assert_false(is_error(r));
	assert_string_equal(text_of(r), "replaced 2 occurrences in words.txt");
	json_decref(r);
	assert_string_equal(slurp(fx->ws, "words.txt"), "one\ndeux\n3\ndeux\n");
}

static void test_list_and_grep(void **state)
{
	fixture *fx = *state;
	json_t *r = call(fx->t, "list_files", "{}");
	assert_false(is_error(r));
	assert_string_equal(text_of(r), ".gitignore\nsrc/\nwords.txt\n");
	json_decref(r);

	r = call(fx->t, "grep", "{\"pattern\": \"^t[wh]\"}");
	assert_false(is_error(r));
	assert_string_equal(text_of(r), "words.txt:2:two\nwords.txt:3:three\nwords.txt:4:two\n");
	json_decref(r);
	r = call(fx->t, "grep", "{\"pattern\": \"return\", \"path\": \"src\"}");
	assert_string_equal(text_of(r), "src/hot.c:3:\treturn n * 2;\n");
	json_decref(r);
	expect_error(fx->t, "grep", "{\"pattern\": \"(\"}", "not a valid POSIX extended regular expression");
}

static void test_diff_includes_new_files(void **state)
{
	fixture *fx = *state;
	json_t *r = call(fx->t, "get_diff", "{}");
	assert_string_equal(text_of(r), "no changes against the base commit\n");
	json_decref(r);
	json_decref(call(fx->t, "edit_file", "{\"path\": \"src/hot.c\", \"old_string\": \"n * 2\", \"new_string\": \"n << 1\"}"));
	json_decref(call(fx->t, "write_file", "{\"path\": \"src/new.h\", \"content\": \"#define X 1\\n\"}"));
	json_decref(call(fx->t, "write_file", "{\"path\": \"build/out.o\", \"content\": \"ignored\"}"));
	sh("printf 'ELF\\000\\001' > %s/src/a.out", fx->ws); /* an untracked build product */
	r = call(fx->t, "get_diff", "{}");
	const char *d = text_of(r);
	assert_non_null(strstr(d, "diff --git a/src/hot.c b/src/hot.c"));
	assert_non_null(strstr(d, "-\treturn n * 2;\n+\treturn n << 1;\n"));
	assert_non_null(strstr(d, "diff --git a/src/new.h b/src/new.h\nnew file mode 100644"));
	assert_null(strstr(d, "build/out.o"));
	assert_null(strstr(d, "a.out"));
	json_decref(r);

	/* the same diff from a plain directory against the repository, then
	 * applied to another plain copy of the base */
	char plain[64] = "/tmp/perfbot-plain-XXXXXX", fresh[64] = "/tmp/perfbot-fresh-XXXXXX";
	assert_non_null(mkdtemp(plain));
	assert_non_null(mkdtemp(fresh));
	sh("cp -r %s/. %s && rm -rf %s/.git && git -C %s archive %s | tar -x -C %s", fx->ws, plain, plain, fx->ws, fx->base,
	   fresh);
	char *diff = NULL;
	assert_int_equal(agent_workspace_diff(&diff, fx->ws, plain, fx->base, 1 << 20), 0);
	assert_non_null(strstr(diff, "+\treturn n << 1;\n"));
	assert_non_null(strstr(diff, "b/src/new.h"));
	assert_int_equal(agent_workspace_apply(fx->ws, fresh, diff, strlen(diff)), 0);
	assert_string_equal(slurp(fresh, "src/new.h"), "#define X 1\n");
	assert_non_null(strstr(slurp(fresh, "src/hot.c"), "n << 1"));
	/* applying twice fails: the preimage is gone */
	assert_int_equal(agent_workspace_apply(fx->ws, fresh, diff, strlen(diff)), BASE_EINVALID);
	free(diff);
	assert_int_equal(agent_workspace_diff(&diff, fx->ws, plain, fx->base, 10), BASE_ETOOBIG);
	assert_null(diff);
	sh("rm -rf %s %s", plain, fresh);
}

static void test_budget_tool_calls(void **state)
{
	fixture *fx = *state;
	agent_tools *t = NULL;
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = fx->ws;
	o.base_commit = fx->base;
	o.max_tool_calls = 2;
	assert_int_equal(agent_tools_new(&t, &o), 0);
	json_decref(call(t, "list_files", "{}"));
	json_decref(call(t, "list_files", "{}"));
	assert_int_equal(agent_tools_ended(t, NULL), 0);
	expect_error(t, "list_files", "{}", "the run has ended: the tool call budget (2 calls) is exhausted");
	char *why = NULL;
	assert_int_equal(agent_tools_ended(t, &why), 1);
	assert_string_equal(why, "the tool call budget (2 calls) is exhausted");
	free(why);
	json_t *u = agent_tools_usage(t);
	assert_int_equal(json_integer_value(json_object_get(u, "tool_calls")), 2);
	json_decref(u);
	agent_tools_free(t);
}

/* Every call the run made is in its timeline: the tool, when, how long, and
 * the sentence of a failed one. */
static void test_timeline(void **state)
{
	fixture *fx = *state;
	agent_tools *t = NULL;
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = fx->ws;
	o.base_commit = fx->base;
	assert_int_equal(agent_tools_new(&t, &o), 0);
	json_decref(call(t, "list_files", "{}"));
	expect_error(t, "read_file", "{\"path\": \"no/such/file\"}", "no/such/file");
	json_t *u = agent_tools_usage(t);
	const json_t *calls = json_object_get(u, "calls");
	assert_int_equal(json_array_size(calls), 2);
	const json_t *a = json_array_get(calls, 0), *b = json_array_get(calls, 1);
	assert_string_equal(json_string_value(json_object_get(a, "tool")), "list_files");
	assert_true(json_is_null(json_object_get(a, "error")));
	assert_true(json_integer_value(json_object_get(a, "duration_ms")) >= 0);
	assert_true(json_integer_value(json_object_get(a, "started_ms")) >= 0);
	assert_string_equal(json_string_value(json_object_get(b, "tool")), "read_file");
	assert_non_null(strstr(json_string_value(json_object_get(b, "error")), "no/such/file"));
	assert_true(json_integer_value(json_object_get(b, "started_ms")) >= json_integer_value(json_object_get(a, "started_ms")));
	json_decref(u);
	agent_tools_free(t);
}

static int fake_bench(void *payload, const json_t *names, const atomic_int *stop, json_t **out)
{
	(void)payload;
	(void)names;
	(void)stop;
	*out = json_pack("{s:s,s:s,s:[{s:s,s:i,s:i,s:f}]}", "measurement", "m1", "metric", "cycles", "benchmarks", "name",
			 "hot", "base", 1000, "head", 800, "change_pct", -20.0);
	return 0;
}

static int fake_exec(void *payload, const char *command, int timeout_s, size_t cap, const atomic_int *stop,
		     agent_exec_result *out)
{
	(void)payload;
	(void)timeout_s;
	(void)cap;
	(void)stop;
	out->exit_code = 3;
	out->out = strdup(command);
	out->out_cut = 1;
	out->err = strdup("warning");
	return 0;
}

static void test_budget_benchmarks_and_hooks(void **state)
{
	fixture *fx = *state;
	agent_tools *t = NULL;
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = fx->ws;
	o.base_commit = fx->base;
	o.max_benchmark_runs = 1;
	o.hooks.run_benchmarks = fake_bench;
	o.hooks.exec = fake_exec;
	assert_int_equal(agent_tools_new(&t, &o), 0);
	json_t *r = call(t, "exec", "{\"command\": \"make\"}");
	assert_false(is_error(r));
	assert_non_null(strstr(text_of(r), "exit code: 3\n--- stdout ---\nmake\n[stdout cut]\n--- stderr ---\nwarning"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "exit_code")), 3);
	json_decref(r);
	r = call(t, "run_benchmarks", "{}");
	assert_false(is_error(r));
	assert_non_null(strstr(text_of(r), "measurement m1\n"));
	assert_non_null(strstr(text_of(r), "-20.00%"));
	json_decref(r);
	expect_error(t, "run_benchmarks", "{}", "benchmark run budget (1 runs) is exhausted");
	expect_error(t, "read_file", "{\"path\": \"words.txt\"}", "the run has ended");
	expect_error(t, "get_profile", "{\"benchmark\": \"hot\"}", "the run has ended");
	agent_tools_free(t);

	/* without hooks the tools say so */
	o.hooks.run_benchmarks = NULL;
	o.hooks.exec = NULL;
	o.max_benchmark_runs = 0;
	assert_int_equal(agent_tools_new(&t, &o), 0);
	expect_error(t, "exec", "{\"command\": \"true\"}", "exec is not available");
	expect_error(t, "grep", "{\"pattern\": \"x\"}", "grep is not available");
	expect_error(t, "compare", "{\"base\": \"baseline\", \"head\": 2}", "compare is not available");
	agent_tools_free(t);
}

/* ---- bounds: nothing an agent asks for runs unbounded ------------------- */

typedef struct bg_call {
	agent_tools *t;
	const char *name;
	const char *args;
	json_t *res;
	int64_t ms; /* how long the call took */
} bg_call;

static void *bg_main(void *arg)
{
	bg_call *c = arg;
	json_t *args = json_loads(c->args, 0, NULL);
	int64_t start = base_mono_ms();
	agent_tool_call(c->t, c->name, args, &c->res);
	c->ms = base_mono_ms() - start;
	json_decref(args);
	return NULL;
}

static void test_grep_catastrophic_pattern_is_stopped(void **state)
{
	fixture *fx = *state;
	/* seconds to hours in a backtracking regexec: the search runs through
	 * the exec hook (the sandbox), and ending the run stops it */
	char line[128];
	memset(line, 'a', 40);
	line[40] = 'x'; /* GNU grep's own engine then backtracks too (more than 10 s) */
	line[41] = '\n';
	line[42] = '\0';
	put(fx->ws, "long.txt", line);
	bg_call c = { fx->t, "grep", "{\"pattern\": \"(.*)(.*)(.*)(.*)(.*)\\\\5\\\\4\\\\3\\\\2\\\\1x\", \"path\": \"long.txt\"}",
		      NULL, 0 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_main, &c), 0);
	nap_ms(500);
	int64_t t0 = base_mono_ms();
	agent_tools_end(fx->t, "cancelled");
	pthread_join(th, NULL);
	int64_t after_end = base_mono_ms() - t0;
	assert_non_null(c.res);
	if (after_end > 2000)
		fail_msg("grep went on for %lld ms after the run ended", (long long)after_end);
	assert_true(is_error(c.res));
	assert_non_null(strstr(text_of(c.res), "stopped"));
	json_decref(c.res);
}

static void test_end_stops_exec_in_flight(void **state)
{
	fixture *fx = *state;
	bg_call c = { fx->t, "exec", "{\"command\": \"sleep 30\"}", NULL, 0 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_main, &c), 0);
	nap_ms(300);
	agent_tools_end(fx->t, "cancelled");
	pthread_join(th, NULL);
	assert_true(c.ms < 3000);
	assert_non_null(strstr(text_of(c.res), "the command was killed: the run has ended"));
	json_decref(c.res);
}

/* A measurement that runs until it is stopped, as measure_bench_measure with
 * the sandbox's cancel flag does. */
static int endless_bench(void *payload, const json_t *names, const atomic_int *stop, json_t **out)
{
	(void)payload;
	(void)names;
	for (int i = 0; i < 3000 && !*stop; i++)
		nap_ms(10);
	*out = json_pack("{s:s,s:s,s:[]}", "measurement", "m1", "metric", "cycles", "benchmarks");
	return 0;
}

static void test_wall_budget_stops_call_in_flight(void **state)
{
	fixture *fx = *state;
	agent_tools *t = NULL;
	agent_tools_options o = AGENT_TOOLS_OPTIONS_INIT;
	o.workspace = fx->ws;
	o.base_commit = fx->base;
	o.hooks.run_benchmarks = endless_bench;
	o.max_wall_ms = 600;
	assert_int_equal(agent_tools_new(&t, &o), 0);
	int64_t start = base_mono_ms();
	json_t *r = call(t, "run_benchmarks", "{}");
	int64_t ms = base_mono_ms() - start;
	if (ms > 2500)
		fail_msg("run_benchmarks went on for %lld ms with a 600 ms wall budget", (long long)ms);
	assert_true(is_error(r));
	assert_non_null(strstr(text_of(r), "the run has ended"));
	json_decref(r);
	char *why = NULL;
	assert_int_equal(agent_tools_ended(t, &why), 1);
	assert_non_null(strstr(why, "wall time budget"));
	free(why);
	agent_tools_free(t);

	/* a context freed before its budget is over does not wait for it */
	o.max_wall_ms = 3600 * 1000;
	assert_int_equal(agent_tools_new(&t, &o), 0);
	start = base_mono_ms();
	agent_tools_free(t);
	assert_true(base_mono_ms() - start < 1000);
}

static void test_diff_weighs_files_before_reading(void **state)
{
	fixture *fx = *state;
	/* a new text file larger than the diff's cap is refused by its size,
	 * named, before it is formatted */
	sh("cd %s && yes 'some text' | head -c 33554432 > big.txt", fx->ws);
	int64_t start = base_mono_ms();
	expect_error(fx->t, "get_diff", "{}", "big.txt alone has 33554432 bytes");
	expect_error(fx->t, "submit_result", "{\"summary\": \"x\"}", "big.txt alone has");
	assert_true(base_mono_ms() - start < 3000);
	assert_int_equal(agent_tools_ended(fx->t, NULL), 0);
	/* a huge new binary file is left out, as every new binary file is,
	 * without being read */
	sh("cd %s && rm big.txt && truncate -s 1G huge.bin", fx->ws);
	json_decref(call(fx->t, "write_file", "{\"path\": \"small.c\", \"content\": \"int x;\\n\"}"));
	start = base_mono_ms();
	json_t *r = call(fx->t, "get_diff", "{}");
	assert_false(is_error(r));
	assert_non_null(strstr(text_of(r), "b/small.c"));
	assert_null(strstr(text_of(r), "huge.bin"));
	json_decref(r);
	assert_true(base_mono_ms() - start < 3000);
	/* a tracked file that grows past the cap is refused by its size too */
	sh("cd %s && rm huge.bin && yes 'more text' | head -c 16777216 >> words.txt", fx->ws);
	expect_error(fx->t, "get_diff", "{}", "words.txt alone has");
}

static void test_submit_ends_run(void **state)
{
	fixture *fx = *state;
	json_decref(call(fx->t, "edit_file", "{\"path\": \"src/hot.c\", \"old_string\": \"n * 2\", \"new_string\": \"n + n\"}"));
	expect_error(fx->t, "submit_result", "{\"summary\": \"\"}", "summary must say");
	json_t *r = call(fx->t, "submit_result", "{\"summary\": \"add instead of multiply\"}");
	assert_false(is_error(r));
	json_decref(r);
	expect_error(fx->t, "list_files", "{}", "the run has ended: submitted");
	char *summary = NULL, *diff = NULL;
	assert_int_equal(agent_tools_submission(fx->t, &summary, &diff), 0);
	assert_string_equal(summary, "add instead of multiply");
	assert_non_null(strstr(diff, "+\treturn n + n;"));
	free(summary);
	free(diff);
}

static void test_unknown_tool_and_list(void **state)
{
	fixture *fx = *state;
	json_t *res = NULL;
	assert_int_equal(agent_tool_call(fx->t, "rm_rf", NULL, &res), BASE_ENOTFOUND);
	assert_null(res);
	json_t *list = agent_tools_list();
	assert_int_equal(json_array_size(list), 11);
	size_t i;
	json_t *tool;
	json_array_foreach(list, i, tool) {
		json_t *schema = json_object_get(tool, "inputSchema");
		assert_string_equal(json_string_value(json_object_get(schema, "type")), "object");
		assert_true(agent_tools_exists(json_string_value(json_object_get(tool, "name"))));
	}
	json_decref(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_file_and_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confinement_lexical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confinement_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_grep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_diff_includes_new_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_tool_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_benchmarks_and_hooks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_submit_ends_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_tool_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grep_catastrophic_pattern_is_stopped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_stops_exec_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wall_budget_stops_call_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_diff_weighs_files_before_reading, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
