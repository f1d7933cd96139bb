/* Unit tests: verification of a submitted diff with the real sandbox and
 * callgrind on tests/data/optrepo — a real speed-up becomes a proposal; a
 * change that breaks the tests, a change that only claims a gain, and
 * forbidden changes (workflow, .git, outside the tree, binary, too big) do
 * not. */
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
#include <unistd.h>

#include "agent/bench.h"
#include "agent/repo_config.h"
#include "agent/sandbox.h"
#include "agent/tools.h"
#include "agent/verify.h"
#include "app/error.h"
#include "app/log.h"

typedef struct env {
	char dir[64];
	char repo[128], scratch[128];
	char base[41];
	agent_sandbox *sb;
	agent_repo_config *cfg;
	json_t *baseline;
	int n;
} env;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

/* A new plain tree of the base commit; path into out. */
static void fresh_tree(env *e, char *out, size_t n)
{
	snprintf(out, n, "%s/tree%d", e->dir, e->n++);
	sh("mkdir -p %s && git -C %s archive HEAD | tar -x -C %s", out, e->repo, out);
}

static int group_setup(void **state)
{
	env *e = calloc(1, sizeof(*e));
	app_log_configure(APP_LOG_WARN, 0, 2);
	snprintf(e->dir, sizeof(e->dir), "/tmp/perfbot-verify-XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	snprintf(e->repo, sizeof(e->repo), "%s/repo", e->dir);
	snprintf(e->scratch, sizeof(e->scratch), "%s/scratch", e->dir);
	sh("cp -r tests/data/optrepo %s && mkdir %s && cd %s && git init -q && git add -A && "
	   "git -c user.name=t -c user.email=t@example.com commit -qm base",
	   e->repo, e->scratch, e->repo);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "git -C %s rev-parse HEAD", e->repo);
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(e->base, sizeof(e->base), p))
		return -1;
	pclose(p);
	char yml[] = "build: make\ntest: make test\nbenchmarks:\n  - name: primes\n    command: ./bench/primes 3000\n"
		     "threshold: 3%\n";
	if (agent_repo_config_parse(&e->cfg, yml, strlen(yml)) < 0 || agent_sandbox_new(&e->sb, "bwrap") < 0)
		return -1;
	char tree[PATH_MAX];
	fresh_tree(e, tree, sizeof(tree));
	if (e->sb->prepare_dir(e->sb, tree) < 0 || e->sb->prepare_dir(e->sb, e->scratch) < 0)
		return -1;
	agent_bench_options bo = AGENT_BENCH_OPTIONS_INIT;
	bo.scratch_dir = e->scratch;
	if (agent_bench_measure(&e->baseline, e->sb, tree, e->cfg, &bo) < 0)
		return -1;
	*state = e;
	return 0;
}

static int group_teardown(void **state)
{
	env *e = *state;
	json_decref(e->baseline);
	agent_repo_config_free(e->cfg);
	agent_sandbox_free(e->sb);
	sh("rm -rf %s", e->dir);
	free(e);
	return 0;
}

/* The diff of a tree changed by `edit` (a shell command run in it). */
static char *make_diff(env *e, const char *edit)
{
	char tree[PATH_MAX];
	fresh_tree(e, tree, sizeof(tree));
	sh("cd %s && %s", tree, edit);
	char *diff = NULL;
	assert_int_equal(agent_workspace_diff(&diff, e->repo, tree, e->base, 1 << 20), 0);
	return diff;
}

static json_t *verify(env *e, const char *diff)
{
	char tree[PATH_MAX];
	fresh_tree(e, tree, sizeof(tree));
	agent_verify_options o = AGENT_VERIFY_OPTIONS_INIT;
	o.sandbox = e->sb;
	o.config = e->cfg;
	o.repo_path = e->repo;
	o.fresh_dir = tree;
	o.scratch_dir = e->scratch;
	o.baseline = e->baseline;
	o.diff = diff;
	o.diff_len = strlen(diff);
	o.summary = "summary";
	json_t *out = NULL;
	assert_int_equal(agent_verify(&out, &o), 0);
	assert_non_null(out);
	return out;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void test_real_speedup_is_a_proposal(void **state)
{
	env *e = *state;
	char *diff = make_diff(e, "sed -i 's/d < n;/d * d <= n;/' src/primes.c");
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "proposal");
	json_t *b = json_array_get(json_object_get(v, "benchmarks"), 0);
	assert_string_equal(str(b, "name"), "primes");
	assert_string_equal(str(b, "verdict"), "improved");
	assert_true(json_number_value(json_object_get(b, "head")) < json_number_value(json_object_get(b, "base")) / 2);
	assert_true(json_number_value(json_object_get(b, "change_pct")) < -50);
	assert_non_null(strstr(str(v, "log"), "test: `make test`: ok"));
	assert_string_equal(str(v, "diff"), diff);
	json_decref(v);
	free(diff);
}

static void test_broken_tests_are_no_proposal(void **state)
{
	env *e = *state;
	char *diff = make_diff(e, "sed -i 's/d < n;/d * d < n;/' src/primes.c");
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "failed");
	assert_string_equal(str(v, "reason"), "the tests fail with the change");
	assert_non_null(strstr(str(v, "log"), "FAIL"));
	assert_int_equal(json_array_size(json_object_get(v, "benchmarks")), 0);
	json_decref(v);
	free(diff);
}

static void test_claimed_gain_is_no_improvement(void **state)
{
	env *e = *state;
	char *diff = make_diff(e, "sed -i 's|^int is_prime|/* faster now */\\nint is_prime|' src/primes.c");
	assert_non_null(strstr(diff, "+/* faster now */"));
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "no_improvement");
	assert_string_equal(str(v, "reason"), "no benchmark improved past its threshold");
	assert_string_equal(str(json_array_get(json_object_get(v, "benchmarks"), 0), "verdict"), "unchanged");
	json_decref(v);
	free(diff);
}

static void test_forbidden_changes_are_refused(void **state)
{
	env *e = *state;
	char *diff = make_diff(e, "sed -i 's/d < n;/d * d <= n;/' src/primes.c && mkdir -p .github/workflows && "
				  "echo 'on: push' > .github/workflows/x.yml");
	json_t *v = verify(e, diff);
	assert_string_equal(str(v, "status"), "failed");
	assert_true(json_is_true(json_object_get(v, "refused")));
	assert_string_equal(str(v, "reason"),
			    "refused: .github/workflows/x.yml is a GitHub Actions workflow (.github/workflows/)");
	json_decref(v);
	free(diff);

	/* a new binary file (a build product) never reaches the diff ... */
	diff = make_diff(e, "printf '\\000\\001\\002' > blob.bin");
	assert_string_equal(diff, "");
	free(diff);
	/* ... and a binary change in a diff is refused */
	const char *bin = "diff --git a/x.bin b/x.bin\nindex 1111111..2222222 100644\nBinary files a/x.bin and b/x.bin differ\n";
	assert_int_equal(agent_diff_check(bin, strlen(bin), 0), APP_EINVALID);
	assert_non_null(strstr(app_error_last(), "binary"));

	const char *git = "diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n"
			  "@@ -1 +1 @@\n-a\n+b\n";
	assert_int_equal(agent_diff_check(git, strlen(git), 0), APP_EINVALID);
	assert_string_equal(app_error_last(), "refused: .git/config is under .git/");
	const char *up = "diff --git a/../x b/../x\n--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n";
	assert_int_equal(agent_diff_check(up, strlen(up), 0), APP_EINVALID);
	const char *ok = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n";
	assert_int_equal(agent_diff_check(ok, strlen(ok), 0), 0);
	assert_int_equal(agent_diff_check(ok, strlen(ok), 10), APP_ETOOBIG);
	/* a diff may not change what callgrind counts */
	const char *zero = "diff --git a/b.c b/b.c\n--- a/b.c\n+++ b/b.c\n@@ -1 +1,2 @@\n a();\n+CALLGRIND_ZERO_STATS;\n";
	assert_int_equal(agent_diff_check(zero, strlen(zero), 0), APP_EINVALID);
	assert_non_null(strstr(app_error_last(), "line 6 of the diff changes a valgrind client request (CALLGRIND_)"));
	const char *cheat = "diff --git a/b.c b/b.c\n--- a/b.c\n+++ b/b.c\n@@ -1 +1 @@\n-slow();\n"
			    "+if (!RUNNING_ON_VALGRIND) slow();\n";
	assert_int_equal(agent_diff_check(cheat, strlen(cheat), 0), APP_EINVALID);
	const char *moved = "diff --git a/h.c b/h.c\n--- a/h.c\n+++ b/h.c\n@@ -1,2 +1 @@\n-CALLGRIND_START_INSTRUMENTATION;\n"
			    " run();\n";
	assert_int_equal(agent_diff_check(moved, strlen(moved), 0), APP_EINVALID);
	/* context lines that mention them are fine */
	const char *near = "diff --git a/h.c b/h.c\n--- a/h.c\n+++ b/h.c\n@@ -1,2 +1,2 @@\n CALLGRIND_START_INSTRUMENTATION;\n"
			   "-run(1);\n+run(2);\n";
	assert_int_equal(agent_diff_check(near, strlen(near), 0), 0);

	v = verify(e, "");
	assert_string_equal(str(v, "status"), "no_improvement");
	json_decref(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_speedup_is_a_proposal),
		cmocka_unit_test(test_broken_tests_are_no_proposal),
		cmocka_unit_test(test_claimed_gain_is_no_improvement),
		cmocka_unit_test(test_forbidden_changes_are_refused),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
